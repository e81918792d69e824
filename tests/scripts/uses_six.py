"""uses_six.py: print six's version and where it was imported from (a requirement installed on the host)."""

import six

print(six.__version__, six.__file__)

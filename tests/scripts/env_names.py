"""env_names.py: print the names of the environment variables the script got, one per line, sorted."""

import os

for name in sorted(os.environ):
    print(name)

"""Give ansible-test the pip bootstrap it would download, made from this machine's own pip configuration.

ansible-test (the sanity tests of the collection) makes a virtual environment per test and puts pip into it
with a bootstrap script that it downloads from Ansible's CI file server, which this project's machines cannot
reach. It looks for that script in its cache first: this writes a stand-in there that does the same job with
the standard library's ensurepip and then pip itself, from the package index this machine's pip is configured
with. Run before `ansible-test sanity` (`make sanity`); an existing cached script is left as it is.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import ansible_test

STAND_IN = '''"""ansible-test's pip bootstrap, written by remote-trainer's .ci/ansible-test-pip.py: ensurepip, then pip
installs what ansible-test asks for (pip's own version first) from the configured index."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
'''


def pip_version() -> str:
    """The pip version that this ansible-test bootstraps (python_requirements.get_venv_packages)."""
    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    if not found:
        raise SystemExit(f"no pip version found in {source}: ansible-test changed, update {__file__}")
    return found.group(1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    version = pip_version()
    cache = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    if cache.exists():
        logging.info("ansible-test's pip %s bootstrap is cached: %s", version, cache)
        return 0
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(STAND_IN, encoding="utf-8")
    logging.info("wrote ansible-test's pip %s bootstrap: %s", version, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())

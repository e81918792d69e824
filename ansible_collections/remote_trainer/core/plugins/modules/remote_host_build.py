# Copyright: remote-trainer contributors
# Apache License 2.0 (see the collection's galaxy.yml)
"""Documentation of the remote_host_build action (plugins/action/remote_host_build.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: remote_host_build
short_description: Build a requirements set on a host and relay pip's output while it runs
description:
  - Runs the remote_host role's C(venvset.py) on the host with the host's python, which builds the set
    (a venv, or packages for a container image) under a lock and marks it ready.
  - The remote_host role calls it when its check finds the set missing; use the role.
  - Refuses check mode (the task is skipped), since it installs packages.
version_added: 0.1.0
author: remote-trainer maintainers (!UNKNOWN)
options:
  python:
    description: The host python that runs C(venvset.py).
    type: str
    required: true
  build:
    description:
      - The build spec (the role's plan); C(log) names the file on the host that pip's output goes to.
    type: dict
    required: true
  environment:
    description:
      - Variables for pip (proxies and the like).
      - They travel with the build spec on the command's stdin, never on a command line.
    type: dict
    default: {}
extends_documentation_fragment:
  - remote_trainer.core.attributes
attributes:
  check_mode:
    support: none
    details: The task is skipped under C(--check), with a warning that says why.
"""

EXAMPLES = r"""
- name: Prepare hosts with a requirements file (the role builds the set when it is missing)
  ansible.builtin.include_role:
    name: remote_trainer.core.remote_host
  vars:
    remote_host_requirements_file: requirements.txt
"""

RETURN = r"""
rc:
  description: The build's exit code.
  returned: always
  type: int
stdout:
  description: The build's standard output; its last line is C(installed) when it built the set.
  returned: always
  type: str
"""

# Copyright: remote-trainer contributors
# Apache License 2.0 (see the collection's galaxy.yml)
"""Documentation of the remote_host_check action (plugins/action/remote_host_check.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: remote_host_check
short_description: Check a host for the remote_host role in one remote command
description:
  - Probes the host with C(/bin/sh) (no python needed yet) for a usable python, rsync and the ready
    virtual environments of the cache, and plans what this requirements set needs.
  - The remote_host role calls it with its C(remote_host_*) settings, without their prefix; use the role,
    whose argument spec documents each setting.
  - Changes nothing on the host, so it runs in check mode too.
version_added: 0.1.0
author: remote-trainer maintainers (!UNKNOWN)
options:
  python: {description: "See the role's C(remote_host_python).", type: str, required: true}
  python_candidates:
    description: "See C(remote_host_python_candidates)."
    type: list
    elements: str
    required: true
  python_min_version: {description: "See C(remote_host_python_min_version).", type: str, required: true}
  interpreter: {description: "See C(remote_host_interpreter).", type: str, required: true}
  system_site_packages: {description: "See C(remote_host_system_site_packages).", type: bool, required: true}
  cache_dir: {description: "See C(remote_host_cache_dir).", type: str, required: true}
  requirements_file: {description: "See C(remote_host_requirements_file).", type: str, required: true}
  packages: {description: "See C(remote_host_packages).", type: list, elements: str, required: true}
  index_url: {description: "See C(remote_host_index_url).", type: str, required: true}
  extra_index_urls:
    description: "See C(remote_host_extra_index_urls)."
    type: list
    elements: str
    required: true
  find_links: {description: "See C(remote_host_find_links).", type: list, elements: str, required: true}
  no_index: {description: "See C(remote_host_no_index).", type: bool, required: true}
  wheelhouse: {description: "See C(remote_host_wheelhouse).", type: str, required: true}
  pip_extra_args:
    description: "See C(remote_host_pip_extra_args)."
    type: list
    elements: str
    required: true
  image: {description: "See C(remote_host_image).", type: dict, required: true}
extends_documentation_fragment:
  - remote_trainer.core.attributes
attributes:
  check_mode:
    support: full
    details: It only reads the host.
"""

EXAMPLES = r"""
- name: Prepare hosts (the role runs the check first, and installs only what it finds missing)
  ansible.builtin.include_role:
    name: remote_trainer.core.remote_host
  vars:
    remote_host_packages: [numpy]
"""

RETURN = r"""
ansible_facts:
  description: The plan (C(remote_host__plan)), the python to run with (C(remote_host_python_path)) and the
    host's report (C(remote_host_report)).
  returned: success
  type: dict
"""

# Copyright: remote-trainer contributors
# Apache License 2.0 (see the collection's galaxy.yml)
"""The attributes every action of the collection documents (as community.general's `attributes` fragment)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed, when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

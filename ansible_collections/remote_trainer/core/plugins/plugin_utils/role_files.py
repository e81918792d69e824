"""The host-side files of the collection's roles (their files/), found from the collection's own path.

The action plugins send them over the task's connection whether or not the task runs inside the role (the
train playbook's one step launches outside it), so they are not looked up along the task's search path.
"""

from __future__ import annotations

import os

_COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def role_file(role: str, name: str) -> str:
    """The path of roles/<role>/files/<name> of this collection."""
    return os.path.join(_COLLECTION, "roles", role, "files", name)

"""Check mode in the actions that start things: Ansible skips their task; this says why first."""

from __future__ import annotations


def refuse_check_mode(task, what: str) -> None:
    """Say why a task that starts things does nothing under --check (Ansible then skips it): a warning, seen
    at every verbosity, not only the skip's reason that -v shows."""
    if task.check_mode:
        from ansible.utils.display import Display

        Display().warning(f"{task.action} {what}: it does not run in check mode, so this task is skipped")

"""Relay records: what the collection's action plugins tell the driver while a task runs.

A record is one displayed line: RELAY_MARKER, a space, and compact JSON with `k` (its kind) and `h` (the
inventory host). driver/execution/events.py reads them from ansible-runner's events. The driver asks for them
with the variable RELAY_VAR set to "records" (an extra var of every playbook it runs); a playbook of one's
own leaves it unset, and each plugin then displays what it has to say as plain lines instead.
"""

from __future__ import annotations

import json

RELAY_MARKER = "@@remote-trainer-relay@@"
RELAY_VAR = "remote_trainer_relay"


def wants_records(task_vars: dict | None) -> bool:
    """Whether the run asked for relay records (the driver's runs) rather than plain lines."""
    return str((task_vars or {}).get(RELAY_VAR, "")) == "records"


def record_line(kind: str, host: str, **fields) -> str:
    """The displayed line of one record."""
    return RELAY_MARKER + " " + json.dumps({"k": kind, "h": host, **fields}, separators=(",", ":"))

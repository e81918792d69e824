"""Why a copy failed (training_job's staging with rsync, the outputs copied back with rsync or copy)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REASON = re.compile(r"(?i)rsync|not found")


def copy_cause(result: Mapping) -> str:
    """One line from a failed copy's result: the first of its stderr's and its msg's lines (stripped, blank
    ones dropped) that names rsync or something not found (rsync's own error line, rsync missing on a side),
    else the first of them, else "no message"."""
    text = f"{result.get('stderr', '')}\n{result.get('msg', '')}"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    reasons = [line for line in lines if _REASON.search(line)]
    return next(iter([*reasons, *lines]), "no message")

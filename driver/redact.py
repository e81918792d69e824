"""Credentials in URLs, hidden wherever the driver prints or records text: the one helper for it.

An index URL or a requirement line may carry them (`https://user:token@host/simple`,
`git+https://token@github.com/org/repo`). As pip shows such URLs: a user's password becomes `****`, a lone
token (a user without a password) becomes `****` itself.
"""

from __future__ import annotations

import re
from typing import Any

# scheme://userinfo@ : the userinfo is everything up to the last @ before the host (no /, no whitespace).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+(?:@[^/\s@'\"]+)*)@")
MASK = "****"


def _masked(match: re.Match[str]) -> str:
    user, sep, _ = match.group("userinfo").partition(":")
    shown = f"{user}:{MASK}" if sep else MASK
    return f"{match.group('scheme')}{shown}@"


def redact(text: str) -> str:
    """text with the credentials of every URL in it masked."""
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(_masked, text)


def redact_all(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(v) for v in value]
    return value

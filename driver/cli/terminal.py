r"""What a host's output may do to the user's terminal: draw, not command it.

Text from hosts (a job's output, and what hosts say in warnings and errors) reaches a terminal only through
`for_terminal` when the stream is one. What a progress bar or a colored log needs stays: "\r", "\t", "\b",
BEL, colors and styles (SGR, ESC [ ... m), cursor moves (ESC [ n A/B/C/D/E/F/G) and erasing in the line
(ESC [ n K). Every other escape sequence (OSC 52 clipboard writes, window titles, hyperlinks, device
queries whose answers a terminal types into the shell, DCS, private modes, a full reset), the 8-bit C1
controls and the other C0 controls are shown in caret notation instead (ESC as `^[`, the C1 control CSI as
`^[[`), so that they are visible and inert. A stream that is not a terminal gets the bytes unchanged.
"""

from __future__ import annotations

import functools
import re
from typing import TextIO

# An allowed control sequence, or one character that is neutralised: ESC, another C0 control (not \t \n \r
# \b BEL), DEL, a C1 control (U+0080-U+009F), or a byte 0x80-0x9f that was not UTF-8 (a lone surrogate,
# written back as that byte: see driver/execution/relay.py keeps_bytes).
_CONTROLS = re.compile("(\x1b\\[[0-9;]{0,32}[A-GKm])|([\x00-\x06\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udc9f])")


def _shown(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1)
    code = ord(match.group(2))
    if code >= 0xDC00:
        code -= 0xDC00  # a raw byte
    if code == 0x7F:
        return "^?"
    if code >= 0x80:  # C1: ESC and its 7-bit form
        return "^[" + chr(code - 0x40)
    return "^" + chr(code + 0x40)


def neutralise(text: str) -> str:
    """text with every control a terminal would obey, but those of drawing, in caret notation."""
    return _CONTROLS.sub(_shown, text)


@functools.cache
def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def for_terminal(text: str, stream: TextIO) -> str:
    """text as it may reach stream: neutralised when stream is a terminal, unchanged otherwise."""
    return neutralise(text) if is_terminal(stream) else text

"""Relay records: what the collection's action plugins tell the driver while a task runs.

A record is one displayed line: RELAY_MARKER, a space, and compact JSON with `k` (its kind) and `h` (the
inventory host). driver/execution/events.py reads them from ansible-runner's events. The driver asks for them
with the variable RELAY_VAR set to "records" (an extra var of every playbook it runs); a playbook of one's
own leaves it unset, and each plugin then displays what it has to say as plain lines instead.

`Lines` is the one rule that turns a job's output into lines, for the driver and for the plain display:
bounded memory and linear time for any output, a line over MAX_LINE cut into pieces with the CUT marker.
"""

from __future__ import annotations

import json
import re

RELAY_MARKER = "@@remote-trainer-relay@@"
RELAY_VAR = "remote_trainer_relay"


def wants_records(task_vars: dict | None) -> bool:
    """Whether the run asked for relay records (the driver's runs) rather than plain lines."""
    return str((task_vars or {}).get(RELAY_VAR, "")) == "records"


def record_line(kind: str, host: str, **fields) -> str:
    """The displayed line of one record."""
    return RELAY_MARKER + " " + json.dumps({"k": kind, "h": host, **fields}, separators=(",", ":"))


# A job's output as lines: the one rule of the driver's relay (driver/execution/relay.py loads this module by
# its path) and of a plain playbook's display (plugins/action/training_job.py).
MAX_LINE = 1 << 20  # longest line handed over whole; a longer one comes in pieces of this size
CUT = " [remote-trainer: line cut at 1 MiB; it goes on in the next line]"
# Why a piece ended: a line's end ("\n" or "\r\n"), a progress bar's redraw (a lone "\r"), or cut at MAX_LINE.
NEWLINE, REDRAW, CUT_HERE = "\n", "\r", "cut"
# A line's end: "\r\n", "\n", or a "\r" followed by anything but "\n" (a "\r" last in the bytes so far waits
# for the next byte, which says whether it is half of a "\r\n").
_LINE_END = re.compile(rb"\r\n|\n|\r(?=[^\n])")


class Lines:
    r"""Bytes in, lines out, in bounded memory and linear time, whatever the bytes.

    feed() returns the pieces that the bytes so far complete, each (bytes without its end, why it ended:
    NEWLINE, REDRAW or CUT_HERE); rest() the bytes of a last line not ended yet. Each byte is looked at once
    (only the new bytes are searched for a line's end), and at most MAX_LINE bytes wait for one: a longer
    line is handed over in pieces of MAX_LINE bytes (CUT_HERE), cut before a UTF-8 sequence rather than
    inside it. Pieces put back together with their ends are the bytes fed, none lost or repeated.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._pending = bytearray()

    def __len__(self) -> int:
        """How many bytes wait (a line not ended yet)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[tuple[bytes, str]]:
        buf = self._pending
        # Everything pending was searched already, but for a last "\r" that the next byte decides.
        searched = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
        buf += data
        pieces = []
        start = 0
        for end in _LINE_END.finditer(buf, searched):
            if end.start() - start > self.max_line:
                start = self._cut(buf, start, end.start(), pieces)
            ended = REDRAW if end.group() == b"\r" else NEWLINE
            pieces.append((bytes(buf[start : end.start()]), ended))
            start = end.end()
        # What is left has no line end (but perhaps a last "\r"): cut it down to MAX_LINE bytes.
        if len(buf) - start > self.max_line:
            start = self._cut(buf, start, len(buf), pieces)
        del buf[:start]
        return pieces

    def _cut(self, buf: bytearray, start: int, stop: int, pieces: list[tuple[bytes, str]]) -> int:
        """Cut buf[start:stop] (no line end in it) into MAX_LINE pieces until at most MAX_LINE are left."""
        while stop - start > self.max_line:
            at = _utf8_boundary(buf, start + self.max_line, start)
            pieces.append((bytes(buf[start:at]), CUT_HERE))
            start = at
        return start

    def rest(self) -> bytes:
        """The bytes of a line not ended yet, taken out (the end of the output)."""
        rest = bytes(self._pending)
        self._pending.clear()
        return rest


def _utf8_boundary(buf: bytearray, at: int, floor: int) -> int:
    """`at`, or up to 3 bytes before it where a UTF-8 sequence that `at` would split begins."""
    for back in range(1, 4):
        i = at - back
        if i <= floor:
            break
        byte = buf[i]
        if byte < 0x80:  # ASCII: nothing split
            break
        if byte >= 0xC0:  # a sequence's first byte: does it end before `at`?
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return i if back < length else at
    return at

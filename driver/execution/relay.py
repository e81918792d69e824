r"""Reassemble relayed log bytes into lines, per host, in order, with none lost or repeated.

A line ends with "\n" (or "\r\n"); a "\r" alone ends one too, a progress bar's redraw (tqdm writes each
update as "\r<bar>"), and stays at the end of the line handed to the sink, which then writes no newline, so
that the bar is shown as it goes and overwritten in place rather than all at once at its final "\n".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("driver.execution.relay")

LineSink = Callable[[str], None]
_Sink = TypeVar("_Sink", bound=LineSink)

# A line's end: "\r\n", "\n", or a "\r" followed by anything but "\n" (a "\r" last in the bytes so far waits
# for the next byte, which says whether it is half of a "\r\n").
_LINE_END = re.compile(rb"\r\n|\n|\r(?=[^\n])")


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    r"""The complete lines of data, each with its end ("\n", "\r\n" or a lone "\r"), and the rest after them
    (a line without its end yet, or b""; it may end in a "\r" that the next byte decides)."""
    lines = []
    start = 0
    for end in _LINE_END.finditer(data):
        lines.append(data[start : end.end()])
        start = end.end()
    return lines, data[start:]


def keeps_bytes(sink: _Sink) -> _Sink:
    """Mark a sink that writes its lines back as bytes with errors="surrogateescape": a relay then decodes
    bytes that are not UTF-8 as lone surrogates, so they reach the sink's output unchanged. Any other sink
    gets them as U+FFFD, a str that print() or a caller of the SDK's get_job_logs can always write."""
    sink.keeps_bytes = True  # type: ignore[attr-defined]
    return sink


class _HostStream:
    def __init__(self, host: str, log_path: Path | None, offset: int = 0) -> None:
        self.host = host
        self.offset = offset
        self.partial = b""
        self.file = log_path.open("ab") if log_path is not None else None


class Relay:
    r"""Feeds each host's bytes, checked against their offsets, into complete lines for the sink.

    A line is handed over without its "\n" (or "\r\n"); one that a lone "\r" ended keeps it. Lines are
    prefixed with `[host] ` once the job runs on more than one host. A copy of each host's raw log is kept
    in `log_dir/<host>.log` (none without a log_dir). `start` gives the log offset each host's bytes start
    at (a follow that resumes); with `hold_partial` a last line without its newline is not emitted at the
    end, and `complete` says, per host, where the last complete line ended (the offset to resume at).
    `replay` hands a whole log over the same way (a copy of it kept here).
    """

    def __init__(
        self,
        sink: LineSink,
        log_dir: Path | None,
        prefix_hosts: bool = False,
        start: dict[str, int] | None = None,
        hold_partial: bool = False,
    ) -> None:
        self.sink = sink
        self.log_dir = log_dir
        self.prefix_hosts = prefix_hosts
        self.labels: dict[str, str] = {}  # host -> prefix label, e.g. "0:gpu1" for rank 0
        self.streams: dict[str, _HostStream] = {}
        self.start = dict(start or {})
        self.hold_partial = hold_partial
        self.complete: dict[str, int] = {}

    def _stream(self, host: str) -> _HostStream:
        stream = self.streams.get(host)
        if stream is None:
            path = self.log_dir / f"{host}.log" if self.log_dir is not None else None
            stream = self.streams[host] = _HostStream(host, path, self.start.get(host, 0))
        return stream

    def feed(self, host: str, offset: int, data: bytes) -> None:
        stream = self._stream(host)
        if offset != stream.offset:
            # Cannot happen unless a poll result was lost or repeated; say so rather than print garbage.
            if offset < stream.offset:
                data = data[stream.offset - offset :]
                log.warning("[%s] dropped %d repeated bytes of output", host, stream.offset - offset)
            else:
                log.warning("[%s] %d bytes of output are missing", host, offset - stream.offset)
        if stream.file is not None:
            stream.file.write(data)
        stream.offset += len(data)
        lines, stream.partial = split_lines(stream.partial + data)
        for line in lines:
            self._emit(host, line)
        if stream.file is not None:
            stream.file.flush()

    def finish(self, host: str | None = None) -> None:
        """Emit a last line without newline and close the copies (all hosts, or one)."""
        for name, stream in list(self.streams.items()):
            if host is not None and name != host:
                continue
            self.complete[name] = stream.offset - len(stream.partial)
            if stream.partial and not self.hold_partial:
                self._emit(name, stream.partial)
                stream.partial = b""
            if stream.file is not None:
                stream.file.close()
            del self.streams[name]

    def replay(self, host: str, path: Path, chunk: int = 1 << 20) -> None:
        """Hand over the lines of a whole log file as if relayed from its start, then finish that host."""
        offset = self.start.get(host, 0)
        with path.open("rb") as f:
            f.seek(offset)
            while data := f.read(chunk):
                self.feed(host, offset, data)
                offset += len(data)
        self.finish(host)

    def bytes_received(self, host: str) -> int:
        stream = self.streams.get(host)
        return stream.offset if stream else 0

    def _emit(self, host: str, line: bytes) -> None:
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        errors = "surrogateescape" if getattr(self.sink, "keeps_bytes", False) else "replace"
        text = line.decode("utf-8", errors=errors)
        self.sink(f"[{self.labels.get(host, host)}] {text}" if self.prefix_hosts else text)

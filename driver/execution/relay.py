"""Reassemble relayed log bytes into lines, per host, in order, with none lost or repeated."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("driver.execution.relay")

LineSink = Callable[[str], None]


class _HostStream:
    def __init__(self, host: str, log_path: Path | None, offset: int = 0) -> None:
        self.host = host
        self.offset = offset
        self.partial = b""
        self.file = log_path.open("ab") if log_path is not None else None


class Relay:
    """Feeds each host's bytes, checked against their offsets, into complete lines for the sink.

    Lines are prefixed with `[host] ` once the job runs on more than one host. A copy of each host's
    raw log is kept in `log_dir/<host>.log` (none without a log_dir). `start` gives the log offset each
    host's bytes start at (a follow that resumes); with `hold_partial` a last line without its newline is
    not emitted at the end, and `complete` says, per host, where the last complete line ended (the offset
    to resume at).
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
        lines = (stream.partial + data).split(b"\n")
        stream.partial = lines.pop()
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

    def bytes_received(self, host: str) -> int:
        stream = self.streams.get(host)
        return stream.offset if stream else 0

    def _emit(self, host: str, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        self.sink(f"[{self.labels.get(host, host)}] {text}" if self.prefix_hosts else text)

r"""Reassemble relayed log bytes into lines, per host, in order, with none lost or repeated.

A line ends with "\n" (or "\r\n"); a "\r" alone ends one too, a progress bar's redraw (tqdm writes each
update as "\r<bar>"), and stays at the end of the line handed to the sink, which then writes no newline, so
that the bar is shown as it goes and overwritten in place rather than all at once at its final "\n".

Any output costs bounded memory and time linear in its size, newline or not: the rule (the collection's
plugin_utils/relay.py, `Lines`) looks at each byte once and holds at most MAX_LINE (1 MiB) of a line; a
longer line reaches the sink in pieces of that size, each but the last ending in the CUT marker. The local
copy of the log is written as the bytes come, every byte of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from driver.execution import assets

log = logging.getLogger("driver.execution.relay")

LineSink = Callable[[str], None]
_Sink = TypeVar("_Sink", bound=LineSink)


def rules() -> ModuleType:
    """The collection's plugins/plugin_utils/relay.py: the one rule that turns output into lines (Lines),
    shared with the plugin's own display."""
    return assets.plugin_utils("relay")


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
        self.lines = rules().Lines()
        self.log_path = log_path
        self.file = log_path.open("ab") if log_path is not None else None

    def keep(self, data: bytes) -> None:
        """Add data to the local copy; a copy that cannot be written (a full disk) is given up, once, with
        a warning: the relay goes on, and the host's log still holds every byte."""
        if self.file is None:
            return
        try:
            self.file.write(data)
            self.file.flush()
        except OSError as exc:
            log.warning(
                "[%s] the local copy of the log (%s) stopped at byte %d: %s; the host's log still holds "
                "every byte (`driver logs` prints it)",
                self.host,
                self.log_path,
                self.offset,
                exc.strerror or exc,
            )
            self.close()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


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
                stream.offset = offset  # the bytes that follow are in order again: one warning per gap
        stream.keep(data)
        stream.offset += len(data)
        for line, ended in stream.lines.feed(data):
            self._emit(host, line, ended)

    def finish(self, host: str | None = None) -> None:
        """Emit a last line without newline and close the copies (all hosts, or one)."""
        for name, stream in list(self.streams.items()):
            if host is not None and name != host:
                continue
            self.complete[name] = stream.offset - len(stream.lines)
            if len(stream.lines) and not self.hold_partial:
                self._emit(name, stream.lines.rest(), "")
            stream.close()
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

    def _emit(self, host: str, line: bytes, ended: str) -> None:
        """Hand one line to the sink: its text, a redraw's "\r" kept, a cut line's marker added."""
        errors = "surrogateescape" if getattr(self.sink, "keeps_bytes", False) else "replace"
        text = line.decode("utf-8", errors=errors)
        if ended == rules().REDRAW:
            text += "\r"
        elif ended == rules().CUT_HERE:
            text += rules().CUT
        self.sink(f"[{self.labels.get(host, host)}] {text}" if self.prefix_hosts else text)

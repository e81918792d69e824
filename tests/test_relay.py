"""Reassembly of relayed bytes into lines (driver/relay.py)."""

import time
import tracemalloc

from driver.execution.relay import Relay, keeps_bytes


def test_lines_split_across_chunks_are_joined(tmp_path):
    out = []
    relay = Relay(out.append, tmp_path)
    relay.feed("h", 0, b"one\ntw")
    relay.feed("h", 6, b"o\nthr")
    relay.feed("h", 11, b"ee")
    assert out == ["one", "two"]
    relay.finish()
    assert out == ["one", "two", "three"]
    assert (tmp_path / "h.log").read_bytes() == b"one\ntwo\nthree"


def test_hosts_are_prefixed_when_several(tmp_path):
    out = []
    relay = Relay(out.append, tmp_path, prefix_hosts=True)
    relay.feed("a", 0, b"x\n")
    relay.feed("b", 0, b"y\r\n")
    assert out == ["[a] x", "[b] y"]


def test_repeated_bytes_are_dropped_not_printed_twice(tmp_path):
    out = []
    relay = Relay(out.append, tmp_path)
    relay.feed("h", 0, b"a\nb\n")
    relay.feed("h", 2, b"b\nc\n")
    assert out == ["a", "b", "c"]
    assert relay.bytes_received("h") == 6


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    out = []
    relay = Relay(out.append, tmp_path)
    relay.feed("h", 0, b"caf\xe9\n")
    assert out == ["caf\ufffd"]


def test_a_held_partial_line_is_resumed_whole_from_the_complete_offset():
    first: list[str] = []
    relay = Relay(first.append, None, hold_partial=True)
    relay.feed("h", 0, b"one\ntwo\nthr")
    relay.finish()
    assert first == ["one", "two"]
    assert relay.complete == {"h": 8}
    # A second relay resumes there: the held line arrives whole, nothing is missing or repeated.
    second: list[str] = []
    resumed = Relay(second.append, None, start=relay.complete)
    resumed.feed("h", 8, b"three\nfour\n")
    resumed.finish()
    assert second == ["three", "four"]


def test_a_lone_cr_ends_a_line_that_keeps_it_and_crlf_stays_a_line_end(tmp_path):
    out: list[str] = []
    relay = Relay(out.append, tmp_path)
    relay.feed("h", 0, b"\rstep 1\rstep 2\r")
    # The last "\r" may be half of a "\r\n": held until the next byte says.
    assert out == ["\r", "step 1\r"]
    relay.feed("h", 15, b"\n\rbar\r\r\nend")
    assert out == ["\r", "step 1\r", "step 2", "\r", "bar\r", ""]
    relay.finish()
    assert out[-1] == "end"
    assert (tmp_path / "h.log").read_bytes() == b"\rstep 1\rstep 2\r\n\rbar\r\r\nend"


def test_a_redraw_is_prefixed_like_any_line_and_a_last_cr_is_kept_at_the_end():
    out: list[str] = []
    relay = Relay(out.append, None, prefix_hosts=True)
    relay.feed("a", 0, b"\r10%\r20%\r")
    relay.finish()
    assert out == ["[a] \r", "[a] 10%\r", "[a] 20%\r"]


def test_a_held_cr_is_not_complete_and_is_resumed_from_its_line():
    first: list[str] = []
    relay = Relay(first.append, None, hold_partial=True)
    relay.feed("h", 0, b"one\n\r1%\r")
    relay.finish()
    assert first == ["one", "\r"]
    assert relay.complete == {"h": 5}
    second: list[str] = []
    resumed = Relay(second.append, None, start=relay.complete)
    resumed.feed("h", 5, b"1%\r\n")
    resumed.finish()
    assert second == ["1%"]


def test_a_sink_that_keeps_bytes_gets_non_utf8_bytes_back_unchanged():
    got: list[str] = []

    @keeps_bytes
    def sink(line: str) -> None:
        got.append(line)

    raw = b"caf\xe9 \xff\xfe \xc3\xa9 \xe2\x82\n"
    Relay(sink, None).feed("h", 0, raw)
    assert got == ["caf\udce9 \udcff\udcfe \xe9 \udce2\udc82"]
    assert (got[0] + "\n").encode("utf-8", "surrogateescape") == raw


def test_replay_of_a_file_hands_over_the_lines_as_a_live_relay_does(tmp_path):
    data = b"a\r\nb\rc\n" + b"x" * 5000 + b"\ry\r"
    (tmp_path / "h.log").write_bytes(data)
    live: list[str] = []
    relay = Relay(live.append, None)
    for i in range(0, len(data), 7):
        relay.feed("h", i, data[i : i + 7])
    relay.finish()
    replayed: list[str] = []
    Relay(replayed.append, None).replay("h", tmp_path / "h.log", chunk=1000)
    assert replayed == live == ["a", "b\r", "c", "x" * 5000 + "\r", "y\r"]


# -- issue 28: any output, newline or not, in bounded memory and linear time --------------------------------

MIB = 1 << 20
CUT = " [remote-trainer: line cut at 1 MiB; it goes on in the next line]"


def _cpu_of_feeding(data_chunk: bytes, total: int, relay: Relay) -> float:
    start = time.process_time()
    offset = 0
    while offset < total:
        relay.feed("h", offset, data_chunk)
        offset += len(data_chunk)
    relay.finish()
    return time.process_time() - start


def test_64_mib_without_a_newline_costs_no_more_cpu_than_64_mib_of_lines(tmp_path):
    # Before: the pending line was searched again at every batch (quadratic): 64 MiB without a newline took
    # 54 s of CPU, 60 times a newline-rich stream of the same size. Now each byte is looked at once.
    chunk = 256 * 1024
    flat = b"x" * chunk
    lines = ((b"y" * 99 + b"\n") * (chunk // 100 + 1))[:chunk]
    got: list[int] = []
    (tmp_path / "x").mkdir()
    flat_cpu = _cpu_of_feeding(flat, 64 * MIB, Relay(lambda line: got.append(len(line)), tmp_path))
    lines_cpu = _cpu_of_feeding(lines, 64 * MIB, Relay(lambda line: None, tmp_path / "x"))
    assert flat_cpu <= lines_cpu, (flat_cpu, lines_cpu)
    # 64 pieces of 1 MiB, each but the last with the marker; the copy holds every byte.
    assert got == [MIB + len(CUT)] * 63 + [MIB]
    assert (tmp_path / "h.log").stat().st_size == 64 * MIB


def test_a_line_without_a_newline_waits_in_at_most_one_mib(tmp_path):
    relay = Relay(lambda line: None, None)
    tracemalloc.start()
    try:
        offset = 0
        for _ in range(64):  # 16 MiB
            relay.feed("h", offset, b"z" * (256 * 1024))
            offset += 256 * 1024
            assert len(relay.streams["h"].lines) <= MIB
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * MIB, peak  # 16 MiB went through: before, twice that stayed


def test_a_long_line_is_cut_with_a_marker_and_nothing_is_lost(tmp_path):
    out: list[str] = []

    @keeps_bytes
    def sink(line: str) -> None:
        out.append(line)

    relay = Relay(sink, tmp_path, prefix_hosts=True)
    data = b"a" * (MIB + 10) + b"\n" + b"b" * (2 * MIB + 5) + b"\rc\r\nd" + b"e" * (MIB + 1)
    for i in range(0, len(data), 100_000):
        relay.feed("h", i, data[i : i + 100_000])
    relay.finish()
    assert out == [
        "[h] " + "a" * MIB + CUT,
        "[h] " + "a" * 10,
        "[h] " + "b" * MIB + CUT,
        "[h] " + "b" * MIB + CUT,
        "[h] " + "b" * 5 + "\r",
        "[h] c",
        "[h] d" + "e" * (MIB - 1) + CUT,
        "[h] ee",
    ]
    assert (tmp_path / "h.log").read_bytes() == data
    # Without the markers and prefixes, the pieces are the bytes: none lost or repeated.
    rebuilt = "".join(
        line[4:].removesuffix(CUT) + ("" if line.endswith((CUT, "\r")) else "\n") for line in out
    )
    assert rebuilt.encode("utf-8", "surrogateescape") == data.replace(b"\r\n", b"\n") + b"\n"


def test_a_cut_never_splits_a_utf8_character():
    out: list[str] = []
    relay = Relay(out.append, None)
    # "é" (2 bytes) and "€" (3 bytes) across the 1 MiB mark: the piece ends before them.
    for tail in ("é", "€", "😀"):
        out.clear()
        data = b"x" * (MIB - 1) + tail.encode() + b"y" * 10 + b"\n"
        relay.feed("h", relay.bytes_received("h"), data)
        assert out == ["x" * (MIB - 1) + CUT, tail + "y" * 10]


def test_a_cr_held_at_the_cut_still_decides_with_the_next_byte():
    out: list[str] = []
    relay = Relay(out.append, None)
    relay.feed("h", 0, b"q" * (MIB + 3) + b"\r")
    relay.feed("h", MIB + 4, b"\n")
    assert out == ["q" * MIB + CUT, "qqq"]


def test_a_local_copy_that_cannot_be_written_is_one_warning_and_the_output_goes_on(tmp_path, caplog):
    # A full disk (the copy on /dev/full): before, OSError ended the driver's event handling.
    (tmp_path / "h.log").symlink_to("/dev/full")
    out: list[str] = []
    relay = Relay(out.append, tmp_path)
    with caplog.at_level("WARNING", logger="driver.execution.relay"):
        relay.feed("h", 0, b"one\n")
        relay.feed("h", 4, b"two\n")
        relay.finish()
    assert out == ["one", "two"]
    (warning,) = caplog.records
    assert "local copy of the log" in warning.getMessage() and "No space left" in warning.getMessage()


def test_missing_bytes_are_one_warning_per_gap(caplog):
    # A record dropped as malformed (events.py) leaves a gap: the records after it are in order again.
    out: list[str] = []
    relay = Relay(out.append, None)
    with caplog.at_level("WARNING", logger="driver.execution.relay"):
        relay.feed("h", 0, b"a\n")
        relay.feed("h", 10, b"b\n")
        relay.feed("h", 12, b"c\n")
    assert out == ["a", "b", "c"]
    assert [r.getMessage() for r in caplog.records] == ["[h] 8 bytes of output are missing"]
    assert relay.bytes_received("h") == 14

"""Reassembly of relayed bytes into lines (driver/relay.py)."""

from driver.execution.relay import Relay


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

"""Parsing of durations and --env values (pure functions)."""

import pytest

from driver.errors import BadEnv, BadValue
from driver.job.spec import new_job_id, parse_duration, parse_env


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        (" 5 m ", 300),
        ("1H", 3600),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "soon", "-1s", "0", "0s", "1y", "1h-30m", "s5"])
def test_bad_durations(text):
    with pytest.raises(BadValue) as err:
        parse_duration(text)
    assert err.value.exit_code == 64 and err.value.hint


def test_env_values_are_kept_verbatim(monkeypatch):
    monkeypatch.setenv("FROM_HERE", "v a l")
    assert parse_env(["A=1", "B=", "C=x=y", "D= spaced ", "FROM_HERE"]) == {
        "A": "1",
        "B": "",
        "C": "x=y",
        "D": " spaced ",
        "FROM_HERE": "v a l",
    }


@pytest.mark.parametrize("item", ["=x", "1A=x", "A-B=x", "A B=x", "NOT_SET_ANYWHERE_X"])
def test_bad_env(item, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE_X", raising=False)
    with pytest.raises(BadEnv) as err:
        parse_env([item])
    assert err.value.exit_code == 65


def test_job_ids_are_unique_and_sortable():
    ids = [new_job_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i.split("-")) == 3 for i in ids)

"""The one rule of a job's end (driver/job/store.py `ending`), used by `train` and by status/logs/cancel."""

from __future__ import annotations

import pytest

from driver import errors
from driver.job import store


@pytest.mark.parametrize(
    ("stopped", "failed_rc", "lost", "end"),
    [
        (None, None, False, ("ended", 0)),
        (None, 3, False, ("ended", 3)),
        (None, None, True, ("lost", None)),
        (None, 3, True, ("ended", 3)),  # another host's code is the job's
        ("timeout", 143, False, ("timeout", errors.EXIT_TIMEOUT)),
        ("SIGINT", None, False, ("cancelled", errors.EXIT_SIGINT)),
        ("SIGTERM", 143, True, ("cancelled", errors.EXIT_SIGTERM)),
        ("cancelled", 143, False, ("cancelled", 143)),  # `driver cancel`: the script's own code
        ("cancelled", None, False, ("cancelled", 0)),
        ("rank_failed", 7, False, ("ended", 7)),  # not a stop of the job: the failed rank's code
    ],
)
def test_a_jobs_end(stopped, failed_rc, lost, end):
    assert store.ending(stopped, failed_rc, lost) == end


@pytest.mark.parametrize(
    ("stopped", "decides"),
    [
        ("timeout", True),
        ("SIGINT", True),
        ("SIGTERM", True),
        ("cancelled", False),
        ("rank_failed", False),
        (None, False),
    ],
)
def test_which_stops_give_the_code(stopped, decides):
    assert store.stop_decides(stopped) is decides


def test_records_are_listed_in_the_order_they_were_created(tmp_path, monkeypatch):
    """Ids name the second only: two jobs of one second (a detached job, then the next) keep their order."""
    monkeypatch.setenv("REMOTE_TRAINER_STATE_DIR", str(tmp_path))
    store.save(store.JobRecord(id="20261205-012433-ffffff", started=1000.25))
    store.save(store.JobRecord(id="20261205-012433-000000", started=1000.75))
    store.save(store.JobRecord(id="20261205-012432-999999", started=999.5))
    assert [r.id for r in store.all_records()] == [
        "20261205-012432-999999",
        "20261205-012433-ffffff",
        "20261205-012433-000000",
    ]

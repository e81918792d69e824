"""What of a workdir is staged: rsync's own view with the role's filters (real rsync on real files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from driver.errors import BadValue, WorkdirTooBig
from driver.job import staging
from driver.job.contract import output_problem


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_ignored_files_and_git_are_not_counted(tmp_path):
    work = tmp_path / "work"
    write(work / "train.py", 100)
    write(work / "data" / "big.bin", 10_000)
    write(work / "logs" / "run.log", 5_000)
    write(work / "sub" / "cache.tmp", 7_000)
    write(work / ".git" / "objects" / "pack", 50_000)
    (work / ".gitignore").write_text("data/\n")
    (work / ".driverignore").write_text("logs/\n")
    (work / "sub" / ".driverignore").write_text("*.tmp\n")
    ignores = len("data/\n") + len("logs/\n") + len("*.tmp\n")
    assert staging.measure(work) == 100 + ignores


def test_manifest_follows_what_rsync_would_send_and_nothing_else(tmp_path):
    work = tmp_path / "work"
    write(work / "train.py", 100)
    write(work / "data" / "a.bin", 10)
    write(work / "logs" / "run.log", 5)
    (work / ".driverignore").write_text("logs/\n")
    (work / "link").symlink_to("train.py")
    first = staging.survey(work)[1]
    assert len(first) == 64 and staging.survey(work)[1] == first
    # What rsync leaves out does not count: an ignored file, or a new file in an ignored directory.
    write(work / "logs" / "run.log", 50)
    write(work / "logs" / "more.log", 5)
    assert staging.survey(work)[1] == first
    # What it sends does: the same size written again (a new mtime), a new file, a mode, a link's target.
    changed = []
    write(work / "data" / "a.bin", 10)
    changed.append(staging.survey(work)[1])
    write(work / "data" / "b.bin", 0)
    changed.append(staging.survey(work)[1])
    (work / "train.py").chmod(0o700)
    changed.append(staging.survey(work)[1])
    (work / "link").unlink()
    (work / "link").symlink_to("data")
    changed.append(staging.survey(work)[1])
    assert len({first, *changed}) == 5
    # A name rsync shows escaped (a newline in it) is not read back: no manifest, rsync every time.
    write(work / "odd\nname.txt", 1)
    assert staging.survey(work)[1] == ""


def test_plan_keys_the_mirror_and_places_the_script(tmp_path):
    work = tmp_path / "work"
    write(work / "src" / "train.py", 10)
    outside = tmp_path / "other.py"
    write(outside, 10)
    inside = staging.plan(work, work / "src" / "train.py", 1 << 20)
    assert inside.script_rel == "src/train.py" and inside.size == 10
    assert staging.plan(work, outside, 1 << 20).script_rel == ""
    assert inside.key == staging.plan(work, outside, 1 << 20).key and len(inside.key) == 16
    with pytest.raises(WorkdirTooBig, match="over the limit"):
        staging.plan(work, outside, 5)


@pytest.mark.parametrize(("text", "size"), [("2G", 2 << 30), ("500M", 500 << 20), ("1.5k", 1536), ("10", 10)])
def test_sizes(text, size):
    assert staging.parse_size(text) == size


def test_bad_size_is_a_bad_value():
    with pytest.raises(BadValue) as err:
        staging.parse_size("lots")
    assert err.value.exit_code == 64


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("outputs", None),
        ("runs/exp1/", None),
        ("./out", None),
        ("", "empty"),
        ("/abs", "absolute"),
        ("~/x", "absolute"),
        ("../x", "climbs"),
        ("a/../../x", "climbs"),
        (".", "working directory itself"),
    ],
)
def test_output_problems(output, problem):
    found = output_problem(output)
    assert (found is None) if problem is None else (problem in found)

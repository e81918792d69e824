"""Machine-readable output and waiting: `--json` documents valid against their schemas, job filters and
pruning, `driver wait` exiting with the job's code."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
from driverproc import REPO, SCRIPTS, run_driver
from referencing import Registry, Resource

SCHEMAS = REPO / "driver" / "cli" / "schemas"
HELLO = str(REPO / "examples" / "hello.py")


def validate(document: dict, name: str) -> None:
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in SCHEMAS.glob("*.schema.json")
    ]
    registry = Registry().with_resources([(f"remote-trainer/{n}", r) for n, r in resources] + resources)
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator(schema, registry=registry).validate(document)


def detached(testhosts, tmp_path: Path, *args: str) -> str:
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(["train", "-d", *args[:1], *inv, "--", *args[1:]], tmp_path)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_jobs_and_status_json_follow_their_schemas(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    running = detached(testhosts, tmp_path, str(SCRIPTS / "sleeper.py"), tag)
    failed = run_driver(["train", str(SCRIPTS / "exit_with.py"), "--", "3"], tmp_path)
    assert failed.returncode == 3
    try:
        res = run_driver(["jobs", "--json"], tmp_path)
        assert res.returncode == 0, res.stderr
        document = json.loads(res.stdout)
        validate(document, "jobs.schema.json")
        states = {job["id"]: job["state"] for job in document["jobs"]}
        assert states[running] == "running" and list(states.values()).count("ended") == 1
        status = run_driver(["status", running, "--json"], tmp_path)
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        validate(document, "status.schema.json")
        assert document["job"]["id"] == running and document["hosts"][0]["host"] == "th1"
        assert document["hosts"][0]["state"] == "running" and document["hosts"][0]["exit_code"] is None
        only = json.loads(run_driver(["jobs", "--json", "--state", "running"], tmp_path).stdout)["jobs"]
        assert [job["id"] for job in only] == [running]
        newest = json.loads(run_driver(["jobs", "--json", "--last", "1"], tmp_path).stdout)["jobs"]
        assert len(newest) == 1 and newest[0]["id"] != running
    finally:
        run_driver(["cancel", running, "--grace", "1s"], tmp_path)


def test_jobs_refresh_asks_the_hosts(testhosts, tmp_path):
    job = detached(testhosts, tmp_path, str(SCRIPTS / "exit_with.py"), "5")
    time.sleep(2)  # it ends on the host; its record still says running
    listed = json.loads(run_driver(["jobs", "--json"], tmp_path).stdout)["jobs"]
    assert listed[0]["state"] == "running"
    refreshed = json.loads(run_driver(["jobs", "--json", "--refresh"], tmp_path).stdout)["jobs"]
    assert refreshed[0]["id"] == job
    assert refreshed[0]["state"] == "ended" and refreshed[0]["exit_code"] == 5


def test_prune_removes_old_records_and_keeps_running_ones(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    running = detached(testhosts, tmp_path, str(SCRIPTS / "sleeper.py"), tag)
    assert run_driver(["train", HELLO], tmp_path).returncode == 0
    try:
        kept = json.loads(run_driver(["jobs", "--json", "--prune"], tmp_path).stdout)
        assert kept["pruned"] == [] and len(kept["jobs"]) == 2  # nothing is 30 days old
        res = run_driver(["jobs", "--json", "--prune", "--older-than", "0"], tmp_path)
        document = json.loads(res.stdout)
        assert len(document["pruned"]) == 1 and [j["id"] for j in document["jobs"]] == [running]
        validate(document, "jobs.schema.json")
    finally:
        run_driver(["cancel", running, "--grace", "1s"], tmp_path)


def test_wait_exits_with_the_jobs_code(testhosts, tmp_path):
    job = detached(testhosts, tmp_path, str(SCRIPTS / "counter.py"), "3", "0.5", "7")
    started = time.monotonic()
    res = run_driver(["wait", job], tmp_path)
    assert res.returncode == 7, res.stderr
    assert time.monotonic() - started < 20
    # logs -f of an ended job ends with the same summary as a foreground train.
    follow = run_driver(["logs", "-f", job], tmp_path)
    assert follow.returncode == 7
    assert follow.stderr.splitlines()[:2] == [f"job {job}: ended, exit code 7", "  th1: exit code 7"]


def test_wait_timeout_leaves_the_job_running(testhosts, tmp_path):
    tag = uuid.uuid4().hex
    job = detached(testhosts, tmp_path, str(SCRIPTS / "sleeper.py"), tag)
    try:
        res = run_driver(["wait", job, "--timeout", "2s"], tmp_path)
        assert res.returncode == 87, res.stderr
        assert "still runs" in res.stderr
        assert "running" in run_driver(["status", job], tmp_path).stdout
    finally:
        run_driver(["cancel", job, "--grace", "1s"], tmp_path)


@pytest.mark.parametrize("code", [70])
def test_wait_for_a_job_that_never_ran_exits_with_its_error(code, tmp_path):
    inventory = tmp_path / "closed.ini"
    inventory.write_text("gone ansible_host=127.0.0.1 ansible_port=1\n")
    assert run_driver(["train", HELLO, "-i", str(inventory)], tmp_path).returncode == code
    res = run_driver(["wait", "last"], tmp_path)
    assert res.returncode == code, res.stderr
    assert "never ran" in res.stderr


def test_the_summary_says_why_a_job_ended_and_where_the_outputs_are(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    failed = run_driver(["train", str(SCRIPTS / "writes_outputs.py"), *inv, "--", "s", "fail"], tmp_path)
    assert failed.returncode == 4
    lines = failed.stderr.splitlines()
    assert "failed (exit code 4) in" in lines[0]
    assert lines[1].startswith("  th1: exit code 4, ran ")
    assert lines[2] == f"  outputs: {tmp_path / 'jobs'}/{lines[0].split()[1].rstrip(':')}/outputs/<host>/"
    timed = run_driver(
        ["train", str(SCRIPTS / "sleeper.py"), *inv, "--timeout", "2s", "--grace", "1s", "--", "t"], tmp_path
    )
    assert timed.returncode == 124
    assert "reached --timeout 2s" in timed.stderr and "stopped by --timeout in" in timed.stderr


def test_logs_tail(testhosts, tmp_path):
    job = detached(testhosts, tmp_path, str(SCRIPTS / "counter.py"), "20", "0", "0")
    assert run_driver(["wait", job], tmp_path).returncode == 0
    res = run_driver(["logs", job, "--tail", "3"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["line 18", "line 19", "end"]
    # An ended job: the same lines, then its exit code.
    both = run_driver(["logs", job, "--tail", "3", "-f"], tmp_path)
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines() == ["line 18", "line 19", "end"]


def test_logs_tail_follow_goes_on_from_the_tail_without_a_gap_or_a_repeat(testhosts, tmp_path):
    job = detached(testhosts, tmp_path, str(SCRIPTS / "counter.py"), "40", "0.25", "5")
    deadline = time.monotonic() + 60
    while "line 6" not in run_driver(["logs", job], tmp_path).stdout:
        assert time.monotonic() < deadline, "the job printed nothing"
        time.sleep(0.5)
    res = run_driver(["logs", job, "--tail", "3", "-f"], tmp_path)
    assert res.returncode == 5, res.stderr
    everything = [f"line {i}" for i in range(40)] + ["end"]
    out = res.stdout.splitlines()
    start = everything.index(out[0])
    assert start >= 4  # the tail, not the whole log
    assert out == everything[start:]


def test_train_json_is_one_document_and_the_script_output_goes_to_stderr(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(
        ["train", "--json", str(SCRIPTS / "writes_outputs.py"), *inv, "--", "j", "fail"], tmp_path
    )
    assert res.returncode == 4
    document = json.loads(res.stdout)
    validate(document, "train.schema.json")
    assert document["ended"] == "failure" and document["exit_code"] == 4
    assert document["hosts"][0]["host"] == "th1" and document["hosts"][0]["exit_code"] == 4
    assert document["outputs"] and (Path(document["outputs"]) / "th1" / "j.txt").is_file()
    assert "wrote j" in res.stderr


def test_provision_json_and_the_progress_of_a_new_set(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    args = ["provision", "-i", str(hs.inventory_path), "--packages", "six==1.16.0"]
    args += ["--wheelhouse", str(wheelhouse), "--no-index", "--json"]
    first = run_driver(args, tmp_path)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    validate(document, "provision.schema.json")
    assert document["hosts"]["th1"]["action"] == "installed"
    # The long step says what it does before it starts, without -v.
    assert "[th1] installing 1 requirements (six==1.16.0) into a new venv " in first.stderr
    again = run_driver(args, tmp_path)
    assert json.loads(again.stdout)["hosts"]["th1"]["action"] == "cached"
    assert "installing" not in again.stderr


def test_quiet_train_shows_no_progress(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    args = [
        "train",
        "-q",
        str(SCRIPTS / "uses_six.py"),
        "-i",
        str(hs.inventory_path),
        "--packages",
        "six==1.16.0",
    ]
    res = run_driver([*args, "--wheelhouse", str(wheelhouse), "--no-index"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # a new set was built: no progress line, no summary


def test_quiet_leaves_out_the_summary_and_keeps_errors(tmp_path):
    res = run_driver(["train", "-q", HELLO], tmp_path)
    assert res.returncode == 0 and res.stderr == ""
    failed = run_driver(["train", "-q", HELLO, "-i", ","], tmp_path)
    assert failed.returncode == 68 and failed.stderr.startswith("error: ")

"""The translation of ansible-runner events into outcomes, and of failure kinds into exit codes."""

from __future__ import annotations

import base64
import json

import pytest

from driver import errors
from driver.execution.events import RELAY_MARKER, HostOutcome, HostReport, Launched, Output, Translator


def failed(host: str, fact: str, kind: str, msg: str, task: str = "any name at all") -> dict:
    return {
        "event": "runner_on_failed",
        "event_data": {
            "host": host,
            "task": task,
            "res": {"ansible_facts": {fact: {"kind": kind, "msg": msg}}},
        },
    }


@pytest.mark.parametrize(
    ("fact", "kind", "code"),
    [
        ("training_job_failure", "nodes", errors.EXIT_BAD_NODES),
        ("training_job_failure", "preflight", errors.EXIT_PREFLIGHT),
        ("remote_host_failure", "no_python", errors.EXIT_NO_PYTHON),
        ("training_job_failure", "helper_python", errors.EXIT_NO_PYTHON),
        ("remote_host_failure", "requirements", errors.EXIT_REQUIREMENTS_FAILED),
        ("remote_host_failure", "system_packages", errors.EXIT_REQUIREMENTS_FAILED),
        ("remote_host_failure", "wheelhouse", errors.EXIT_REQUIREMENTS_FAILED),
        ("training_job_failure", "stage", errors.EXIT_STAGE_FAILED),
        ("training_job_failure", "outputs", errors.EXIT_OUTPUTS_NOT_COPIED),
        ("training_job_failure", "missing", errors.EXIT_NO_SUCH_JOB),
        ("training_job_failure", "bad_output", errors.EXIT_BAD_OUTPUT),
        ("training_job_failure", "launch", errors.EXIT_DRIVER_FAILURE),
    ],
)
def test_a_failure_kind_decides_the_exit_code_whatever_the_task_is_called(fact, kind, code):
    for task in ("Install the requirements", "Copy the outputs back", "renamed task"):
        outcome = Translator().translate(failed("h1", fact, kind, "what happened on h1", task))
        assert isinstance(outcome, HostOutcome)
        assert outcome.kind == kind
        assert outcome.error is not None and outcome.error.exit_code == code
        assert outcome.error.message == "what happened on h1"
        assert outcome.error.hint


def test_every_kind_has_an_error_with_a_documented_code():
    documented = {code for code, _ in errors.EXIT_CODES}
    for kind, (cls, hint) in errors.FAILURE_KINDS.items():
        assert str(cls.exit_code) in documented, kind
        assert hint, kind


def test_a_failure_without_a_kind_is_unclassified():
    event = {"event": "runner_on_failed", "event_data": {"host": "h1", "res": {"msg": "line 1\nboom"}}}
    outcome = Translator().translate(event)
    assert outcome.kind is None
    assert outcome.error.exit_code == errors.EXIT_DRIVER_FAILURE
    assert outcome.error.message == "the job failed on h1: boom"


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ("Host key verification failed.", errors.EXIT_HOST_KEY),
        ("WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!", errors.EXIT_HOST_KEY),
        ("Permission denied (publickey,password).", errors.EXIT_AUTH_FAILED),
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused", errors.EXIT_UNREACHABLE),
    ],
)
def test_unreachable_reasons(msg, code):
    event = {"event": "runner_on_unreachable", "event_data": {"host": "h1", "res": {"msg": msg}}}
    outcome = Translator().translate(event)
    assert outcome.kind == "unreachable" and outcome.error.exit_code == code


def test_a_job_result_becomes_an_outcome_with_its_stop_reason():
    res = {"rt_state": "ended", "rt_rc": 143, "rt_stopped": "timeout", "rt_ended": "5.0", "job_dir": "/j"}
    event = {"event": "runner_on_ok", "event_data": {"host": "h1", "res": res}}
    outcome = Translator().translate(event)
    assert outcome == HostOutcome("h1", rc=143, stopped="timeout", state="ended", result=res)


def test_a_script_that_never_started_is_not_started():
    res = {"rt_state": "not_started", "rt_rc": None, "rt_stopped": "SIGINT"}
    outcome = Translator().translate({"event": "runner_on_ok", "event_data": {"host": "h1", "res": res}})
    assert outcome.state == "not_started" and outcome.stopped == "SIGINT" and outcome.rc is None


def test_the_remote_host_report_and_relay_records():
    facts = {"remote_host_report": {"python": "/usr/bin/python3"}}
    event = {"event": "runner_on_ok", "event_data": {"host": "h1", "res": {"ansible_facts": facts}}}
    assert Translator().translate(event) == HostReport("h1", {"python": "/usr/bin/python3"})
    data = base64.b64encode(b"line\n").decode()
    out = {
        "event": "verbose",
        "stdout": RELAY_MARKER + " " + json.dumps({"k": "out", "h": "h1", "o": 7, "d": data}),
    }
    assert Translator().translate(out) == Output("h1", 7, b"line\n")
    launched = {"k": "launched", "h": "h1", "job": "/j", "pgid": 42, "n": 2, "r": 1}
    event = {"event": "verbose", "stdout": RELAY_MARKER + " " + json.dumps(launched)}
    assert Translator().translate(event) == Launched("h1", "/j", 42, 2, 1)
    # A job run in one step: remote_host's report comes as a relay record, before the launch.
    report = {"k": "report", "h": "h1", "report": {"python": "/usr/bin/python3", "rsync": False}}
    event = {"event": "verbose", "stdout": RELAY_MARKER + " " + json.dumps(report)}
    assert Translator().translate(event) == HostReport("h1", {"python": "/usr/bin/python3", "rsync": False})
    # The check's result: an install to come is news now (its report follows the install); else the report.
    plan = {"install": True, "ready": False, "requirements": "six", "uses_venv": True, "venv": "/v"}
    facts = {"remote_host__plan": plan, "remote_host_report": {"python": "/p"}}
    event = {"event": "runner_on_ok", "event_data": {"host": "h1", "res": {"ansible_facts": facts}}}
    assert "installing 1 requirements (six) into a new venv /v" in Translator().translate(event).text
    facts["remote_host__plan"] = {**plan, "ready": True}
    assert Translator().translate(event) == HostReport("h1", {"python": "/p"})


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        "[1, 2]",
        '"a string"',
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"k": "out", "h": "h1"}),
        json.dumps({"k": "out", "h": "h1", "o": 0, "d": "!!! not base64 !!!"}),
        json.dumps({"k": "out", "h": "h1", "o": "zero", "d": ""}),
        json.dumps({"k": "out", "h": "h1", "o": 0, "d": {"x": 1}}),
        json.dumps({"k": "launched", "h": "h1", "job": "/j", "pgid": "not a pid"}),
        json.dumps({"k": "conn", "h": "h1", "s": "lost", "o": None}),
        json.dumps({"k": ["out"], "h": "h1"}),
        json.dumps({"h": {"a": 1}}),
        json.dumps({"k": "report", "h": "h1", "report": "x"}),
    ],
)
def test_a_malformed_relay_record_is_one_warning_not_a_crash(payload, caplog):
    # Before (issue 28): json.loads, a missing key or bad base64 raised in the event handler.
    translator = Translator()
    event = {"event": "verbose", "stdout": RELAY_MARKER + " " + payload}
    with caplog.at_level("DEBUG", logger="driver.ansible"):
        assert translator.translate(event) is None
        assert translator.translate(event) is None  # a second one: no second warning
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "malformed relay record" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    # Good records still count afterwards.
    good = {"k": "out", "h": "h1", "o": 0, "d": base64.b64encode(b"x\n").decode()}
    assert translator.translate(
        {"event": "verbose", "stdout": RELAY_MARKER + " " + json.dumps(good)}
    ) == Output("h1", 0, b"x\n")


def test_the_marker_inside_a_message_is_not_a_record():
    # A host's stderr quoted in a displayed message (ssh's, jobctl's at -vvv) cannot forge a record.
    forged = {"k": "out", "h": "h1", "o": 0, "d": base64.b64encode(b"forged\n").decode()}
    event = {"event": "verbose", "stdout": "h1: jobctl said: " + RELAY_MARKER + " " + json.dumps(forged)}
    assert Translator().translate(event) is None

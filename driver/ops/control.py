"""Jobs after their launch: status, logs (follow, reattach), cancel, clean; each a playbook run."""

from __future__ import annotations

import logging
import time
from typing import Any

from driver.errors import JobLost
from driver.execution import assets, playbook
from driver.execution.events import HostOutcome
from driver.execution.play import Session, first_nonzero, local_inventory, report_copy_errors, signals
from driver.execution.relay import LineSink, Relay
from driver.job import store as jobs
from driver.job.spec import check_inventory, new_job_id

log = logging.getLogger("driver.ops.control")


def run_control(
    record: jobs.JobRecord,
    mode: str,
    *,
    sink: LineSink | None = None,
    host: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Session:
    """Run playbooks/control.yml in `mode` on the job's hosts; bring outputs back if it ended unsynced."""
    local = assets.job_dir(record.id) / "control" / new_job_id()
    (local / "runner").mkdir(parents=True, mode=0o700)
    prefix = host is None and len(record.hosts) > 1
    # The job's own record keeps the copy of the log made while it ran: no second copy per `logs` call.
    relay = Relay(sink, None, prefix_hosts=prefix) if sink is not None else None
    session = Session(record.inventory, host or record.limit, local, relay)
    extravars: dict[str, Any] = {
        "training_job_id": record.id,
        "training_job_root": record.root,
        "training_job_control": mode,
        "training_job_output": record.output,
        "training_job_output_dir": "" if record.outputs_synced else record.output_dir,
        **(extra or {}),
    }
    limit = host or ",".join(record.hosts) or record.limit
    if mode == "kill":
        session.interrupt_message = f"interrupted ({{signal}}) while stopping job {record.id}"
        session.interrupt_hint = f"it may still run: `driver cancel {record.id}` again"
    else:
        session.interrupt_message = f"interrupted ({{signal}}); job {record.id} itself goes on"
        session.interrupt_hint = f"`driver logs -f {record.id}` follows it again, from the start"

    with signals(session.interrupt):
        session.run = playbook.start(
            "control.yml",
            private_data_dir=local / "runner",
            inventory=record.inventory or local_inventory(local / "local-inventory.ini"),
            limit=limit,
            extravars=extravars,
            event_handler=session.on_event,
        )
        session.wait()
    session.raise_for_hosts()
    observe(record, session.outcomes, host, copy_failed=bool(session.copy_errors))
    return session


def observe(
    record: jobs.JobRecord, outcomes: list[HostOutcome], host: str | None = None, copy_failed: bool = False
) -> jobs.JobRecord:
    """Record what the hosts said; the first time every host has ended, the job's end and exit code.

    Once every host has ended, outputs not yet brought back were copied by this run (collect.yml):
    they are synced unless that failed, and a later run tries again.
    """
    if not outcomes:
        return record
    host_rc = dict(record.host_rc)
    states = {}
    for outcome in outcomes:
        host_rc[outcome.host] = outcome.rc
        states[outcome.host] = outcome.state
    changes: dict[str, Any] = {"host_rc": host_rc}
    complete = host is None or set(states) >= set(record.hosts)
    all_ended = complete and all(s != "running" for s in states.values())
    if all_ended and record.running:
        failed = first_nonzero(outcomes)
        lost = [o.host for o in outcomes if o.state == "lost"]
        changes.update(
            state="lost" if lost else "ended",
            exit_code=failed.rc if failed else (None if lost else 0),
            ended=time.time(),
        )
    if all_ended and record.output_dir and not record.outputs_synced:
        changes["outputs_synced"] = not copy_failed
    return jobs.update(record.id, **changes)


def status(job_id: str) -> tuple[jobs.JobRecord, Session]:
    """Ask the hosts; the session's outcomes say how each is doing, its copy_errors what did not come back."""
    record = jobs.resolve(job_id)
    session = run_control(record, "status")
    return jobs.load(record.id), session


def logs(job_id: str, sink: LineSink, *, follow: bool = False, host: str | None = None) -> int:
    """Print the job's log from the start; with follow, until the job ends. Returns the exit code to use."""
    record = jobs.resolve(job_id)
    if host is not None and record.hosts and host not in record.hosts:
        raise jobs.JobNotFound(
            f"job {record.id} did not run on {host!r}", hint=f"its hosts: {', '.join(record.hosts)}"
        )
    session = run_control(
        record, "follow", sink=sink, host=host, extra={"training_job_until_now": not follow}
    )
    record = jobs.load(record.id)
    if not follow:
        report_copy_errors(session.copy_errors, 0)
        return 0
    if record.state == "lost":
        raise JobLost(
            f"job {record.id} was lost: it no longer runs and left no exit code",
            hint="the host may have rebooted or the job was killed from outside",
        )
    code = (record.host_rc.get(host) if host is not None else record.exit_code) or 0
    report_copy_errors(session.copy_errors, code)
    return code


def cancel(job_id: str, grace: float) -> jobs.JobRecord:
    record = jobs.resolve(job_id)
    was_running = record.running
    session = run_control(record, "kill", extra={"training_job_grace": grace})
    if was_running:
        record = jobs.update(record.id, state="cancelled")
    report_copy_errors(session.copy_errors, 0)
    return record


def clean(inventory: str | None, limit: str | None, older_than: float) -> dict[str, dict[str, Any]]:
    """Remove ended job directories older than older_than seconds, and unfinished venvs.

    Returns host -> {"jobs": removed job ids, "venvs": removed venv keys, "kb": space the venvs took}.
    """
    if inventory is not None:
        check_inventory(inventory)
    local = assets.state_dir() / "clean" / new_job_id()
    (local / "runner").mkdir(parents=True, mode=0o700)
    session = Session(inventory, limit, local)
    session.interrupt_message = "interrupted ({signal}) while cleaning the hosts"
    session.interrupt_hint = "run it again"
    with signals(session.interrupt):
        session.run = playbook.start(
            "clean.yml",
            private_data_dir=local / "runner",
            inventory=inventory or local_inventory(local / "local-inventory.ini"),
            limit=limit,
            extravars={"training_job_older_than": older_than},
            event_handler=session.on_event,
        )
        session.wait()
    session.raise_for_hosts()
    jobs_removed = {o.host: list(o.result.get("rt_removed", [])) for o in session.outcomes}
    pruned = {host: report.get("pruned") or {} for host, report in session.reports.items()}
    removed: dict[str, dict[str, Any]] = {}
    for host in sorted(set(jobs_removed) | set(pruned)):
        got = pruned.get(host, {})
        removed[host] = {
            "jobs": jobs_removed.get(host, []),
            "venvs": list(got.get("venvs", [])),
            "kb": int(got.get("kb", 0)),
        }
    return removed

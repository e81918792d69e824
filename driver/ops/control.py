"""Jobs after their launch: status, logs (follow, reattach), cancel, clean; each one play of control.yml or
clean.yml, run the one way (driver/execution/play.py)."""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from driver.errors import DriverError, Interrupted, JobMissing, StillRunning
from driver.execution import assets
from driver.execution.events import HostOutcome
from driver.execution.play import Play, first_nonzero, report_copy_errors, signals
from driver.execution.relay import LineSink, Relay
from driver.job import contract
from driver.job import store as jobs
from driver.job.spec import check_inventory, new_job_id
from driver.ops import rsync

log = logging.getLogger("driver.control")


def run_control(
    record: jobs.JobRecord,
    mode: str,
    *,
    sink: LineSink | None = None,
    host: str | None = None,
    fields: dict[str, Any] | None = None,
    hold_partial: bool = False,
) -> Play:
    """Run playbooks/control.yml in `mode` on the job's hosts; bring outputs back if it ended unsynced.

    fields["offsets"] (host -> log offset) resumes each host's log there; hold_partial keeps a last line
    without its newline back (the play's relay then says where each host's complete lines end).
    """
    local = assets.job_dir(record.id) / "control" / new_job_id()
    prefix = host is None and len(record.hosts) > 1
    # The job's own record keeps the copy of the log made while it ran: no second copy per `logs` call.
    start = (fields or {}).get("offsets")
    relay = (
        Relay(sink, None, prefix_hosts=prefix, start=start, hold_partial=hold_partial)
        if sink is not None
        else None
    )
    if mode == "kill":
        message = f"interrupted ({{signal}}) while stopping job {record.id}"
        hint = f"it may still run: `driver cancel {record.id}` again"
    else:
        message = f"interrupted ({{signal}}); job {record.id} itself goes on"
        hint = f"`driver logs -f {record.id}` follows it again, from the start"
    play = Play(
        local, record.inventory, host or record.limit, relay, interrupt_message=message, interrupt_hint=hint
    )
    play.job_id = record.id
    output_dir = None if record.outputs_synced else record.output_dir
    # Over SSH the outputs come back with rsync: never with one that a hostile host could exploit.
    unsafe = rsync.local_problem() if output_dir and record.inventory else None
    training_job = contract.only_set(
        {
            "id": record.id,
            "root": record.root,
            "control": mode,
            "output": record.output,
            "output_dir": None if unsafe else output_dir,
            **(fields or {}),
        }
    )
    play.play(
        "control.yml", {"training_job": training_job}, limit=host or ",".join(record.hosts) or record.limit
    )
    if unsafe and ((fields or {}).get("sync") or any(o.state != "running" for o in play.outcomes)):
        play.copy_errors.append(rsync.unsafe_error(unsafe))  # when a copy was due: the job is not affected
    observe(record, play.outcomes, host, copy_failed=bool(play.copy_errors))
    return play


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
        lost = any(o.state == "lost" for o in outcomes)
        stopped = next((o.stopped for o in outcomes if o.stopped in jobs.STOPPED), None)
        state, code = jobs.ending(stopped, failed.rc if failed else None, lost)
        gone = next((o for o in outcomes if o.state == "lost"), None)
        message = jobs.lost_reason(gone.host, gone.result.get("rt_lost")) if state == "lost" and gone else ""
        why = gone.result.get("rt_lost") if state == "lost" and gone else None
        changes.update(
            state=state, exit_code=code, ended=time.time(), stopped=stopped, message=message, lost=why
        )
        for o in outcomes:
            if o.result.get("rt_disk_full"):
                log.warning("[%s] the disk the job lives on is full: its log may miss its last lines", o.host)
    if all_ended and record.output_dir and not record.outputs_synced:
        changes["outputs_synced"] = not copy_failed
    return jobs.update(record.id, **changes)


def never_launched(record: jobs.JobRecord) -> bool:
    """A job that ended before any host started it (bad input, unreachable, provisioning failed)."""
    return not record.running and not record.launched


def status(job_id: str) -> tuple[jobs.JobRecord, Play | None]:
    """Ask the hosts; the play's outcomes say how each is doing, its copy_errors what did not come back.

    A job that never started on any host is reported from its record alone (None: no play ran).
    """
    record = jobs.resolve(job_id)
    if never_launched(record):
        return record, None
    try:
        play = run_control(record, "status")
    except JobMissing:
        if jobs.shown_state(record) != "abandoned":
            raise
        # Its driver was killed before the launch, and no host has the job: it never started.
        return jobs.update(record.id, state="abandoned", ended=time.time()), None
    return jobs.load(record.id), play


def logs(
    job_id: str,
    sink: LineSink,
    *,
    follow: bool = False,
    host: str | None = None,
    tail: int | None = None,
    reconnect: float | None = None,
) -> int:
    """Print the job's log from the start (or its last `tail` lines); with follow, until the job ends.

    With tail and follow: the log so far up to its last complete line on each host, its last `tail` lines
    printed, then each host followed from where its complete lines ended. Returns the exit code to use.
    """
    if tail is not None:
        last: collections.deque[str] = collections.deque(maxlen=tail)
        code, play = _logs(job_id, last.append, host=host, hold_partial=follow)
        for line in last:
            sink(line)
        if not follow or play is None:
            return code
        offsets = play.relay.complete if play.relay is not None else {}
        return _logs(job_id, sink, follow=True, host=host, offsets=offsets, reconnect=reconnect)[0]
    return _logs(job_id, sink, follow=follow, host=host, reconnect=reconnect)[0]


def _logs(
    job_id: str,
    sink: LineSink,
    *,
    follow: bool = False,
    host: str | None = None,
    offsets: dict[str, int] | None = None,
    hold_partial: bool = False,
    reconnect: float | None = None,
) -> tuple[int, Play | None]:
    """logs() without the tail: the exit code to use, and the play that relayed the log (None: the local
    copy was printed)."""
    record = jobs.resolve(job_id)
    if host is not None and record.hosts and host not in record.hosts:
        raise JobMissing(
            f"job {record.id} did not run on {host!r}", hint=f"its hosts: {', '.join(record.hosts)}"
        )
    if never_launched(record):
        raise JobMissing(
            f"job {record.id} never started on a host ({record.state}): it has no log",
            hint=f"why: {record.message}" if record.message else "see `driver status JOB`",
        )
    fields: dict[str, Any] = {"until_now": not follow}
    if offsets:
        fields["offsets"] = offsets
    if reconnect is not None:
        fields["reconnect"] = reconnect
    try:
        play = run_control(record, "follow", sink=sink, host=host, fields=fields, hold_partial=hold_partial)
    except JobMissing:
        if not print_local_copy(record, sink, host):
            raise
        return (0 if record.running else record.exit_code or 0), None
    record = jobs.load(record.id)
    if not follow:
        report_copy_errors(play.copy_errors, 0)
        return 0, play
    if record.state == "lost":
        raise jobs.lost_error(record)
    code = (record.host_rc.get(host) if host is not None else record.exit_code) or 0
    report_copy_errors(play.copy_errors, code)
    return code, play


def print_local_copy(record: jobs.JobRecord, sink: LineSink, host: str | None) -> bool:
    """The job's directory is gone from a host (cleaned): print the copy of its log kept here, if any."""
    copies = sorted((assets.job_dir(record.id) / "logs").glob("*.log"))
    copies = [p for p in copies if host is None or p.stem == host]
    if not copies:
        return False
    log.warning("job %s is gone from its hosts; this is the copy of its log kept here", record.id)
    # Lines as the relay hands them over live ("\r" included): one relay, read from each copy.
    relay = Relay(sink, None, prefix_hosts=len(copies) > 1)
    for path in copies:
        relay.replay(path.stem, path)
    return True


def wait(job_id: str, timeout: float | None = None, every: float = 2.0) -> int:
    """Wait until the job has ended (asking its hosts every `every` seconds); its exit code.

    Raises StillRunning when it still runs after `timeout` seconds, JobLost when it was lost, and the
    recorded error's code for a job that failed before it ran.
    """
    deadline = time.monotonic() + timeout if timeout else None
    stop: list[str] = []
    with signals(stop.append):
        while True:
            record, _ = status(job_id)
            if not record.running or stop:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise StillRunning(
                    f"job {record.id} still runs after --timeout", hint=f"`driver wait {record.id}` again"
                )
            pause = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
            end = time.monotonic() + pause
            while time.monotonic() < end and not stop:
                time.sleep(0.05)
    if stop:
        raise Interrupted(
            stop[0],
            f"interrupted ({stop[0]}); job {record.id} itself goes on",
            hint=f"`driver wait {record.id}` waits again",
        )
    if record.state == "lost":
        raise jobs.lost_error(record)
    if record.state in ("failed", "abandoned"):
        raise DriverError(
            f"job {record.id} never ran ({record.state})" + (f": {record.message}" if record.message else ""),
            exit_code=record.exit_code or None,
            hint=f"`driver status {record.id}` shows its record; fix the cause and run it again",
        )
    return record.exit_code or 0


def cancel(job_id: str, grace: float | None = None) -> tuple[jobs.JobRecord, bool]:
    """Stop the job everywhere; (record, True) when this call stopped it. A job already ended (by its
    record) is left as it is: its recorded end is returned and nothing is changed."""
    record = jobs.resolve(job_id)
    if not record.running:
        return record, False
    play = run_control(record, "kill", fields={"grace": grace})
    record = jobs.load(record.id)
    report_copy_errors(play.copy_errors, 0)
    return record, record.stopped == "cancelled"


def stop_everywhere(record: jobs.JobRecord, grace: float) -> None:
    """Kill the job on every host of its inventory where its directory exists; missing elsewhere is fine."""
    local = assets.job_dir(record.id) / "control" / new_job_id()
    play = Play(local, record.inventory, record.limit)
    fields = {"id": record.id, "root": record.root, "control": "kill", "grace": grace, "reason": "cancelled"}
    play.play("control.yml", {"training_job": fields}, raise_errors=False)
    for outcome in play.outcomes:
        if outcome.error is None:
            log.warning("[%s] the job had started at the last moment and was stopped", outcome.host)


def clean(
    inventory: str | None, limit: str | None, older_than: float, force: bool = False
) -> dict[str, dict[str, Any]]:
    """Remove ended job directories older than older_than seconds, and unfinished venvs.

    Job directories whose outputs were never copied back are kept unless force. Returns host ->
    {"jobs": removed job ids, "uncollected": kept job ids, "venvs": removed venv keys, "kb": their size}.
    """
    if inventory is not None:
        check_inventory(inventory)
    local = assets.state_dir() / "clean" / new_job_id()
    play = Play(
        local,
        inventory,
        limit,
        interrupt_message="interrupted ({signal}) while cleaning the hosts",
        interrupt_hint="run it again",
    )
    fields = contract.only_set({"older_than": older_than, "force": True if force else None})
    play.play("clean.yml", {"training_job": fields})
    results = {o.host: o.result for o in play.outcomes}
    pruned = {host: report.get("pruned") or {} for host, report in play.reports.items()}
    removed: dict[str, dict[str, Any]] = {}
    for host in sorted(set(results) | set(pruned)):
        got = pruned.get(host, {})
        removed[host] = {
            "jobs": list(results.get(host, {}).get("rt_removed", [])),
            "uncollected": list(results.get(host, {}).get("rt_uncollected", [])),
            "venvs": list(got.get("venvs", [])),
            "kb": int(got.get("kb", 0)),
        }
    return removed

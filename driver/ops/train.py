"""`train`: run a script on inventory hosts, relay its output live, stop it for sure, return its exit code."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from driver.errors import Disconnected
from driver.execution import assets
from driver.execution.events import NOTICE, HostOutcome, HostReport, Launched, describe_report, lacks_rsync
from driver.execution.play import Play, first_nonzero, report_copy_errors
from driver.execution.relay import LineSink, Relay
from driver.job import contract, staging
from driver.job import store as jobs
from driver.job.spec import JobSpec
from driver.ops import outputs, rsync

log = logging.getLogger("driver.train")

# After a cancel, how long the play may take beyond the grace period before ansible-playbook is stopped.
CANCEL_SLACK = 30.0


@dataclass
class JobResult:
    job_id: str
    exit_code: int
    outcomes: list[HostOutcome] = field(default_factory=list)
    stopped: str | None = None
    detached: bool = False
    output_dir: str = ""


class _Job(Play):
    """State of one running job: relay, outcomes and the cancel request."""

    def __init__(self, spec: JobSpec, sink: LineSink, local: Path) -> None:
        (local / "logs").mkdir(exist_ok=True, mode=0o700)
        super().__init__(local, spec.inventory, spec.limit, Relay(sink, local / "logs"))
        self.job_id = spec.job_id
        self.spec = spec
        self.grace = spec.grace if spec.grace is not None else float(contract.default("grace"))
        self.cancel_file = local / "cancel"
        self.started = time.monotonic()
        self.stopped: str | None = None
        self.cancel_at: float | None = None
        self.stopped_early = False  # Ansible was stopped before any host reported a launch

    def handle(self, item: object) -> bool:
        if isinstance(item, Launched):
            jobs.update(self.spec.job_id, state="running", hosts=sorted(self.hosts), launched=True)
        if isinstance(item, Launched) and item.rank is not None:
            assert self.relay is not None
            self.relay.labels[item.host] = f"{item.rank}:{item.host}"
            self.relay.prefix_hosts = True
        if isinstance(item, HostOutcome):
            # A host the driver lost is no failed rank: its job goes on, and so do the others'.
            lost_sight = isinstance(item.error, Disconnected)
            failed = (item.error is not None and not lost_sight) or (item.rc and not item.stopped)
            if self.spec.nodes and self.hosts and failed and self.stopped is None:
                # One rank failed: the others are stopped; the driver exits with this rank's code.
                log.warning("[%s] failed; stopping the other ranks", item.host)
                self._write_cancel("rank_failed")
            if item.stopped:
                log.info("[%s] the job was stopped (%s); exit code %s", item.host, item.stopped, item.rc)
            elif item.rc:
                log.info("[%s] the script exited with code %s", item.host, item.rc)
        elif isinstance(item, HostReport):
            log.info("[%s] %s", item.host, describe_report(item.report))
            if lacks_rsync(item.report):
                log.warning(
                    "%s has no rsync: what the script writes to %s/ cannot be copied back "
                    "(install rsync there)",
                    item.host,
                    (self.spec.output or contract.default("output")).rstrip("/"),
                )
        return True

    def _write_cancel(self, reason: str) -> None:
        if not self.cancel_file.exists():
            self.cancel_file.write_text(reason, encoding="utf-8")

    def cancel(self, reason: str) -> None:
        """First signal (or the timeout): stop the job in whatever phase it is. Second: stop Ansible too.

        The cancel file makes every host's task stop its job, and keeps a host that has not launched yet
        from ever starting the script. Before any launch there is nothing to wait for: the phase under way
        (provisioning, staging, preflight) is stopped at once.
        """
        if self.stopped is None:
            self.stopped = reason
            self.cancel_at = time.monotonic()
            log.warning("stopping the job on every host (%s)...", reason)
            self._write_cancel(reason)
            if not self.hosts and self.run is not None:
                self.stopped_early = True
                self.run.terminate()
        elif self.run is not None:
            log.warning("stopping ansible-playbook")
            self.run.terminate()

    def watchdog(self) -> None:
        """Every tick: the timeout before the launch (the host's launcher keeps it after), and a play that
        does not end after a cancel."""
        timeout = self.spec.timeout
        if timeout and self.stopped is None and time.monotonic() - self.started >= timeout and not self.hosts:
            self.cancel("timeout")
        if self.cancel_at is not None and time.monotonic() - self.cancel_at > self.grace + CANCEL_SLACK:
            log.warning("the play did not end %.0f s after the cancel; stopping Ansible", CANCEL_SLACK)
            assert self.run is not None
            self.run.terminate()
            self.cancel_at = None


def train(spec: JobSpec, sink: LineSink, *, accept_new_host_keys: bool = False) -> JobResult:
    """Run spec.script on the hosts; return the exit code the driver should end with.

    Raises a DriverError subclass for bad input or hosts the job could not run on.
    """
    spec.validate()
    if spec.inventory is not None:  # the outputs come back over SSH: a host sends, this machine receives
        rsync.check_local()
    stage = staging.plan(spec.workdir, spec.script, spec.max_workdir_size) if spec.workdir else None
    if stage is not None:
        log.log(
            NOTICE,
            "staging %s (%s) to the hosts; rsync sends only what changed since the last job",
            stage.workdir,
            staging.human(stage.size),
        )
    local = assets.job_dir(spec.job_id)
    job = _Job(spec, sink, local)
    inventory = spec.inventory
    # A job's outputs never mix with another's: --output-dir holds one directory per job.
    output_dir = spec.output_dir.resolve() / spec.job_id if spec.output_dir else local / "outputs"
    spec.create_output_dir(output_dir)  # what keeps it from being created: exit 85
    record = jobs.JobRecord(
        id=spec.job_id,
        script=str(spec.script),
        inventory=_absolute(inventory) if inventory else None,
        limit=spec.limit,
        env_names=sorted(spec.env),
        output=spec.output or contract.default("output"),
        output_dir=str(output_dir),
        detached=spec.detach,
        driver_pid=os.getpid(),
    )
    jobs.save(record)
    log.info("job %s: %s on %s", spec.job_id, spec.script, spec.inventory or "this machine")
    with tempfile.TemporaryDirectory(prefix="spec-", dir=local) as secret_dir:
        spec_file = Path(secret_dir) / "spec.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            staged = {"script": stage.script_rel} if stage else None
            json.dump({"args": spec.args, "env": spec.env, "stage": staged}, f)
        training_job = contract.train_job(
            spec, spec_file=spec_file, cancel_file=job.cancel_file, output_dir=output_dir, stage=stage
        )
        requirements = spec.requirements.extravars() if spec.provision else {}
        extravars = {"training_job": training_job, **requirements}
        syncer = _periodic_sync(record, spec.sync_every) if spec.sync_every and not spec.detach else None
        try:
            job.play(
                "train.yml",
                extravars,
                accept_new_host_keys=accept_new_host_keys,
                on_signal=job.cancel,
                on_tick=job.watchdog,
                raise_errors=False,
            )
        finally:
            if syncer is not None:
                syncer.set()
    if job.stopped_early:
        _stop_unreported_launches(record, job.grace)
    return _finish(job, record)


def _finish(job: _Job, record: jobs.JobRecord) -> JobResult:
    spec = job.spec
    hosts = sorted(job.hosts or [o.host for o in job.outcomes])
    host_rc = {o.host: o.rc for o in job.outcomes}
    if spec.detach and job.outcomes and all(o.state == "running" for o in job.outcomes):
        jobs.update(record.id, state="running", hosts=hosts, host_rc=host_rc)
        return JobResult(spec.job_id, 0, job.outcomes, detached=True, output_dir=record.output_dir)
    gone = [o for o in job.outcomes if isinstance(o.error, Disconnected)]
    if gone:
        # The driver gave up on a host whose job goes on: the job runs (a later status, logs or cancel
        # records its end and brings its outputs back), and the driver's own code says so.
        ended_rc = {o.host: o.rc for o in job.outcomes if o.state != "running"}
        jobs.update(record.id, state="running", hosts=hosts, host_rc=ended_rc, message=gone[0].error.message)
        raise gone[0].error
    # Why the job was stopped (a failed rank's `rank_failed` is no stop of the job: its code is that rank's).
    stopped = job.stopped or next((o.stopped for o in job.outcomes if o.stopped in jobs.STOPPED), None)
    ended = {
        "hosts": hosts,
        "host_rc": host_rc,
        "ended": time.time(),
        "outputs_synced": bool(job.outcomes) and not job.copy_errors,
        "message": "; ".join(e.message for e in job.copy_errors),
    }
    if not jobs.stop_decides(stopped):
        # Ended on its own or cancelled from elsewhere: a host the job could not run on fails the job.
        try:
            job.raise_for_hosts()
        except Exception as exc:
            code = getattr(exc, "exit_code", None)
            jobs.update(record.id, state="failed", exit_code=code, **{**ended, "message": str(exc)})
            raise
    nonzero = first_nonzero(job.outcomes)
    lost = [o for o in job.outcomes if o.state == "lost"]
    state, code = jobs.ending(stopped, nonzero.rc if nonzero is not None else None, bool(lost))
    if state == "lost":
        ended["message"] = jobs.lost_reason(lost[0].host, lost[0].result.get("rt_lost"))
        ended["lost"] = lost[0].result.get("rt_lost")
    for o in job.outcomes:
        if o.result.get("rt_disk_full"):
            log.warning("[%s] the disk the job lives on is full: its log may miss its last lines", o.host)
    updated = jobs.update(record.id, state=state, exit_code=code, stopped=stopped, **ended)
    if code is None:
        raise jobs.lost_error(updated)
    report_copy_errors(job.copy_errors, code)
    return JobResult(spec.job_id, code, job.outcomes, stopped, output_dir=record.output_dir)


def _stop_unreported_launches(record: jobs.JobRecord, grace: float) -> None:
    """Ansible was stopped before any launch was reported; a launch already on its way may still have
    started the script on a host: stop the job wherever its directory exists (missing elsewhere)."""
    from driver.ops import control

    try:
        control.stop_everywhere(jobs.load(record.id), grace)
    except Exception as exc:  # the job's own end is reported either way
        log.warning("could not check the hosts for a job started at the last moment: %s", exc)


def _periodic_sync(record: jobs.JobRecord, every: float) -> threading.Event:
    """Bring the outputs back every `every` seconds while the job runs (a thread; set the event to stop)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                outputs.sync_running(jobs.load(record.id))
            except Exception as exc:  # a failed sync must not stop the job; the final sync follows
                log.warning("periodic sync of the outputs failed: %s", exc)

    threading.Thread(target=loop, name="sync-outputs", daemon=True).start()
    return stop


def _absolute(inventory: str) -> str:
    """Inventory sources as later commands (logs, cancel) can use them from any directory."""
    return inventory if "," in inventory else str(Path(inventory).resolve())

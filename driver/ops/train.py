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

from driver.errors import EXIT_SIGINT, EXIT_SIGTERM, EXIT_TIMEOUT, JobLost
from driver.execution import assets, playbook
from driver.execution.events import HostOutcome, HostReport, Launched, describe_report, lacks_rsync
from driver.execution.play import Session, first_nonzero, local_inventory, report_copy_errors, signals
from driver.execution.relay import LineSink, Relay
from driver.job import staging
from driver.job import store as jobs
from driver.job.spec import JobSpec
from driver.ops import outputs

log = logging.getLogger("driver.ops.train")

CANCEL_EXIT_CODES = {"timeout": EXIT_TIMEOUT, "SIGINT": EXIT_SIGINT, "SIGTERM": EXIT_SIGTERM}
CANCEL_STATES = {"timeout": "timeout", "SIGINT": "cancelled", "SIGTERM": "cancelled"}
# After a cancel, how long the play may take beyond the grace period before ansible-playbook is stopped.
CANCEL_SLACK = 30.0


@dataclass
class JobResult:
    job_id: str
    exit_code: int
    outcomes: list[HostOutcome] = field(default_factory=list)
    cancelled: str | None = None
    detached: bool = False


class _Job(Session):
    """State of one running job: relay, outcomes and the cancel request."""

    def __init__(self, spec: JobSpec, sink: LineSink, local: Path) -> None:
        (local / "logs").mkdir(exist_ok=True, mode=0o700)
        super().__init__(spec.inventory, spec.limit, local, Relay(sink, local / "logs"))
        self.spec = spec
        self.cancel_file = local / "cancel"
        self.cancelled: str | None = None
        self.cancel_at: float | None = None

    def handle(self, item: object) -> bool:
        if isinstance(item, Launched) and item.rank is not None:
            assert self.relay is not None
            self.relay.labels[item.host] = f"{item.rank}:{item.host}"
            self.relay.prefix_hosts = True
        if isinstance(item, HostOutcome):
            failed = item.error is not None or (item.rc and not item.cancelled)
            launched = bool(self.hosts)
            if (
                self.spec.nodes
                and launched
                and failed
                and self.cancelled is None
                and not self.cancel_file.exists()
            ):
                # One rank failed: the others are stopped; the driver exits with this rank's code.
                log.warning("[%s] failed; stopping the other ranks", item.host)
                self.cancel_file.write_text("a rank failed", encoding="utf-8")
            if item.cancelled:
                log.info("[%s] the job was stopped (%s); exit code %s", item.host, item.cancelled, item.rc)
            elif item.rc:
                log.warning("[%s] the script exited with code %s", item.host, item.rc)
        elif isinstance(item, HostReport):
            log.info("[%s] %s", item.host, describe_report(item.report))
            if lacks_rsync(item.report):
                log.warning(
                    "%s has no rsync: what the script writes to %s/ cannot be copied back "
                    "(install rsync there)",
                    item.host,
                    self.spec.output.rstrip("/"),
                )
        return True

    def cancel(self, reason: str) -> None:
        """First signal: ask every host's relay to stop its job. Second: stop ansible-playbook too."""
        if self.cancelled is None:
            self.cancelled = reason
            self.cancel_at = time.monotonic()
            log.warning("stopping the job on every host (%s)...", reason)
            self.cancel_file.write_text(reason, encoding="utf-8")
        elif self.run is not None:
            log.warning("stopping ansible-playbook")
            self.run.terminate()

    def watchdog(self) -> None:
        if self.cancel_at is not None and time.monotonic() - self.cancel_at > self.spec.grace + CANCEL_SLACK:
            log.warning(
                "the play did not end %.0f s after the cancel; stopping ansible-playbook", CANCEL_SLACK
            )
            assert self.run is not None
            self.run.terminate()
            self.cancel_at = None


def train(spec: JobSpec, sink: LineSink, *, accept_new_host_keys: bool = False) -> JobResult:
    """Run spec.script on the hosts; return the exit code the driver should end with.

    Raises a DriverError subclass for bad input or hosts the job could not run on.
    """
    spec.validate()
    stage = staging.plan(spec.workdir, spec.script, spec.max_workdir_size) if spec.workdir else None
    local = assets.job_dir(spec.job_id)
    (local / "runner").mkdir(exist_ok=True, mode=0o700)
    job = _Job(spec, sink, local)
    inventory = spec.inventory or local_inventory(local / "local-inventory.ini")
    output_dir = Path(spec.output_dir) if spec.output_dir else local / "outputs"
    output_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = jobs.JobRecord(
        id=spec.job_id,
        script=str(spec.script),
        inventory=_absolute(inventory),
        limit=spec.limit,
        env_names=sorted(spec.env),
        output=spec.output,
        output_dir=str(output_dir),
        detached=spec.detach,
    )
    jobs.save(record)
    log.info("job %s: %s on %s", spec.job_id, spec.script, spec.inventory or "this machine")
    with tempfile.TemporaryDirectory(prefix="spec-", dir=local) as secret_dir:
        spec_file = Path(secret_dir) / "spec.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            staged = {"script": stage.script_rel} if stage else None
            json.dump({"args": spec.args, "env": spec.env, "stage": staged}, f)
        extravars = {
            "training_job_id": spec.job_id,
            "training_job_script": str(spec.script.resolve()),
            "training_job_workdir": str(stage.workdir) if stage else "",
            "training_job_stage_key": stage.key if stage else "",
            "training_job_spec_file": str(spec_file),
            "training_job_timeout": spec.timeout or 0,
            "training_job_grace": spec.grace,
            "training_job_cancel_file": str(job.cancel_file),
            "training_job_detach": spec.detach,
            "training_job_output": spec.output,
            "training_job_output_dir": str(output_dir),
            "train_nodes": spec.nodes,
            "training_job_launcher": spec.launcher,
            "training_job_nproc_per_node": spec.nproc_per_node,
            "training_job_master_port": spec.master_port,
            "train_provision": spec.provision,
            "train_python": spec.python or "python3",
            **(spec.requirements.extravars() if spec.provision else {}),
        }
        syncer = _periodic_sync(record, spec.sync_every) if spec.sync_every and not spec.detach else None
        try:
            with signals(job.cancel):
                job.run = playbook.start(
                    "train.yml",
                    private_data_dir=local / "runner",
                    inventory=inventory,
                    limit=spec.limit,
                    extravars=extravars,
                    event_handler=job.on_event,
                    accept_new_host_keys=accept_new_host_keys,
                )
                job.wait(job.watchdog)
        finally:
            if syncer is not None:
                syncer.set()
    return _finish(job, record)


def _finish(job: _Job, record: jobs.JobRecord) -> JobResult:
    spec = job.spec
    hosts = sorted(job.hosts or [o.host for o in job.outcomes])
    host_rc = {o.host: o.rc for o in job.outcomes}
    if spec.detach and job.outcomes and all(o.state == "running" for o in job.outcomes):
        jobs.update(record.id, state="running", hosts=hosts, host_rc=host_rc)
        return JobResult(spec.job_id, 0, job.outcomes, detached=True)
    cancelled = job.cancelled or next((o.cancelled for o in job.outcomes if o.cancelled), None)
    ended = {
        "hosts": hosts,
        "host_rc": host_rc,
        "ended": time.time(),
        "outputs_synced": bool(job.outcomes) and not job.copy_errors,
        "message": "; ".join(e.message for e in job.copy_errors),
    }
    if cancelled in CANCEL_EXIT_CODES:
        code = CANCEL_EXIT_CODES[cancelled]
        jobs.update(record.id, state=CANCEL_STATES[cancelled], exit_code=code, **ended)
        report_copy_errors(job.copy_errors, code)
        return JobResult(spec.job_id, code, job.outcomes, cancelled)
    try:
        job.raise_for_hosts()
    except Exception as exc:
        jobs.update(record.id, state="failed", **{**ended, "message": str(exc)})
        raise
    failed = job.first_failure()
    if failed is not None and failed.state == "lost":
        jobs.update(record.id, state="lost", **ended)
        raise JobLost(
            f"the job was lost on {failed.host}: it no longer runs and left no exit code",
            hint="the host may have rebooted or the job was killed from outside",
        )
    nonzero = first_nonzero(job.outcomes)
    code = nonzero.rc if nonzero is not None and nonzero.rc else 0
    jobs.update(record.id, state="ended", exit_code=code, **ended)
    report_copy_errors(job.copy_errors, code)
    return JobResult(spec.job_id, code, job.outcomes)


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

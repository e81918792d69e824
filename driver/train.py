"""`train`: run a script on inventory hosts, relay its output live, stop it for sure, return its exit code."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver import assets, playbook
from driver.errors import EXIT_SIGINT, EXIT_SIGTERM, EXIT_TIMEOUT
from driver.events import HostOutcome, HostReport, Launched, Output, describe_report
from driver.relay import LineSink, Relay
from driver.session import Session, local_inventory, signals
from driver.spec import JobSpec

log = logging.getLogger("driver.train")

CANCEL_EXIT_CODES = {"timeout": EXIT_TIMEOUT, "SIGINT": EXIT_SIGINT, "SIGTERM": EXIT_SIGTERM}
# After a cancel, how long the play may take beyond the grace period before ansible-playbook is stopped.
CANCEL_SLACK = 30.0


@dataclass
class JobResult:
    job_id: str
    exit_code: int
    outcomes: list[HostOutcome] = field(default_factory=list)
    cancelled: str | None = None


class _Job(Session):
    """State of one running job: relay, outcomes and the cancel request."""

    def __init__(self, spec: JobSpec, sink: LineSink, local: Path) -> None:
        super().__init__(spec.inventory, spec.limit, local)
        self.spec = spec
        self.relay = Relay(sink, local / "logs")
        self.cancel_file = local / "cancel"
        self.cancelled: str | None = None
        self.cancel_at: float | None = None

    def handle(self, item: object) -> bool:
        if isinstance(item, Output):
            self.relay.feed(item.host, item.offset, item.data)
            return False  # relayed bytes are kept in logs/, not as event files
        if isinstance(item, Launched):
            if item.hosts > 1:
                self.relay.prefix_hosts = True
            return False
        if isinstance(item, HostOutcome):
            self.relay.finish(item.host)
            if item.cancelled:
                log.info("[%s] the job was stopped (%s); exit code %s", item.host, item.cancelled, item.rc)
            elif item.rc:
                log.warning("[%s] the script exited with code %s", item.host, item.rc)
        elif isinstance(item, HostReport):
            log.info("[%s] %s", item.host, describe_report(item.report))
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


def train(spec: JobSpec, sink: LineSink, *, accept_new_host_keys: bool = False) -> JobResult:
    """Run spec.script on the hosts; return the exit code the driver should end with.

    Raises a DriverError subclass for bad input or hosts the job could not run on.
    """
    spec.validate()
    local = assets.job_dir(spec.job_id)
    job = _Job(spec, sink, local)
    (local / "logs").mkdir(exist_ok=True, mode=0o700)
    (local / "runner").mkdir(exist_ok=True, mode=0o700)
    inventory = spec.inventory or local_inventory(local / "local-inventory.ini")
    _write_record(local, spec, state="starting")
    log.info("job %s: %s on %s", spec.job_id, spec.script, spec.inventory or "this machine")
    with tempfile.TemporaryDirectory(prefix="spec-", dir=local) as secret_dir:
        spec_file = Path(secret_dir) / "spec.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"args": spec.args, "env": spec.env}, f)
        extravars = {
            "training_job_id": spec.job_id,
            "training_job_script": str(spec.script.resolve()),
            "training_job_workdir": str(spec.workdir.resolve()) if spec.workdir else "",
            "training_job_spec_file": str(spec_file),
            "train_provision": spec.provision,
            "train_python": spec.python or "python3",
            **(spec.requirements.extravars() if spec.provision else {}),
            "training_job_timeout": spec.timeout or 0,
            "training_job_grace": spec.grace,
            "training_job_cancel_file": str(job.cancel_file),
        }
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
            _wait(job)
            job.run.scrub_artifacts()
    job.relay.finish()
    result = _result(job)
    _write_record(local, spec, state="ended", exit_code=result.exit_code, cancelled=result.cancelled)
    return result


def _wait(job: _Job) -> None:
    assert job.run is not None
    while not job.run.wait(0.2):
        if job.cancel_at is not None and time.monotonic() - job.cancel_at > job.spec.grace + CANCEL_SLACK:
            log.warning(
                "the play did not end %.0f s after the cancel; stopping ansible-playbook", CANCEL_SLACK
            )
            job.run.terminate()
            job.cancel_at = None


def _result(job: _Job) -> JobResult:
    spec = job.spec
    cancelled = job.cancelled or next((o.cancelled for o in job.outcomes if o.cancelled), None)
    if cancelled in CANCEL_EXIT_CODES:
        return JobResult(spec.job_id, CANCEL_EXIT_CODES[cancelled], job.outcomes, cancelled)
    job.raise_for_hosts()
    failed = job.first_failure()
    return JobResult(spec.job_id, failed.rc if failed and failed.rc else 0, job.outcomes)


def _write_record(local: Path, spec: JobSpec, **fields: Any) -> None:
    """The job's local record (no argument or environment values: they may be secrets)."""
    path = local / "job.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not record:
        record = {
            "id": spec.job_id,
            "script": str(spec.script),
            "inventory": spec.inventory,
            "limit": spec.limit,
            "env_names": sorted(spec.env),
            "started": time.time(),
        }
    record.update(fields)
    if fields.get("state") == "ended":
        record["ended"] = time.time()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    tmp.replace(path)

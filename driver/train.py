"""`train`: run a script on inventory hosts, relay its output live, stop it for sure, return its exit code."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver import assets, playbook
from driver.errors import (
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_TIMEOUT,
    AnsibleFailure,
    BadInventory,
    DriverError,
    NoHostsMatched,
)
from driver.events import HostOutcome, Launched, NoHosts, Output, Translator
from driver.relay import LineSink, Relay
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


def _local_inventory(path: Path) -> str:
    """This machine over the local connection, with the driver's own python for Ansible's side."""
    path.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    return str(path)


@contextmanager
def _signals(handler: Callable[[str], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to handler for the duration (main thread only)."""
    if sys.platform == "win32" or not _is_main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda s, f: handler("SIGINT")),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: handler("SIGTERM")),
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _Job:
    """State of one running job: relay, outcomes and the cancel request."""

    def __init__(self, spec: JobSpec, sink: LineSink, local: Path) -> None:
        self.spec = spec
        self.local = local
        self.translator = Translator()
        self.relay = Relay(sink, local / "logs")
        self.outcomes: list[HostOutcome] = []
        self.no_hosts = False
        self.cancel_file = local / "cancel"
        self.cancelled: str | None = None
        self.cancel_at: float | None = None
        self.run: playbook.PlaybookRun | None = None
        self.scrubbed = False

    def on_event(self, event: dict[str, Any]) -> bool:
        if not self.scrubbed and self.run is not None:
            self.run.scrub_artifacts()
            self.scrubbed = True
        item = self.translator.translate(event)
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
            self.outcomes.append(item)
        elif isinstance(item, NoHosts):
            self.no_hosts = True
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
    inventory = spec.inventory or _local_inventory(local / "local-inventory.ini")
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
            "training_job_python": spec.python,
            "training_job_timeout": spec.timeout or 0,
            "training_job_grace": spec.grace,
            "training_job_cancel_file": str(job.cancel_file),
        }
        with _signals(job.cancel):
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
    if job.no_hosts:
        raise _no_hosts(spec)
    for outcome in job.outcomes:
        if outcome.error is not None:
            raise outcome.error
        if outcome.rc:
            return JobResult(spec.job_id, outcome.rc, job.outcomes)
    if not job.outcomes:
        raise _early_failure(job)
    return JobResult(spec.job_id, 0, job.outcomes)


def _early_failure(job: _Job) -> DriverError:
    """Ansible ended before any host ran the job: tell why from what it printed."""
    assert job.run is not None
    spec = job.spec
    text = "\n".join(job.translator.messages)
    if "no hosts to target" in text or "hosts list is empty" in text:
        return _no_hosts(spec)
    if "inventory" in text.lower():
        causes = [line.strip() for line in text.splitlines() if "Failed to parse" in line]
        return BadInventory(
            f"inventory {spec.inventory!r} could not be parsed" + (f": {causes[-1]}" if causes else ""),
            hint="check its syntax with `ansible-inventory -i INVENTORY --list`",
        )
    last = text.strip().splitlines()[-1] if text.strip() else "no message"
    return AnsibleFailure(
        f"ansible-playbook ended ({job.run.status}, rc {job.run.rc}) before the job ran: {last}",
        hint=f"rerun with -vv; runner artifacts are in {job.local / 'runner'}",
    )


def _no_hosts(spec: JobSpec) -> NoHostsMatched:
    where = f"inventory {spec.inventory!r}" if spec.inventory else "the local inventory"
    what = f"--limit {spec.limit!r}" if spec.limit else "any host"
    return NoHostsMatched(
        f"{what} matches no host of {where}",
        hint="list the inventory's hosts with `ansible-inventory -i INVENTORY --graph` and fix --limit",
    )


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

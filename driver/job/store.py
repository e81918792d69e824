"""The local job store: one JSON record per job in the user's state directory.

Records survive restarts; concurrent driver processes update them under a per-job file lock and
replace the file atomically, so a reader never sees half a record. Values of arguments and of the
environment are never stored (they may be secrets): only the names of the environment variables.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from driver.errors import (
    EXIT_LOST,
    EXIT_NEVER_STARTED,
    EXIT_NODE_FAILURE,
    EXIT_OUT_OF_MEMORY,
    EXIT_PREEMPTED,
    EXIT_PREFLIGHT,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_TIMEOUT,
    JobLost,
    JobMissing,
)
from driver.execution import assets
from driver.job import contract
from driver.redact import redact

RUNNING_STATES = ("starting", "running")
# Why a job was stopped -> its recorded state and the driver's exit code (None: the script's own code).
STOPPED: dict[str, tuple[str, int | None]] = {
    "timeout": ("timeout", EXIT_TIMEOUT),
    "SIGINT": ("cancelled", EXIT_SIGINT),
    "SIGTERM": ("cancelled", EXIT_SIGTERM),
    "preflight": ("failed", EXIT_PREFLIGHT),  # the Slurm executor's preflight, inside the allocation
    # The Slurm executor: Slurm ended the job (its script got SIGTERM from Slurm and exited).
    "preempted": ("failed", EXIT_PREEMPTED),
    "out_of_memory": ("failed", EXIT_OUT_OF_MEMORY),
    "node_fail": ("failed", EXIT_NODE_FAILURE),
    "cancelled": ("cancelled", None),
}


def stop_decides(stopped: str | None) -> bool:
    """Whether the stop itself gives the job's exit code (timeout, Ctrl+C, SIGTERM to the driver)."""
    return STOPPED.get(stopped or "", ("", None))[1] is not None


def ending(stopped: str | None, failed_rc: int | None, lost: bool) -> tuple[str, int | None]:
    """A job's end: its recorded state and exit code, from why it was stopped (a key of STOPPED, None when
    nothing stopped it), the code of the host whose script failed first, and whether a host lost the job.

    The one rule of both `driver train` and a later status, logs or cancel: a stop that gives a code wins;
    else the first failing host's code; a lost job has no code unless another host failed.
    """
    state, code = STOPPED.get(stopped or "", ("ended", None))
    if code is not None:
        return state, code
    if failed_rc:
        return state, failed_rc
    return ("lost", None) if lost else (state, 0)


# Why a job that no longer runs left no exit code (jobctl's `lost`), in the user's words.
LOST_BECAUSE = {
    "restarted": "the host (or its container) restarted while the job ran",
    "disk_full": "the host's disk is full, so the job could not record its end",
    "killed": "its launcher was killed from outside (kill -9, the OOM killer)",
    # The Slurm executor: Slurm's end of a job whose launcher could not record the script's exit code.
    "node_fail": "a node of its Slurm allocation failed (NODE_FAIL)",
    "out_of_memory": "killed by Slurm for using more memory than it asked for (OUT_OF_MEMORY)",
    "preempted": "preempted by Slurm (PREEMPTED)",
    "time_limit": "stopped by Slurm's time limit (TIMEOUT) before it could record its exit code",
    "cancelled": "cancelled in Slurm (scancel from outside) before it could record its exit code",
    "never_started": "cancelled in Slurm while it waited in the queue: the script never started",
}
# The exit code of a job lost for a reason that has one of its own (else EXIT_LOST).
LOST_CODES = {
    "node_fail": EXIT_NODE_FAILURE,
    "out_of_memory": EXIT_OUT_OF_MEMORY,
    "preempted": EXIT_PREEMPTED,
    "time_limit": EXIT_TIMEOUT,
    "never_started": EXIT_NEVER_STARTED,
}


def lost_reason(host: str, why: str | None) -> str:
    """The record's message for a job lost on host (why: jobctl's `lost`)."""
    return f"lost on {host}: {LOST_BECAUSE.get(why or '', 'it no longer runs and left no exit code')}"


def lost_error(record: JobRecord) -> JobLost:
    """The error of a job recorded as lost: its reason, and what the user can still do."""
    why = record.message or "it no longer runs and left no exit code"
    if record.lost == "never_started":
        return JobLost(
            f"job {record.id} was {why}",
            hint=f"nothing ran and nothing came back; run it again with `driver train` "
            f"(`driver logs {record.id}` shows what Slurm said)",
            exit_code=EXIT_NEVER_STARTED,
        )
    return JobLost(
        f"job {record.id} was {why}",
        hint=f"what it wrote so far: `driver logs {record.id}`; its outputs came back where it could "
        "(`driver status` shows where); run it again with `driver train`",
        exit_code=LOST_CODES.get(record.lost or "", EXIT_LOST),
    )


@dataclass
class JobRecord:
    id: str
    script: str = ""
    inventory: str | None = None
    limit: str | None = None
    hosts: list[str] = field(default_factory=list)
    state: str = "starting"  # starting, running, ended, cancelled, timeout, lost, failed
    started: float = field(default_factory=time.time)
    ended: float | None = None
    exit_code: int | None = None
    host_rc: dict[str, int | None] = field(default_factory=dict)
    env_names: list[str] = field(default_factory=list)
    root: str = "~/.remote-trainer/jobs"
    output: str = "outputs"
    output_dir: str = ""
    outputs_synced: bool = False
    detached: bool = False
    nodes: int = 0
    message: str = ""  # why it failed, or what did not come back
    stopped: str | None = None  # why it was stopped: timeout, SIGINT, SIGTERM, cancelled
    driver_pid: int | None = None  # the `driver train` that started it
    launched: bool = False  # the script was started on at least one host
    deleted: bool = False  # by the Kubeflow SDK backend's delete_job
    lost: str | None = None  # why a lost job was lost (jobctl's word: LOST_BECAUSE)
    slurm: dict[str, Any] = field(default_factory=dict)  # Slurm executor: host -> {id, state, reason, nodes}

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def as_dict(record: JobRecord) -> dict[str, Any]:
    """The record as `--json` shows it (driver/cli/schemas/): its fields, with the state as shown."""
    data = asdict(record)
    data["state"] = shown_state(record)
    return data


def prune(older_than: float) -> list[str]:
    """Remove the local records of jobs that ended at least older_than seconds ago; never a running one."""
    removed = []
    now = time.time()
    for record in all_records():
        if record.running or now - (record.ended or record.started) < older_than:
            continue
        shutil.rmtree(_dir(record.id), ignore_errors=True)
        removed.append(record.id)
    return removed


def shown_state(record: JobRecord) -> str:
    """The state to show: a job still `starting` whose driver is gone was abandoned before its launch."""
    if record.state == "starting" and record.driver_pid and not _pid_alive(record.driver_pid):
        return "abandoned"
    return record.state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dir(job_id: str) -> Path:
    return assets.state_dir() / "jobs" / contract.check_id(job_id)


@contextmanager
def _locked(job_id: str) -> Iterator[Path]:
    path = _dir(job_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path / "job.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


def save(record: JobRecord) -> None:
    with _locked(record.id) as path:
        _write(path, record)


def update(job_id: str, **changes: Any) -> JobRecord:
    """Change some fields of a record atomically, under its lock; returns the new record."""
    with _locked(job_id) as path:
        record = _read(path / "job.json", job_id)
        for key, value in changes.items():
            setattr(record, key, value)
        _write(path, record)
        return record


def load(job_id: str) -> JobRecord:
    return _read(_dir(job_id) / "job.json", job_id)


def resolve(prefix: str) -> JobRecord:
    """A job by id, or by a unique prefix of its id (or `last`: the newest job)."""
    ids = [p.name for p in (assets.state_dir() / "jobs").glob("*") if (p / "job.json").is_file()]
    if prefix == "last" and ids:
        return load(max(ids))
    matches = [i for i in ids if i.startswith(prefix)]
    if len(matches) == 1:
        return load(matches[0])
    if prefix in matches:
        return load(prefix)
    if not matches:
        raise JobMissing(f"no job {prefix!r}", hint="list the jobs with `driver jobs`")
    raise JobMissing(
        f"job id {prefix!r} is ambiguous ({len(matches)} jobs start with it)", hint="give more of the id"
    )


def all_records() -> list[JobRecord]:
    """Every job's record, oldest first: by when it was created (ids name the second only, and two jobs
    started in the same second, say a detached one and the next, have ids in no particular order)."""
    records = []
    for path in (assets.state_dir() / "jobs").glob("*/job.json"):
        try:
            records.append(_read(path, path.parent.name))
        except JobMissing:
            continue
    return sorted(records, key=lambda r: (r.started, r.id))


def _read(path: Path, job_id: str) -> JobRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobMissing(
            f"no readable record of job {job_id!r}", hint="list the jobs with `driver jobs`"
        ) from exc
    known = {f.name for f in fields(JobRecord)}
    return JobRecord(**{k: v for k, v in data.items() if k in known})


def _write(path: Path, record: JobRecord) -> None:
    tmp = path / f"job.json.{os.getpid()}.tmp"
    data = asdict(record)
    if data.get("message"):  # an error may quote a URL with its credentials
        data["message"] = redact(data["message"])
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path / "job.json")

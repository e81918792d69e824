"""How the commands show a job's end: the summary of a foreground `train` and of `logs -f`, the
`train --json` document, why the job ended, where its outputs came back, and the times they name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.executors import slurm

if TYPE_CHECKING:
    from driver.job.store import JobRecord
    from driver.ops.train import JobResult

# Why a job was stopped (its `stopped`), in the summary's words.
WHY = {
    "timeout": "stopped by --timeout",
    "SIGINT": "cancelled (Ctrl+C)",
    "SIGTERM": "cancelled (SIGTERM)",
    "preflight": "not started: the preflight failed (its reason is the job's last line)",
    "preempted": "preempted by Slurm",
    "out_of_memory": "killed by Slurm: out of memory",
    "node_fail": "a node of its Slurm allocation failed",
}


def stamp(value: object) -> float | None:
    """A time a host reported (rt_started, rt_ended) as seconds since the epoch; None when there is none."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def when(seconds: float | None) -> str:
    """A time as the tables show it (local time), `-` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def why_ended(result: JobResult) -> str:
    """The `ended` of `train --json`: detached, timeout, cancelled, success or failure."""
    if result.detached:
        return "detached"
    if result.stopped in ("timeout", "SIGINT", "SIGTERM", "cancelled"):
        return "timeout" if result.stopped == "timeout" else "cancelled"
    return "success" if result.exit_code == 0 else "failure"


def outputs_back(result: JobResult) -> Path | None:
    """The job's local outputs directory when some host's outputs came back into it, else None."""
    outputs = Path(result.output_dir) if result.output_dir else None
    if outputs is not None and any(p.is_dir() and any(p.iterdir()) for p in outputs.glob("*")):
        return outputs
    return None


def train_document(result: JobResult, wall: float) -> dict[str, Any]:
    """The end of `train --json` (driver/cli/schemas/train.schema.json)."""
    outputs = outputs_back(result)
    return {
        "job": result.job_id,
        "exit_code": result.exit_code,
        "ended": why_ended(result),
        "stopped": result.stopped,
        "seconds": round(wall, 3),
        "hosts": [
            {
                "host": o.host,
                "state": o.state,
                "exit_code": o.rc,
                "started": stamp(o.result.get("rt_started")),
                "ended": stamp(o.result.get("rt_ended")),
            }
            for o in sorted(result.outcomes, key=lambda o: o.host)
        ],
        "outputs": str(outputs) if outputs else None,
    }


def summary(result: JobResult, wall: float) -> list[str]:
    """The end of a foreground `train` on stderr: why it ended, each host's code and time, the outputs."""
    if result.stopped in WHY:
        why = WHY[result.stopped]
    elif result.stopped == "cancelled":
        why = "cancelled (driver cancel)"
    else:
        why = "succeeded" if result.exit_code == 0 else f"failed (exit code {result.exit_code})"
    lines = [f"job {result.job_id}: {why} in {wall:.1f} s"]
    for o in sorted(result.outcomes, key=lambda o: o.host):
        took = ""
        began, ended = stamp(o.result.get("rt_started")), stamp(o.result.get("rt_ended"))
        if began is not None and ended is not None:
            took = f", ran {ended - began:.1f} s"
        code = "not started" if o.state == "not_started" else f"exit code {o.rc}"
        lines.append(f"  {o.host}: {code}{took}{slurm.summary_words(o.result.get('rt_slurm'))}")
    outputs = outputs_back(result)
    if outputs is not None:
        lines.append(f"  outputs: {outputs}/<host>/")
    return lines


def followed_end(record: JobRecord, code: int) -> list[str]:
    """The end of `logs -f` on stderr, as a foreground train ends: the job's state and code, each host's."""
    from driver.job import store as jobs

    why = f" ({record.stopped})" if record.stopped else ""
    lines = [f"job {record.id}: {jobs.shown_state(record)}{why}, exit code {code}"]
    lines += [f"  {host}: exit code {rc}" for host, rc in sorted(record.host_rc.items())]
    if record.output_dir and record.outputs_synced:
        lines.append(f"  outputs: {record.output_dir}/<host>/")
    return lines

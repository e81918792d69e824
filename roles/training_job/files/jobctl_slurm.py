"""The Slurm executor's host side: submit a job's launcher with sbatch, ask Slurm about it, stop it.

jobctl.py imports it (from the job's .rt/, where the action plugin puts both) for a job whose spec has `slurm`
(launch) or whose .rt/slurm.json exists (every later command). It runs on a login node with the host's python
(3.7 or newer, standard library only) and talks to Slurm only through its client commands (sbatch, squeue,
scancel), never sacct: many sites run without accounting. Nothing here lives longer than one command: the
job's own launcher (`jobctl.py run`) runs in the allocation, on the shared file system's job directory.

What Slurm says about a job (`query`): {"id", "state" (Slurm's, upper case: PENDING, RUNNING, COMPLETED, ...;
"GONE" once Slurm forgot the job, None when Slurm could not be asked), "reason" (why it waits), "nodes"}. A
state in ACTIVE still holds or will hold nodes; END_WHY names why a job that left no exit code ended.
"""

import json
import os
import subprocess
import time

ACTIVE = frozenset(
    (
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    )
)
# Slurm's end of a job whose launcher could not record the script's exit code -> jobctl's `lost` word.
END_WHY = {
    "NODE_FAIL": "node_fail",
    "BOOT_FAIL": "node_fail",
    "OUT_OF_MEMORY": "out_of_memory",
    "PREEMPTED": "preempted",
    "TIMEOUT": "time_limit",
    "DEADLINE": "time_limit",
    "CANCELLED": "cancelled",
}
# Seconds an answer of squeue is reused (one call every few seconds per job, whatever the number of polls).
ASK_EVERY_PENDING = 2.0
ASK_EVERY_RUNNING = 10.0
STOP_SIGNAL = "USR2"  # what `kill` sends the launcher (the batch step's only process) to stop the job
BATCH = "batch.sh"
INFO = "slurm.json"
ANSWER = "slurm.state"


def _run(argv, timeout=60):
    with open(os.devnull, "rb") as devnull:
        return subprocess.run(argv, stdin=devnull, capture_output=True, timeout=timeout)


def submit(rt, work, python, jobctl, job, options, name):
    """sbatch the launcher of job (`python -S jobctl run job`): returns {"id"} or {"refused": sbatch's words}.

    options: the sbatch options of the job (the action plugin builds them from the job's and the inventory's
    settings), each one argv element, so no value meets a shell. The batch step's own output (Slurm's words on
    a cancel or a time limit) goes to .rt/slurm.out; the script's goes to the job's log, as everywhere.
    """
    batch = os.path.join(rt, BATCH)
    q = _shell_quote
    with open(batch, "w") as f:
        f.write("#!/bin/sh\n# remote-trainer: the job's launcher, in the allocation\n")
        f.write(f"exec {q(python)} -S {q(jobctl)} run {q(job)}\n")
    os.chmod(batch, 0o700)
    argv = [
        "sbatch",
        "--parsable",
        "--job-name=" + name,
        "--output=" + os.path.join(rt, "slurm.out"),
        "--chdir=" + work,
        "--no-requeue",
    ]
    argv += [*list(options), batch]
    try:
        done = _run(argv)
    except OSError as exc:
        return {"refused": f"sbatch cannot be run: {exc}"}
    out = done.stdout.decode("utf-8", "replace").strip()
    err = done.stderr.decode("utf-8", "replace").strip()
    job_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
    if done.returncode != 0 or not job_id.isdigit():
        return {"refused": _reason(err) or out or f"sbatch exited {done.returncode}"}
    with open(os.path.join(rt, INFO), "w") as f:
        json.dump({"id": job_id, "submitted": time.time()}, f)
    return {"id": job_id}


def _reason(err):
    """sbatch's own reason, from its error lines: the most specific one (the last), without the prefix."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    words = [line.split("error:", 1)[1].strip() if "error:" in line else line for line in lines]
    return "; ".join(dict.fromkeys(words))


def _shell_quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def job_id(rt):
    try:
        with open(os.path.join(rt, INFO)) as f:
            return str(json.load(f)["id"])
    except (OSError, ValueError, KeyError):
        return None


def query(rt, started, fresh=False):
    """What Slurm says about the job now (an answer younger than a few seconds is reused unless fresh)."""
    jid = job_id(rt)
    answer_path = os.path.join(rt, ANSWER)
    if not fresh:
        try:
            with open(answer_path) as f:
                saved = json.load(f)
            every = ASK_EVERY_RUNNING if started and saved.get("state") == "RUNNING" else ASK_EVERY_PENDING
            stale = started and saved.get("state") == "PENDING"  # the launcher runs: it left the queue
            if not stale and (saved.get("state") not in ACTIVE or time.time() - float(saved["t"]) < every):
                return saved
        except (OSError, ValueError, KeyError, TypeError):
            pass
    answer = {"id": jid, "state": None, "reason": "", "nodes": "", "t": time.time()}
    try:
        done = _run(["squeue", "-h", "-t", "all", "-j", jid, "-o", "%T|%r|%N"], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return answer
    out = done.stdout.decode("utf-8", "replace").strip()
    err = done.stderr.decode("utf-8", "replace")
    if done.returncode == 0 and out:
        state, _, rest = out.splitlines()[0].partition("|")
        reason, _, nodes = rest.partition("|")
        reason = reason.strip()
        answer.update(state=state.strip(), reason="" if reason == "None" else reason, nodes=nodes.strip())
    elif "Invalid job id" in err or (done.returncode == 0 and not out):
        answer["state"] = "GONE"  # purged after MinJobAge: Slurm no longer knows it
    else:
        return answer  # the controller did not answer: unknown, not ended
    try:
        tmp = f"{answer_path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(answer, f)
        os.rename(tmp, answer_path)
    except OSError:
        pass
    return answer


def signal_launcher(rt):
    """Ask the job's launcher to stop the script (it sends SIGTERM, then SIGKILL after the grace)."""
    return _scancel(rt, ["--batch", "--signal=" + STOP_SIGNAL])


def cancel(rt):
    """Cancel the job in Slurm: a pending one leaves the queue, a running one is killed by Slurm itself."""
    return _scancel(rt, [])


def _scancel(rt, options):
    jid = job_id(rt)
    if not jid:
        return False
    try:
        return _run(["scancel", *options, jid], timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False

"""The Slurm executor's host side: submit a job's launcher with sbatch, ask Slurm about it, stop it.

An executor of its own for jobctl.py (its hooks: launch, run, rank, state, end, kill, reap; see "executors of
their own" there), which imports it from the job's .rt/, where the action plugin puts both, for a job whose
spec names executor "slurm" (and, later, whose .rt/executor says so). It runs on a login node with the
host's python (3.7 or newer, standard library only) and talks to Slurm only through its client commands
(sbatch, squeue, scancel, scontrol), never sacct: many sites run without accounting. Nothing here lives longer
than one command on a login node: the job's own launcher (`jobctl.py run`) runs in the allocation, in the job
directory on the file system login and compute nodes share, where this module keeps its own files:
.rt/slurm.json (the Slurm job: {"id", "submitted"}), .rt/batch.sh (the batch script), .rt/slurm.out (the batch
step's own output: Slurm's words on a cancel or a time limit), .rt/slurm.state (Slurm's last answer, reused
for a few seconds), .rt/node (the nodes the job got), .rt/kill_grace (the grace of a stop `kill` asked for).

The job's spec carries {"executor": "slurm", "slurm": {"sbatch": [options], "name": job name, "python": the
launcher's python on the nodes (default: this one), and for a multi-node job "nodes", "port", "preflight"}}.

What Slurm says about a job (`query`): {"id", "state" (Slurm's, upper case: PENDING, RUNNING, COMPLETED, ...;
"GONE" once Slurm forgot the job, None when Slurm could not be asked), "reason" (why it waits), "nodes"}. A
state in ACTIVE still holds or will hold nodes; END_WHY names why a job that left no exit code ended.
"""

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
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
# Seconds an answer of squeue is reused (one call every few seconds, whatever the number of jobs and polls).
ASK_EVERY_PENDING = 2.0
ASK_EVERY_RUNNING = 10.0
CHECK_INTERVAL = 0.1  # seconds between a poll's checks of the log and state (files on a shared file system)
STOP_SIGNAL = "USR2"  # what `kill` sends the launcher (the batch step's only process) to stop the job
BATCH = "batch.sh"
INFO = "slurm.json"
ANSWER = "slurm.state"


def _run(argv, timeout=60):
    with open(os.devnull, "rb") as devnull:
        return subprocess.run(argv, stdin=devnull, capture_output=True, timeout=timeout, check=False)


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
    except FileNotFoundError:
        return {"refused": "this host has no sbatch: it is no Slurm login node", "why": "no_sbatch"}
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
    """What Slurm says about the job now. Unless fresh, from one answer about all of the user's jobs that
    the jobs of this root share (QUEUE, in the user's own directory next to the job directories), asked
    again only when it is older than a few seconds (or than this job): one squeue every few seconds whatever
    the number of jobs and polls."""
    jid = job_id(rt)
    every = ASK_EVERY_RUNNING if started else ASK_EVERY_PENDING
    answer = None
    shared = None if fresh else _queue_dir(rt)
    if shared:
        queue = _read_json(os.path.join(shared, QUEUE))
        if _usable(queue, rt, jid, started, every):
            answer = _answer_of(jid, queue)
    if answer is None:
        queue = _ask_all(shared, rt, jid, started, every) if shared else _ask(jid)
        if queue is None:  # the controller did not answer: unknown, not ended
            return {"id": jid, "state": None, "reason": "", "nodes": "", "t": time.time()}
        answer = _answer_of(jid, queue)
        _write_json(os.path.join(rt, ANSWER), answer)  # the job's last word from Slurm (its final state)
    return answer


# The shared answer lives in a directory of the jobs' root that only this user can enter (0700, owned by
# them, no symlink): a root others can write to (a group's project directory) cannot be given a planted
# answer or a symlink that the user's writes would follow. When that cannot be had, each job asks alone.
QUEUE_DIR = ".slurm-queue"
QUEUE = "queue.json"


def _queue_dir(rt):
    """The user's private directory for the shared answer, next to the job directories; None when the path is
    taken by something else (another user's directory, a symlink, one open to others)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(rt))), QUEUE_DIR)
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.mkdir(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


def _submitted(rt):
    try:
        with open(os.path.join(rt, INFO)) as f:
            return float(json.load(f).get("submitted") or 0)
    except (OSError, ValueError, TypeError):
        return 0.0


def _squeue(selector):
    """{id: [state, reason, nodes]} of the jobs squeue lists for selector, or None when it did not answer."""
    try:
        done = _run(["squeue", "-h", "-t", "all", *selector, "-o", "%i|%T|%r|%N"], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    err = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0 and "Invalid job id" not in err:
        return None
    jobs = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 4:
            jobs[fields[0]] = [fields[1], "" if fields[2] == "None" else fields[2], fields[3]]
    return {"t": time.time(), "jobs": jobs}


def _ask(jid):
    return _squeue(["-j", jid])


def _usable(queue, rt, jid, started, every):
    """Whether the shared answer still speaks for this job: younger than `every`, asked after the job was
    submitted, and not saying it waits when its launcher already runs."""
    if not queue or time.time() - queue.get("t", 0) >= every or queue.get("t", 0) <= _submitted(rt):
        return False
    return not (started and _answer_of(jid, queue)["state"] == "PENDING")


def _ask_all(shared, rt, jid, started, every):
    """All of this user's jobs at once, shared through the queue file in the jobs' root's private directory:
    one caller asks (under the file's lock), the others that waited for it read its answer."""
    import fcntl
    import pwd

    path = os.path.join(shared, QUEUE)
    try:
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return _ask(jid)
    with os.fdopen(fd, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        queue = _read_json(path)
        if _usable(queue, rt, jid, started, every):
            return queue  # asked while this caller waited for the lock
        queue = _squeue(["-u", pwd.getpwuid(os.getuid()).pw_name])
        if queue is not None:
            _write_json(path, queue)
    return queue


def _answer_of(jid, queue):
    state, reason, nodes = queue["jobs"].get(jid) or ["GONE", "", ""]  # GONE: purged after MinJobAge
    return {"id": jid, "state": state, "reason": reason, "nodes": nodes, "t": queue["t"]}


def _read_json(path):
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, value):
    """Write path atomically through a new file of a name no one can guess (never a planted one)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.rename(tmp, path)
    except OSError:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


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


# -- the executor's hooks (jobctl.py calls them with itself as ctl) ------------------------------------------
KILL_SLACK = 15.0  # seconds past the grace after which a job its launcher did not stop is scancelled
# Slurm's end of a job whose script did exit (on Slurm's SIGTERM) -> the stop reason recorded for it, whose
# exit code the driver gives (STOPPED in driver/job/store.py) instead of the script's 143.
SLURM_STOPS = {"PREEMPTED": "preempted", "OUT_OF_MEMORY": "out_of_memory", "NODE_FAIL": "node_fail"}
END_WAIT = 10.0  # seconds a failed job's end may take to reach Slurm's state
LIMIT_SIGNAL = (
    "SIGUSR1"  # sbatch --signal=B:USR1@... (plugins/plugin_utils/executor.py): Slurm's time limit is near
)


def launch(ctl, job, p, spec):
    """Submit the job's launcher (`jobctl.py run JOB`, in the allocation); the reply of `launch`."""
    slurm = spec["slurm"]
    answer = submit(
        p["rt"],
        p["work"],
        slurm.get("python") or sys.executable,
        os.path.abspath(ctl.__file__),
        job,
        slurm.get("sbatch") or [],
        slurm.get("name") or "remote-trainer",
    )
    if "refused" in answer:
        return answer
    return {"job": job, "launcher": 0, "pgid": 0, "slurm": answer["id"]}


def run(ctl, job):
    """The job's launcher in the allocation (the batch step): what the forked launcher of `launch` does
    elsewhere, reading the spec that `launch` kept. A stop comes as a signal (`kill`'s, or Slurm's time limit
    near) or as the stopped file, since no reaper can reach this node."""
    ctl.arm_stop_signals(getattr(signal, "SIG" + STOP_SIGNAL), getattr(signal, LIMIT_SIGNAL))
    p = ctl._paths(job)
    try:
        with open(p["spec"]) as f:
            spec = json.load(f)
        os.unlink(p["spec"])
    except FileNotFoundError:
        spec = None  # `kill` removed it: the job was cancelled before it could start
    with contextlib.suppress(OSError):
        os.setsid()  # the job's session, as a forked launcher has (Slurm still tracks it)
    ctl._write_atomic(p["launcher"], str(os.getpid()))
    ctl._write_atomic(os.path.join(p["rt"], "node"), os.environ.get("SLURM_JOB_NODELIST") or os.uname()[1])
    ctl._write_atomic(p["started"], f"{time.time():.3f}")
    if spec is None or os.path.exists(p["stopped"]):  # stopped between the start of the allocation and now
        ctl._create_once(p["stopped"], ctl.DEFAULT_REASON)
        ctl._write_atomic(p["ended"], f"{time.time():.3f}")
        ctl._write_atomic(p["rc"], str(128 + signal.SIGTERM))
        sys.exit(128 + signal.SIGTERM)
    nodes = int(spec["slurm"].get("nodes") or 0)
    if nodes > 0:
        # One task per node (srun), each its own rank: the preflight first, then the script; srun --label
        # puts the task's number before each of its lines.
        srun = ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "--label"]
        rank_argv = [sys.executable, "-S", os.path.abspath(ctl.__file__), "rank", job, "--"]
        problem = _preflight(p, spec, srun + rank_argv, nodes)
        if problem:
            with open(p["log"], "a") as f:
                f.write(f"remote-trainer: preflight failed: {problem}\n")
            ctl._create_once(p["stopped"], "preflight")
            ctl._write_atomic(p["ended"], f"{time.time():.3f}")
            ctl._write_atomic(p["rc"], "1")
            sys.exit(1)
        spec["argv"] = srun + rank_argv + spec["argv"]
    ctl._run_launcher(job, p, spec)
    # The batch step ends with the script's code, so that Slurm's state (FAILED, ExitCode) tells it too.
    sys.exit(min(255, int(ctl._read(p["rc"]) or 0)))


def _preflight(p, spec, prefix, nodes):
    """The multi-node preflight inside the allocation (preflight.py on every node at once, with the job's
    python): why the job cannot start (a rank that cannot reach the master, versions that differ), or None."""
    slurm = spec["slurm"]
    python = spec.get("python") or spec["argv"][0]
    preflight = os.path.join(p["rt"], "preflight.py")
    argv = [*prefix, python, preflight, "@NODE_RANK@", str(nodes), "@MASTER_ADDR@"]
    argv += [str(slurm.get("port") or 29500), str(slurm.get("preflight") or 20)]
    env = dict(os.environ)
    env.update(spec.get("env") or {})
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"srun could not run it: {exc}"
    answers, errors = {}, []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        _name, _sep, text = line.partition(": ")
        with contextlib.suppress(ValueError):
            answer = json.loads(text)
            answers[answer["rank"]] = answer
    for r in range(nodes):
        answer = answers.get(r)
        if answer is None:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            errors.append(f"rank {r} gave no answer" + (f" ({tail[0]})" if tail else ""))
        elif answer.get("error"):
            errors.append(f"rank {r}: {answer['error']}")
    versions = {json.dumps(a.get("versions"), sort_keys=True) for a in answers.values()}
    if not errors and len(versions) > 1:
        found = "; ".join(f"rank {r} {answers[r].get('versions')}" for r in sorted(answers))
        errors.append(f"versions differ between ranks: {found}")
    return "; ".join(errors) or None


def first_node(nodelist):
    """The first host of a Slurm node list (n[1-2],m3 -> n1): MASTER_ADDR of the allocation."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], stdout=subprocess.PIPE, timeout=30, check=False
        )
        names = done.stdout.decode().split()
        if done.returncode == 0 and names:
            return names[0]
    return nodelist.split(",")[0]


def rank(ctl, argv):
    """One node of a multi-node job (a task of srun): its rank and the master address filled in; exec."""
    node_rank = os.environ.get("SLURM_NODEID", "0")
    master = first_node(os.environ.get("SLURM_JOB_NODELIST", ""))

    def fill(value):
        return value.replace("@NODE_RANK@", node_rank).replace("@MASTER_ADDR@", master)

    env = {k: fill(v) for k, v in os.environ.items()}
    argv = [fill(a) for a in argv]
    os.execvpe(argv[0], argv, env)


def state(ctl, p, rc, fresh=False):
    """rc, alive, lost and Slurm's view of the job ({id, state, reason, nodes}): the launcher's pid means
    nothing on a login node."""
    started = ctl._read(p["started"])
    lost = None
    if rc is None:
        answer = query(p["rt"], started, fresh=fresh)
        alive = answer["state"] is None or answer["state"] in ACTIVE
        if not alive:
            rc = ctl._read(p["rc"])  # written by the launcher since
        if rc is None and not alive:
            lost = END_WHY.get(answer["state"], "killed") if started else "never_started"
            forget_spec(p)  # the job can no longer start: its env values leave the shared file system
    else:
        alive = False
        answer = {"id": job_id(p["rt"]), "state": None, "reason": ""}
        with contextlib.suppress(OSError, ValueError), open(os.path.join(p["rt"], ANSWER)) as f:
            answer = json.load(f)
        if answer.get("state") in ACTIVE or not answer.get("state"):
            answer["state"] = "COMPLETED" if rc == "0" else "FAILED"  # Slurm's own follows soon
    info = {
        "id": answer.get("id"),
        "state": answer.get("state"),
        "reason": answer.get("reason") or "",
        "nodes": ctl._read(os.path.join(p["rt"], "node")) or answer.get("nodes") or "",
    }
    return rc, alive, lost, info


def end(ctl, p, st):
    """A job whose script failed on its own: ask Slurm (up to END_WAIT s, until it says the job ended)
    whether Slurm ended it (preemption, out of memory, node failure); record that as the stop."""
    deadline = time.time() + END_WAIT
    while True:
        answer = query(p["rt"], True, fresh=True)
        if answer["state"] not in ACTIVE or time.time() > deadline:
            break
        time.sleep(0.25)
    why = SLURM_STOPS.get(answer["state"] or "")
    if why:
        ctl._create_once(p["stopped"], why)
    return ctl._state(p)


def kill(ctl, job, p, grace, reason):
    """A pending job leaves the queue; a running one's launcher is asked to stop it (SIGTERM, SIGKILL after
    grace), and Slurm cancels it if it still runs KILL_SLACK seconds after that (the reaper's `reap`)."""
    running = ctl._read(p["rc"]) is None
    if running:
        ctl._create_once(p["stopped"], reason)
        ctl._write_atomic(os.path.join(p["rt"], ctl.KILL_GRACE), str(grace))
        if ctl._read(p["started"]) is None:
            cancel(p["rt"])  # pending (or not yet started): it leaves the queue, nothing ran
            # Its spec (env values) goes now, not with the job directory: a launcher that starts all the same
            # finds no spec and the stopped file, and ends at once.
            forget_spec(p)
        else:
            signal_launcher(p["rt"])
            ctl._reap_later(job, grace + KILL_SLACK)
    if ctl._read(p["rc"]) is None:
        query(p["rt"], ctl._read(p["started"]), fresh=True)  # the state below is Slurm's latest
    st = ctl._state(p)
    st["signalled"] = running
    return st


def forget_spec(p):
    """Remove the spec of a job that will never read it (the launcher reads and removes it when it starts)."""
    with contextlib.suppress(OSError):
        os.unlink(p["spec"])


def reap(ctl, p):
    """The reaper's last resort once the grace (and slack) is over: Slurm cancels what the launcher left."""
    if ctl._read(p["rc"]) is None:
        cancel(p["rt"])

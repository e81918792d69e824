"""Job control on a training host: launch detached, poll the log, kill the process tree.

The training_job action plugin sends it inside the job's payload (a tar stream unpacked into JOB by the
same remote command that then runs `jobctl.py launch`). It runs with the host's python (3.6 or newer,
standard library only). Nothing else is installed on the host.

Job directory layout (mode 0700):
  JOB/.rt/spec.json  argv, env, cwd, output, timeout, grace and collect of the job; read and deleted by
                     `launch` (holds env values); an executor's job that never starts (cancelled while
                     queued, dropped by its scheduler) loses it as soon as that is known, a launch cut
                     short at the next `clean`
  JOB/.rt/launcher.pid  pid of the launcher (session leader; waits for the script, enforces the timeout,
                     writes rc)
  JOB/.rt/pgid       process group of the script
  JOB/.rt/python     the python the script was started with (a cached venv's marks its .last-used)
  JOB/.rt/started    start time (epoch seconds); JOB/.rt/ended: end time
  JOB/.rt/output     the output directory (relative to work/), when the spec names one
  JOB/.rt/stopped    why the job was stopped (one word: "timeout", or the reason given to `kill`); the
                     first reason is kept (created atomically, never replaced)
  JOB/.rt/collect    present when a driver will copy the outputs back at the end (spec "collect")
  JOB/.rt/collected  present once the outputs were copied back (`collected`)
  JOB/.rt/engine.json  the spec's term and stop commands (container executor), for `kill` and its reaper
  JOB/.rt/reserve    RESERVE bytes written at the launch and given back when the disk is full, so that the
                     job's end (rc, ended, collected) is recorded even when the script filled the disk
  JOB/.rt/boot       the host's boot (kernel boot id and PID 1's start time) at the launch: a lost job whose
                     boot differs was lost to a restart of the host
  JOB/.rt/executor   the job's own executor (say "slurm"), when it has one: its files are its module's
                     (the Slurm executor's: jobctl_slurm.py)
  JOB/rc             exit code of the script (128+N when it died of signal N), written atomically
  JOB/log            stdout and stderr of the script, merged
  JOB/work/          the script, the staged workdir, the script's cwd

spec.json: {"argv": [...], "env": {...}, "cwd": "", "output": "outputs", "timeout": 0, "grace": 10,
"collect": false, "python": "", "expand": 0, "term": [], "stop": []}; argv is required, and grace with a
timeout (the job contract's defaults come from the training_job role, never from here). timeout (seconds,
0 or absent: none) is enforced by the launcher itself, with or without a driver connected: SIGTERM to the
job, SIGKILL after grace seconds, stop reason "timeout"; rc is the script's real status as always.
A job whose argv starts a container engine (the container executor) names three more things: `expand`, the
number of leading argv elements in which @WORK@ becomes the absolute path of JOB/work (the engine's bind
mount); `term`, the engine command that sends SIGTERM into the container (instead of signalling the engine's
client, whose helper processes a session-wide signal would kill); and `stop`, the engine command that
removes (or, kept, stops) the job's container, run by the launcher once the engine's client has ended and by
the reaper instead of its SIGKILL, so that no container outlives its job. `python` is the host python the
script runs with, when it does (a cached venv's is marked as used).
A job of an executor of its own names it in `executor` (with its settings: the Slurm executor's `slurm`) and
its module jobctl_EXECUTOR.py lies next to this file (see "executors of their own" below): `launch` hands
the start to it (Slurm: sbatch of `run`) and keeps spec.json until `run` reads it; from then on the job is
the same as any other (the same files, `run` is its launcher), with the module's answers in place of the
launcher's pid.

Commands (each prints one JSON line to stdout; `poll` adds the log bytes in base64):
  launch JOB [--poll WAIT MAXBYTES]
                                  start the script detached; print pid and pgid (an executor of its own:
                                  its reply, say the Slurm job id, or {"refused": why}); with --poll, then
                                  `poll JOB 0 WAIT MAXBYTES` in the same call (a second line; not for an
                                  executor of its own): the first poll costs no round trip of its own
  run JOB                         (an executor's, where it starts the launcher) be the job's launcher
  rank JOB -- ARGV...             (an executor's, on each node of a multi-node job) fill in the node's
                                  @NODE_RANK@ and the first node's @MASTER_ADDR@ in ARGV and the
                                  environment, then exec ARGV
  poll JOB OFFSET WAIT MAXBYTES   wait up to WAIT s for log bytes past OFFSET or the end
  stream JOB OFFSET WAIT MAXBYTES `poll` again and again, one line each time (each batch of bytes, or WAIT s
                                  without any), until the end: one round trip for a whole job
  kill JOB GRACE [REASON]         SIGTERM the job's processes, SIGKILL after GRACE s (detached reaper);
                                  records REASON (default "cancelled") when the job still ran
  status JOB                      state of the job without waiting
  collected JOB                   mark the job's outputs as copied back; print the state
  clean ROOT AGE [force] [--stage DIR]
                                  remove ended job directories under ROOT whose end is AGE s ago or more
                                  (lost ones: whose start; ones that never started: whose launch), except
                                  those whose outputs a driver still has to copy back (unless force); and
                                  failed stagings' leftovers under DIR. The spec of a job that no launcher
                                  will read (a launch cut short) goes whatever its age

State (status, poll, kill, collected): rc (null while running), alive (launcher running), size (log
bytes), outputs (output directory non-empty), started, ended, stopped (reason or null), collect,
collected, disk_full (less than RESERVE bytes free where the job lives), lost (why a job that no longer
runs left no rc: "restarted", "disk_full" or "killed", or its executor's word; null otherwise), and under
the name of its executor of its own what that says (Slurm: {"id", "state", "reason", "nodes"}); `missing:
true` when the job directory has no .rt/.
"""

import base64
import contextlib
import errno
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

_JOB = [""]  # absolute path of the job directory of this call, for the JSON replies
_T0 = [0.0]  # monotonic time at which the launcher started: the timeout counts from there
CHECK_INTERVAL = 0.01  # seconds between checks of the log while long-polling
LIVENESS_INTERVAL = 0.5  # seconds between checks that the launcher still runs, while waiting for news
COALESCE = 0.015  # once new bytes are seen, wait this long for more so that lines travel in batches
END_GRACE = 2.0  # seconds left to stray processes of the job after the script itself exited
DEFAULT_REASON = "cancelled"  # stop reason recorded by `kill` when none is given
STAGE_PARTIAL = ".~tmp~"  # rsync --delay-updates' directory of files not yet in place (a staging under way)
RESERVE = 64 * 1024  # bytes the job keeps for recording its own end on a full disk
_STOP_ASKED = [False]  # a launcher no reaper reaches (arm_stop_signals) was asked to stop the job
_LIMIT_NEAR = [False]  # ... or told that a time limit outside the job's own is --grace away
_ARMED = [False]  # arm_stop_signals was called: the launcher watches for stops itself


def _write_atomic(path, text):
    tmp = path + ".tmp"
    try:
        _write_file(tmp, text)
    except OSError as exc:
        # A full disk: give back the job's reserve (its own space for rc, ended, collected) and retry.
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not _release_reserve(path):
            raise
        _write_file(tmp, text)
    os.rename(tmp, path)


def _write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _release_reserve(path):
    """Remove the reserve of the job that path belongs to; True when there was one."""
    reserve = os.path.join(os.path.dirname(path), "reserve")
    if not os.path.exists(reserve):
        reserve = os.path.join(os.path.dirname(path), ".rt", "reserve")
    try:
        os.unlink(reserve)
    except OSError:
        return False
    return True


def _boot_mark():
    """This boot of the host (or of its container): the kernel's boot id and the start time of PID 1."""
    boot = _read("/proc/sys/kernel/random/boot_id") or ""
    try:
        with open("/proc/1/stat") as f:
            stat = f.read()
        start = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, IndexError):
        start = ""
    return f"{boot}:{start}"


def _free_bytes(path):
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _create_once(path, text):
    """Create path holding text, atomically, unless it exists. True when this call created it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # fails when path exists: the first writer wins, readers see all or nothing
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # No hard links on this file system: exclusive creation (a reader may briefly see it empty).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _alive(pid):
    """True when pid runs and is not a zombie (orphans can be reaped late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat[stat.rindex(")") + 2] not in "ZX"


def _session_members(sid, exclude=()):
    """Pids of live processes whose session id is sid (Linux /proc)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in exclude:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in "ZX":
            continue
        if int(fields[3]) == sid:
            pids.append(pid)
    return pids


def _signal_job(launcher_pid, pgid, sig):
    """Send sig to the script's process group and to every other process of the job's session."""
    if pgid:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    if launcher_pid and os.path.isdir("/proc"):
        for pid in _session_members(launcher_pid, exclude=(launcher_pid,)):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def _out(obj):
    obj.setdefault("job", _JOB[0])
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _paths(job):
    rt = os.path.join(job, ".rt")
    return {
        "rt": rt,
        "spec": os.path.join(rt, "spec.json"),
        "launcher": os.path.join(rt, "launcher.pid"),
        "pgid": os.path.join(rt, "pgid"),
        "started": os.path.join(rt, "started"),
        "ended": os.path.join(rt, "ended"),
        "output": os.path.join(rt, "output"),
        "stopped": os.path.join(rt, "stopped"),
        "collect": os.path.join(rt, "collect"),
        "collected": os.path.join(rt, "collected"),
        "rc": os.path.join(job, "rc"),
        "log": os.path.join(job, "log"),
        "work": os.path.join(job, "work"),
    }


def _run_launcher(job, p, spec):
    """Runs in the detached session leader: start the script, wait, record rc, clean up strays."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The job's own SIGTERM/SIGINT go to the script's group; the launcher must live to record rc.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    env["PYTHONUNBUFFERED"] = "1"
    log = os.open(p["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)

    def child_setup():
        os.setpgid(0, 0)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    argv = list(spec["argv"])
    expand = int(spec.get("expand") or 0)
    argv[:expand] = [arg.replace("@WORK@", p["work"]) for arg in argv[:expand]]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=spec.get("cwd") or p["work"],
            env=env,
            stdin=devnull,
            stdout=log,
            stderr=log,
            preexec_fn=child_setup,
            close_fds=True,
        )
    except OSError as exc:
        os.write(log, ("remote-trainer: cannot start {}: {}\n".format(spec["argv"][0], exc)).encode())
        _write_atomic(p["ended"], f"{time.time():.3f}")
        _write_atomic(p["rc"], "127")
        return
    _write_atomic(p["pgid"], str(proc.pid))
    me = os.getpid()
    status = _wait_script(p, proc, spec, me)
    rc = 128 - status if status < 0 else status
    # Whatever the script left behind in its session ends with it.
    _signal_job(me, proc.pid, signal.SIGTERM)
    deadline = time.time() + END_GRACE
    while _session_members(me, exclude=(me,)) and time.time() < deadline:
        time.sleep(0.05)
    _signal_job(me, proc.pid, signal.SIGKILL)
    _run_engine(spec, "stop")
    _write_atomic(p["ended"], f"{time.time():.3f}")
    _write_atomic(p["rc"], str(rc))


def _run_engine(spec, what):
    """Run the spec's engine command `what` (term or stop: the container executor's), if it has one."""
    if not spec.get(what):
        return False
    with open(os.devnull, "wb") as devnull:
        try:
            done = subprocess.run(
                spec[what], stdin=devnull, stdout=devnull, stderr=devnull, timeout=120, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return False
    return done.returncode == 0


def _terminate(spec, launcher, pgid):
    """SIGTERM to the job: into its container when it runs in one (else, say while the container is still
    being created, to the engine's client, which passes it on), or to its processes."""
    if not _run_engine(spec, "term"):
        _signal_job(launcher, pgid, signal.SIGTERM)


def _engine_spec(p):
    saved = _read(os.path.join(p["rt"], "engine.json"))
    return json.loads(saved) if saved else {}


def _spec_float(spec, key, default):
    """spec[key] as seconds (negative: 0); default when absent, null or not a number."""
    return _seconds(spec.get(key), default)


def _seconds(value, default):
    """value as seconds (negative: 0); default when it is null or not a number."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return default


def _wait_script(p, proc, spec, me):
    """Wait for the script, at most spec's timeout; past it stop the job (reason "timeout"). Its status.

    An armed launcher (arm_stop_signals: no reaper reaches it on its node, say Slurm's) also stops the job
    when asked: by its signal, or by the stopped file that `kill` writes first (a signal may come early)."""
    timeout = _spec_float(spec, "timeout", 0.0)
    step = 0.2 if _ARMED[0] else None
    while True:
        left = None if timeout <= 0 else max(0.0, timeout - (time.monotonic() - _T0[0]))
        wait = left if step is None else (step if left is None else min(step, left))
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        if step is not None and _LIMIT_NEAR[0]:
            _create_once(p["stopped"], "timeout")  # a time limit outside: stopped as --timeout stops it
        if step is not None and (_STOP_ASKED[0] or os.path.exists(p["stopped"])):
            # The grace `kill` asked for (its executor writes KILL_GRACE), else the job's own.
            grace = _seconds(_read(os.path.join(p["rt"], KILL_GRACE)), _spec_float(spec, "grace", 0.0))
            return _stop_script(p, proc, spec, me, grace)
        if left is not None and timeout - (time.monotonic() - _T0[0]) <= 0:
            if not _create_once(p["stopped"], "timeout"):
                if step is None:
                    return proc.wait()  # a kill came first: its reaper finishes the job
                continue  # armed: the kill's stop comes round at the next step
            return _stop_script(p, proc, spec, me, _spec_float(spec, "grace", 0.0))  # cmd_launch checked it


def _stop_script(p, proc, spec, me, grace):
    """SIGTERM to the job, SIGKILL after grace seconds; the script's status."""
    _terminate(spec, me, proc.pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _session_members(me, exclude=(me,)):
            break
        time.sleep(0.05)
    if proc.poll() is None:
        _run_engine(spec, "stop")
    _signal_job(me, proc.pid, signal.SIGKILL)
    return proc.wait()


def _mark_python(p, python):
    """Record the job's python; when it is a cached venv's (remote_host), mark the venv's last use, so that
    `venvset.py evict` knows which sets running jobs use and which were used last."""
    _write_atomic(os.path.join(p["rt"], "python"), os.path.abspath(os.path.expanduser(python)))
    venv = os.path.dirname(os.path.dirname(os.path.expanduser(python)))
    if os.path.exists(os.path.join(venv, ".ready")):
        with contextlib.suppress(OSError), open(os.path.join(venv, ".last-used"), "w") as f:
            f.write(f"{time.time():.3f}\n")


# -- executors of their own ---------------------------------------------------------------------------------
# A job whose spec names an `executor` other than process and container (whose engine commands are the spec's
# term and stop) is started, watched and stopped by a module of its own next to this file, jobctl_NAME.py (the
# Slurm executor: jobctl_slurm.py), named in .rt/executor at the launch. Its hooks, each given this module as
# ctl:
#   launch(ctl, job, p, spec) -> the reply of `launch`, instead of the forked launcher
#   run(ctl, job)              `run JOB`: be the launcher, wherever the executor started it
#   rank(ctl, argv)            `rank JOB -- ARGV...`: one node of a multi-node job
#   state(ctl, p, rc) -> (rc, alive, lost, info)   instead of the launcher's pid (info: the state's NAME)
#   end(ctl, p, st) -> st      the last poll of a job whose script failed: the executor may name a stop
#   kill(ctl, job, p, grace, reason) -> the state after asking the job to stop, instead of signals
#   reap(ctl, p)               the reaper's last resort after the grace
OWN_EXECUTOR = "executor"
KILL_GRACE = "kill_grace"  # .rt/ file: the grace of a stop an executor's `kill` asks an armed launcher for


def _executor(p, name=None):
    """The module of a job's own executor, or None (process and container: this file)."""
    name = _read(os.path.join(p["rt"], OWN_EXECUTOR)) if name is None else name
    if not name or name in ("process", "container"):
        return None
    if not name.isalpha():
        raise SystemExit(f"unknown executor {name!r}")
    sys.dont_write_bytecode = True
    module = f"jobctl_{name}"
    path = os.path.join(p["rt"], module + ".py")
    if module not in sys.modules and os.path.exists(path):
        # From the job's own .rt/: this file may run from elsewhere (`clean` comes on stdin).
        found = importlib.util.spec_from_file_location(module, path)
        sys.modules[module] = importlib.util.module_from_spec(found)
        found.loader.exec_module(sys.modules[module])
    return importlib.import_module(module)


def _ctl():
    return sys.modules[__name__]


def arm_stop_signals(stop, limit):
    """For a launcher that no reaper reaches (on another node): signal `stop` asks it to stop the job (the
    stopped file names why), signal `limit` says a time limit outside the job's is --grace away (a stop for
    "timeout"); it then stops the job itself (SIGTERM, SIGKILL after the grace). Call it first thing."""
    _ARMED[0] = True
    _T0[0] = time.monotonic()
    signal.signal(stop, lambda signum, frame: _STOP_ASKED.__setitem__(0, True))
    signal.signal(limit, lambda signum, frame: _LIMIT_NEAR.__setitem__(0, True))


def cmd_launch(job, first_poll=None):
    p = _paths(job)
    os.makedirs(p["work"], mode=0o700, exist_ok=True)
    with open(p["spec"]) as f:
        spec = json.load(f)
    executor = _executor(p, spec.get("executor") or "")
    if executor is None:
        os.unlink(p["spec"])  # env values stay on disk only as long as needed (an executor's: until `run`)
    if _spec_float(spec, "timeout", 0.0) > 0 and spec.get("grace") is None:
        raise SystemExit("spec.json: a timeout needs its grace (seconds between SIGTERM and SIGKILL)")
    if spec.get("output"):
        os.makedirs(os.path.join(p["work"], spec["output"]), mode=0o700, exist_ok=True)
        _write_atomic(p["output"], spec["output"])
    with contextlib.suppress(OSError):  # no reserve on a disk already full: the job may still run
        _write_file(os.path.join(p["rt"], "reserve"), "\0" * RESERVE)
    _write_atomic(os.path.join(p["rt"], "boot"), _boot_mark())
    if spec.get("collect"):
        _write_atomic(p["collect"], "1")
    if spec.get("term") or spec.get("stop"):
        engine = {"term": spec.get("term") or [], "stop": spec.get("stop") or []}
        _write_atomic(os.path.join(p["rt"], "engine.json"), json.dumps(engine))
    _mark_python(p, spec.get("python") or spec["argv"][0])
    if executor is not None:
        _write_atomic(os.path.join(p["rt"], OWN_EXECUTOR), spec["executor"])
        _out(executor.launch(_ctl(), job, p, spec))
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        _T0[0] = time.monotonic()
        fd = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        _write_atomic(p["launcher"], str(os.getpid()))
        _write_atomic(p["started"], f"{time.time():.3f}")
        os.write(w, b"x")
        os.close(w)
        try:
            _run_launcher(job, p, spec)
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)  # launcher recorded itself; the pgid follows as soon as the script started
    deadline = time.time() + 10
    while _read(p["pgid"]) is None and _read(p["rc"]) is None and time.time() < deadline:
        time.sleep(0.005)
    _out({"job": job, "launcher": int(_read(p["launcher"])), "pgid": int(_read(p["pgid"]) or 0)})
    if first_poll is not None:
        sys.stdout.flush()
        cmd_poll(job, 0, *first_poll)


def _has_outputs(p):
    output = _read(p["output"])
    try:
        return bool(output) and bool(os.listdir(os.path.join(p["work"], output)))
    except OSError:
        return False


def _state(p):
    if not os.path.isdir(p["rt"]):
        return {
            "missing": True,
            "rc": None,
            "alive": False,
            "size": 0,
            "started": None,
            "ended": None,
            "stopped": None,
            "collect": False,
            "collected": False,
        }
    rc = _read(p["rc"])
    launcher = _read(p["launcher"])
    alive = bool(launcher) and _alive(int(launcher))
    if rc is None and not alive:
        # The launcher writes rc, then exits: it may have done both between the two reads above.
        rc = _read(p["rc"])
    try:
        size = os.path.getsize(p["log"])  # after rc: an rc read means every byte of the log is counted
    except OSError:
        size = 0
    free = _free_bytes(p["rt"])
    disk_full = free is not None and free < RESERVE
    lost = None
    executor, own = _executor(p), None
    if executor is not None:
        rc, alive, lost, own = executor.state(_ctl(), p, rc)
    elif rc is None and launcher and not alive:
        if _read(os.path.join(p["rt"], "boot")) not in (None, _boot_mark()):
            lost = "restarted"
        else:
            lost = "disk_full" if disk_full else "killed"
    state = {
        "rc": int(rc) if rc is not None else None,
        "alive": alive,
        "disk_full": disk_full,
        "lost": lost,
        "size": size,
        "outputs": _has_outputs(p),
        "started": _read(p["started"]),
        "ended": _read(p["ended"]),
        "stopped": _read(p["stopped"]) or None,
        "collect": os.path.exists(p["collect"]),
        "collected": os.path.exists(p["collected"]),
    }
    if executor is not None:
        state[_read(os.path.join(p["rt"], OWN_EXECUTOR))] = own
    return state


def _wait_for_news(p, offset, deadline, interval):
    """Sleep until the log grows past offset, rc appears, the launcher is gone, or deadline: cheap checks
    (a stat or two) every interval, the launcher's liveness every LIVENESS_INTERVAL."""
    launcher = _read(p["launcher"])
    next_alive = time.time() + LIVENESS_INTERVAL
    while True:
        now = time.time()
        try:
            if os.path.getsize(p["log"]) > offset:
                return
        except OSError:
            pass
        if now >= deadline or os.path.exists(p["rc"]):
            return
        if launcher and now >= next_alive:
            if not _alive(int(launcher)):
                return
            next_alive = now + LIVENESS_INTERVAL
        time.sleep(interval)


def _poll(p, offset, wait, maxbytes):
    """The job's state and its log bytes past offset, once there are any (or the end, or after wait s)."""
    executor = _executor(p)
    # An executor of its own may check less often (its job's files on a shared file system), and knows
    # itself whether its job runs: its state is asked for at each check.
    interval = getattr(executor, "CHECK_INTERVAL", CHECK_INTERVAL)
    deadline = time.time() + wait
    while True:
        if executor is None:
            _wait_for_news(p, offset, deadline, interval)
        st = _state(p)
        if st["size"] > offset:
            if st["rc"] is None and st["size"] - offset < maxbytes:
                time.sleep(COALESCE)
                st = _state(p)
            break
        if st["rc"] is not None or not st["alive"] or time.time() >= deadline:
            break
        time.sleep(interval)
    data = b""
    if st["size"] > offset:
        with open(p["log"], "rb") as f:
            f.seek(offset)
            data = f.read(min(st["size"] - offset, maxbytes))
    executor = executor if st["rc"] not in (None, 0) and not st["stopped"] else None
    if executor is not None and offset + len(data) >= st["size"]:
        st = executor.end(_ctl(), p, st)
    st["offset"] = offset
    st["n"] = len(data)
    # rc was read before the log: when rc is set and these are the last bytes, the log is complete.
    st["eof"] = st["rc"] is not None and offset + len(data) >= st["size"]
    st["data"] = base64.b64encode(data).decode("ascii")
    return st


def cmd_poll(job, offset, wait, maxbytes):
    _out(_poll(_paths(job), offset, wait, maxbytes))


def cmd_stream(job, offset, wait, maxbytes):
    """`poll` again and again in one process: a line for each batch of bytes, and one at least every wait s
    (the job's state), until the end (eof) or a job that no longer runs and left no rc (lost)."""
    p = _paths(job)
    while True:
        st = _poll(p, offset, wait, maxbytes)
        _out(st)
        offset += st["n"]
        if st["eof"] or (st["rc"] is None and not st["alive"] and st["n"] == 0):
            return


def _reap_later(job, grace):
    """Detached: SIGKILL what is left of the job after grace seconds, even if the caller is gone."""
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    p = _paths(job)
    deadline = time.time() + grace
    while time.time() < deadline and _read(p["rc"]) is None:
        time.sleep(0.05)
    executor = _executor(p)
    if executor is not None:
        executor.reap(_ctl(), p)
        os._exit(0)
    launcher = int(_read(p["launcher"]) or 0)
    pgid = int(_read(p["pgid"]) or 0)
    if _read(p["rc"]) is None:
        _run_engine(_engine_spec(p), "stop")  # the container first: its engine client cannot stop it
        _signal_job(launcher, pgid, signal.SIGKILL)
    os._exit(0)


def cmd_kill(job, grace, reason=DEFAULT_REASON):
    p = _paths(job)
    executor = _executor(p)
    if executor is not None:
        _out(executor.kill(_ctl(), job, p, grace, reason))
        return
    launcher = int(_read(p["launcher"]) or 0)
    pgid = int(_read(p["pgid"]) or 0)
    running = _read(p["rc"]) is None
    if running:
        if os.path.isdir(p["rt"]):
            _create_once(p["stopped"], reason)  # a job that ended keeps its story; the first reason wins
        _terminate(_engine_spec(p), launcher, pgid)
        _reap_later(job, grace)
    st = _state(p)
    st["signalled"] = running
    _out(st)


def cmd_status(job):
    _out(_state(_paths(job)))


def cmd_collected(job):
    p = _paths(job)
    if os.path.isdir(p["rt"]):
        _write_atomic(p["collected"], f"{time.time():.3f}")
    _out(_state(p))


LAUNCH_WINDOW = 60.0  # seconds after which a spec that no launcher read belongs to a launch cut short


def _launched_at(p):
    """When the job's payload was unpacked (its jobctl.py carries the time the payload was made)."""
    for path in (os.path.join(p["rt"], "jobctl.py"), p["rt"]):
        with contextlib.suppress(OSError):
            return os.stat(path).st_mtime
    return None


def _ended_at(p, st):
    """The time `clean` counts a job's age from, or None while it may still run: its end; for a lost job its
    start; for a job that never started (cancelled while queued, a launch cut short) its launch."""
    if st.get("missing"):
        return None
    if st["rc"] is not None:
        ended = _read(p["ended"])
        return float(ended) if ended is not None else None
    if st["alive"]:
        return None
    started = _read(p["started"])
    if st["lost"]:
        return float(started) if started else _launched_at(p)
    launched = _launched_at(p)
    if _read(p["launcher"]) or launched is None or time.time() - launched < LAUNCH_WINDOW:
        return None  # a launch under way
    return launched  # a launch cut short before its launcher started


def _forget_stale_spec(p, st, now):
    """Remove the spec (env values) of a job that can no longer read it: no launcher runs or will run, and the
    launch that unpacked it is more than LAUNCH_WINDOW s ago (say, a connection lost before `launch`)."""
    launched = _launched_at(p)
    if st.get("missing") or st["alive"] or st["rc"] is not None:
        return
    if launched is None or now - launched < LAUNCH_WINDOW:
        return
    with contextlib.suppress(OSError):
        os.unlink(p["spec"])


def _writers(path):
    """Pids of rsync processes whose command line names path (a staging into it under way)."""
    found = []
    needle = path.rstrip("/").encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"rsync") and any(a.rstrip(b"/") == needle for a in argv):
            found.append(int(name))
    return found


def cmd_clean(root, age, force=False, stage=None):
    """Remove job directories under root that ended (rc written) at least age seconds ago, lost jobs
    (no rc, launcher gone) started that long ago, and jobs that never started launched that long ago; and
    the half-sent files a failed staging left in the workdir mirrors under stage (rsync's .~tmp~), which a
    full disk would otherwise keep for good.

    A job whose outputs a driver still has to copy back (collect set, outputs present, not collected) is
    kept, and named in "uncollected", unless force.
    """
    root = os.path.expanduser(root)
    removed, kept, uncollected = [], 0, []
    now = time.time()
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if name.startswith("."):  # an executor's shared files (Slurm's queue), no job
            continue
        job = os.path.join(root, name)
        p = _paths(job)
        st = _state(p)
        _forget_stale_spec(p, st, now)
        try:
            since = _ended_at(p, st)
            old = since is not None and now - since >= age
        except ValueError:
            old = False
        pending = os.path.exists(p["collect"]) and not os.path.exists(p["collected"]) and _has_outputs(p)
        if old and pending and not force:
            uncollected.append(name)
            kept += 1
        elif old:
            shutil.rmtree(job, ignore_errors=True)
            removed.append(name)
        else:
            kept += 1
    partial = []
    stage = os.path.expanduser(stage) if stage else None
    for name in sorted(os.listdir(stage)) if stage and os.path.isdir(stage) else []:
        leftover = os.path.join(stage, name, STAGE_PARTIAL)
        if os.path.isdir(leftover) and not _writers(os.path.join(stage, name)):
            shutil.rmtree(leftover, ignore_errors=True)
            partial.append(name)
    out = {"job": root, "removed": removed, "kept": kept, "uncollected": uncollected, "partial": partial}
    sys.stdout.write(json.dumps(out) + "\n")


def main(argv):
    cmd, job = argv[1], argv[2]
    _JOB[0] = os.path.abspath(os.path.expanduser(job))
    if cmd == "clean":
        rest = argv[4:]
        stage = None
        if rest[-2:-1] == ["--stage"]:
            stage, rest = rest[-1], rest[:-2]
        if rest not in ([], ["force"]):
            raise SystemExit(f"clean ROOT AGE [force] [--stage DIR]: unexpected {' '.join(rest)!r}")
        cmd_clean(job, float(argv[3]), force=rest == ["force"], stage=stage)
    elif cmd == "launch":
        if argv[3:4] == ["--poll"]:
            cmd_launch(job, first_poll=(float(argv[4]), int(argv[5])))
        else:
            cmd_launch(job)
    elif cmd == "run":  # an executor's launcher
        _executor(_paths(_JOB[0])).run(_ctl(), job)
    elif cmd == "rank":  # rank JOB -- ARGV...: one node of an executor's multi-node job
        _executor(_paths(_JOB[0])).rank(_ctl(), argv[4:])
    elif cmd == "poll":
        cmd_poll(job, int(argv[3]), float(argv[4]), int(argv[5]))
    elif cmd == "stream":
        cmd_stream(job, int(argv[3]), float(argv[4]), int(argv[5]))
    elif cmd == "kill":
        reason = argv[4] if len(argv) > 4 else DEFAULT_REASON
        if not reason or any(c.isspace() for c in reason) or "/" in reason:
            raise SystemExit(f"kill JOB GRACE [REASON]: the reason must be one word, not {reason!r}")
        cmd_kill(job, float(argv[3]), reason)
    elif cmd == "status":
        cmd_status(job)
    elif cmd == "collected":
        cmd_collected(job)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)

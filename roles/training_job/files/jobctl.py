#!/usr/bin/env python3
"""Job control on a training host: launch detached, poll the log, kill the process tree.

The training_job action plugin sends it inside the job's payload (a tar stream unpacked into JOB by the
same remote command that then runs `jobctl.py launch`). It runs with the host's python (3.6 or newer,
standard library only). Nothing else is installed on the host.

Job directory layout (mode 0700):
  JOB/.rt/spec.json  argv, env and cwd of the script; read and deleted by `launch` (holds env values)
  JOB/.rt/launcher.pid  pid of the launcher (session leader; waits for the script, writes rc)
  JOB/.rt/pgid       process group of the script
  JOB/.rt/started    start time (epoch seconds); JOB/.rt/ended: end time
  JOB/rc             exit code of the script (128+N when it died of signal N), written atomically
  JOB/log            stdout and stderr of the script, merged
  JOB/work/          the script, the staged workdir, the script's cwd

Commands (each prints one JSON line to stdout; `poll` adds the log bytes in base64):
  launch JOB                      start the script detached; print pid and pgid
  poll JOB OFFSET WAIT MAXBYTES   wait up to WAIT s for log bytes past OFFSET or the end
  kill JOB GRACE                  SIGTERM the job's processes, SIGKILL after GRACE s (detached reaper)
  status JOB                      state of the job without waiting
  clean ROOT AGE                  remove ended job directories under ROOT whose end is AGE s ago or more
"""

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

_JOB = [""]  # absolute path of the job directory of this call, for the JSON replies
CHECK_INTERVAL = 0.01  # seconds between checks of the log while long-polling
COALESCE = 0.015  # once new bytes are seen, wait this long for more so that lines travel in batches
END_GRACE = 2.0  # seconds left to stray processes of the job after the script itself exited


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


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

    try:
        proc = subprocess.Popen(
            spec["argv"],
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
    status = proc.wait()
    rc = 128 - status if status < 0 else status
    # Whatever the script left behind in its session ends with it.
    me = os.getpid()
    _signal_job(me, proc.pid, signal.SIGTERM)
    deadline = time.time() + END_GRACE
    while _session_members(me, exclude=(me,)) and time.time() < deadline:
        time.sleep(0.05)
    _signal_job(me, proc.pid, signal.SIGKILL)
    _write_atomic(p["ended"], f"{time.time():.3f}")
    _write_atomic(p["rc"], str(rc))


def cmd_launch(job):
    p = _paths(job)
    os.makedirs(p["work"], mode=0o700, exist_ok=True)
    with open(p["spec"]) as f:
        spec = json.load(f)
    os.unlink(p["spec"])  # env values stay on disk only as long as needed
    if spec.get("output"):
        os.makedirs(os.path.join(p["work"], spec["output"]), mode=0o700, exist_ok=True)
        _write_atomic(os.path.join(p["rt"], "output"), spec["output"])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
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


def _state(p):
    if not os.path.isdir(p["rt"]):
        return {"missing": True, "rc": None, "alive": False, "size": 0, "started": None, "ended": None}
    rc = _read(p["rc"])
    launcher = _read(p["launcher"])
    alive = bool(launcher) and _alive(int(launcher))
    try:
        size = os.path.getsize(p["log"])
    except OSError:
        size = 0
    output = _read(os.path.join(p["rt"], "output"))
    try:
        has_outputs = bool(output) and bool(os.listdir(os.path.join(p["work"], output)))
    except OSError:
        has_outputs = False
    return {
        "rc": int(rc) if rc is not None else None,
        "alive": alive,
        "size": size,
        "outputs": has_outputs,
        "started": _read(p["started"]),
        "ended": _read(p["ended"]),
    }


def cmd_poll(job, offset, wait, maxbytes):
    p = _paths(job)
    deadline = time.time() + wait
    while True:
        st = _state(p)
        if st["size"] > offset:
            if st["rc"] is None and st["size"] - offset < maxbytes:
                time.sleep(COALESCE)
                st = _state(p)
            break
        if st["rc"] is not None or not st["alive"] or time.time() >= deadline:
            break
        time.sleep(CHECK_INTERVAL)
    data = b""
    if st["size"] > offset:
        with open(p["log"], "rb") as f:
            f.seek(offset)
            data = f.read(min(st["size"] - offset, maxbytes))
    st["offset"] = offset
    st["n"] = len(data)
    # rc was read before the log: when rc is set and these are the last bytes, the log is complete.
    st["eof"] = st["rc"] is not None and offset + len(data) >= st["size"]
    st["data"] = base64.b64encode(data).decode("ascii")
    _out(st)


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
    launcher = int(_read(p["launcher"]) or 0)
    pgid = int(_read(p["pgid"]) or 0)
    if _read(p["rc"]) is None:
        _signal_job(launcher, pgid, signal.SIGKILL)
    os._exit(0)


def cmd_kill(job, grace):
    p = _paths(job)
    launcher = int(_read(p["launcher"]) or 0)
    pgid = int(_read(p["pgid"]) or 0)
    running = _read(p["rc"]) is None
    if running:
        _signal_job(launcher, pgid, signal.SIGTERM)
        _reap_later(job, grace)
    st = _state(p)
    st["signalled"] = running
    _out(st)


def cmd_status(job):
    _out(_state(_paths(job)))


def cmd_clean(root, age):
    """Remove job directories under root that ended (rc written) at least age seconds ago."""
    root = os.path.expanduser(root)
    removed, kept = [], 0
    now = time.time()
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        job = os.path.join(root, name)
        p = _paths(job)
        ended = _read(p["ended"])
        if _read(p["rc"]) is not None and ended is not None and now - float(ended) >= age:
            shutil.rmtree(job, ignore_errors=True)
            removed.append(name)
        else:
            kept += 1
    sys.stdout.write(json.dumps({"job": root, "removed": removed, "kept": kept}) + "\n")


def main(argv):
    cmd, job = argv[1], argv[2]
    _JOB[0] = os.path.abspath(os.path.expanduser(job))
    if cmd == "clean":
        cmd_clean(job, float(argv[3]))
    elif cmd == "launch":
        cmd_launch(job)
    elif cmd == "poll":
        cmd_poll(job, int(argv[3]), float(argv[4]), int(argv[5]))
    elif cmd == "kill":
        cmd_kill(job, float(argv[3]))
    elif cmd == "status":
        cmd_status(job)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)

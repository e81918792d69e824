"""Build or prune the cached requirement sets of a host (run by the remote_host role with the host's python).

    python - build   (this file on stdin, after a first line `INPUT = '{"spec": SPEC, "env": ENV}'`: the
                      remote_host_build action puts them there, so that no command line holds them; with the
                      spec's "target" and "image", pip runs in the job's image)
        ENV (the inventory's environment) and the spec's "pip_env" (index URLs: PIP_INDEX_URL, ...) are set
        for pip, never passed in its argv. Under the set's lock: unless the set is ready meanwhile, remove
        what an unfinished attempt left, create the venv, pip install the requirements (the venv made the
        user's alone), then write the ready mark. Prints "ready" (another
        run built it) or "installed" last; pip's own lines before.
    python - prune CACHE
        Remove the venvs without a ready mark whose lock is free; prints {"venvs": [...], "kb": N}.
    python - list CACHE JOBS_ROOT
        The ready sets: key, requirements (a URL's credentials masked), size, creation and last use, and
        the running jobs that use them (jobctl.py marks a set's last use, and records a job's python, at
        each launch); JSON.
    python - evict CACHE JOBS_ROOT OLDER_THAN KEEP
        Remove ready sets that no running job uses, last used OLDER_THAN seconds ago or more, beyond
        the KEEP most recently used ones (under each set's lock; a set being built is left alone).

Everything it writes is the user's alone (umask 077: 0700 directories, 0600 files), whatever the login's
umask: the cache holds the requirements (their URLs, maybe with tokens) and the user's packages.

The lock is an flock on CACHE/locks/KEY.lock held by this process: the kernel releases it when the process
ends, however it ends (a driver interrupted, a connection dropped, a host rebooted), so a later run never
waits on a builder that is gone. Concurrent runs of one set (a sweep) wait for the one that builds it.
Standard library only; python 3.6 or newer.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time


def _lock(path, wait):
    """An exclusive flock on path, waiting up to `wait` seconds; None when the time is up."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 (held open: the flock lives as long as the handle)
    deadline = time.time() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except OSError:
            if time.time() >= deadline:
                handle.close()
                return None
            time.sleep(0.5)


def _size_kb(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total // 1024


# Variables of pip that several values share (space-separated): the spec's are added to the environment's.
PIP_LISTS = ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")


def pip_environment(base, env, pip_env):
    """The environment pip runs with: base, then the inventory's env, then the spec's pip_env (its index URLs
    win, as pip's options did over the environment; its extra index URLs and find-links are added)."""
    merged = dict(base)
    merged.update(env)
    for name, value in pip_env.items():
        if name in PIP_LISTS and merged.get(name):
            merged[name] = merged[name] + " " + value
        else:
            merged[name] = value
    return merged


def build(given):
    spec = given["spec"]
    merged = pip_environment(os.environ, given.get("env") or {}, spec.get("pip_env") or {})
    os.environ.clear()
    os.environ.update(merged)
    lock = _lock(spec["lock"], spec["wait"])
    if lock is None:
        print(f"ERROR: waited {spec['wait']} s for another provision of this set to finish ({spec['lock']})")
        return 1
    if os.path.exists(spec["ready"]):
        print("ready")
        return 0
    python = spec["python"]
    if spec["venv"]:
        shutil.rmtree(spec["venv"], ignore_errors=True)  # what an unfinished attempt left
        site = ["--system-site-packages"] if spec["site_packages"] else []
        created = subprocess.run(
            [python, "-m", "venv", *site, spec["venv"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if created.returncode != 0:
            sys.stdout.write(created.stdout.decode(errors="replace"))
            print(f"ERROR: could not create the venv {spec['venv']} with {python} -m venv")
            return created.returncode
        python = os.path.join(spec["venv"], "bin", "python")
    sys.stdout.flush()
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    pip += ["-r", spec["requirements"], *spec["pip_args"]]
    if spec.get("target"):
        pip = _in_image(spec, pip)
    code = _run_logged(pip, spec.get("log") or "")
    if code != 0:
        return code
    _private(spec["venv"] or spec.get("target") or "")
    tmp = spec["ready"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(spec["key"] + "\n")
    os.replace(tmp, spec["ready"])
    print("installed")
    return 0


def _private(top):
    """No group or other bits under top (the owner's stay): venv and pip set some modes themselves (0755
    scripts, 0644 activate files), whatever the umask."""
    for root, dirs, files in os.walk(top) if top else ():
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    os.chmod(path, stat.S_IMODE(mode) & ~0o077)


def _in_image(spec, pip):
    """pip run by the container engine in the job's image, installing into spec["target"] (pip --target), a
    directory of the host that jobs mount; the requirements file and the wheelhouse are mounted read-only,
    the environment passed by name."""
    image, target = spec["image"], spec["target"]
    shutil.rmtree(target, ignore_errors=True)  # what an unfinished attempt left
    os.makedirs(target, mode=0o700)
    argv = [image["path"], "run", "--rm", "--network=host", "--pull=never"]
    argv += [f"--volume={target}:{target}:z", "--volume={0}:{0}:ro,z".format(spec["requirements"])]
    if spec.get("wheelhouse"):
        argv.append("--volume={0}:{0}:ro,z".format(spec["wheelhouse"]))
    if not image.get("rootless") and int(image.get("uid") or 0) != 0:
        argv += ["--user={}:{}".format(int(image["uid"]), int(image["gid"])), "--env=HOME=/tmp"]
    names = [*(spec.get("env_names") or []), *sorted(spec.get("pip_env") or {})]
    argv += [f"--env={name}" for name in dict.fromkeys(names)]  # by name: the values stay out of argv
    python = image.get("python") or "python3"
    return [*argv, image["image"], python, *pip[1:4], "--target", target, "--no-cache-dir", *pip[4:]]


def _run_logged(argv, log):
    """Run argv with its output on our stdout and, line by line as it comes, in the file log (when given:
    the remote_host_build action plugin reads it while the build runs, and removes it at the end)."""
    if not log:
        return subprocess.call(argv, stderr=subprocess.STDOUT)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for line in proc.stdout:
            os.write(fd, line)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        return proc.wait()
    finally:
        os.close(fd)


def prune(cache):
    venvs, locks = os.path.join(cache, "venvs"), os.path.join(cache, "locks")
    removed, kb = [], 0
    names = sorted(os.listdir(venvs)) if os.path.isdir(venvs) else []
    for key in names:
        venv = os.path.join(venvs, key)
        if not os.path.isdir(venv) or os.path.exists(os.path.join(venv, ".ready")):
            continue
        lock = _lock(os.path.join(locks, key + ".lock"), 0)
        if lock is None:
            continue  # being built right now
        try:
            if not os.path.exists(os.path.join(venv, ".ready")):
                kb += _size_kb(venv)
                shutil.rmtree(venv, ignore_errors=True)
                for leftover in (venv + ".txt", venv + ".log"):  # its requirements, a killed build's log
                    with contextlib.suppress(OSError):
                        os.remove(leftover)
                removed.append(key)
        finally:
            lock.close()
    print(json.dumps({"venvs": removed, "kb": kb}))
    return 0


def _running_pythons(jobs_root):
    """job id -> the python a running job was started with (JOB/.rt/python, written at its launch)."""
    found = {}
    names = sorted(os.listdir(jobs_root)) if os.path.isdir(jobs_root) else []
    for name in names:
        rt = os.path.join(jobs_root, name, ".rt")
        if os.path.exists(os.path.join(jobs_root, name, "rc")):
            continue
        try:
            with open(os.path.join(rt, "launcher.pid")) as f:
                os.kill(int(f.read().strip()), 0)
            with open(os.path.join(rt, "python")) as f:
                found[name] = f.read().strip()
        except (OSError, ValueError):
            continue  # ended, lost, or started by a version that did not record its python
    return found


def without_credentials(line):
    """A requirement line as `list` shows it: a URL's credentials masked as pip and the driver show them
    (https://user:token@... -> https://user:****@..., a lone token https://token@... -> https://****@...)."""

    def masked(match):
        user, sep, _password = match.group(2).partition(":")
        return match.group(1) + (user + ":****" if sep else "****") + "@"

    return re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@'\"]+(?:@[^/\s@'\"]+)*)@", masked, line)


def _sets(cache, jobs_root):
    venvs = os.path.join(cache, "venvs")
    running = _running_pythons(jobs_root)
    sets = []
    for key in sorted(os.listdir(venvs)) if os.path.isdir(venvs) else []:
        venv = os.path.join(venvs, key)
        ready = os.path.join(venv, ".ready")
        if not os.path.isdir(venv) or not os.path.exists(ready):
            continue
        created = os.path.getmtime(ready)
        used = os.path.join(venv, ".last-used")
        try:
            with open(venv + ".txt") as f:
                requirements = [without_credentials(line.strip()) for line in f if line.strip()]
        except OSError:
            requirements = []
        prefix = venv + os.sep
        sets.append(
            {
                "key": key,
                "venv": venv,
                "requirements": requirements,
                "kb": _size_kb(venv),
                "created": created,
                "last_used": os.path.getmtime(used) if os.path.exists(used) else created,
                "in_use": sorted(job for job, python in running.items() if python.startswith(prefix)),
            }
        )
    return sets


def list_sets(cache, jobs_root):
    print(json.dumps({"sets": _sets(cache, jobs_root)}))
    return 0


def evict(cache, jobs_root, older_than, keep):
    """Remove the ready sets that no running job uses, older than older_than, beyond the keep newest."""
    sets = sorted(_sets(cache, jobs_root), key=lambda s: s["last_used"], reverse=True)
    removed, kept, kb = [], [], 0
    now = time.time()
    for rank, found in enumerate(sets):
        if found["in_use"] or rank < keep or now - found["last_used"] < older_than:
            kept.append(found["key"])
            continue
        lock = _lock(os.path.join(cache, "locks", found["key"] + ".lock"), 0)
        if lock is None:
            kept.append(found["key"])  # being rebuilt right now
            continue
        try:
            shutil.rmtree(found["venv"], ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(found["venv"] + ".txt")
            removed.append(found["key"])
            kb += found["kb"]
        finally:
            lock.close()
    print(json.dumps({"removed": removed, "kept": kept, "kb": kb}))
    return 0


def main(argv):
    os.umask(0o077)
    if argv[1] == "build":
        if "INPUT" not in globals():
            raise SystemExit("build: no INPUT line before this script (remote_host_build sends it)")
        return build(json.loads(globals()["INPUT"]))
    if argv[1] == "prune":
        return prune(os.path.expanduser(argv[2]))
    jobs_root = os.path.expanduser(os.path.expandvars(argv[3])) if len(argv) > 3 else ""  # $SCRATCH/jobs too
    if argv[1] == "list":
        return list_sets(os.path.expanduser(argv[2]), jobs_root)
    if argv[1] == "evict":
        return evict(os.path.expanduser(argv[2]), jobs_root, float(argv[4]), int(argv[5]))
    raise SystemExit(f"unknown command {argv[1]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

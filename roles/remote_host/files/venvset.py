"""Build or prune the cached requirement sets of a host (run by the remote_host role with the host's python).

    python - build SPEC_JSON   (this file on stdin)
        Under the set's lock: unless the set is ready meanwhile, remove what an unfinished attempt left,
        create the venv, pip install the requirements, then write the ready mark. Prints "ready" (another
        run built it) or "installed" last; pip's own lines before.
    python - prune CACHE
        Remove the venvs without a ready mark whose lock is free; prints {"venvs": [...], "kb": N}.

The lock is an flock on CACHE/locks/KEY.lock held by this process: the kernel releases it when the process
ends, however it ends (a driver interrupted, a connection dropped, a host rebooted), so a later run never
waits on a builder that is gone. Concurrent runs of one set (a sweep) wait for the one that builds it.
Standard library only; python 3.6 or newer.
"""

import contextlib
import fcntl
import json
import os
import shutil
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
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total // 1024


def build(spec):
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
            [python, "-m", "venv", *site, spec["venv"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if created.returncode != 0:
            sys.stdout.write(created.stdout.decode(errors="replace"))
            print(f"ERROR: could not create the venv {spec['venv']} with {python} -m venv")
            return created.returncode
        python = os.path.join(spec["venv"], "bin", "python")
    sys.stdout.flush()
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", spec["requirements"]]
    code = subprocess.call([*pip, *spec["pip_args"]], stderr=subprocess.STDOUT)
    if code != 0:
        return code
    tmp = spec["ready"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(spec["key"] + "\n")
    os.replace(tmp, spec["ready"])
    print("installed")
    return 0


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
                if os.path.exists(venv + ".txt"):
                    os.remove(venv + ".txt")
                removed.append(key)
        finally:
            lock.close()
    print(json.dumps({"venvs": removed, "kb": kb}))
    return 0


def main(argv):
    if argv[1] == "build":
        return build(json.loads(argv[2]))
    if argv[1] == "prune":
        return prune(os.path.expanduser(argv[2]))
    raise SystemExit(f"unknown command {argv[1]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

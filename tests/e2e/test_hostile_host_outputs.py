"""A hostile host's outputs: what its job leaves in outputs/ arrives through rsync, this machine receiving.

Nothing it sends may land or link outside the local output directory, and an rsync without the fixes against a
malicious sender (protocol < 32) is refused before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from driverproc import REPO, job_output, run_driver

# The hostile job: links that climb out, absolute links (to a file, a directory), links that stay inside.
HOSTILE = """\
import os
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/real.txt", "w").write("real\\n")
os.symlink("/etc/passwd", "outputs/passwd")
os.symlink("../../x", "outputs/up")
os.symlink("../../../../../../../../tmp/escaped", "outputs/sub/deep")
os.symlink("/etc", "outputs/etc")
os.symlink("/", "outputs/root")
os.symlink("real.txt", "outputs/inside")
os.symlink("../real.txt", "outputs/sub/inside")
print("planted", flush=True)
"""


def test_symlinks_a_host_sends_never_point_outside_the_output_directory(testhosts, tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    out = tmp_path / "out"
    res = run_driver(
        ["train", str(script), "-i", str(testhosts.inventory_path), "-l", "th1", "--output-dir", str(out)],
        tmp_path / "state",
    )
    assert res.returncode == 0, res.stderr
    got = job_output(out, "th1")
    assert (got / "real.txt").read_text() == "real\n"
    # The links inside the outputs stay links; every other one was dropped by this machine's rsync.
    assert os.readlink(got / "inside") == "real.txt"
    assert os.readlink(got / "sub" / "inside") == "../real.txt"
    links = sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_symlink())
    assert links == ["inside", "sub/inside"], links
    top = out.resolve()
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(top), path
    assert not (tmp_path / "x").exists() and not Path("/tmp/escaped").exists()


def old_rsync(tmp_path: Path, first_line: str) -> dict[str, str]:
    """A PATH whose `rsync` answers --version as an older rsync does (and does nothing else)."""
    bin_dir = tmp_path / "old-rsync"
    bin_dir.mkdir()
    fake = bin_dir / "rsync"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{first_line}'\nexit 0\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_an_rsync_without_the_fixes_is_refused_before_the_job_starts(testhosts, tmp_path):
    env = old_rsync(tmp_path, "rsync  version 3.2.3  protocol version 31")
    hello = str(REPO / "examples" / "hello.py")
    res = run_driver(
        ["train", hello, "-i", str(testhosts.inventory_path), "-l", "th1"], tmp_path / "state", extra_env=env
    )
    assert res.returncode == 98, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert f"rsync 3.2.3 ({tmp_path / 'old-rsync' / 'rsync'}, protocol 31) lacks the fixes" in errors[0]
    assert "hint: install rsync 3.4.0 or newer" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "state" / "jobs").exists() or not any((tmp_path / "state" / "jobs").iterdir())
    # Without an inventory the job runs here: no rsync receives anything, so none is asked for.
    res = run_driver(["train", hello], tmp_path / "state", extra_env=env)
    assert res.returncode == 0, res.stderr


def test_a_detached_jobs_outputs_never_come_back_through_an_old_rsync(testhosts, tmp_path):
    """status (logs, cancel) copies the outputs of a job that ended: not with an rsync without the fixes."""
    from driverproc import SCRIPTS

    out, state = tmp_path / "out", tmp_path / "state"
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    script = str(SCRIPTS / "writes_outputs.py")
    res = run_driver(["train", "-d", script, *inv, "--output-dir", str(out), "--", "late", "ok"], state)
    assert res.returncode == 0, res.stderr
    job = res.stdout.strip()
    env = old_rsync(tmp_path, "rsync  version 3.2.3  protocol version 31")
    res = run_driver(["wait", job], state, extra_env=env)  # the job ends; nothing is copied
    assert res.returncode == 0, res.stderr
    res = run_driver(["status", job], state, extra_env=env)
    assert res.returncode == 98, res.stderr
    assert "rsync 3.2.3" in res.stderr and "Traceback" not in res.stderr
    assert not (out / job / "th1" / "late.txt").exists()
    # With this machine's own rsync the next status brings them.
    res = run_driver(["status", job], state)
    assert res.returncode == 0, res.stderr
    assert (out / job / "th1" / "late.txt").read_text() == "late\n"

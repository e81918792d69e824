"""`driver cache list|prune`: the requirement sets cached on real hosts, and a set in use is never removed."""

from __future__ import annotations

import json
import time
import uuid

from driverproc import SCRIPTS, read_until, run_driver, start_driver


def offline(wheelhouse) -> list[str]:
    return ["--wheelhouse", str(wheelhouse), "--no-index"]


def sets(hs, tmp_path) -> list[dict]:
    res = run_driver(["cache", "list", "-i", str(hs.inventory_path), "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["hosts"]["th1"]


def test_list_and_prune_keep_a_set_a_running_job_uses(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    inv = ["-i", str(hs.inventory_path)]
    six, ini = ["--packages", "six==1.16.0"], ["--packages", "iniconfig==2.0.0"]
    for packages in (six, ini):
        assert run_driver(["provision", *inv, *packages, *offline(wheelhouse)], tmp_path).returncode == 0
    found = {tuple(s["requirements"]): s for s in sets(hs, tmp_path)}
    assert set(found) == {("six==1.16.0",), ("iniconfig==2.0.0",)}
    assert all(s["kb"] > 1000 and not s["in_use"] for s in found.values())
    text = run_driver(["cache", "list", *inv], tmp_path).stdout
    assert text.startswith("th1: 2 sets, ") and "six==1.16.0" in text

    # A running job uses the six set: pruning everything else leaves it.
    tag = uuid.uuid4().hex
    proc = start_driver(
        ["train", str(SCRIPTS / "sleeper.py"), *inv, *six, *offline(wheelhouse), "--", tag], tmp_path
    )
    try:
        read_until(proc, f"sleeping {tag}")
        using = {tuple(s["requirements"]): s["in_use"] for s in sets(hs, tmp_path)}
        assert len(using[("six==1.16.0",)]) == 1 and using[("iniconfig==2.0.0",)] == []
        res = run_driver(["cache", "prune", *inv, "--older-than", "0"], tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("th1: removed 1 sets") and "kept 1" in res.stdout
        assert [s["requirements"] for s in sets(hs, tmp_path)] == [["six==1.16.0"]]
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    # Not in use any more: it goes too.
    assert run_driver(["cache", "prune", *inv, "--older-than", "0"], tmp_path).returncode == 0
    assert sets(hs, tmp_path) == []


def test_prune_keeps_the_newest_and_the_recently_used(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    inv = ["-i", str(hs.inventory_path)]
    for spec in ("six==1.16.0", "iniconfig==2.0.0"):
        assert (
            run_driver(["provision", *inv, "--packages", spec, *offline(wheelhouse)], tmp_path).returncode
            == 0
        )
        time.sleep(1.1)
    # A job run marks its set's last use: six becomes the most recently used.
    script = tmp_path / "noop.py"
    script.write_text("print('ok')\n")
    res = run_driver(
        ["train", str(script), *inv, "--packages", "six==1.16.0", *offline(wheelhouse)], tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert run_driver(["cache", "prune", *inv], tmp_path).stdout.startswith("th1: removed 0 sets")  # 7 days
    res = run_driver(["cache", "prune", *inv, "--older-than", "0", "--keep", "1"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert [s["requirements"] for s in sets(hs, tmp_path)] == [["six==1.16.0"]]

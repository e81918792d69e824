"""Credentials in URLs (an index URL, a requirement line) are never printed by the driver."""

from __future__ import annotations

import json
import os

from driverproc import run_driver


def test_cache_list_hides_the_credentials_of_a_requirement_line(start_testhosts, wheelhouse, tmp_path):
    hs = start_testhosts(1)
    token = "tok-" + os.urandom(6).hex()
    requirements = tmp_path / "requirements.txt"
    # A find-links location that needs a token (unreachable: pip warns and takes six from the wheelhouse).
    requirements.write_text(f"--find-links https://user:{token}@127.0.0.1:9/wheels/\nsix==1.16.0\n")
    inv = ["-i", str(hs.inventory_path)]
    res = run_driver(
        ["provision", *inv, "-r", str(requirements), "--wheelhouse", str(wheelhouse), "--no-index"], tmp_path
    )
    assert res.returncode == 0, res.stderr
    text = run_driver(["cache", "list", *inv], tmp_path)
    assert text.returncode == 0, text.stderr
    assert (
        "six==1.16.0" in text.stdout and "--find-links https://user:****@127.0.0.1:9/wheels/" in text.stdout
    )
    shown = run_driver(["cache", "list", *inv, "--json"], tmp_path)
    assert token not in text.stdout + text.stderr + shown.stdout + shown.stderr
    (found,) = json.loads(shown.stdout)["hosts"]["th1"]
    assert "--find-links https://user:****@127.0.0.1:9/wheels/" in found["requirements"]


def test_config_show_hides_the_credentials_of_an_index_url(tmp_path):
    token = "tok-" + os.urandom(6).hex()
    env = {"REMOTE_TRAINER_INDEX_URL": f"https://{token}@pypi.example/simple"}
    res = run_driver(["config", "show"], tmp_path, extra_env=env)
    assert res.returncode == 0, res.stderr
    assert 'index_url = "https://****@pypi.example/simple"' in res.stdout
    assert token not in res.stdout + res.stderr

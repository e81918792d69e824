"""The remote_host role's check (plugins/action/remote_host_check.py): requirements as pip reads them, the
venv key, the plan from what the probe printed, and the probe itself run by /bin/sh on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.remote_trainer.core.plugins.plugin_utils import host_check as check

REPO = Path(__file__).resolve().parents[2]

DEFAULTS = yaml.safe_load(
    (REPO / "ansible_collections/remote_trainer/core/roles/remote_host/defaults/main.yml").read_text()
)


def settings(**changes: object) -> dict:
    values = {name: DEFAULTS[f"remote_host_{name}"] for name in check.SETTINGS}
    return {**values, **changes}


def test_requirements_are_normalized_as_pip_reads_them():
    text = (
        "# a comment\n"
        "--index-url https://pypi.example/simple\n"
        "\n"
        "six==1.16.0 \\\n"
        "    --hash=sha256:1111 \\\n"
        "    --hash=sha256:2222\n"
        "    # via -r requirements.in\n"
        "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abcd   # a URL keeps its fragment\n"
        "\t numpy>=1.26 \t\n"
    )
    assert check.normalized_requirements(text, ["iniconfig==2.0.0  # from --packages", "  "]) == (
        "--index-url https://pypi.example/simple\n"
        "six==1.16.0     --hash=sha256:1111     --hash=sha256:2222\n"
        "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abcd\n"
        "numpy>=1.26\n"
        "iniconfig==2.0.0"
    )
    # A file of comments alone installs nothing.
    assert check.normalized_requirements("# nothing yet\n\n   # still nothing\n", []) == ""


def test_key_is_the_one_venvs_were_built_under():
    """The key the Jinja plan gave for this set (hash of Ansible's to_json): hosts' venvs stay valid."""
    lines = ["HOME=/home/u", "PYTHON=/usr/bin/python3 3.11.2 0"]
    plan = check.plan(lines, settings(), "six==1.16.0", [])
    assert plan["key"] == "ee3242b6ad3c7b85"
    assert plan["venv"] == "/home/u/.cache/remote-trainer/venvs/ee3242b6ad3c7b85"
    assert plan["run_python"] == plan["venv"] + "/bin/python"
    assert (plan["install"], plan["ready"], plan["action"]) == (True, False, "installed")
    # Anything pip would see differently is another set.
    others = [
        check.plan(lines, settings(), "six==1.17.0", [])["key"],
        check.plan(lines, settings(index_url="https://x/simple"), "six==1.16.0", [])["key"],
        check.plan(lines, settings(), "six==1.16.0", ["six-1.16.0-py3-none-any.whl"])["key"],
        check.plan(lines, settings(system_site_packages=True), "six==1.16.0", [])["key"],
        check.plan(["PYTHON=/usr/bin/python3 3.12.1 0"], settings(), "six==1.16.0", [])["key"],
    ]
    assert len({plan["key"], *others}) == 6


def test_plan_reads_ready_sets_old_pythons_and_images():
    probed = ["HOME=/h", "PYTHON=/usr/bin/python3 3.11.2 1", "READY=ee3242b6ad3c7b85", "RSYNC=1"]
    ready = check.plan(probed, settings(), "six==1.16.0", [])
    # Neither HOME nor the mark of an externally managed python is part of the key.
    assert ready["key"] == "ee3242b6ad3c7b85"
    assert (ready["ready"], ready["action"], ready["rsync"], ready["externally_managed"]) == (
        True,
        "cached",
        True,
        True,
    )
    none = check.plan(["HOME=/h", "OLD=/usr/bin/python3.8 3.8.10"], settings(), "", [])
    assert none["python"] == "" and none["too_old"] == ["/usr/bin/python3.8 3.8.10"]
    assert check.no_python_message("h1", settings(), none["too_old"]).endswith(
        "(need 3.9 or newer; too old: /usr/bin/python3.8 3.8.10)"
    )
    image = {"path": "/usr/bin/podman", "image": "job:1", "python": "python3"}
    lines = ["HOME=/h", "PYTHON=/p 3.11.2 0", "IMAGE=sha256:aa"]
    in_image = check.plan(lines, settings(image=image), "torch", [])
    assert in_image["in_image"] and not in_image["uses_venv"] and in_image["run_python"] == "/p"
    other_image = check.plan([*lines[:2], "IMAGE=sha256:bb"], settings(image=image), "torch", [])
    assert other_image["key"] != in_image["key"]
    # The system interpreter: no venv, the host's python runs the job.
    system = check.plan(lines[:2], settings(interpreter="system"), "six", [])
    assert not system["uses_venv"] and system["run_python"] == "/p"


def test_probe_runs_under_sh_and_quotes_what_it_is_given(tmp_path):
    cache = tmp_path / "c $(touch pwned)"
    (cache / "venvs" / "k1").mkdir(parents=True)
    (cache / "venvs" / "k1" / ".ready").write_text("k1")
    script = check.probe_script(
        settings(
            python_candidates=["no-such-python", "python3"],
            python_min_version="3.99",
            cache_dir=str(cache),
        ),
        image_id_needed=False,
    )
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    lines = out.stdout.splitlines()
    assert "READY=k1" in lines and lines[0].startswith("HOME=")
    assert any(line.startswith("OLD=") for line in lines)  # this python is older than 3.99
    assert not any(line.startswith("PYTHON=") for line in lines)
    assert not (tmp_path / "pwned").exists()
    found = subprocess.run(
        ["/bin/sh", "-c", check.probe_script(settings(python=sys.executable), image_id_needed=False)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"PYTHON={sys.executable} " in found


def test_settings_come_from_the_variables_with_the_role_defaults_and_are_checked():
    found = check.validated_settings({"remote_host_packages": ["six"], "other_variable": 1})
    assert found is not None
    assert found["packages"] == ["six"]
    assert found["python_candidates"] == DEFAULTS["remote_host_python_candidates"]
    assert set(check.SETTINGS) <= set(found) and found["environment"] == {}
    # A value the role's argument spec refuses: None (the role's own validation says why).
    assert check.validated_settings({"remote_host_interpreter": "conda"}) is None
    assert check.validated_settings({"remote_host_packages": {"a": 1}}) is None

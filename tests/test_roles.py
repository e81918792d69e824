"""Every role's interface: defaults/main.yml and meta/argument_specs.yml declare the same variables.

A required variable has no default anywhere: a default (even "") would satisfy Ansible's argument validation,
so that a missing value never failed with its "missing required arguments" error.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from crds import validate

REPO = Path(__file__).resolve().parents[1]
ROLES = REPO / "ansible_collections" / "remote_trainer" / "core" / "roles"


def interface(role: str) -> tuple[dict, dict, set[str]]:
    """(defaults, options of every entry point, names required in some entry point)."""
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {name: spec for entry in specs.values() for name, spec in entry["options"].items()}
    required = {
        name for entry in specs.values() for name, spec in entry["options"].items() if spec.get("required")
    }
    return defaults, options, required


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if p.is_dir()))
def test_defaults_and_argument_specs_agree(role):
    defaults, options, required = interface(role)
    assert set(defaults) == set(options) - required
    for name in defaults:
        assert name.startswith(role + "_"), f"{name} lacks the role prefix"
        assert options[name].get("description"), f"{name} has no description"
    for name in required:
        assert "default" not in options[name], f"{name} is required and has a default"


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if p.is_dir()))
def test_a_non_required_variable_has_its_default_in_the_spec_too(role):
    _, options, required = interface(role)
    for name in set(options) - required:
        assert "default" in options[name], f"{name} is not required and has no default in argument_specs.yml"


def run_remote_runtime(tmp_path: Path, **role_vars: str) -> subprocess.CompletedProcess[str]:
    """The remote_runtime role alone (render only, no cluster) with these variables."""
    playbook = tmp_path / "runtime.yml"
    playbook.write_text(
        "- name: Runtime\n  hosts: localhost\n  connection: local\n  gather_facts: false\n"
        "  vars:\n    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "  roles:\n    - role: remote_trainer.core.remote_runtime\n"
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)]
    for name, value in {"remote_runtime_apply": "false", **role_vars}.items():
        argv += ["-e", f"{name}={value}"]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def key_and_known_hosts(tmp_path: Path) -> dict[str, str]:
    files = {
        "remote_runtime_ssh_key": tmp_path / "key",
        "remote_runtime_known_hosts": tmp_path / "known_hosts",
    }
    for path in files.values():
        path.write_text("x\n")
    return {name: str(path) for name, path in files.items()}


def test_remote_runtime_without_its_inventory_fails_argument_validation(tmp_path):
    res = run_remote_runtime(tmp_path, **key_and_known_hosts(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "Validating arguments against arg spec" in out
    assert "missing required arguments: remote_runtime_inventory" in out


def test_remote_runtime_with_an_empty_inventory_says_which(tmp_path):
    res = run_remote_runtime(tmp_path, remote_runtime_inventory="", **key_and_known_hosts(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "remote_runtime_inventory is empty: name the file" in res.stdout + res.stderr


def test_the_registry_overlay_needs_its_image(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h1 ansible_host=127.0.0.1\n")
    res = run_remote_runtime(
        tmp_path,
        remote_runtime_inventory=str(inventory),
        remote_runtime_overlay="registry",
        **key_and_known_hosts(tmp_path),
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "remote_runtime_overlay registry needs remote_runtime_image" in res.stdout + res.stderr


def test_the_registry_overlay_pulls_the_image_it_is_told(tmp_path):
    """The documented way to a registry: the image pushed there (runner_image_push), named to the role."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h1 ansible_host=127.0.0.1\n")
    rendered = tmp_path / "rendered.yaml"
    res = run_remote_runtime(
        tmp_path,
        remote_runtime_inventory=str(inventory),
        remote_runtime_overlay="registry",
        remote_runtime_image="registry.example.org/team/remote-trainer-runner:0.1.0",
        remote_runtime_render_to=str(rendered),
        **key_and_known_hosts(tmp_path),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (runtime,) = [
        d for d in yaml.safe_load_all(rendered.read_text()) if d and d["kind"] == "ClusterTrainingRuntime"
    ]
    assert validate(runtime) == []
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.org/team/remote-trainer-runner:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("output", ["../up", "/abs", "."])
def test_the_training_job_role_refuses_an_output_outside_the_job_by_its_kind(output, tmp_path):
    """A playbook using the role without the driver gets the same rule (plugin_utils/job_options.py)."""
    playbook = tmp_path / "job.yml"
    playbook.write_text(
        "- name: Job\n  hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - name: The role\n      ansible.builtin.include_role:\n"
        "        name: remote_trainer.core.training_job\n"
    )
    job = {
        "id": f"roles-test-{tmp_path.name}",
        "script": str(REPO / "examples" / "hello.py"),
        "output": output,
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)]
    argv += ["-e", json.dumps({"training_job": job})]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(REPO)}
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    failure = re.search(r'"training_job_failure": (\{[^}]*\})', res.stdout)
    assert failure is not None, res.stdout
    assert json.loads(failure.group(1))["kind"] == "bad_output"
    assert f"output '{output}' is not usable: it " in json.loads(failure.group(1))["msg"]

"""The controller's rules as pure functions: which rsync may receive from a host, which job ids are ids, how
credentials in URLs are masked, and how extra vars reach Ansible (every string unsafe)."""

from __future__ import annotations

import pytest

from ansible_collections.remote_trainer.core.plugins.plugin_utils.job_options import (
    id_problem,
    training_job_contract,
)
from driver.execution import playbook
from driver.ops.rsync import rsync_problem
from driver.redact import redact, redact_all


@pytest.mark.parametrize(
    ("first_line", "safe"),
    [
        ("rsync  version 3.4.1  protocol version 32", True),
        ("rsync  version 3.4.0  protocol version 32", True),
        (
            "rsync  version 3.2.7  protocol version 32",
            True,
        ),  # Debian 12's 3.2.7-1+deb12u1: the fixes backported
        ("rsync  version 3.2.7  protocol version 31", False),  # the same version without them
        ("rsync  version 3.2.3  protocol version 31", False),  # the README's former minimum
        ("rsync  version 3.3.0  protocol version 31", False),
        ("openrsync: protocol version 29", False),  # macOS
        ("", False),
    ],
)
def test_an_rsync_is_safe_to_receive_with_from_protocol_32(first_line, safe):
    problem = rsync_problem(
        first_line + "\nCopyright (C) 1996-2024 by Andrew Tridgell, Wayne Davison, and others.\n"
    )
    assert (problem is None) == safe, problem
    if not safe:
        assert "CVE-2024-12086" in problem
    if first_line.startswith("rsync  version 3.2.3"):
        assert problem.startswith("rsync 3.2.3 (protocol 31)")
    if first_line == "":
        assert problem.startswith("an rsync without a version (no protocol version)")


def test_the_rsync_is_named_by_its_path():
    problem = rsync_problem("rsync  version 3.2.3  protocol version 31\n", "/opt/old/bin/rsync")
    assert problem.startswith("rsync 3.2.3 (/opt/old/bin/rsync, protocol 31) lacks the fixes")
    assert rsync_problem("openrsync: protocol version 29\n", "/usr/bin/rsync").startswith(
        "openrsync (/usr/bin/rsync, protocol 29)"
    )


@pytest.mark.parametrize("job_id", ["20261207-232103-34b2e5", "my-run.2", "A_b", "x" * 128])
def test_job_ids(job_id):
    assert id_problem(job_id) is None


@pytest.mark.parametrize(
    "job_id", ["", "..", ".", "../x", "a/b", "/abs", ".hidden", "-rf", "a b", "x" * 129, None, 7]
)
def test_ids_that_would_leave_the_jobs_root_or_are_no_names(job_id):
    assert id_problem(job_id) is not None


def test_the_roles_contract_refuses_such_an_id():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=r"invalid id '\.\./x'"):
        training_job_contract({"id": "../x", "script": "/s.py"})
    assert training_job_contract({"id": "ok-1", "script": "/s.py"})["id"] == "ok-1"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:tok@host/simple", "https://user:****@host/simple"),
        ("git+https://ghp_abc@github.com/o/r@v1", "git+https://****@github.com/o/r@v1"),
        (
            "--index-url https://u:p@h/s --extra-index-url https://t@h2/s",
            "--index-url https://u:****@h/s --extra-index-url https://****@h2/s",
        ),
        ("pkg @ git+https://a:b@c@host/x", "pkg @ git+https://a:****@host/x"),
        ("no url: user@host", "no url: user@host"),
        ("http://host/a@b", "http://host/a@b"),
    ],
)
def test_credentials_in_urls_are_masked(text, shown):
    assert redact(text) == shown


def test_redact_all_walks_json():
    got = redact_all({"sets": [{"requirements": ["six", "--find-links https://u:p@h/"], "kb": 3}]})
    assert got == {"sets": [{"requirements": ["six", "--find-links https://u:****@h/"], "kb": 3}]}


def test_extra_vars_are_a_private_file_of_unsafe_strings(tmp_path):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, is_trusted_as_template, trust_as_template

    jinja = "{{ lookup('pipe', 'touch " + str(tmp_path / "pwned") + "') }}"
    extravars = {
        "training_job": {"id": "j", "script": f"/x/{jinja}/s.py", "created": 1.5, "nodes": None},
        "n": [1, "a"],
    }
    path = playbook.write_vars(tmp_path, extravars)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = DataLoader().load_from_file(str(path))
    assert loaded == extravars
    assert not is_trusted_as_template(loaded["training_job"]["script"])
    templar = Templar(loader=DataLoader(), variables=loaded)
    assert templar.template(trust_as_template("{{ training_job.script }}")) == f"/x/{jinja}/s.py"
    assert not (tmp_path / "pwned").exists()


def test_accepting_new_host_keys_adds_to_the_users_ssh_args(monkeypatch):
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-o ProxyJump=bastion")
    assert playbook.ssh_args(False) is None
    assert playbook.ssh_args(True) == "-o StrictHostKeyChecking=accept-new -o ProxyJump=bastion"
    monkeypatch.delenv("ANSIBLE_SSH_ARGS")
    args = playbook.ssh_args(True)
    assert args.startswith("-o StrictHostKeyChecking=accept-new -o ControlMaster=auto")

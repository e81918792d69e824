"""A table of user mistakes (issue 19): each one exit code, one `error:` line naming the thing at fault, a
`hint:` line, no traceback, empty stdout, nothing left running; never a code of the script's (1-123).

The table runs without hosts (the mistake is caught before any host is contacted); the cases that need a host
use the real sshd test hosts below it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import click
import pytest
from driverproc import DRIVER, REPO, SCRIPTS, driver_env, error_lines, run_driver
from test_bad_input import assert_clean_failure, host_inventory

from driver.errors import EXIT_CODES

HELLO = str(REPO / "examples" / "hello.py")
SLEEPER = str(SCRIPTS / "sleeper.py")


def inventories(tmp: Path) -> None:
    """The files the table's cases name ({tmp}/...)."""
    (tmp / "empty.ini").write_text("# no hosts here\n")
    (tmp / "syntax.ini").write_text("[gpus\ngpu1 ansible_host=10.0.0.1\n")
    (tmp / "port.ini").write_text("gpu1 ansible_host=10.0.0.1 ansible_port=notaport\n")
    (tmp / "port.yml").write_text("all:\n  hosts:\n    gpu1:\n      ansible_port: 99999\n")
    (tmp / "afile").write_text("a file, not a directory\n")
    (tmp / "reqdir").mkdir()
    (tmp / "config.toml").write_text("bogus = 1\n")
    (tmp / "config-timeout.toml").write_text('[train]\ntimeout = "soon"\n')


# (id, argv, extra environment, exit code, words of the error line, words of the whole stderr)
TABLE = [
    # Unknown options and arguments: click's own errors, one line and a hint too.
    (
        "unknown-option-before-script",
        ["train", "--executer", "slurm", HELLO, "--", "1", "2"],
        {},
        2,
        "--executer",
        "--executor",  # did you mean
    ),
    # A host that is no Slurm login node, asked to submit through Slurm.
    (
        "slurm-executor-without-slurm",
        ["train", "--executor", "slurm", HELLO],
        {},
        93,
        "no sbatch",
        "login node",
    ),
    ("script-option-without-dashes", ["train", HELLO, "--epochs", "3"], {}, 2, "--epochs", "after `--`"),
    ("unknown-option-of-jobs", ["jobs", "--bogus"], {}, 2, "--bogus", "driver jobs --help"),
    ("unknown-command", ["trian", HELLO], {}, 2, "trian", "--help"),
    ("missing-script", ["train"], {}, 2, "SCRIPT", "--help"),
    # Every option with a bad value.
    ("timeout-word", ["train", HELLO, "--timeout", "soon"], {}, 64, "--timeout 'soon'", ""),
    ("timeout-zero", ["train", HELLO, "--timeout", "0"], {}, 64, "--timeout", ""),
    ("grace-word", ["train", HELLO, "--grace", "later"], {}, 64, "--grace 'later'", ""),
    ("grace-empty", ["train", HELLO, "--grace", ""], {}, 64, "--grace ''", ""),
    ("sync-every-zero", ["train", HELLO, "--sync-every", "0"], {}, 64, "--sync-every", ""),
    ("max-workdir-size", ["train", HELLO, "--max-workdir-size", "lots"], {}, 64, "--max-workdir-size", ""),
    ("nodes-zero", ["train", HELLO, "--nodes", "0"], {}, 80, "--nodes '0'", ""),
    ("nodes-word", ["train", HELLO, "--nodes", "many"], {}, 80, "--nodes 'many'", ""),
    ("nproc-without-launcher", ["train", HELLO, "--nproc-per-node", "4"], {}, 80, "--nproc-per-node", ""),
    (
        "nproc-word",
        ["train", HELLO, "--launcher", "torchrun", "--nproc-per-node", "x"],
        {},
        80,
        "--nproc-per-node",
        "",
    ),
    ("master-port-word", ["train", HELLO, "--master-port", "abc"], {}, 2, "--master-port", ""),
    ("master-port-range", ["train", HELLO, "--master-port", "70000"], {}, 2, "--master-port", ""),
    ("output-absolute", ["train", HELLO, "--output", "/abs"], {}, 85, "--output '/abs'", ""),
    ("output-outside", ["train", HELLO, "--output", "../up"], {}, 85, "--output '../up'", ""),
    (
        "output-dir-under-a-file",
        ["train", HELLO, "--output-dir", "{tmp}/afile/sub"],
        {},
        85,
        "--output-dir",
        "not a directory",
    ),
    ("output-dir-is-a-file", ["train", HELLO, "--output-dir", "{tmp}/afile"], {}, 85, "--output-dir", ""),
    ("env-name", ["train", HELLO, "--env", "1BAD=x"], {}, 65, "--env '1BAD'=...", ""),
    (
        "env-unset",
        ["train", HELLO, "--env", "RT_SURELY_UNSET_VARIABLE"],
        {},
        65,
        "RT_SURELY_UNSET_VARIABLE",
        "",
    ),
    ("launcher", ["train", HELLO, "--launcher", "mpi"], {}, 2, "--launcher", ""),
    ("image", ["train", HELLO, "--image", "not an image"], {}, 90, "--image", ""),
    ("gpus-without-image", ["train", HELLO, "--gpus", "all"], {}, 90, "--gpus", ""),
    ("jobs-state", ["jobs", "--state", "foo"], {}, 2, "--state", "abandoned"),
    ("jobs-last", ["jobs", "--last", "0"], {}, 2, "--last", ""),
    ("jobs-older-than", ["jobs", "--prune", "--older-than", "a week"], {}, 64, "--older-than", ""),
    ("logs-tail-negative", ["logs", "--tail", "-1", "last"], {}, 2, "--tail", ""),
    ("logs-tail-word", ["logs", "--tail", "ten", "last"], {}, 2, "--tail", ""),
    ("cancel-grace", ["cancel", "--grace", "x", "nojob"], {}, 64, "--grace 'x'", ""),
    ("wait-timeout", ["wait", "--timeout", "x", "nojob"], {}, 64, "--timeout 'x'", ""),
    ("clean-older-than", ["clean", "--older-than", "old"], {}, 64, "--older-than", ""),
    ("cache-prune-keep", ["cache", "prune", "--keep", "-1"], {}, 2, "--keep", ""),
    # Ids that do not exist.
    ("status-no-job", ["status", "nojob"], {}, 78, "nojob", "driver jobs"),
    ("logs-no-job", ["logs", "nojob"], {}, 78, "nojob", ""),
    ("logs-follow-no-job", ["logs", "-f", "nojob"], {}, 78, "nojob", ""),
    ("cancel-no-job", ["cancel", "nojob"], {}, 78, "nojob", ""),
    ("wait-no-job", ["wait", "nojob"], {}, 78, "nojob", ""),
    # Missing files.
    ("script-missing", ["train", "no/such/script.py"], {}, 66, "no/such/script.py", ""),
    ("script-is-a-directory", ["train", "examples"], {}, 67, "examples", ""),
    ("workdir-missing", ["train", HELLO, "--workdir", "no-such-dir"], {}, 74, "no-such-dir", ""),
    ("workdir-is-a-file", ["train", HELLO, "--workdir", HELLO], {}, 74, "hello.py", "not a directory"),
    (
        "requirements-missing",
        ["train", HELLO, "-r", "no-such-req.txt"],
        {},
        76,
        "no-such-req.txt",
        "not found",
    ),
    (
        "requirements-is-a-directory",
        ["train", HELLO, "-r", "{tmp}/reqdir"],
        {},
        76,
        "reqdir",
        "is a directory",
    ),
    ("wheelhouse-missing", ["train", HELLO, "--wheelhouse", "no-wheels"], {}, 76, "no-wheels", ""),
    # Inventories.
    (
        "inventory-missing",
        ["train", HELLO, "-i", "no-such-inventory.ini"],
        {},
        68,
        "no-such-inventory.ini",
        "",
    ),
    ("inventory-comma-only", ["train", HELLO, "-i", ","], {}, 68, "names no host", ""),
    ("inventory-empty", ["train", HELLO, "-i", "{tmp}/empty.ini"], {}, 68, "has no hosts", ""),
    (
        "inventory-syntax",
        ["train", HELLO, "-i", "{tmp}/syntax.ini"],
        {},
        68,
        "syntax.ini",
        "ansible-inventory",
    ),
    (
        "inventory-port",
        ["train", HELLO, "-i", "{tmp}/port.ini"],
        {},
        68,
        "gpu1 has ansible_port='notaport'",
        "",
    ),
    ("inventory-port-yaml", ["train", HELLO, "-i", "{tmp}/port.yml"], {}, 68, "ansible_port=99999", ""),
    ("provision-inventory-port", ["provision", "-i", "{tmp}/port.ini"], {}, 68, "notaport", ""),
    ("clean-inventory-empty", ["clean", "-i", "{tmp}/empty.ini"], {}, 68, "has no hosts", ""),
    ("limit-without-inventory", ["train", HELLO, "--limit", "gpu1"], {}, 69, "gpu1", "-i"),
    ("nodes-over-the-hosts-here", ["train", HELLO, "--nodes", "2"], {}, 80, "--nodes 2", "localhost"),
    ("python-missing-here", ["train", HELLO, "--python", "/no/such/python3"], {}, 73, "/no/such/python3", ""),
    # Settings from the environment and the config file, named where they come from.
    ("env-timeout", ["train", HELLO], {"REMOTE_TRAINER_TIMEOUT": "abc"}, 64, "REMOTE_TRAINER_TIMEOUT", ""),
    ("env-grace", ["train", HELLO], {"REMOTE_TRAINER_GRACE": "abc"}, 64, "REMOTE_TRAINER_GRACE", ""),
    (
        "env-max-workdir-size",
        ["train", HELLO],
        {"REMOTE_TRAINER_MAX_WORKDIR_SIZE": "abc"},
        64,
        "REMOTE_TRAINER_MAX_WORKDIR_SIZE",
        "",
    ),
    (
        "env-accept-new-host-keys",
        ["train", HELLO],
        {"REMOTE_TRAINER_ACCEPT_NEW_HOST_KEYS": "maybe"},
        2,
        "REMOTE_TRAINER_ACCEPT_NEW_HOST_KEYS",
        "",
    ),
    ("env-inventory", ["train", HELLO], {"REMOTE_TRAINER_INVENTORY": "{tmp}/empty.ini"}, 68, "empty.ini", ""),
    (
        "env-wait-timeout",
        ["wait", "nojob"],
        {"REMOTE_TRAINER_TIMEOUT": "abc"},
        64,
        "REMOTE_TRAINER_TIMEOUT",
        "",
    ),
    (
        "env-cancel-grace",
        ["cancel", "nojob"],
        {"REMOTE_TRAINER_GRACE": "abc"},
        64,
        "REMOTE_TRAINER_GRACE",
        "",
    ),
    ("config-unknown-setting", ["jobs"], {"REMOTE_TRAINER_CONFIG": "{tmp}/config.toml"}, 2, "bogus", ""),
    ("config-missing", ["jobs"], {"REMOTE_TRAINER_CONFIG": "{tmp}/none.toml"}, 2, "none.toml", ""),
    (
        "config-timeout",
        ["train", HELLO],
        {"REMOTE_TRAINER_CONFIG": "{tmp}/config-timeout.toml"},
        64,
        "config-timeout.toml",
        "",
    ),
]


@pytest.mark.parametrize(
    ("argv", "env", "code", "names", "also"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE]
)
def test_mistake(argv, env, code, names, also, tmp_path):
    inventories(tmp_path)
    fill = lambda text: text.replace("{tmp}", str(tmp_path))  # noqa: E731
    res = run_driver([fill(a) for a in argv], tmp_path, extra_env={k: fill(v) for k, v in env.items()})
    assert_clean_failure(res, code, names, tmp_path)
    assert also in res.stderr, res.stderr
    # A code of the table's own, never one only the script gives (such as 1, of a traceback).
    assert str(res.returncode) in dict(EXIT_CODES)


def test_the_table_is_long_enough():
    assert len(TABLE) >= 40 and len({c[0] for c in TABLE}) == len(TABLE)


# -- a file this user cannot read (root reads any file: the driver runs without CAP_DAC_*) -----------------

NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def run_without_dac(args: list[str], state_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NO_DAC, DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=driver_env(state_dir),
        cwd=REPO,
    )


@pytest.mark.parametrize("what", ["script", "script-in-closed-dir", "requirements", "inventory"])
def test_unreadable_files(what, tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    target = (closed if what == "script-in-closed-dir" else tmp_path) / f"{what}.file"
    target.write_text("print('hi')\n" if "script" in what else "gpu1\n")
    (closed if what == "script-in-closed-dir" else target).chmod(0)
    argv, code = {
        "script": (["train", str(target)], 66),
        "script-in-closed-dir": (["train", str(target)], 66),
        "requirements": (["train", HELLO, "-r", str(target)], 76),
        "inventory": (["train", HELLO, "-i", str(target)], 68),
    }[what]
    try:
        res = run_without_dac(argv, tmp_path)
    finally:
        closed.chmod(0o700)
        target.chmod(0o600)
    assert_clean_failure(res, code, target.name, tmp_path)
    assert "cannot be read" in res.stderr


# -- every setting from the environment, on every command that has it -------------------------------------


def test_every_setting_has_its_environment_variable():
    from driver.cli import config, main

    def commands(group: click.Group, path: str = ""):
        for name, command in group.commands.items():
            yield f"{path}{name}", command
            if isinstance(command, click.Group):
                yield from commands(command, f"{path}{name} ")

    found = 0
    for path, command in commands(main):
        for param in command.params:
            if isinstance(param, click.Option) and param.name in config.SETTINGS:
                found += 1
                assert param.envvar == config.envvar(param.name), (path, param.name, param.envvar)
    assert found >= 20


def test_timeout_from_the_environment_stops_the_job(tmp_path):
    res = run_driver(
        ["train", SLEEPER, "--", uuid.uuid4().hex], tmp_path, extra_env={"REMOTE_TRAINER_TIMEOUT": "2s"}
    )
    assert res.returncode == 124, res.stderr
    assert "--timeout 2s" in res.stderr


# -- mistakes that need a host ---------------------------------------------------------------------------


def test_wrong_user(testhosts, tmp_path):
    inventory = host_inventory(tmp_path, testhosts, ansible_user="nosuchuser")
    res = run_driver(["train", HELLO, "-i", str(inventory)], tmp_path)
    assert_clean_failure(res, 71, "th1", tmp_path)


def test_changed_host_key_says_so(testhosts, tmp_path):
    fake = tmp_path / "fake_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{testhosts.port('th1')} {fake.with_suffix('.pub').read_text()}")
    inventory = host_inventory(tmp_path, testhosts, known_hosts=str(known), strict="")
    res = run_driver(["train", HELLO, "-i", str(inventory), "--accept-new-host-keys"], tmp_path)
    assert_clean_failure(res, 72, "th1", tmp_path)
    assert "has changed" in error_lines(res.stderr)[0]
    hint = next(line for line in res.stderr.splitlines() if line.startswith("hint:"))
    assert "attack" in hint and f'ssh-keygen -f "{known}" -R' in hint


def test_more_nodes_than_hosts(testhosts, tmp_path):
    res = run_driver(["train", HELLO, "-i", str(testhosts.inventory_path), "--nodes", "3"], tmp_path)
    assert_clean_failure(res, 80, "--nodes 3", tmp_path)


def test_python_missing_on_the_host(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(["train", HELLO, *inv, "--python", "python3.99"], tmp_path)
    assert_clean_failure(res, 73, "python3.99", tmp_path)


def test_python_that_is_no_python(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    res = run_driver(["train", HELLO, *inv, "--python", "/bin/true"], tmp_path)
    assert_clean_failure(res, 73, "/bin/true", tmp_path)


def test_package_that_does_not_exist(testhosts, wheelhouse, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    offline = ["--wheelhouse", str(wheelhouse), "--no-index"]
    res = run_driver(["train", HELLO, *inv, "--packages", "rt-no-such-package==1.0", *offline], tmp_path)
    assert res.returncode == 75, res.stderr
    assert len(error_lines(res.stderr)) == 1 and "rt-no-such-package" in error_lines(res.stderr)[0]
    assert "hint: " in res.stderr and "Traceback" not in res.stderr and res.stdout == ""


def test_lost_job_status_cancel_twice_and_clean_while_running(testhosts, tmp_path):
    inv = ["-i", str(testhosts.inventory_path), "-l", "th1"]
    tag = uuid.uuid4().hex
    job = run_driver(["train", "-d", SLEEPER, *inv, "--", tag], tmp_path).stdout.strip()
    assert job
    # Clean while it runs: the running job is kept, on the host and running.
    res = run_driver(["clean", *inv, "--older-than", "0"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert job in testhosts.ssh("th1", "ls ~/.remote-trainer/jobs").stdout.split()
    assert testhosts.pids_matching("th1", f"sleeper.py {tag}")
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 0 and f"job {job}: running" in status.stdout, status.stderr
    # Cancel twice: the second shows the recorded end and changes nothing.
    first = run_driver(["cancel", job, "--grace", "1s"], tmp_path)
    assert first.returncode == 0 and "cancelled" in first.stdout, first.stderr
    again = run_driver(["cancel", job], tmp_path)
    assert again.returncode == 0 and "nothing to cancel" in again.stdout, again.stderr
    assert error_lines(again.stderr) == []

    # A lost job: its launcher and script killed on the host before they write an exit code.
    tag = uuid.uuid4().hex
    job = run_driver(["train", "-d", SLEEPER, *inv, "--", tag], tmp_path).stdout.strip()
    testhosts.ssh("th1", f"pkill -9 -f '[j]obctl.py launch .*{job}'; pkill -9 -f '[{tag[0]}]{tag[1:]}'; true")
    time.sleep(1.5)
    status = run_driver(["status", job], tmp_path)
    assert status.returncode == 79, status.stderr
    assert f"job {job}: lost" in status.stdout  # the status first, then the error line
    assert len(error_lines(status.stderr)) == 1 and job in error_lines(status.stderr)[0]
    assert "hint: " in status.stderr
    wait = run_driver(["wait", job], tmp_path)
    assert wait.returncode == 79, wait.stderr

"""Defaults from the environment and a config file (the command line wins), and shell completion that a
real bash completes with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from driverproc import DRIVER, REPO, SCRIPTS, driver_env, job_output, run_driver

HELLO = str(REPO / "examples" / "hello.py")


def test_precedence_command_line_then_environment_then_file(tmp_path):
    config = tmp_path / "config.toml"
    out_file, out_env, out_cli = tmp_path / "from-file", tmp_path / "from-env", tmp_path / "from-cli"
    config.write_text(f'[train]\noutput_dir = "{out_file}"\n')
    env = {"REMOTE_TRAINER_CONFIG": str(config)}
    args = ["train", str(SCRIPTS / "writes_outputs.py")]
    assert run_driver([*args, "--", "a", "ok"], tmp_path, extra_env=env).returncode == 0
    assert (job_output(out_file, "localhost") / "a.txt").is_file()
    env["REMOTE_TRAINER_OUTPUT_DIR"] = str(out_env)
    assert run_driver([*args, "--", "b", "ok"], tmp_path, extra_env=env).returncode == 0
    assert (job_output(out_env, "localhost") / "b.txt").is_file()
    assert (
        run_driver([*args, "--output-dir", str(out_cli), "--", "c", "ok"], tmp_path, extra_env=env).returncode
        == 0
    )
    assert (job_output(out_cli, "localhost") / "c.txt").is_file()
    shown = run_driver(["config", "show", "--json"], tmp_path, extra_env=env)
    assert shown.returncode == 0, shown.stderr
    settings = json.loads(shown.stdout)["settings"]
    assert settings["output_dir"] == {
        "value": str(out_env),
        "source": "environment (REMOTE_TRAINER_OUTPUT_DIR)",
        "env": "REMOTE_TRAINER_OUTPUT_DIR",
    }
    del env["REMOTE_TRAINER_OUTPUT_DIR"]
    text = run_driver(["config", "show"], tmp_path, extra_env=env).stdout
    assert f'output_dir = "{out_file}"  # config file ({config} [train])' in text


def test_inventory_from_the_environment_and_the_file(tmp_path):
    # An inventory that names no host is refused (68): it proves where the value came from.
    res = run_driver(["train", HELLO], tmp_path, extra_env={"REMOTE_TRAINER_INVENTORY": ","})
    assert res.returncode == 68 and "names no host" in res.stderr
    config = tmp_path / "config.toml"
    config.write_text('inventory = ","\n')
    res = run_driver(["train", HELLO], tmp_path, extra_env={"REMOTE_TRAINER_CONFIG": str(config)})
    assert res.returncode == 68, res.stderr
    # provision has -i too: the top level applies to every command that has the option.
    res = run_driver(["provision"], tmp_path, extra_env={"REMOTE_TRAINER_CONFIG": str(config)})
    assert res.returncode == 68, res.stderr


def test_a_bad_config_file_is_one_clear_line(tmp_path):
    config = tmp_path / "config.toml"
    for content, words in [
        ("bogus = 1\n", "unknown setting 'bogus'"),
        ("timeout = 5\n", "must be a str"),
        ("timeout = \n", "cannot be read"),
    ]:
        config.write_text(content)
        res = run_driver(["jobs"], tmp_path, extra_env={"REMOTE_TRAINER_CONFIG": str(config)})
        assert res.returncode == 2, res.stderr
        assert words in res.stderr and "Traceback" not in res.stderr
    res = run_driver(["jobs"], tmp_path, extra_env={"REMOTE_TRAINER_CONFIG": str(tmp_path / "none.toml")})
    assert res.returncode == 2 and "not found" in res.stderr


def bash_complete(tmp_path: Path, words: list[str], extra: str = "") -> list[str]:
    script = run_driver(["completion", "bash"], tmp_path).stdout
    (tmp_path / "driver.bash").write_text(script)
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {tmp_path / 'driver.bash'}\n{extra}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_driver_completion driver\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = driver_env(tmp_path)
    env["PATH"] = f"{Path(DRIVER).parent}:{env['PATH']}"
    res = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


def test_bash_completes_commands_job_ids_and_hosts(tmp_path):
    assert "status" in bash_complete(tmp_path, ["driver", "sta"])
    res = run_driver(["train", "-d", HELLO], tmp_path)
    job = res.stdout.strip()
    assert bash_complete(tmp_path, ["driver", "logs", job[:9]]) == [job]
    assert "last" in bash_complete(tmp_path, ["driver", "cancel", ""])
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("gpu1 ansible_host=10.0.0.1\ngpu2 ansible_host=10.0.0.2\n[big]\ngpu2\n")
    hosts = bash_complete(tmp_path, ["driver", "train", "t.py", "-i", str(inventory), "-l", "g"])
    assert hosts == ["gpu1", "gpu2"]
    assert bash_complete(tmp_path, ["driver", "train", "t.py", "-i", str(inventory), "-l", ""]) == [
        "big",
        "gpu1",
        "gpu2",
    ]
    assert "--accept-new-host-keys" in bash_complete(tmp_path, ["driver", "train", "--acc"])


def test_zsh_and_fish_scripts_are_printed(tmp_path):
    for shell, needle in [("zsh", "#compdef driver"), ("fish", "complete --no-files --command driver")]:
        res = run_driver(["completion", shell], tmp_path)
        assert res.returncode == 0 and needle in res.stdout, res.stdout[:200]

"""The container executor's command (plugins/action/training_job.py `command`) and the
checks of the container options (driver/job/spec.py `Container`): pure functions, checked without a host.
Real engines run these commands in tests/e2e/test_container.py."""

from __future__ import annotations

import pytest

from ansible_collections.remote_trainer.core.plugins.action.training_job import command, merged_env
from ansible_collections.remote_trainer.core.plugins.plugin_utils.job_options import training_job_contract
from driver.errors import BadContainer
from driver.job import contract
from driver.job.spec import Container, JobSpec


def job(**container) -> dict:
    return training_job_contract(
        {"id": "J1", "script": "/s.py", "executor": "container", "container": container}
    )


def host(engine: str = "podman", rootless: bool = True, uid: int = 1000, **more) -> dict:
    engine_path = f"/usr/bin/{engine}"
    container = {
        "name": engine,
        "path": engine_path,
        "rootless": rootless,
        "uid": uid,
        "gid": 1001,
        "image": "img:1",
    }
    return {"python": "/venv/bin/python", "container": container, **more}


def test_a_process_job_runs_the_hosts_python():
    launch = command(
        training_job_contract({"id": "J1", "script": "/s.py"}), {"python": "/v/bin/python"}, "s.py", [], []
    )
    assert launch == {"argv": ["/v/bin/python", "s.py"], "env": {}, "python": "/v/bin/python"}


def test_a_container_job_passes_env_by_name_and_args_untouched():
    args = ["a b", "$(x)", "--flag=1"]
    launch = command(job(image="img:1"), host(), "train.py", args, ["SECRET", "HF_TOKEN"])
    argv = launch["argv"]
    assert argv[:2] == ["/usr/bin/podman", "run"]
    assert argv[launch["expand"] - 1 :] == ["img:1", "python3", "train.py", *args]
    assert {"--env=SECRET", "--env=HF_TOKEN", "--env=PYTHONUNBUFFERED"} <= set(argv)
    assert not any("=" in a.split("--env=", 1)[1] for a in argv if a.startswith("--env="))
    assert {"--init", "--network=host", "--pull=never", "--rm", "--name=remote-trainer-J1"} <= set(argv)
    assert {"--volume=@WORK@:@WORK@:z", "--workdir=@WORK@"} <= set(argv)
    assert not any(a.startswith("--user") for a in argv)  # rootless: the container's root is the user
    assert launch["term"] == ["/usr/bin/podman", "kill", "--signal=TERM", "remote-trainer-J1"]
    assert launch["stop"] == ["/usr/bin/podman", "rm", "--force", "--time=0", "--ignore", "remote-trainer-J1"]


def test_only_the_engine_part_is_expanded():
    launch = command(job(image="img:1"), host(), "train.py", ["@WORK@"], [])
    assert launch["argv"][launch["expand"] - 1] == "img:1"
    assert launch["argv"][-1] == "@WORK@"  # a script argument is never rewritten


@pytest.mark.parametrize(
    ("engine", "rootless", "uid", "user"),
    [("docker", False, 1000, "--user=1000:1001"), ("podman", False, 1000, "--user=1000:1001"),
     ("docker", False, 0, None), ("docker", True, 1000, None)],
)  # fmt: skip
def test_a_rootful_engine_runs_the_script_as_the_user(engine, rootless, uid, user):
    argv = command(job(image="i"), host(engine, rootless, uid), "s.py", [], [])["argv"]
    users = [a for a in argv if a.startswith("--user")]
    assert users == ([user] if user else [])


def test_gpus_shm_and_keep():
    docker = command(job(image="i", gpus="2", shm_size="8g", keep=True), host("docker"), "s.py", [], [])
    assert {"--gpus=2", "--shm-size=8g"} <= set(docker["argv"]) and "--rm" not in docker["argv"]
    assert docker["stop"] == ["/usr/bin/docker", "kill", "remote-trainer-J1"]
    podman = command(job(image="i", gpus="2"), host("podman"), "s.py", [], [])["argv"]
    assert [a for a in podman if a.startswith("--device")] == [
        "--device=nvidia.com/gpu=0",
        "--device=nvidia.com/gpu=1",
    ]
    podman_all = command(job(image="i", gpus="all"), host("podman"), "s.py", [], [])["argv"]
    assert "--device=nvidia.com/gpu=all" in podman_all
    assert command(job(image="i"), host("docker"), "s.py", [], [])["stop"] == [
        "/usr/bin/docker", "rm", "--force", "remote-trainer-J1"
    ]  # fmt: skip


def test_a_multi_node_container_job_runs_torchrun_with_the_images_python():
    h = host(nodes=2, rank=1, master_addr="10.0.0.1")
    launch = command(job(image="i"), h, "s.py", [], [])
    j = training_job_contract({"id": "J1", "script": "/s.py", "executor": "container", "launcher": "torchrun",
                               "container": {"image": "i", "python": "/opt/py/bin/python"}})  # fmt: skip
    torch = command(j, h, "s.py", [], [])
    assert torch["argv"][torch["expand"] :][:3] == ["/opt/py/bin/python", "-m", "torch.distributed.run"]
    assert launch["env"]["MASTER_ADDR"] == "10.0.0.1" and "--env=MASTER_ADDR" in launch["argv"]


@pytest.mark.parametrize(
    ("container", "workdir", "message"),
    [
        (Container(image="-rm"), None, "invalid --image '-rm'"),
        (Container(image="a b"), None, "invalid --image 'a b'"),
        (Container(gpus="all"), None, "--gpus needs --image (or --build)"),
        (Container(engine="docker"), None, "--engine needs --image (or --build)"),
        (Container(keep=True), None, "--keep-container needs --image"),
        (Container(image="i", gpus="0"), None, "invalid --gpus '0'"),
        (Container(image="i", gpus="some"), None, "invalid --gpus 'some'"),
        (Container(image="i", shm_size="lots"), None, "invalid --shm-size 'lots'"),
        (Container(image="i", build=True, from_local=True), None, "--build and --image-from-local exclude"),
        (Container(from_local=True, build=False), None, "--image-from-local needs --image"),
        (Container(build=True), None, "--build needs --workdir"),
    ],
)
def test_bad_container_options_are_refused(container, workdir, message):
    with pytest.raises(BadContainer, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        container.validate(workdir)
    assert info.value.exit_code == 90


def test_build_needs_a_containerfile_in_the_workdir(tmp_path):
    with pytest.raises(BadContainer, match="no Containerfile or Dockerfile"):
        Container(build=True).validate(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    Container(build=True).validate(tmp_path)


def test_requirements_with_build_are_refused(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("")
    (tmp_path / "Containerfile").write_text("FROM x\n")
    spec = JobSpec(script=script, workdir=tmp_path, container=Container(build=True))
    spec.requirements.packages = ["six"]
    with pytest.raises(BadContainer, match="--requirements and --packages with --build"):
        spec.validate()
    spec.container = Container(image="i")  # a pulled or sent image: they go into its python
    spec.validate()


def test_the_images_packages_are_mounted_and_first_on_the_path():
    h = host()
    h["container"]["packages"] = "/home/u/.cache/remote-trainer/venvs/k1"
    launch = command(job(image="i"), h, "s.py", [], ["PYTHONPATH"])
    assert (
        "--volume=/home/u/.cache/remote-trainer/venvs/k1:/home/u/.cache/remote-trainer/venvs/k1:ro,z"
        in launch["argv"]
    )
    assert launch["env"]["PYTHONPATH"] == "/home/u/.cache/remote-trainer/venvs/k1"
    assert launch["python"] == "/home/u/.cache/remote-trainer/venvs/k1/bin/python"
    merged = merged_env({}, launch["env"], {"PYTHONPATH": "/mine"})
    assert merged["PYTHONPATH"] == "/home/u/.cache/remote-trainer/venvs/k1:/mine"


def test_the_contract_carries_the_container_fields_that_are_set(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("")
    spec = JobSpec(script=script, container=Container(image="i", gpus="all"))
    files = {"spec_file": tmp_path / "f", "cancel_file": tmp_path / "c"}
    given = contract.train_job(spec, **files, output_dir=tmp_path, stage=None)
    assert given["executor"] == "container" and given["container"] == {"image": "i", "gpus": "all"}
    filled = training_job_contract(given)
    assert filled["container"]["engine"] == "auto" and filled["container"]["keep"] is False

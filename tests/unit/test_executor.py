"""The executor decision and the Slurm executor's sbatch options (the collection's plugin_utils), the Slurm
lines the driver prints (driver/execution/events.py Queue) and the codes of Slurm's ends: pure functions,
checked without a host. tests/e2e/test_slurm.py runs them against a real Slurm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ansible_collections.remote_trainer.core.plugins.plugin_utils.executor import training_job_executor
from ansible_collections.remote_trainer.core.plugins.plugin_utils.executor_slurm import (
    sbatch_options,
    slurm_settings,
)
from driver.errors import EXIT_LOST, EXIT_NEVER_STARTED, EXIT_NODE_FAILURE, EXIT_OUT_OF_MEMORY, EXIT_TIMEOUT
from driver.execution.events import Queue
from driver.job import store

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(
    0, str(REPO / "ansible_collections" / "remote_trainer" / "core" / "roles" / "training_job" / "files")
)

from jobctl_slurm import END_WHY, _reason  # noqa: E402  (the host side)


@pytest.mark.parametrize(
    ("job", "inventory", "image", "chosen"),
    [
        ("", "", "", "process"),
        ("", "", "img", "container"),
        ("", "slurm", "", "slurm"),
        ("process", "slurm", "", "process"),  # the command line wins over the inventory
        ("slurm", "", "img", "slurm"),
    ],
)
def test_the_executor_is_decided_in_one_place(job, inventory, image, chosen):
    assert training_job_executor(job, inventory, image) == chosen


def test_an_unknown_executor_in_the_inventory_is_named():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="unknown executor 'pbs'"):
        training_job_executor("", "pbs")


def test_the_job_wins_over_the_site_and_options_add_up():
    site = {"partition": "batch", "account": "lab", "options": ["--exclusive"]}
    job = {"partition": "gpu", "account": "", "options": ["--comment=x y"]}
    merged = slurm_settings(job, site)
    assert merged == {"partition": "gpu", "account": "lab", "options": ["--exclusive", "--comment=x y"]}


def test_sbatch_options_each_one_argv_element():
    settings = {"partition": "gpu", "gpus": "a100:2", "mem": "16G", "qos": "", "options": ["--comment=a b"]}
    options = sbatch_options(settings, nodes=2, timeout=3600, grace=30)
    assert options == [
        "--partition=gpu",
        "--gpus=a100:2",
        "--mem=16G",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--time=62",  # past --timeout and --grace: the job's launcher stops it first
        "--signal=B:USR1@40",  # --grace before any time limit: the launcher stops the script itself
        "--comment=a b",
    ]
    assert sbatch_options({}) == ["--signal=B:USR1@10"]
    assert sbatch_options({}, timeout=1, grace=0) == ["--time=2", "--signal=B:USR1@10"]


def test_sbatchs_reason_without_its_prefixes():
    err = (
        "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    assert (
        _reason(err)
        == "invalid partition specified: nope; Batch job submission failed: Invalid partition name specified"
    )


def test_queue_lines():
    assert (
        Queue("hpc", "12", "PENDING", "Priority").describe(first=True) == "Slurm job 12 is queued (Priority)"
    )
    assert (
        Queue("hpc", "12", "PENDING", "Resources").describe(first=False) == "Slurm job 12 waits (Resources)"
    )
    assert (
        Queue("hpc", "12", "RUNNING", "", "n[1-2]").describe(first=False)
        == "Slurm job 12 is running on n[1-2]"
    )
    assert Queue("hpc", "12", "COMPLETING").describe(first=False) is None


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("NODE_FAIL", EXIT_NODE_FAILURE),
        ("OUT_OF_MEMORY", EXIT_OUT_OF_MEMORY),
        ("TIMEOUT", EXIT_TIMEOUT),
        ("CANCELLED", EXIT_LOST),
    ],
)
def test_slurm_ends_without_an_exit_code_have_codes_of_their_own(state, code):
    why = END_WHY[state]
    record = store.JobRecord(id="j", state="lost", lost=why, message=store.lost_reason("hpc", why))
    error = store.lost_error(record)
    assert error.exit_code == code
    assert store.LOST_BECAUSE[why] in error.message


def test_never_started_says_so():
    record = store.JobRecord(
        id="j", state="lost", lost="never_started", message=store.lost_reason("hpc", "never_started")
    )
    error = store.lost_error(record)
    assert error.exit_code == EXIT_NEVER_STARTED and "never started" in error.message

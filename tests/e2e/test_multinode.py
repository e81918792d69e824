"""One job over many hosts: rank environment, torch.distributed rendezvous, preflight, fail-fast."""

from __future__ import annotations

import uuid

import pytest
from driverproc import SCRIPTS, error_lines, run_driver


def torch_args(wheelhouse) -> list[str]:
    return ["--packages", "torch==2.13.0", "--wheelhouse", str(wheelhouse), "--no-index"]


def test_gloo_all_reduce_across_two_hosts(cluster, torch_wheelhouse, tmp_path):
    _, inventory = cluster
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "all_reduce.py"),
            "-i",
            str(inventory),
            "--nodes",
            "2",
            *torch_args(torch_wheelhouse),
        ],
        tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    # (torch warns on stderr-turned-log lines that numpy is absent: only the result lines matter)
    assert sorted(line for line in res.stdout.splitlines() if "sum" in line) == [
        "[0:th1] rank 0 of 2 on node 0: sum 3",
        "[1:th2] rank 1 of 2 on node 1: sum 3",
    ]


@pytest.mark.parametrize("nproc", ["2", "cpu"])
def test_torchrun_with_processes_per_node(nproc, cluster, torch_wheelhouse, tmp_path):
    hs, inventory = cluster
    # "cpu": torchrun starts one process per CPU that python sees on each host.
    per_node = int(
        nproc if nproc.isdigit() else hs.ssh("th1", "python3 -c 'import os; print(os.cpu_count())'").stdout
    )
    world = 2 * per_node
    res = run_driver(
        [
            "train",
            str(SCRIPTS / "all_reduce.py"),
            "-i",
            str(inventory),
            "--launcher",
            "torchrun",
            "--nproc-per-node",
            nproc,
            "--master-port",
            "29611",
            *torch_args(torch_wheelhouse),
        ],
        tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    sums = [line for line in res.stdout.splitlines() if "sum" in line]
    assert len(sums) == world, res.stdout
    total = world * (world + 1) // 2  # every rank adds rank + 1
    assert all(
        line.endswith(f"of {world} on node 0: sum {total}")
        or line.endswith(f"of {world} on node 1: sum {total}")
        for line in sums
    ), sums


def test_a_failing_rank_stops_the_others_and_sets_the_exit_code(cluster, tmp_path):
    hs, inventory = cluster
    tag = uuid.uuid4().hex
    script = tmp_path / "rank.py"
    script.write_text(
        "import os, sys, time\nprint('rank', os.environ['NODE_RANK'], flush=True)\n"
        "if os.environ['NODE_RANK'] == '1':\n    time.sleep(1)\n    sys.exit(5)\ntime.sleep(600)\n"
    )
    res = run_driver(
        ["train", str(script), "-i", str(inventory), "--nodes", "2", "--grace", "2s", "--", tag], tmp_path
    )
    assert res.returncode == 5, res.stderr
    for host in ("th1", "th2"):
        assert hs.pids_matching(host, tag) == [], host


def test_preflight_names_the_rank_that_cannot_reach_the_master(cluster, tmp_path):
    hs, _ = cluster
    # Without train_master_addr every rank is told 127.0.0.1: th2 cannot reach th1 there.
    res = run_driver(
        ["train", str(SCRIPTS / "exit_with.py"), "-i", str(hs.inventory_path), "--nodes", "2", "--", "0"],
        tmp_path,
    )
    assert res.returncode == 81
    (line,) = error_lines(res.stderr)
    assert "th2 (rank 1)" in line and "127.0.0.1:29500" in line


def test_preflight_names_hosts_whose_versions_differ(cluster, torch_wheelhouse, tmp_path):
    _, inventory = cluster
    mixed = tmp_path / "mixed.ini"
    # Only th1's requirements (from the inventory) include torch: the ranks' torch versions differ.
    th1_vars = (
        f"remote_host_packages='[\"torch==2.13.0\"]' remote_host_wheelhouse={torch_wheelhouse} "
        "remote_host_no_index=true"
    )
    mixed.write_text(inventory.read_text().replace("th1 ansible_host", f"th1 {th1_vars} ansible_host"))
    res = run_driver(
        ["train", str(SCRIPTS / "exit_with.py"), "-i", str(mixed), "--nodes", "2", "--", "0"],
        tmp_path,
        timeout=600,
    )
    assert res.returncode == 81, res.stderr
    (line,) = error_lines(res.stderr)
    assert "versions differ" in line
    assert (
        # torch=2.13.0+cpu where the wheelhouse holds the CPU build
        "th1 cuda=None,python=3.11.2,torch=2.13.0" in line
        and "th2 cuda=None,python=3.11.2,torch=None" in line
    )


def test_too_few_hosts_for_nodes(cluster, tmp_path):
    _, inventory = cluster
    res = run_driver(
        ["train", str(SCRIPTS / "exit_with.py"), "-i", str(inventory), "--nodes", "3", "--", "0"], tmp_path
    )
    assert res.returncode == 80
    # In the command line's words (the role says "the job needs 3 hosts"), naming the hosts that matched.
    assert "--nodes 3 but only 2 hosts match: th1, th2" in error_lines(res.stderr)[0]


def test_the_preflight_quotes_the_python(cluster, tmp_path):
    """A python whose path holds a space and a command substitution: the preflight runs that python, and the
    substitution is never run by a shell."""
    hs, inventory = cluster
    python = "/home/trainer/py $(touch pwned)/python3"
    for host in ("th1", "th2"):
        link = 'mkdir -p "$1" && ln -sf /usr/bin/python3 "$1/python3"'
        hs.exec(host, ["sh", "-c", link, "sh", python.removesuffix("/python3")])
    argv = ["train", str(SCRIPTS / "exit_with.py"), "-i", str(inventory), "--nodes", "2", "--no-provision"]
    res = run_driver([*argv, "--python", python, "--", "0"], tmp_path)
    assert res.returncode == 0, res.stderr
    for host in ("th1", "th2"):
        assert hs.exec(host, ["find", "/", "-xdev", "-name", "pwned"]).stdout == "", host

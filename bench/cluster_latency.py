"""Benchmark: the `remote` runtime on the real single-node cluster (testhosts/kube) against `driver train`.

One sshd test host; the same scripts run through a TrainJob (pod -> runner -> SSH -> host) and through
`driver train` over SSH from this machine (the baseline). Prints, from one run:
  - submit -> first remote line: `driver submit -f` of a one-line script, until its line is on stdout,
    against `driver train` of the same script (median of --runs);
  - live log latency p50/p95: remote print -> line in `kubectl logs -f` of the pod (ticker script),
    against remote print -> line on `driver train`'s stdout;
  - delete -> remote dead: `kubectl delete trainjob` until no process of the script is left on the host,
    against SIGINT to `driver train` until the same.
The host is a podman container on this machine, so all clocks are one. Root (the cluster); starts the
cluster when it is not up and leaves it running.

Usage: python bench/cluster_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testhosts"))
sys.path.insert(0, str(REPO / "testhosts" / "kube"))

import cluster as kube  # noqa: E402
import hosts as th  # noqa: E402

DRIVER = str(Path(sys.executable).parent / "driver")
TICKER = REPO / "bench" / "ticker.py"
SLEEPER = REPO / "tests" / "scripts" / "sleeper.py"
LABEL = "jobset.sigs.k8s.io/jobset-name"


def first_line(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    took = time.perf_counter() - start
    proc.wait(timeout=300)
    if line != "hi\n" or proc.returncode != 0:
        raise SystemExit(f"{argv[:2]}: got {line!r}, exit {proc.returncode}")
    return took


def latencies(stream: subprocess.Popen[str]) -> list[float]:
    assert stream.stdout is not None
    got = []
    for line in stream.stdout:
        now = time.time()
        if line.startswith("tick "):
            got.append((now - float(line.split()[1])) * 1000)
    return got


def wait_remote(hs: th.HostSet, tag: str, alive: bool, timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if bool(hs.pids_matching("th1", tag)) == alive:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise SystemExit(f"the script {'never started' if alive else 'outlived the wait'} on th1")


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    kube.up()
    work = Path(tempfile.mkdtemp(prefix="rt-kbench-"))
    hs = th.start_hosts(1, work / "hosts", label=f"rt-kbench-{os.getpid()}")
    try:
        ip = hs.container_ip("th1")
        files = work / "pod"
        files.mkdir()
        (files / "hosts.ini").write_text(f"th1 ansible_host={ip} ansible_port=22 ansible_user=trainer\n")
        shutil.copy(hs.key_path, files / "id_ed25519")
        (files / "known_hosts").write_text(f"{ip} {hs.hosts['th1'].host_key}\n")
        res = kube.install_runtime(files / "hosts.ini", files / "id_ed25519", files / "known_hosts", work)
        if res.returncode != 0:
            raise SystemExit(f"make cluster-up failed: {res.stdout[-3000:]}{res.stderr[-2000:]}")
        env = {**kube.env_path(), "KUBECONFIG": str(kube.KUBECONFIG)}
        hi = work / "hi.py"
        hi.write_text("print('hi')\n")
        train = [DRIVER, "train", "-i", str(hs.inventory_path)]

        submit_s, train_s = [], []
        for i in range(args.runs):  # interleaved
            submit_s.append(
                first_line([DRIVER, "submit", "-f", str(hi), "--name", f"bench-hi-{i}-{os.getpid()}"], env)
            )
            train_s.append(first_line([*train, str(hi)], env))
        for i in range(args.runs):
            kube.kubectl("delete", "trainjob", f"bench-hi-{i}-{os.getpid()}", "--wait=false", check=False)

        name = f"bench-tick-{os.getpid()}"
        tick = [DRIVER, "submit", str(TICKER), "--name", name, "--", "0.1", "15"]
        subprocess.run(tick, env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 180
        while (
            time.monotonic() < deadline
            and "Running"
            not in kube.kubectl(
                "get", "pods", "-l", f"{LABEL}={name}", "-o", "jsonpath={.items[*].status.phase}", check=False
            ).stdout
        ):
            time.sleep(0.2)
        logs = subprocess.Popen(
            [str(kube.BIN / "kubectl"), "--kubeconfig", str(kube.KUBECONFIG), "logs", "-f", "-c", "node",
             "-l", f"{LABEL}={name}", "--tail=0"],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        pod_lat = latencies(logs)
        kube.kubectl("delete", "trainjob", name, "--wait=false", check=False)
        ticker = subprocess.Popen(
            [*train, str(TICKER), "--", "0.1", "15"], env=env, stdout=subprocess.PIPE, text=True
        )
        train_lat = latencies(ticker)
        ticker.wait()

        delete_s, sigint_s = [], []
        for i in range(args.runs):
            tag = uuid.uuid4().hex
            job = f"bench-del-{i}-{os.getpid()}"
            subprocess.run([DRIVER, "submit", str(SLEEPER), "--name", job, "--", tag], env=env, check=True,
                           capture_output=True)  # fmt: skip
            wait_remote(hs, tag, alive=True)
            start = time.perf_counter()
            kube.kubectl("delete", "trainjob", job, "--wait=false")
            wait_remote(hs, tag, alive=False)
            delete_s.append(time.perf_counter() - start)
            tag = uuid.uuid4().hex
            proc = subprocess.Popen([*train, str(SLEEPER), "--", tag], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            wait_remote(hs, tag, alive=True)
            start = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            wait_remote(hs, tag, alive=False)
            sigint_s.append(time.perf_counter() - start)
            proc.wait(timeout=60)

        med = statistics.median
        print(f"submit -> first remote line: {med(submit_s):.2f} s (driver train: {med(train_s):.2f} s; "
              f"ratio {med(submit_s) / med(train_s):.2f}) over {args.runs} runs")  # fmt: skip
        print(f"live log latency (remote print -> kubectl logs -f): p50 {p(pod_lat, 50):.0f} ms, p95 "
              f"{p(pod_lat, 95):.0f} ms over {len(pod_lat)} lines (driver train's stdout: p50 "
              f"{p(train_lat, 50):.0f} ms, p95 {p(train_lat, 95):.0f} ms; ratio of p50 "
              f"{p(pod_lat, 50) / p(train_lat, 50):.2f})")  # fmt: skip
        print(f"delete -> remote dead: {med(delete_s):.2f} s (SIGINT to driver train: {med(sigint_s):.2f} s; "
              f"ratio {med(delete_s) / med(sigint_s):.2f}) over {args.runs} runs")  # fmt: skip
    finally:
        hs.stop()


if __name__ == "__main__":
    main()

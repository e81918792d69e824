"""Benchmark: `driver provision` first install of one small package, and the check of a prepared host.

Prints, from one run against sshd test hosts (podman containers on this machine), with packages served
from the local test wheelhouse (`make wheelhouse`), so that no index is contacted:
  - first provision of one small package (six) on a fresh host: wall time of `driver provision`;
  - the check of an already prepared host: wall time of `driver provision` on 1 and on N hosts, the
    marginal cost of each further host, and the time the role itself spent per host (its task events).

Usage: python bench/provision.py [--hosts N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testhosts"))

import hosts as th  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from benchlib import target, timed  # noqa: E402

DRIVER = str(Path(sys.executable).parent / "driver")
WHEELHOUSE = REPO / ".state" / "wheelhouse"


def provision(inventory: Path, env: dict[str, str], *limit: str) -> float:
    argv = [
        DRIVER,
        "provision",
        "-i",
        str(inventory),
        *limit,
        "--packages",
        "six==1.16.0",
        "--wheelhouse",
        str(WHEELHOUSE),
        "--no-index",
    ]
    start = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"driver provision failed ({res.returncode}): {res.stderr}")
    return time.perf_counter() - start


def role_time_per_host(state: Path) -> list[float]:
    """Seconds from the role's first task start to its last task end, per host, in the newest run."""
    newest = max((state / "provision").iterdir(), key=lambda p: p.name)
    spans: dict[str, list[datetime]] = {}
    for path in (newest / "runner" / "artifacts" / "run" / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if event["event"] in ("runner_on_ok", "runner_on_skipped") and data.get("start") and data.get("end"):
            times = spans.setdefault(data["host"], [])
            times += [datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])]
    return [(max(t) - min(t)).total_seconds() for t in spans.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not any(WHEELHOUSE.glob("six-*.whl")):
        raise SystemExit("no six wheel in .state/wheelhouse: run `make wheelhouse`")

    th.build_images()
    work = Path(tempfile.mkdtemp(prefix="rt-bench-prov-"))
    hs = th.start_hosts(args.hosts, work / "hosts", label=f"rt-bench-prov-{os.getpid()}")
    try:
        env = dict(os.environ, REMOTE_TRAINER_STATE_DIR=str(work / "state"))
        inv = hs.inventory_path
        first = provision(inv, env, "-l", "th1")
        one = [provision(inv, env, "-l", "th1") for _ in range(args.runs)]
        role_one = role_time_per_host(work / "state")
        provision(inv, env)  # prepare the others
        many = [provision(inv, env) for _ in range(max(3, args.runs // 2))]
        role_many = role_time_per_host(work / "state")

        t1, tn = statistics.median(one), statistics.median(many)
        # ansible-playbook's own start and end: a play of no task against the same host.
        empty = work / "empty.yml"
        empty.write_text("- name: Nothing\n  hosts: all\n  gather_facts: false\n  tasks: []\n")
        pb = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), "-l", "th1", str(empty)]
        pb_env = dict(env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
        bare = statistics.median(timed(pb, pb_env) for _ in range(args.runs))
        print("hosts: sshd containers on 127.0.0.1; package six==1.16.0 from a local wheelhouse")
        print(f"  first provision, 1 fresh host (venv + install)     {first:6.2f} s")
        print(f"  check of a prepared host, 1 host (driver wall)     {t1:6.2f} s  (median of {len(one)})")
        label = f"check of prepared hosts, {args.hosts} hosts (driver wall)"
        print(f"  {label:50s} {tn:6.2f} s  (median of {len(many)})")
        print(f"  marginal cost per further host                     {(tn - t1) / (args.hosts - 1):6.3f} s")
        print(f"  role time per host (tasks' events), 1 host         {statistics.median(role_one):6.3f} s")
        print(
            f"  role time per host (tasks' events), {args.hosts} hosts       "
            f"{statistics.median(role_many):6.3f} s (max {max(role_many):.3f})"
        )
        print(f"  ansible-playbook of no task, 1 host (its own start)  {bare:6.2f} s")
        target("provisioning check, 1 prepared host", t1, 0.5, "driver provision, wall", unit="s")
        target(
            f"provisioning check, {args.hosts} prepared hosts",
            tn / t1,
            1.5,
            f"{tn:.2f} s on {args.hosts} hosts / {t1:.2f} s on 1 host",
        )
    finally:
        hs.stop()


if __name__ == "__main__":
    main()

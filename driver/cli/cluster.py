"""`driver cluster status`: whether the cluster is ready (Kubeflow Trainer, the `remote` runtime)."""

from __future__ import annotations

import json

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.config import envvar
from driver.errors import (
    EXIT_CLUSTER_NOT_READY,
    EXIT_CLUSTER_UNREACHABLE,
    EXIT_DRIVER_FAILURE,
    EXIT_OK,
    ClusterNotReady,
)

CLUSTER_CODES: Codes = (
    (EXIT_OK, "the cluster is ready for TrainJobs on runtime `remote`"),
    EXIT_DRIVER_FAILURE,
    EXIT_CLUSTER_UNREACHABLE,
    EXIT_CLUSTER_NOT_READY,
)


@click.group()
def cluster() -> None:
    """The Kubernetes side: Kubeflow Trainer and the `remote` runtime (see `make cluster-up`)."""


@command(name="status", codes=CLUSTER_CODES)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the TrainJobs.")
@click.option("--context", envvar=envvar("context"), help="kubeconfig context (default: the current one).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: the checks.")
def cluster_status(namespace: str, context: str | None, as_json: bool) -> int:
    """Show what is installed and ready; exit 83 when something is missing."""
    from driver.cluster import status as checking

    checks = checking.status(namespace, context)
    if as_json:
        ready = all(check.ok for check in checks)
        found = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        write_line(json.dumps({"ready": ready, "checks": found}, indent=2))
    for check in checks if not as_json else []:
        write_line(f"{'ok' if check.ok else 'MISSING':8s} {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        raise ClusterNotReady(
            "the cluster is not ready for TrainJobs on runtime `remote`", hint="run `make cluster-up`"
        )
    return EXIT_OK


cluster.add_command(cluster_status)

"""`driver submit`: a TrainJob on the cluster's `remote` runtime that runs a script on the external hosts."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.config import envvar
from driver.errors import (
    EXIT_BAD_ENV,
    EXIT_BAD_VALUE,
    EXIT_CLUSTER_NOT_READY,
    EXIT_CLUSTER_UNREACHABLE,
    EXIT_DRIVER_FAILURE,
    EXIT_OK,
    EXIT_SCRIPT_IS_DIR,
    EXIT_SCRIPT_MISSING,
    EXIT_SCRIPT_OWN,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from driver.job.spec import parse_duration, parse_env

SUBMIT_CODES: Codes = (
    EXIT_OK,
    EXIT_SCRIPT_OWN,
    EXIT_TIMEOUT,
    EXIT_DRIVER_FAILURE,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    EXIT_BAD_VALUE,
    EXIT_BAD_ENV,
    EXIT_SCRIPT_MISSING,
    EXIT_SCRIPT_IS_DIR,
    EXIT_CLUSTER_UNREACHABLE,
    EXIT_CLUSTER_NOT_READY,
)

# `driver train` options that a TrainJob cannot carry: refused with what to do instead.
TRAIN_ONLY = {
    "--workdir": "a TrainJob carries only the script; put code and data on the host",
    "--detach": "`driver submit` without --follow returns at once; the TrainJob runs in the cluster",
    "--output": "outputs stay on the host (~/.remote-trainer/jobs/<id>/); copy them with `driver train`",
    "--output-dir": "outputs stay on the host; copy them with `driver train`",
    "--inventory": "the runtime's inventory is the Secret remote-trainer-inventory (`make cluster-up`)",
    "--requirements": "give the packages with --packages",
    "--nodes": "the remote runtime runs one node per TrainJob",
    "--launcher": "the remote runtime runs one process per TrainJob",
    "--python": "set it in the runtime's inventory (ansible_python_interpreter)",
}


def _refuse_train_only(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value:
        name = max(param.opts, key=len)
        raise click.UsageError(
            f"{name} is a `driver train` option, not one of `driver submit`: {TRAIN_ONLY[name]}"
        )


def _train_only_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name in TRAIN_ONLY:
        decls = [name, "-d"] if name == "--detach" else [name, "-i"] if name == "--inventory" else [name]
        flag = name == "--detach"
        fn = click.option(*decls, is_flag=flag, hidden=True, expose_value=False, callback=_refuse_train_only)(
            fn
        )
    return fn


@command(codes=SUBMIT_CODES)
@click.argument("script", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", help="TrainJob name (default: random, like the Kubeflow SDK's).")
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    envvar=envvar("namespace"),
    help="Namespace of the TrainJob.",
)
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="K=V",
    help="Environment variable (K alone: its value here). Values go into a Secret owned by the TrainJob "
    "(NAME-env), never into the TrainJob's spec.",
)
@click.option(
    "--timeout", help="activeDeadlineSeconds of the TrainJob (e.g. 2h): the remote run is stopped then."
)
@click.option("-l", "--limit", help="Host pattern of the runtime's inventory (default: every host).")
@click.option(
    "--packages", multiple=True, metavar="SPEC", help="Installed on the host before the script (repeatable)."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Stream the pod's log to the end; exit with the script's code."
)
@click.option(
    "--keep-on-interrupt", is_flag=True, help="With --follow: Ctrl+C stops following, the TrainJob goes on."
)
@click.option("--context", envvar=envvar("context"), help="kubeconfig context (default: the current one).")
@click.option("--dry-run", is_flag=True, help="Print the TrainJob as YAML instead of creating it.")
@_train_only_options
def submit(**params: Any) -> int:
    """Create a TrainJob on the `remote` ClusterTrainingRuntime that runs SCRIPT ARGS on the external hosts.

    The runtime's pod streams the script's output (`kubectl logs`) and ends with its exit code. With
    --follow, that output is streamed here and the script's exit code is this command's; Ctrl+C then
    deletes the TrainJob, which stops the remote run (unless --keep-on-interrupt).
    """
    from driver.cluster import submit as submitting

    submission = submitting.trainjob(
        params["script"],
        list(params["args"]),
        name=params["name"],
        namespace=params["namespace"],
        env=parse_env(params["env"]),
        deadline=parse_duration(params["timeout"]) if params["timeout"] else None,
        limit=params["limit"],
        packages=list(params["packages"]),
    )
    if params["dry_run"]:
        import yaml

        sys.stdout.write(yaml.safe_dump_all(submission.documents(), sort_keys=False))
        return EXIT_OK
    created = submitting.create(submission, params["context"])
    name = created["metadata"]["name"]
    if not params["follow"]:
        write_line(f"trainjob/{name} created in namespace {params['namespace']}")
        return EXIT_OK
    # Following: stdout is the script's output alone, what the driver says goes to stderr.
    click.echo(f"trainjob/{name} created in namespace {params['namespace']}", err=True)
    from driver.cluster import follow

    def write(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    ending = follow.follow(name, params["namespace"], write, keep=params["keep_on_interrupt"])
    why = f": {ending.message}" if ending.message else ""
    click.echo(f"trainjob/{name} {ending.condition or 'ended'} (exit code {ending.exit_code}){why}", err=True)
    return ending.exit_code

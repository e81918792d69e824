"""`driver train`: run a script on the inventory hosts, showing its output live, and end with its code."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import click

from driver.cli import render
from driver.cli.app import UsageProblem, command, write_line
from driver.cli.config import envvar
from driver.cli.options import (
    container_from,
    container_options,
    executor_option,
    given,
    hosts_options,
    requirements_from,
    requirements_options,
    shown_seconds,
)
from driver.errors import EXIT_DISCONNECTED, EXIT_OK, EXIT_TIMEOUT
from driver.execution.events import NOTICE
from driver.executors import slurm
from driver.job import contract
from driver.job.spec import JobSpec, parse_duration, parse_env, parse_nodes, parse_nproc
from driver.job.staging import parse_size


class TrainCommand(click.Command):
    """`driver train s.py --epochs 3` (a script option without `--`) is pointed at `--`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        argv = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            name = exc.option_name
            script = next((a for a in argv if not a.startswith("-")), None)
            where = argv.index(script) if script is not None else len(argv)
            at = next((i for i, a in enumerate(argv) if a.split("=", 1)[0] == name), len(argv))
            if at < where:  # before the script: a mistyped option of the driver's own
                raise UsageProblem(
                    f"no such option {name} of `driver train`"
                    + (f" (did you mean {', '.join(exc.possibilities)}?)" if exc.possibilities else ""),
                    ctx,
                    hint="see `driver train --help`; the script's own options go after `--`",
                ) from None
            raise UsageProblem(
                f"{name} is not an option of `driver train`",
                ctx,
                hint=f"if it is the script's, put it after `--`: driver train SCRIPT [OPTIONS] -- {name} ...",
            ) from None


def spec_from(params: dict[str, Any]) -> JobSpec:
    """The job `train`'s options describe (the shared options are popped out of `params`)."""
    requirements = requirements_from(params)
    container = container_from(params)
    executor, slurm_settings = slurm.from_params(params, container)
    timeout = (
        parse_duration(params["timeout"], given("timeout", "--timeout"))
        if params["timeout"] is not None
        else None
    )
    return JobSpec(
        script=params["script"],
        args=list(params["args"]),
        inventory=params["inventory"],
        limit=params["limit"],
        workdir=params["workdir"],
        python=requirements.python,
        env=parse_env(params["env"]),
        timeout=timeout,
        grace=parse_duration(params["grace"], given("grace", "--grace"), allow_zero=True)
        if params["grace"] is not None
        else None,
        reconnect=parse_duration(params["reconnect"], given("reconnect", "--reconnect"))
        if params["reconnect"] is not None
        else None,
        requirements=requirements,
        container=container,
        executor=executor,
        slurm=slurm_settings,
        provision=not params["no_provision"],
        detach=params["detach"],
        output=params["output"],
        output_dir=params["output_dir"],
        sync_every=parse_duration(params["sync_every"], "--sync-every")
        if params["sync_every"] is not None
        else None,
        max_workdir_size=parse_size(
            params["max_workdir_size"], given("max_workdir_size", "--max-workdir-size")
        ),
        nodes=parse_nodes(params["nodes"], params["launcher"]),
        launcher=params["launcher"],
        nproc_per_node=parse_nproc(params["nproc_per_node"], params["launcher"]),
        master_port=params["master_port"],
    )


@command(cls=TrainCommand)
@click.argument("script", type=click.Path(path_type=Path, readable=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@hosts_options
@requirements_options
@container_options
@executor_option
@slurm.cli_options
@click.option("--no-provision", is_flag=True, help="Skip preparing the host (python, requirements).")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, readable=False),
    help="Directory staged as the script's working dir.",
)
@click.option(
    "-e", "--env", "env", multiple=True, metavar="K=V", help="Environment variable (K alone: from here)."
)
@click.option(
    "--timeout",
    help="Stop the job this long after the start, provisioning included (e.g. 90s, 2h); "
    f"exit {EXIT_TIMEOUT}.",
)
@click.option(
    "--grace",
    help=f"Time between SIGTERM and SIGKILL on stop (default: {shown_seconds(contract.default('grace'))}).",
)
@click.option(
    "--reconnect",
    metavar="DURATION",
    help=f"How long a host may stay unreachable while its job is followed before the driver stops "
    f"following (exit {EXIT_DISCONNECTED}; the job goes on) "
    f"(default: {shown_seconds(contract.default('reconnect'))}).",
)
@click.option(
    "-d", "--detach", is_flag=True, help="Start the job, print its id and return (see logs, status)."
)
@click.option(
    "--output",
    help=f"Output directory, relative to the job's cwd (default: {contract.default('output')}).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, readable=False),
    envvar=envvar("output_dir"),
    help="Local directory for the outputs (<host>/...; default: the job's state directory).",
)
@click.option(
    "--sync-every", metavar="DURATION", help="Also bring the outputs back this often while it runs."
)
@click.option(
    "--max-workdir-size",
    default="2G",
    show_default=True,
    envvar=envvar("max_workdir_size"),
    help="Refuse a larger --workdir.",
)
@click.option("--nodes", help="One job over N matched hosts (or 'all'): NODE_RANK, NNODES, MASTER_ADDR...")
@click.option(
    "--launcher", type=click.Choice(["torchrun"]), help="Start the script under torchrun on each node."
)
@click.option(
    "--nproc-per-node",
    metavar="N|gpu|auto",
    help="Processes per node under torchrun: a number (default 1), gpu (one per GPU), cpu or auto.",
)
@click.option(
    "--master-port",
    type=click.IntRange(1, 65535),
    help=f"Rendezvous port on rank 0 (default: {contract.default('master_port')}).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="At the end, one JSON document on stdout (schemas/train.schema.json); the script output: stderr.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress lines and no summary: the script's output and errors only.",
)
def train(**params: Any) -> int:
    """Run SCRIPT with ARGS on the inventory hosts, showing its output live.

    Put `--` before the script's own options: driver train train.py -i hosts -- --epochs 3

    ARGS are the script's command line, which other users of the host can read: pass secrets with
    --env NAME (the value from your environment), never as ARGS.

    The host is prepared first (a python, and the requirements in a cached venv) unless
    --no-provision. The driver exits with the script's exit code.
    """
    from driver.ops.train import train as run_train  # imports ansible_runner: only when needed

    spec = spec_from(params)
    if params["quiet"]:  # progress lines are NOTICE: leave warnings and errors only (and Slurm's queue)
        logging.getLogger("driver").setLevel(max(logging.getLogger("driver").level, logging.WARNING))
        logging.getLogger("driver.queue").setLevel(NOTICE)
    started = time.monotonic()
    as_json = params["as_json"]
    relay = (lambda line: click.echo(line, err=True)) if as_json else write_line
    result = run_train(spec, relay, accept_new_host_keys=params["accept_new_host_keys"])
    if as_json:
        write_line(json.dumps(render.train_document(result, time.monotonic() - started), indent=2))
    if result.detached:
        if not as_json:
            write_line(result.job_id)
        return EXIT_OK
    if result.exit_code == EXIT_TIMEOUT and result.stopped == "timeout":
        click.echo(
            f"error: job {result.job_id} reached --timeout {params['timeout']} and was stopped on every host "
            f"(exit {EXIT_TIMEOUT})",
            err=True,
        )
    for line in [] if params["quiet"] else render.summary(result, time.monotonic() - started):
        click.echo(line, err=True)
    return result.exit_code

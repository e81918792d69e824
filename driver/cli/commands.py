"""The `driver` command group and the job commands: train, provision, jobs, status, logs, cancel, clean.

Each command parses its options, calls one library function (driver/ops) and prints the result; the one
wrapper (driver/cli/app.py) sets up logging and maps errors to exit codes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from driver.cli.app import DriverGroup, UsageProblem, command, report, write_line
from driver.cli.cluster import cluster, submit
from driver.cli.complete import complete_jobs
from driver.cli.config import envvar, settings_from_environment
from driver.cli.options import (
    container_from,
    container_options,
    executor_option,
    hosts_options,
    requirements_from,
    requirements_options,
)
from driver.errors import EXIT_TIMEOUT, DriverError, UsageError
from driver.execution.events import NOTICE, describe_report
from driver.executors import slurm
from driver.job import contract
from driver.job.spec import JobSpec, parse_duration, parse_env, parse_nodes, parse_nproc
from driver.job.staging import parse_size

log = logging.getLogger("driver")

PROVISION_CODES = (
    ("0", "every host is ready"),
    "125",
    ("130", "interrupted (Ctrl+C); a venv left unfinished is rebuilt by the next run"),
    ("143", "the driver got SIGTERM; a venv left unfinished is rebuilt by the next run"),
    "2",
    "68",
    "69",
    "70",
    "71",
    "72",
    "73",
    "75",
    "76",
)
CONTROL_CODES = (
    ("0", "done (logs -f: the job succeeded)"),
    ("1-123", "logs -f: the script's own exit code"),
    ("124", "logs -f: the job reached its --timeout"),
    "125",
    ("128+N", "logs -f: the script died from signal N"),
    ("130", "interrupted (Ctrl+C); the job itself goes on (cancel: it may still run)"),
    ("143", "the driver got SIGTERM; the job itself goes on (cancel: it may still run)"),
    "64",
    "68",
    "70",
    "71",
    "72",
    "78",
    "79",
    "84",
    ("91", "logs -f: the connection to a host was lost for longer than --reconnect; the job goes on"),
)
JOBS_CODES = (("0", "the jobs were listed"), "125", "64")
CACHE_CODES = (("0", "done"), "125", ("130", "interrupted (Ctrl+C)"), "2", "64", "68", "69", "70", "71", "72")
CLEAN_CODES = (
    ("0", "the hosts were cleaned"),
    "125",
    ("130", "interrupted (Ctrl+C)"),
    ("143", "the driver got SIGTERM"),
    "64",
    "68",
    "69",
    "70",
    "71",
    "72",
)


def _seconds(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return f"{number:g}s"


# Every state a job record can show (driver/job/store.py): `driver jobs --state` takes these.
JOB_STATES = ("starting", "running", "ended", "cancelled", "timeout", "lost", "failed", "abandoned")


def given(name: str, flag: str) -> str:
    """How an error names an option's value: the option, and where the value came from when it was not on
    the command line (REMOTE_TRAINER_<NAME>, or the config file)."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    if source is ParameterSource.ENVIRONMENT:
        return f"{flag} (from {envvar(name)})"
    if source is ParameterSource.DEFAULT_MAP:
        from driver.cli import config

        return f"{flag} (from the config file {config.config_path()})"
    return flag


@click.group(cls=DriverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remote-trainer")
@click.pass_context
def main(ctx: click.Context) -> None:
    """remote-trainer: run training scripts on machines outside a Kubernetes cluster.

    Defaults for options come from the environment (REMOTE_TRAINER_INVENTORY, ...) and the config file
    (~/.config/remote-trainer/config.toml or $REMOTE_TRAINER_CONFIG); the command line wins. `driver config
    show` prints what is in effect. Shell completion: `driver completion bash|zsh|fish`.
    """
    from driver.cli import config

    try:
        loaded = config.load()
    except DriverError as exc:
        ctx.exit(report(exc))
    commands = {n: {p.name for p in c.params if p.name and p.expose_value} for n, c in main.commands.items()}
    ctx.default_map = config.default_map(loaded, commands)


class _TrainCommand(click.Command):
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


@command(cls=_TrainCommand)
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
    help="Stop the job this long after the start, provisioning included (e.g. 90s, 2h); exit 124.",
)
@click.option(
    "--grace",
    help=f"Time between SIGTERM and SIGKILL on stop (default: {_seconds(contract.default('grace'))}).",
)
@click.option(
    "--reconnect",
    metavar="DURATION",
    help=f"How long a host may stay unreachable while its job is followed before the driver stops "
    f"following (exit 91; the job goes on) (default: {_seconds(contract.default('reconnect'))}).",
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

    The host is prepared first (a python, and the requirements in a cached venv) unless
    --no-provision. The driver exits with the script's exit code.
    """
    from driver.ops.train import train as run_train  # imports ansible_runner: only when needed

    requirements = requirements_from(params)
    container = container_from(params)
    executor, slurm_settings = slurm.from_params(params, container)
    timeout = (
        parse_duration(params["timeout"], given("timeout", "--timeout"))
        if params["timeout"] is not None
        else None
    )
    spec = JobSpec(
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
    if params["quiet"]:  # progress lines are NOTICE: leave warnings and errors only (and Slurm's queue)
        logging.getLogger("driver").setLevel(max(logging.getLogger("driver").level, logging.WARNING))
        logging.getLogger("driver.queue").setLevel(NOTICE)
    started = time.monotonic()
    as_json = params["as_json"]
    relay = (lambda line: click.echo(line, err=True)) if as_json else write_line
    result = run_train(spec, relay, accept_new_host_keys=params["accept_new_host_keys"])
    if as_json:
        write_line(json.dumps(train_document(result, time.monotonic() - started), indent=2))
    if result.detached:
        if not as_json:
            write_line(result.job_id)
        return 0
    if result.exit_code == EXIT_TIMEOUT and result.stopped == "timeout":
        click.echo(
            f"error: job {result.job_id} reached --timeout {params['timeout']} and was stopped on every host "
            f"(exit {EXIT_TIMEOUT})",
            err=True,
        )
    for line in [] if params["quiet"] else summary(result, time.monotonic() - started):
        click.echo(line, err=True)
    return result.exit_code


WHY = {
    "timeout": "stopped by --timeout",
    "SIGINT": "cancelled (Ctrl+C)",
    "SIGTERM": "cancelled (SIGTERM)",
    "preflight": "not started: the preflight failed (its reason is the job's last line)",
    "preempted": "preempted by Slurm",
    "out_of_memory": "killed by Slurm: out of memory",
    "node_fail": "a node of its Slurm allocation failed",
}


def why_ended(result: Any) -> str:
    if result.detached:
        return "detached"
    if result.stopped in ("timeout", "SIGINT", "SIGTERM", "cancelled"):
        return "timeout" if result.stopped == "timeout" else "cancelled"
    return "success" if result.exit_code == 0 else "failure"


def outputs_back(result: Any) -> Path | None:
    """The job's local outputs directory when some host's outputs came back into it, else None."""
    outputs = Path(result.output_dir) if result.output_dir else None
    if outputs is not None and any(p.is_dir() and any(p.iterdir()) for p in outputs.glob("*")):
        return outputs
    return None


def train_document(result: Any, wall: float) -> dict[str, Any]:
    """The end of `train --json` (driver/cli/schemas/train.schema.json)."""
    outputs = outputs_back(result)
    return {
        "job": result.job_id,
        "exit_code": result.exit_code,
        "ended": why_ended(result),
        "stopped": result.stopped,
        "seconds": round(wall, 3),
        "hosts": [
            {
                "host": o.host,
                "state": o.state,
                "exit_code": o.rc,
                "started": _float(o.result.get("rt_started")),
                "ended": _float(o.result.get("rt_ended")),
            }
            for o in sorted(result.outcomes, key=lambda o: o.host)
        ],
        "outputs": str(outputs) if outputs else None,
    }


def summary(result: Any, wall: float) -> list[str]:
    """The end of a foreground `train` on stderr: why it ended, each host's code and time, the outputs."""
    if result.stopped in WHY:
        why = WHY[result.stopped]
    elif result.stopped == "cancelled":
        why = "cancelled (driver cancel)"
    else:
        why = "succeeded" if result.exit_code == 0 else f"failed (exit code {result.exit_code})"
    lines = [f"job {result.job_id}: {why} in {wall:.1f} s"]
    for o in sorted(result.outcomes, key=lambda o: o.host):
        took = ""
        began, ended = _float(o.result.get("rt_started")), _float(o.result.get("rt_ended"))
        if began is not None and ended is not None:
            took = f", ran {ended - began:.1f} s"
        code = "not started" if o.state == "not_started" else f"exit code {o.rc}"
        lines.append(f"  {o.host}: {code}{took}{slurm.summary_words(o.result.get('rt_slurm'))}")
    outputs = outputs_back(result)
    if outputs is not None:
        lines.append(f"  outputs: {outputs}/<host>/")
    return lines


@command(codes=PROVISION_CODES)
@hosts_options
@requirements_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: each host's report.")
def provision(**params: Any) -> int:
    """Prepare the inventory hosts to run scripts: a python, and the requirements in a cached venv.

    Prints one line per host saying what was found and done. Running it again on a prepared host
    changes nothing and takes a fraction of a second per host.
    """
    from driver.ops.provision import provision as run_provision

    requirements = requirements_from(params)
    reports = run_provision(
        params["inventory"],
        requirements,
        limit=params["limit"],
        accept_new_host_keys=params["accept_new_host_keys"],
    )
    if params["as_json"]:
        write_line(json.dumps({"hosts": reports}, indent=2, sort_keys=True))
        return 0
    for host in sorted(reports):
        write_line(f"{host}: {describe_report(reports[host])}")
    return 0


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@command(name="jobs", codes=JOBS_CODES)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document on stdout (schemas/jobs.schema.json)."
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(JOB_STATES),
    help="Only jobs in this state (repeatable), e.g. running.",
)
@click.option("--last", type=click.IntRange(min=1), help="Only the N newest jobs.")
@click.option("--refresh", is_flag=True, help="Ask the hosts of each running job first (as `status` does).")
@click.option("--prune", is_flag=True, help="Remove the local records of jobs ended --older-than ago.")
@click.option("--older-than", default="30d", show_default=True, help="With --prune: age of the job's end.")
def jobs_command(
    as_json: bool, states: tuple[str, ...], last: int | None, refresh: bool, prune: bool, older_than: str
) -> int:
    """List the jobs of this machine's driver (newest last); `driver status JOB` refreshes one."""
    from driver.job import store as jobs
    from driver.ops import control

    pruned = jobs.prune(parse_duration(older_than, "--older-than", allow_zero=True)) if prune else []
    if refresh:
        for record in jobs.all_records():
            if record.running:
                try:
                    control.status(record.id)
                except DriverError as exc:  # one job's hosts do not keep the others from being listed
                    log.warning("%s: not refreshed: %s", record.id, exc.message)
    records = [r for r in jobs.all_records() if not states or jobs.shown_state(r) in states]
    records = records[-last:] if last else records
    if as_json:
        document: dict[str, Any] = {"jobs": [jobs.as_dict(r) for r in records]}
        if prune:
            document["pruned"] = pruned
        write_line(json.dumps(document, indent=2))
        return 0
    if prune:
        click.echo(f"removed {len(pruned)} job records", err=True)
    rows = [("JOB", "SCRIPT", "HOSTS", "STATE", "STARTED", "ENDED", "EXIT", "REASON")]
    for r in records:
        code = "-" if r.exit_code is None else str(r.exit_code)
        hosts = ",".join(r.hosts) or "-"
        reason = (r.message or r.stopped or "").splitlines()[0] if (r.message or r.stopped) else ""
        rows.append(
            (
                r.id,
                Path(r.script).name,
                hosts,
                jobs.shown_state(r),
                _when(r.started),
                _when(r.ended),
                code,
                reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


@command(codes=CONTROL_CODES)
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document on stdout (schemas/status.schema.json)."
)
def status(job: str, as_json: bool) -> int:
    """Ask the hosts how JOB is doing (running, ended with its exit code, or lost) and record it.

    A job that never started on a host is reported from its record.
    """
    from driver.execution.play import report_copy_errors
    from driver.job import store as jobs
    from driver.ops import control

    record, play = control.status(job)
    outcomes = sorted(play.outcomes if play else [], key=lambda o: o.host)
    if as_json:
        hosts = [
            {
                "host": o.host,
                "state": o.state,
                "exit_code": o.rc,
                "stopped": o.stopped,
                "started": _float(o.result.get("rt_started")),
                "ended": _float(o.result.get("rt_ended")),
            }
            for o in outcomes
        ]
        write_line(json.dumps({"job": jobs.as_dict(record), "hosts": hosts}, indent=2))
    else:
        write_line(
            f"job {record.id}: {jobs.shown_state(record)}"
            + (f", exit code {record.exit_code}" if record.exit_code is not None else "")
            + (f": {record.message}" if record.message and play is None else "")
        )
        for o in outcomes:
            rc = "" if o.rc is None else f" (exit code {o.rc})"
            why = f", stopped ({o.stopped})" if o.stopped else ""
            write_line(
                f"  {o.host}: {o.state}{rc}{why}; started {_when(_float(o.result.get('rt_started')))}, "
                f"ended {_when(_float(o.result.get('rt_ended')))}"
            )
        if record.output_dir and record.outputs_synced:
            write_line(f"  outputs: {record.output_dir}")
    if play is not None:
        report_copy_errors(play.copy_errors, 0)
    if jobs.shown_state(record) == "lost":  # shown first; then the code `wait` and `logs -f` end with
        raise jobs.lost_error(record)
    return 0


@command(codes=(*CONTROL_CODES, "87"))
@click.argument("job", shell_complete=complete_jobs)
@click.option("--timeout", help="Give up after this long (exit 87; the job goes on).")
def wait(job: str, timeout: str | None) -> int:
    """Wait until JOB has ended (asking its hosts every 2 s) and exit with its exit code, like `logs -f`
    without the log."""
    from driver.ops import control

    return control.wait(
        job, parse_duration(timeout, given("timeout", "--timeout")) if timeout is not None else None
    )


@command(codes=CONTROL_CODES)
@click.argument("job", shell_complete=complete_jobs)
@click.option("-f", "--follow", is_flag=True, help="Keep following until the job ends; exit with its code.")
@click.option("--host", help="Only this host's log.")
@click.option(
    "-n",
    "--tail",
    type=click.IntRange(min=0),
    help="Only the last N lines of the log so far (with -f: then the rest, live).",
)
@click.option(
    "--reconnect",
    metavar="DURATION",
    help="With -f: how long a host may stay unreachable before following stops (exit 91; the job goes on).",
)
def logs(job: str, follow: bool, host: str | None, tail: int | None, reconnect: str | None) -> int:
    """Print JOB's log from the start, from every host (prefixed with the host when several).

    With -f, follow it live until the job ends, then exit with the job's exit code. It works from any
    terminal, after the driver that started the job was killed, the connection dropped or this machine
    restarted; Ctrl+C stops following, not the job. A job whose directory was cleaned from its hosts
    prints the copy of its log kept here.
    """
    from driver.ops import control

    wait = parse_duration(reconnect, given("reconnect", "--reconnect")) if reconnect is not None else None
    code = control.logs(job, write_line, follow=follow, host=host, tail=tail, reconnect=wait)
    if follow:  # the end, as a foreground train ends
        from driver.job import store as jobs

        record = jobs.resolve(job)
        why = f" ({record.stopped})" if record.stopped else ""
        click.echo(f"job {record.id}: {jobs.shown_state(record)}{why}, exit code {code}", err=True)
        for host_name, rc in sorted(record.host_rc.items()):
            click.echo(f"  {host_name}: exit code {rc}", err=True)
        if record.output_dir and record.outputs_synced:
            click.echo(f"  outputs: {record.output_dir}/<host>/", err=True)
    return code


@command(codes=CONTROL_CODES)
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "--grace",
    help=f"Time between SIGTERM and SIGKILL (default: {_seconds(contract.default('grace', 'control'))}).",
)
def cancel(job: str, grace: str | None) -> int:
    """Stop JOB's process tree on every host (SIGTERM, then SIGKILL after --grace) and record its end.

    A job that has already ended is left as it is: its recorded end is shown.
    """
    from driver.ops import control

    seconds = parse_duration(grace, given("grace", "--grace"), allow_zero=True) if grace is not None else None
    record, stopped = control.cancel(job, seconds)
    code = "" if record.exit_code is None else f", exit code {record.exit_code}"
    if stopped:
        write_line(f"job {record.id}: cancelled{code}")
    else:
        write_line(f"job {record.id}: already {record.state}{code}; nothing to cancel")
    return 0


@command(codes=CLEAN_CODES)
@hosts_options
@click.option("--older-than", default="7d", show_default=True, help="Age of the job's end (e.g. 12h, 7d).")
@click.option("--force", is_flag=True, help="Also remove ended jobs whose outputs were never copied back.")
def clean(**params: Any) -> int:
    """Remove ended job directories older than --older-than from the hosts (running jobs are kept),
    and the venvs whose installation never finished (a set being installed right now is kept).

    A job whose outputs were never copied back is kept (`driver status JOB` copies them) unless --force.
    """
    from driver.ops import control

    age = parse_duration(params["older_than"], "--older-than", allow_zero=True)
    removed = control.clean(params["inventory"], params["limit"], age, force=params["force"])
    for host in sorted(removed):
        got = removed[host]
        venvs = ""
        if got["venvs"]:
            venvs = f", {len(got['venvs'])} unfinished venvs ({got['kb'] / 1024:.1f} MiB)"
        write_line(f"{host}: removed {len(got['jobs'])} job directories{venvs}")
        if got["uncollected"]:
            write_line(
                f"{host}: kept {len(got['uncollected'])} ended jobs whose outputs were never copied back "
                f"({', '.join(got['uncollected'])}): `driver status JOB` copies them, --force removes them"
            )
    return 0


@click.group(name="cache")
def cache_group() -> None:
    """The requirement sets (venvs) cached on the hosts by provisioning."""


@command(name="list", codes=CACHE_CODES)
@hosts_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def cache_list(**params: Any) -> int:
    """Each host's cached sets: their packages, size, last use, and the running jobs that use them."""
    from driver.ops import cache

    found = cache.list_sets(params["inventory"], params["limit"])
    if params["as_json"]:
        write_line(json.dumps({"hosts": found}, indent=2))
        return 0
    for host in sorted(found):
        sets = found[host]
        total = sum(s["kb"] for s in sets) / 1024
        write_line(f"{host}: {len(sets)} sets, {total:.1f} MiB")
        for s in sorted(sets, key=lambda s: s["last_used"], reverse=True):
            packages = ", ".join(s["requirements"][:6]) + (", ..." if len(s["requirements"]) > 6 else "")
            using = f"; used by {', '.join(s['in_use'])}" if s["in_use"] else ""
            write_line(
                f"  {s['key']}  {s['kb'] / 1024:8.1f} MiB  last used {_when(s['last_used'])}  "
                f"{packages or '-'}{using}"
            )
    return 0


@command(name="prune", codes=CACHE_CODES)
@hosts_options
@click.option("--older-than", default="7d", show_default=True, help="Only sets last used this long ago.")
@click.option(
    "--keep", type=click.IntRange(min=0), default=0, show_default=True, help="Keep the N newest sets."
)
def cache_prune(**params: Any) -> int:
    """Remove the cached sets that no running job uses, last used --older-than ago, beyond --keep N.

    A set a running job uses is never removed; nor one being built right now.
    """
    from driver.ops import cache

    age = parse_duration(params["older_than"], "--older-than", allow_zero=True)
    done = cache.evict(params["inventory"], params["limit"], age, params["keep"])
    for host in sorted(done):
        got = done[host]
        write_line(
            f"{host}: removed {len(got.get('removed', []))} sets ({got.get('kb', 0) / 1024:.1f} MiB), "
            f"kept {len(got.get('kept', []))}"
        )
    return 0


cache_group.add_command(cache_list)
cache_group.add_command(cache_prune)


@click.group(name="config")
def config_group() -> None:
    """The defaults in effect: environment (REMOTE_TRAINER_*) and config file, under the command line."""


@command(name="show", codes=(("0", "the settings were shown"), "2"))
@click.option(
    "--command", "for_command", default="train", show_default=True, help="The command to show them for."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def config_show(for_command: str, as_json: bool) -> int:
    """Print each setting in effect for a command, its value and where it comes from."""
    from driver.cli import config

    loaded = config.load()
    command_obj = main.commands.get(for_command)
    if command_obj is None:
        raise UsageError(f"no command {for_command!r}", hint=f"commands: {', '.join(sorted(main.commands))}")
    params = {p.name: p for p in command_obj.params if p.name in config.SETTINGS and p.expose_value}
    shown = {}
    for name, param in sorted(params.items()):
        plain = param.default if isinstance(param.default, str | int | float | bool) else None  # not UNSET
        value, source = config.effective(loaded, for_command, name, plain)
        shown[name] = {"value": value, "source": source, "env": config.envvar(name)}
    if as_json:
        write_line(json.dumps({"config_file": str(loaded.path), "command": for_command, "settings": shown}))
        return 0
    exists = "" if loaded.path.is_file() else " (none)"
    write_line(f"config file: {loaded.path}{exists}")
    for name, got in shown.items():
        write_line(f"{name} = {json.dumps(got['value'])}  # {got['source']}")
    return 0


config_group.add_command(config_show)


@command(name="completion", codes=(("0", "the script was printed"), "2"))
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> int:
    """Print the completion script for SHELL (click's): job ids, inventory hosts, options.

    \b
    bash:  eval "$(driver completion bash)"     (e.g. in ~/.bashrc)
    zsh:   eval "$(driver completion zsh)"      (e.g. in ~/.zshrc)
    fish:  driver completion fish > ~/.config/fish/completions/driver.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    write_line(cls(main, {}, "driver", "_DRIVER_COMPLETE").source())
    return 0


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


for _command in (
    train,
    provision,
    jobs_command,
    status,
    wait,
    logs,
    cancel,
    clean,
    submit,
    cluster,
    cache_group,
    config_group,
    completion,
):
    main.add_command(_command)
settings_from_environment(main)

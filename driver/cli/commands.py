"""The `driver` command: click options in, one library call, output and the exit code out.

All errors end here: a DriverError becomes one `error:` line and one `hint:` line on stderr and its
exit code; a traceback is shown only with --debug.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from driver.cli.options import hosts_options, requirements_from, requirements_options
from driver.errors import HELP_EXIT_CODES, DriverError
from driver.execution.events import describe_report
from driver.job.spec import JobSpec, parse_duration, parse_env, parse_nodes, parse_nproc
from driver.job.staging import parse_size

log = logging.getLogger("driver")

EPILOG = HELP_EXIT_CODES.replace("\n", "\n\n\b\n", 1)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{prefix}{record.getMessage()}"


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("driver")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run(debug: bool, action: Callable[[], int]) -> NoReturn:
    """Run a command's action; map every error to its exit code in this one place."""
    try:
        code = action()
    except DriverError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        if debug:
            log.exception("traceback")
        code = exc.exit_code
    except Exception as exc:
        unexpected = DriverError(f"unexpected failure: {exc}", hint="rerun with --debug and report it")
        click.echo(f"error: {unexpected.message}\nhint: {unexpected.hint}", err=True)
        if debug:
            log.exception("traceback")
        code = unexpected.exit_code
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remote-trainer")
def main() -> None:
    """remote-trainer: run training scripts on machines outside a Kubernetes cluster."""


@click.command(epilog=EPILOG)
@click.argument("script", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@hosts_options
@requirements_options
@click.option("--no-provision", is_flag=True, help="Skip preparing the host (python, requirements).")
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Directory staged as the script's working dir."
)
@click.option(
    "-e", "--env", "env", multiple=True, metavar="K=V", help="Environment variable (K alone: from here)."
)
@click.option("--timeout", help="Stop the job after this long (e.g. 90s, 30m, 2h); exit 124.")
@click.option("--grace", default="10s", show_default=True, help="Time between SIGTERM and SIGKILL on stop.")
@click.option(
    "-d", "--detach", is_flag=True, help="Start the job, print its id and return (see logs, status)."
)
@click.option(
    "--output", default="outputs", show_default=True, help="Output directory, relative to the job's cwd."
)
@click.option(
    "--output-dir", type=click.Path(path_type=Path), help="Local directory for the outputs (<host>/...)."
)
@click.option(
    "--sync-every", metavar="DURATION", help="Also bring the outputs back this often while it runs."
)
@click.option("--max-workdir-size", default="2G", show_default=True, help="Refuse a larger --workdir.")
@click.option("--nodes", help="One job over N matched hosts (or 'all'): NODE_RANK, NNODES, MASTER_ADDR...")
@click.option(
    "--launcher", type=click.Choice(["torchrun"]), help="Start the script under torchrun on each node."
)
@click.option(
    "--nproc-per-node",
    metavar="N|gpu|auto",
    help="Processes per node under torchrun: a number (default 1), gpu (one per GPU), cpu or auto.",
)
@click.option("--master-port", type=int, default=29500, show_default=True, help="Rendezvous port on rank 0.")
def train(**params: Any) -> None:
    """Run SCRIPT with ARGS on the inventory hosts, showing its output live.

    Put `--` before the script's own options: driver train train.py -i hosts -- --epochs 3

    The host is prepared first (a python, and the requirements in a cached venv) unless
    --no-provision. The driver exits with the script's exit code.
    """
    from driver.ops.train import train as run_train  # imports ansible_runner: only when needed

    _setup_logging(params.pop("verbose"))
    debug = params.pop("debug")

    def action() -> int:
        requirements = requirements_from(params)
        spec = JobSpec(
            script=params["script"],
            args=list(params["args"]),
            inventory=params["inventory"],
            limit=params["limit"],
            workdir=params["workdir"],
            python=requirements.python,
            env=parse_env(params["env"]),
            timeout=parse_duration(params["timeout"]) if params["timeout"] is not None else None,
            grace=parse_duration(params["grace"], "--grace", allow_zero=True),
            requirements=requirements,
            provision=not params["no_provision"],
            detach=params["detach"],
            output=params["output"],
            output_dir=params["output_dir"],
            sync_every=parse_duration(params["sync_every"], "--sync-every") if params["sync_every"] else None,
            max_workdir_size=parse_size(params["max_workdir_size"]),
            nodes=parse_nodes(params["nodes"], params["launcher"]),
            launcher=params["launcher"] or "",
            nproc_per_node=parse_nproc(params["nproc_per_node"], params["launcher"]),
            master_port=params["master_port"],
        )
        result = run_train(spec, _write_line, accept_new_host_keys=params["accept_new_host_keys"])
        if result.detached:
            _write_line(result.job_id)
        return result.exit_code

    _run(debug, action)


@click.command(epilog=EPILOG)
@hosts_options
@requirements_options
def provision(**params: Any) -> None:
    """Prepare the inventory hosts to run scripts: a python, and the requirements in a cached venv.

    Prints one line per host saying what was found and done. Running it again on a prepared host
    changes nothing and takes a fraction of a second per host.
    """
    from driver.ops.provision import provision as run_provision

    _setup_logging(params.pop("verbose"))
    debug = params.pop("debug")

    def action() -> int:
        requirements = requirements_from(params)
        reports = run_provision(
            params["inventory"],
            requirements,
            limit=params["limit"],
            accept_new_host_keys=params["accept_new_host_keys"],
        )
        for host in sorted(reports):
            _write_line(f"{host}: {describe_report(reports[host])}")
        return 0

    _run(debug, action)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@click.command(name="jobs")
@click.option("-v", "--verbose", count=True, help="More detail.")
def jobs_command(verbose: int) -> None:
    """List the jobs of this machine's driver (newest last); `driver status JOB` refreshes one."""
    from driver.job import store as jobs

    _setup_logging(verbose)

    def action() -> int:
        rows = [("JOB", "SCRIPT", "HOSTS", "STATE", "STARTED", "ENDED", "EXIT")]
        for r in jobs.all_records():
            code = "-" if r.exit_code is None else str(r.exit_code)
            hosts = ",".join(r.hosts) or "-"
            rows.append((r.id, Path(r.script).name, hosts, r.state, _when(r.started), _when(r.ended), code))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            _write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        return 0

    _run(False, action)


@click.command()
@click.argument("job")
@click.option("-v", "--verbose", count=True, help="Show Ansible's progress (-v), and details (-vv).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def status(job: str, verbose: int, debug: bool) -> None:
    """Ask the hosts how JOB is doing (running, ended with its exit code, or lost) and record it."""
    from driver.ops import control

    _setup_logging(verbose)

    def action() -> int:
        from driver.execution.play import report_copy_errors

        record, session = control.status(job)
        _write_line(
            f"job {record.id}: {record.state}"
            + (f", exit code {record.exit_code}" if record.exit_code is not None else "")
        )
        for o in sorted(session.outcomes, key=lambda o: o.host):
            rc = "" if o.rc is None else f" (exit code {o.rc})"
            _write_line(
                f"  {o.host}: {o.state}{rc}; started {_when(_float(o.result.get('rt_started')))}, "
                f"ended {_when(_float(o.result.get('rt_ended')))}"
            )
        if record.output_dir and record.outputs_synced:
            _write_line(f"  outputs: {record.output_dir}")
        report_copy_errors(session.copy_errors, 0)
        return 0

    _run(debug, action)


@click.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="Keep following until the job ends; exit with its code.")
@click.option("--host", help="Only this host's log.")
@click.option("-v", "--verbose", count=True, help="Show Ansible's progress (-v), and details (-vv).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def logs(job: str, follow: bool, host: str | None, verbose: int, debug: bool) -> None:
    """Print JOB's log from the start, from every host (prefixed with the host when several).

    With -f, follow it live until the job ends, then exit with the job's exit code. It works from any
    terminal, after the driver that started the job was killed, the connection dropped or this machine
    restarted; Ctrl+C stops following, not the job.
    """
    from driver.ops import control

    _setup_logging(verbose)
    _run(debug, lambda: control.logs(job, _write_line, follow=follow, host=host))


@click.command()
@click.argument("job")
@click.option("--grace", default="10s", show_default=True, help="Time between SIGTERM and SIGKILL.")
@click.option("-v", "--verbose", count=True, help="Show Ansible's progress (-v), and details (-vv).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def cancel(job: str, grace: str, verbose: int, debug: bool) -> None:
    """Stop JOB's process tree on every host (SIGTERM, then SIGKILL after --grace) and record its end."""
    from driver.ops import control

    _setup_logging(verbose)

    def action() -> int:
        record = control.cancel(job, parse_duration(grace, "--grace", allow_zero=True))
        _write_line(f"job {record.id}: {record.state}")
        return 0

    _run(debug, action)


@click.command()
@hosts_options
@click.option("--older-than", default="7d", show_default=True, help="Age of the job's end (e.g. 12h, 7d).")
def clean(**params: Any) -> None:
    """Remove ended job directories older than --older-than from the hosts (running jobs are kept),
    and the venvs whose installation never finished (a set being installed right now is kept)."""
    from driver.ops import control

    _setup_logging(params["verbose"])

    def action() -> int:
        age = parse_duration(params["older_than"], "--older-than", allow_zero=True)
        removed = control.clean(params["inventory"], params["limit"], age)
        for host in sorted(removed):
            got = removed[host]
            venvs = ""
            if got["venvs"]:
                venvs = f", {len(got['venvs'])} unfinished venvs ({got['kb'] / 1024:.1f} MiB)"
            _write_line(f"{host}: removed {len(got['jobs'])} job directories{venvs}")
        return 0

    _run(params["debug"], action)


# `driver train` options that a TrainJob cannot carry: refused with what to do instead.
TRAIN_ONLY = {
    "--workdir": "a TrainJob carries only the script; put code and data on the host",
    "--detach": "`driver submit` without --follow returns at once; the TrainJob runs in the cluster",
    "--output": "outputs stay on the host (~/.remote-trainer/jobs/<id>/); copy them with `driver train`",
    "--output-dir": "outputs stay on the host; copy them with `driver train`",
    "--inventory": "the runtime's inventory is the ConfigMap remote-trainer-inventory (`make cluster-up`)",
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


@click.command()
@click.argument("script", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", help="TrainJob name (default: random, like the Kubeflow SDK's).")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the TrainJob.")
@click.option(
    "-e", "--env", "env", multiple=True, metavar="K=V", help="Environment variable (stored in the TrainJob)."
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
@click.option("--context", help="kubeconfig context (default: the current one).")
@click.option("--dry-run", is_flag=True, help="Print the TrainJob as YAML instead of creating it.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@_train_only_options
def submit(**params: Any) -> None:
    """Create a TrainJob on the `remote` ClusterTrainingRuntime that runs SCRIPT ARGS on the external hosts.

    The runtime's pod streams the script's output (`kubectl logs`) and ends with its exit code. With
    --follow, that output is streamed here and the script's exit code is this command's; Ctrl+C then
    deletes the TrainJob, which stops the remote run (unless --keep-on-interrupt).
    """
    from driver.cluster import submit as submitting

    _setup_logging(0)

    def action() -> int:
        obj = submitting.trainjob(
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

            sys.stdout.write(yaml.safe_dump(obj, sort_keys=False))
            return 0
        created = submitting.create(obj, params["context"])
        name = created["metadata"]["name"]
        if not params["follow"]:
            _write_line(f"trainjob/{name} created in namespace {params['namespace']}")
            return 0
        # Following: stdout is the script's output alone, what the driver says goes to stderr.
        click.echo(f"trainjob/{name} created in namespace {params['namespace']}", err=True)
        from driver.cluster import follow

        def write(data: bytes) -> None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

        ending = follow.follow(name, params["namespace"], write, keep=params["keep_on_interrupt"])
        why = f": {ending.message}" if ending.message else ""
        click.echo(
            f"trainjob/{name} {ending.condition or 'ended'} (exit code {ending.exit_code}){why}", err=True
        )
        return ending.exit_code

    _run(params["debug"], action)


@click.group()
def cluster() -> None:
    """The Kubernetes side: Kubeflow Trainer and the `remote` runtime (see `make cluster-up`)."""


@cluster.command(name="status")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the TrainJobs.")
@click.option("--context", help="kubeconfig context (default: the current one).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def cluster_status(namespace: str, context: str | None, debug: bool) -> None:
    """Show what is installed and ready; exit 83 when something is missing."""
    from driver.cluster import status as checking

    _setup_logging(0)

    def action() -> int:
        checks = checking.status(namespace, context)
        for check in checks:
            _write_line(f"{'ok' if check.ok else 'MISSING':8s} {check.name}: {check.detail}")
        if not all(check.ok for check in checks):
            raise checking.ClusterNotReady(
                "the cluster is not ready for TrainJobs on runtime `remote`", hint="run `make cluster-up`"
            )
        return 0

    _run(debug, action)


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


for command in (train, provision, jobs_command, status, logs, cancel, clean, submit, cluster):
    main.add_command(command)

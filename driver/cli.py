"""The `driver` command: click options in, one library call, output and the exit code out.

All errors end here: a DriverError becomes one `error:` line and one `hint:` line on stderr and its
exit code; a traceback is shown only with --debug.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from driver.errors import HELP_EXIT_CODES, DriverError
from driver.events import describe_report
from driver.options import hosts_options, requirements_from, requirements_options
from driver.spec import JobSpec, parse_duration, parse_env

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
def train(**params: Any) -> None:
    """Run SCRIPT with ARGS on the inventory hosts, showing its output live.

    Put `--` before the script's own options: driver train train.py -i hosts -- --epochs 3

    The host is prepared first (a python, and the requirements in a cached venv) unless
    --no-provision. The driver exits with the script's exit code.
    """
    from driver.train import train as run_train  # imports ansible_runner: only when needed

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
            grace=parse_duration(params["grace"]),
            requirements=requirements,
            provision=not params["no_provision"],
        )
        return run_train(spec, _write_line, accept_new_host_keys=params["accept_new_host_keys"]).exit_code

    _run(debug, action)


@click.command(epilog=EPILOG)
@hosts_options
@requirements_options
def provision(**params: Any) -> None:
    """Prepare the inventory hosts to run scripts: a python, and the requirements in a cached venv.

    Prints one line per host saying what was found and done. Running it again on a prepared host
    changes nothing and takes a fraction of a second per host.
    """
    from driver.provision import provision as run_provision

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


main.add_command(train)
main.add_command(provision)

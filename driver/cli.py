"""The `driver` command: click options in, one library call, output and the exit code out.

All errors end here: a DriverError becomes one `error:` line and one `hint:` line on stderr and its
exit code; a traceback is shown only with --debug.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from driver.errors import EXIT_DRIVER_FAILURE, EXIT_USAGE, HELP_EXIT_CODES, DriverError
from driver.spec import JobSpec, parse_duration, parse_env

log = logging.getLogger("driver")


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


def _fail(exc: DriverError, debug: bool) -> None:
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    if debug:
        log.exception("traceback")
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remote-trainer")
def main() -> None:
    """remote-trainer: run training scripts on machines outside a Kubernetes cluster."""


@click.command(
    context_settings={"ignore_unknown_options": False},
    epilog=HELP_EXIT_CODES.replace("\n", "\n\n\b\n", 1),
)
@click.argument("script", type=click.Path(path_type=Path, dir_okay=True, exists=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "-i", "--inventory", help="Ansible inventory: file, directory or comma list. Default: this machine."
)
@click.option("-l", "--limit", help="Host pattern selecting the inventory hosts to run on.")
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Directory staged as the script's working dir."
)
@click.option("--python", "python", default="python3", show_default=True, help="Interpreter on the host.")
@click.option("-e", "--env", "env", multiple=True, metavar="K=V", help="Environment variable for the script.")
@click.option("--timeout", help="Stop the job after this long (e.g. 90s, 30m, 2h); exit 124.")
@click.option("--grace", default="10s", show_default=True, help="Time between SIGTERM and SIGKILL on stop.")
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Accept and remember the key of a host not yet in known_hosts (a changed key still fails).",
)
@click.option("-v", "--verbose", count=True, help="Show Ansible's progress (-v), and details (-vv).")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def train(
    script: Path,
    args: tuple[str, ...],
    inventory: str | None,
    limit: str | None,
    workdir: Path | None,
    python: str,
    env: tuple[str, ...],
    timeout: str | None,
    grace: str,
    accept_new_host_keys: bool,
    verbose: int,
    debug: bool,
) -> None:
    """Run SCRIPT with ARGS on the inventory hosts, showing its output live.

    Put `--` before the script's own options: driver train train.py -i hosts -- --epochs 3

    The driver exits with the script's exit code.
    """
    from driver.train import train as run_train  # imports ansible_runner: only when needed

    _setup_logging(verbose)
    try:
        spec = JobSpec(
            script=script,
            args=list(args),
            inventory=inventory,
            limit=limit,
            workdir=workdir,
            python=python,
            env=parse_env(env),
            timeout=parse_duration(timeout) if timeout is not None else None,
            grace=parse_duration(grace),
        )
        result = run_train(spec, _write_line, accept_new_host_keys=accept_new_host_keys)
    except DriverError as exc:
        _fail(exc, debug)
    except Exception as exc:  # the one place where anything unexpected becomes an exit code
        _fail(DriverError(f"unexpected failure: {exc}", hint="rerun with --debug and report it"), debug)
    sys.exit(result.exit_code)


main.add_command(train)

__all__ = ["EXIT_DRIVER_FAILURE", "EXIT_USAGE", "main"]

"""The one click wrapper of the commands: -v/--debug, logging, and every error mapped to its exit code here.

A command's function returns its exit code; a DriverError becomes one `error:` line and one `hint:` line
on stderr and its exit code; a traceback is shown only with --debug; a closed stdout (`driver jobs | head`)
ends quietly.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from driver.errors import EXIT_CODES, DriverError
from driver.execution.events import NOTICE

log = logging.getLogger("driver")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{prefix}{record.getMessage()}"


def setup_logging(verbose: int) -> None:
    level = NOTICE if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("driver")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def exit_codes_epilog(codes: tuple[str | tuple[str, str], ...] | None = None) -> str:
    """The exit-code table as a click epilog (\\b keeps its lines): every row, or the rows of `codes`,
    where a (code, meaning) pair says what the code means for that command."""
    table = dict(EXIT_CODES)
    wanted = [(c, table[c]) if isinstance(c, str) else c for c in codes] if codes else list(EXIT_CODES)
    rows = sorted(wanted, key=lambda row: [c for c, _ in EXIT_CODES].index(row[0]))
    width = max(len(c) for c, _ in rows) + 2
    return "\b\nExit codes:\n" + "\n".join(f"  {c.ljust(width)}{m}" for c, m in rows)


def finish(debug: bool, action: Callable[[], int]) -> NoReturn:
    """Run a command's action; map every error to its exit code in this one place."""
    try:
        code = action()
        sys.stdout.flush()
    except DriverError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        if debug:
            log.exception("traceback")
        code = exc.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`driver jobs | head -1`): end quietly, as other CLIs do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as exc:
        unexpected = DriverError(f"unexpected failure: {exc}", hint="rerun with --debug and report it")
        click.echo(f"error: {unexpected.message}\nhint: {unexpected.hint}", err=True)
        if debug:
            log.exception("traceback")
        code = unexpected.exit_code
    sys.exit(code)


def command(
    name: str | None = None,
    *,
    codes: tuple[str | tuple[str, str], ...] | None = None,
    cls: type[click.Command] = click.Command,
) -> Callable[[Callable[..., int]], click.Command]:
    """A driver command: the function gets its options and returns the exit code; -v and --debug are added,
    logging is set up, and errors are mapped by finish(). `codes`: the exit codes its --help lists."""

    def wrap(fn: Callable[..., int]) -> click.Command:
        @functools.wraps(fn)
        def run(*args: Any, verbose: int, debug: bool, **kwargs: Any) -> None:
            setup_logging(verbose)
            finish(debug, lambda: fn(*args, **kwargs))

        run = click.option("--debug", is_flag=True, help="Show a traceback on errors.")(run)
        run = click.option(
            "-v", "--verbose", count=True, help="Show Ansible's progress (-v), and details (-vv)."
        )(run)
        return click.command(name=name, cls=cls, epilog=exit_codes_epilog(codes))(run)

    return wrap

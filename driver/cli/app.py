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
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from driver.cli.terminal import for_terminal
from driver.errors import EXIT_CODES, EXIT_OK, EXIT_SIGINT, EXIT_USAGE, DriverError, ExitCode, exit_meaning
from driver.execution.events import NOTICE
from driver.execution.relay import keeps_bytes
from driver.redact import redact

log = logging.getLogger("driver")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        # Messages quote hosts (their errors, pip's lines, Slurm's reasons): no escape sequence of theirs
        # reaches a terminal (driver/cli/terminal.py), and no URL's credentials are shown (driver/redact.py).
        return for_terminal(redact(f"{prefix}{record.getMessage()}"), sys.stderr)


def setup_logging(verbose: int) -> None:
    level = NOTICE if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("driver")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@keeps_bytes
def write_line(line: str) -> None:
    r"""Print a line with its newline; one that ends in "\r" (a progress bar's redraw) without it. Written as
    bytes, so that relayed bytes that are not UTF-8 (lone surrogates, see keeps_bytes) come out unchanged;
    on a terminal, escape sequences other than a progress bar's and colors are shown, not obeyed
    (driver/cli/terminal.py)."""
    line = for_terminal(line, sys.stdout)
    end = "" if line.endswith("\r") else "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a stdout without bytes (replaced by a test harness)
        sys.stdout.write((line + end).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        sys.stdout.flush()
        return
    encoding = sys.stdout.encoding or "utf-8"
    try:
        data = (line + end).encode(encoding, "surrogateescape")
    except UnicodeEncodeError:  # a character the terminal's encoding lacks
        data = (line + end).encode(encoding, "replace")
    sys.stdout.flush()  # what click.echo wrote before goes first
    buffer.write(data)
    buffer.flush()


# The exit codes a command's --help lists: codes of the table (driver/errors.py), each with the table's
# meaning, or a (code, meaning) pair that says what the code means for that command.
Codes = Sequence[ExitCode | tuple[ExitCode, str]]


def exit_codes_epilog(codes: Codes | None = None) -> str:
    """The exit-code table as a click epilog (\\b keeps its lines): every row, or the rows of `codes`."""
    order = [c for c, _ in EXIT_CODES]
    wanted = (
        [(str(c[0]), c[1]) if isinstance(c, tuple) else (str(c), exit_meaning(c)) for c in codes]
        if codes
        else list(EXIT_CODES)
    )
    rows = sorted(wanted, key=lambda row: order.index(row[0]))
    width = max(len(c) for c, _ in rows) + 2
    return "\b\nExit codes:\n" + "\n".join(f"  {c.ljust(width)}{m}" for c, m in rows)


# The hint of an error raised without one: every error line has its hint line.
FALLBACK_HINT = "rerun with -vv to see what Ansible and the hosts said (--debug adds a traceback)"


def report(exc: DriverError) -> int:
    """Print an error's one `error:` line and its `hint:` line on stderr; its exit code."""
    click.echo(for_terminal(redact(f"error: {exc.message}"), sys.stderr), err=True)
    click.echo(for_terminal(redact(f"hint: {exc.hint or FALLBACK_HINT}"), sys.stderr), err=True)
    return exc.exit_code


class UsageProblem(click.UsageError):
    """A command line that cannot be right (exit 2), with its own hint instead of `see --help`."""

    def __init__(self, message: str, ctx: click.Context | None = None, hint: str | None = None) -> None:
        super().__init__(message, ctx)
        self.hint = hint


class DriverGroup(click.Group):
    """The `driver` group: click's own usage errors (unknown option, bad value, missing argument) are one
    `error:` line and one `hint:` line too, with exit 2, like every DriverError (see finish)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else "driver"
            hint = getattr(exc, "hint", None) or f"see `{path} --help`"
            message = exc.format_message()
            param = getattr(exc, "param", None)
            env = getattr(param, "envvar", None)
            typed = kwargs.get("args") or sys.argv[1:]
            opts = getattr(param, "opts", [])
            if isinstance(env, str) and env in os.environ and not any(a.split("=")[0] in opts for a in typed):
                message, hint = f"{message} (from {env})", f"fix or unset {env}"
            code = report(DriverError(message, hint=hint, exit_code=EXIT_USAGE))
        except click.ClickException as exc:  # not a usage error: still no code of the script's (1-123)
            code = report(DriverError(exc.format_message(), hint="see `driver --help`", exit_code=EXIT_USAGE))
        except click.Abort:
            code = report(DriverError("interrupted", hint="run it again", exit_code=EXIT_SIGINT))
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def finish(debug: bool, action: Callable[[], int]) -> NoReturn:
    """Run a command's action; map every error to its exit code in this one place."""
    try:
        code = action()
        sys.stdout.flush()
    except DriverError as exc:
        report(exc)
        if debug:
            log.exception("traceback")
        code = exc.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`driver jobs | head -1`): end quietly, as other CLIs do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_OK
    except Exception as exc:
        unexpected = DriverError(f"unexpected failure: {exc}", hint="rerun with --debug and report it")
        click.echo(redact(f"error: {unexpected.message}\nhint: {unexpected.hint}"), err=True)
        if debug:
            log.exception("traceback")
        code = unexpected.exit_code
    sys.exit(code)


def command(
    name: str | None = None,
    *,
    codes: Codes | None = None,
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

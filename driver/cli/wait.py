"""`driver wait JOB`: wait until a job has ended and exit with its exit code."""

from __future__ import annotations

import click

from driver.cli.app import command
from driver.cli.options import JOB_CODES, given, job_argument
from driver.errors import EXIT_STILL_RUNNING
from driver.job.spec import parse_duration


@command(codes=(*JOB_CODES, EXIT_STILL_RUNNING))
@job_argument
@click.option("--timeout", help=f"Give up after this long (exit {EXIT_STILL_RUNNING}; the job goes on).")
def wait(job: str, timeout: str | None) -> int:
    """Wait until JOB has ended (asking its hosts every 2 s) and exit with its exit code, like `logs -f`
    without the log."""
    from driver.ops import control

    return control.wait(
        job, parse_duration(timeout, given("timeout", "--timeout")) if timeout is not None else None
    )

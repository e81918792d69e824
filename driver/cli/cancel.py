"""`driver cancel JOB`: stop a job's process tree on every host and record its end."""

from __future__ import annotations

import click

from driver.cli.app import command, write_line
from driver.cli.options import JOB_CODES, given, job_argument, shown_seconds
from driver.errors import EXIT_OK
from driver.job import contract
from driver.job.spec import parse_duration


@command(codes=JOB_CODES)
@job_argument
@click.option(
    "--grace",
    help="Time between SIGTERM and SIGKILL "
    f"(default: {shown_seconds(contract.default('grace', 'control'))}).",
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
    return EXIT_OK

"""`driver logs JOB`: print a job's log from every host; with -f follow it and exit with the job's code."""

from __future__ import annotations

import click

from driver.cli.app import command, write_line
from driver.cli.options import JOB_CODES, given, job_argument
from driver.cli.render import followed_end
from driver.errors import EXIT_DISCONNECTED
from driver.job.spec import parse_duration


@command(codes=JOB_CODES)
@job_argument
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
    help="With -f: how long a host may stay unreachable before following stops "
    f"(exit {EXIT_DISCONNECTED}; the job goes on).",
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

        for line in followed_end(jobs.resolve(job), code):
            click.echo(line, err=True)
    return code

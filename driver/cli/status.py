"""`driver status JOB`: ask the hosts how a job is doing, record it and show it."""

from __future__ import annotations

import json

import click

from driver.cli.app import command, write_line
from driver.cli.options import JOB_CODES, job_argument
from driver.cli.render import stamp, when
from driver.errors import EXIT_OK


@command(codes=JOB_CODES)
@job_argument
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
                "started": stamp(o.result.get("rt_started")),
                "ended": stamp(o.result.get("rt_ended")),
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
                f"  {o.host}: {o.state}{rc}{why}; started {when(stamp(o.result.get('rt_started')))}, "
                f"ended {when(stamp(o.result.get('rt_ended')))}"
            )
        if record.output_dir and record.outputs_synced:
            write_line(f"  outputs: {record.output_dir}")
    if play is not None:
        report_copy_errors(play.copy_errors, EXIT_OK)
    if jobs.shown_state(record) == "lost":  # shown first; then the code `wait` and `logs -f` end with
        raise jobs.lost_error(record)
    return EXIT_OK

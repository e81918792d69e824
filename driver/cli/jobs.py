"""`driver jobs`: list the jobs of this machine's driver (and prune old records)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.render import when
from driver.errors import EXIT_BAD_VALUE, EXIT_DRIVER_FAILURE, EXIT_OK, DriverError
from driver.job.spec import parse_duration

log = logging.getLogger("driver")

JOBS_CODES: Codes = ((EXIT_OK, "the jobs were listed"), EXIT_DRIVER_FAILURE, EXIT_BAD_VALUE)

# Every state a job record can show (driver/job/store.py): `driver jobs --state` takes these.
JOB_STATES = ("starting", "running", "ended", "cancelled", "timeout", "lost", "failed", "abandoned")


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
        return EXIT_OK
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
                when(r.started),
                when(r.ended),
                code,
                reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK

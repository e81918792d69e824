"""`driver clean`: remove ended job directories and unfinished venvs from the hosts."""

from __future__ import annotations

from typing import Any

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.options import HOSTS_CODES, hosts_options
from driver.errors import (
    EXIT_BAD_VALUE,
    EXIT_DRIVER_FAILURE,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
)
from driver.job.spec import parse_duration

CLEAN_CODES: Codes = (
    (EXIT_OK, "the hosts were cleaned"),
    EXIT_DRIVER_FAILURE,
    (EXIT_SIGINT, "interrupted (Ctrl+C)"),
    (EXIT_SIGTERM, "the driver got SIGTERM"),
    EXIT_BAD_VALUE,
    *HOSTS_CODES,
)


@command(codes=CLEAN_CODES)
@hosts_options
@click.option("--older-than", default="7d", show_default=True, help="Age of the job's end (e.g. 12h, 7d).")
@click.option("--force", is_flag=True, help="Also remove ended jobs whose outputs were never copied back.")
def clean(**params: Any) -> int:
    """Remove ended job directories older than --older-than from the hosts (running jobs are kept),
    and the venvs whose installation never finished (a set being installed right now is kept).

    A job whose outputs were never copied back is kept (`driver status JOB` copies them) unless --force.
    """
    from driver.ops import control

    age = parse_duration(params["older_than"], "--older-than", allow_zero=True)
    removed = control.clean(params["inventory"], params["limit"], age, force=params["force"])
    for host in sorted(removed):
        got = removed[host]
        venvs = ""
        if got["venvs"]:
            venvs = f", {len(got['venvs'])} unfinished venvs ({got['kb'] / 1024:.1f} MiB)"
        write_line(f"{host}: removed {len(got['jobs'])} job directories{venvs}")
        if got["uncollected"]:
            write_line(
                f"{host}: kept {len(got['uncollected'])} ended jobs whose outputs were never copied back "
                f"({', '.join(got['uncollected'])}): `driver status JOB` copies them, --force removes them"
            )
    return EXIT_OK

"""`driver provision`: prepare the inventory hosts (a python, the requirements in a cached venv)."""

from __future__ import annotations

import json
from typing import Any

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.options import HOSTS_CODES, hosts_options, requirements_from, requirements_options
from driver.errors import (
    EXIT_BAD_REQUIREMENTS,
    EXIT_DRIVER_FAILURE,
    EXIT_NO_PYTHON,
    EXIT_OK,
    EXIT_REQUIREMENTS_FAILED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
)
from driver.execution.events import describe_report

PROVISION_CODES: Codes = (
    (EXIT_OK, "every host is ready"),
    EXIT_DRIVER_FAILURE,
    (EXIT_SIGINT, "interrupted (Ctrl+C); a venv left unfinished is rebuilt by the next run"),
    (EXIT_SIGTERM, "the driver got SIGTERM; a venv left unfinished is rebuilt by the next run"),
    EXIT_USAGE,
    *HOSTS_CODES,
    EXIT_NO_PYTHON,
    EXIT_REQUIREMENTS_FAILED,
    EXIT_BAD_REQUIREMENTS,
)


@command(codes=PROVISION_CODES)
@hosts_options
@requirements_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: each host's report.")
def provision(**params: Any) -> int:
    """Prepare the inventory hosts to run scripts: a python, and the requirements in a cached venv.

    Prints one line per host saying what was found and done. Running it again on a prepared host
    changes nothing and takes a fraction of a second per host.
    """
    from driver.ops.provision import provision as run_provision

    requirements = requirements_from(params)
    reports = run_provision(
        params["inventory"],
        requirements,
        limit=params["limit"],
        accept_new_host_keys=params["accept_new_host_keys"],
    )
    if params["as_json"]:
        write_line(json.dumps({"hosts": reports}, indent=2, sort_keys=True))
        return EXIT_OK
    for host in sorted(reports):
        write_line(f"{host}: {describe_report(reports[host])}")
    return EXIT_OK

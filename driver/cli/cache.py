"""`driver cache list|prune`: the requirement sets (venvs) cached on the hosts by provisioning."""

from __future__ import annotations

import json
from typing import Any

import click

from driver.cli.app import Codes, command, write_line
from driver.cli.options import HOSTS_CODES, hosts_options
from driver.cli.render import when
from driver.errors import (
    EXIT_BAD_VALUE,
    EXIT_DRIVER_FAILURE,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USAGE,
)
from driver.job.spec import parse_duration
from driver.redact import redact_all

CACHE_CODES: Codes = (
    (EXIT_OK, "done"),
    EXIT_DRIVER_FAILURE,
    (EXIT_SIGINT, "interrupted (Ctrl+C)"),
    EXIT_USAGE,
    EXIT_BAD_VALUE,
    *HOSTS_CODES,
)


@click.group(name="cache")
def cache_group() -> None:
    """The requirement sets (venvs) cached on the hosts by provisioning."""


@command(name="list", codes=CACHE_CODES)
@hosts_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def cache_list(**params: Any) -> int:
    """Each host's cached sets: their packages, size, last use, and the running jobs that use them."""
    from driver.ops import cache

    # Requirement lines may carry credentials (git+https://token@...): never shown.
    found = redact_all(cache.list_sets(params["inventory"], params["limit"]))
    if params["as_json"]:
        write_line(json.dumps({"hosts": found}, indent=2))
        return EXIT_OK
    for host in sorted(found):
        sets = found[host]
        total = sum(s["kb"] for s in sets) / 1024
        write_line(f"{host}: {len(sets)} sets, {total:.1f} MiB")
        for s in sorted(sets, key=lambda s: s["last_used"], reverse=True):
            packages = ", ".join(s["requirements"][:6]) + (", ..." if len(s["requirements"]) > 6 else "")
            using = f"; used by {', '.join(s['in_use'])}" if s["in_use"] else ""
            write_line(
                f"  {s['key']}  {s['kb'] / 1024:8.1f} MiB  last used {when(s['last_used'])}  "
                f"{packages or '-'}{using}"
            )
    return EXIT_OK


@command(name="prune", codes=CACHE_CODES)
@hosts_options
@click.option("--older-than", default="7d", show_default=True, help="Only sets last used this long ago.")
@click.option(
    "--keep", type=click.IntRange(min=0), default=0, show_default=True, help="Keep the N newest sets."
)
def cache_prune(**params: Any) -> int:
    """Remove the cached sets that no running job uses, last used --older-than ago, beyond --keep N.

    A set a running job uses is never removed; nor one being built right now.
    """
    from driver.ops import cache

    age = parse_duration(params["older_than"], "--older-than", allow_zero=True)
    done = cache.evict(params["inventory"], params["limit"], age, params["keep"])
    for host in sorted(done):
        got = done[host]
        write_line(
            f"{host}: removed {len(got.get('removed', []))} sets ({got.get('kb', 0) / 1024:.1f} MiB), "
            f"kept {len(got.get('kept', []))}"
        )
    return EXIT_OK


cache_group.add_command(cache_list)
cache_group.add_command(cache_prune)

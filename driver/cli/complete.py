"""Shell completion (click's, for bash, zsh and fish): job ids for JOB, inventory host names for --limit."""

from __future__ import annotations

import json
import os
import subprocess

import click
from click.shell_completion import CompletionItem


def complete_jobs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The ids of the job store's jobs (newest first) that start with what was typed, and `last`."""
    from driver.job import store

    items = [CompletionItem("last", help="the newest job")] if "last".startswith(incomplete) else []
    for record in reversed(store.all_records()):
        if record.id.startswith(incomplete):
            items.append(CompletionItem(record.id, help=f"{os.path.basename(record.script)} {record.state}"))
    return items


def complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The host (and group) names of the inventory given with -i (ansible-inventory reads it)."""
    inventory = ctx.params.get("inventory") or os.environ.get("REMOTE_TRAINER_INVENTORY")
    if not inventory:
        return [CompletionItem(name) for name in ("localhost",) if name.startswith(incomplete)]
    from driver.execution import assets

    command = [str(assets.tools_dir() / "ansible-inventory"), "-i", inventory, "--list"]
    # The driver's own ansible.cfg: one in the current directory (a cloned repository) could load its own
    # plugins, run at every TAB.
    env = {**os.environ, "ANSIBLE_CONFIG": str(assets.ansible_cfg())}
    try:
        listed = subprocess.run(
            command, capture_output=True, text=True, timeout=20, check=True, env=env
        ).stdout
        data = json.loads(listed)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    names = set(data.get("_meta", {}).get("hostvars", {}))
    names |= {group for group in data if group not in ("_meta", "all", "ungrouped")}
    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]


def complete_paths(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Files and directories, completed by the shell itself."""
    return [CompletionItem(incomplete, type="file")]

"""`cache`: the requirement sets (venvs) cached on the hosts: list them, evict the ones no job uses."""

from __future__ import annotations

from typing import Any

from driver.execution import assets
from driver.execution.play import Play
from driver.job.spec import check_inventory, new_job_id


def _run(inventory: str | None, limit: str | None, extravars: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if inventory is not None:
        check_inventory(inventory)
    play = Play(
        assets.state_dir() / "cache" / new_job_id(),
        inventory,
        limit,
        interrupt_message="interrupted ({signal}) while looking at the hosts' caches",
        interrupt_hint="run it again",
    )
    play.play("cache.yml", extravars)
    return {host: report.get("cache") or {} for host, report in play.reports.items()}


def list_sets(inventory: str | None, limit: str | None) -> dict[str, list[dict[str, Any]]]:
    """host -> its ready sets: key, venv, requirements, kb, created, last_used, in_use (running job ids)."""
    found = _run(inventory, limit, {"remote_host_cache_action": "list"})
    return {host: list(got.get("sets", [])) for host, got in found.items()}


def evict(
    inventory: str | None, limit: str | None, older_than: float, keep: int
) -> dict[str, dict[str, Any]]:
    """Remove the sets no running job uses, last used older_than seconds ago or more, beyond the keep
    most recently used; host -> {removed: keys, kept: keys, kb: space freed}."""
    extravars = {
        "remote_host_cache_action": "evict",
        "remote_host_cache_older_than": older_than,
        "remote_host_cache_keep": keep,
    }
    return _run(inventory, limit, extravars)

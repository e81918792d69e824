"""`provision`: make hosts ready to run scripts (the remote_host role alone) and report what was done."""

from __future__ import annotations

import logging
from typing import Any

from driver.execution import assets
from driver.execution.events import HostReport, describe_report
from driver.execution.play import Play
from driver.job.spec import Requirements, check_inventory, new_job_id

log = logging.getLogger("driver.provision")


class _Provision(Play):
    def handle(self, item: object) -> bool:
        if isinstance(item, HostReport):
            log.info("[%s] %s", item.host, describe_report(item.report))
        return True


def provision(
    inventory: str | None,
    requirements: Requirements,
    *,
    limit: str | None = None,
    accept_new_host_keys: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run the remote_host role on the hosts; return each host's report (python, venv, action).

    Raises the DriverError of the first host that failed.
    """
    if inventory is not None:
        check_inventory(inventory)
    requirements.validate()
    play = _Provision(
        assets.state_dir() / "provision" / new_job_id(),
        inventory,
        limit,
        interrupt_message="interrupted ({signal}) while preparing the hosts",
        interrupt_hint="run it again: a venv left unfinished is rebuilt",
    )
    play.play("provision.yml", requirements.extravars(), accept_new_host_keys=accept_new_host_keys)
    return play.reports

"""`provision`: make hosts ready to run scripts (the remote_host role alone) and report what was done."""

from __future__ import annotations

import logging
from typing import Any

from driver.execution import assets, playbook
from driver.execution.events import HostReport, describe_report
from driver.execution.play import Session, local_inventory, signals
from driver.job.spec import Requirements, check_inventory, new_job_id

log = logging.getLogger("driver.ops.provision")


class _Provision(Session):
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
    local = assets.state_dir() / "provision" / new_job_id()
    (local / "runner").mkdir(parents=True, mode=0o700)
    session = _Provision(inventory, limit, local)
    session.interrupt_message = "interrupted ({signal}) while preparing the hosts"
    session.interrupt_hint = "run it again: a venv left unfinished is rebuilt"
    source = inventory or local_inventory(local / "local-inventory.ini")
    with signals(session.interrupt):
        session.run = playbook.start(
            "provision.yml",
            private_data_dir=local / "runner",
            inventory=source,
            limit=limit,
            extravars=requirements.extravars(),
            event_handler=session.on_event,
            accept_new_host_keys=accept_new_host_keys,
        )
        while not session.run.wait(0.2):
            pass
        session.run.scrub_artifacts()
    session.raise_for_hosts()
    return session.reports

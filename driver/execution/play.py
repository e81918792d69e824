"""One playbook run as the driver sees it: the one way train, provision, control and clean run a play.

A Play owns its private directory (runner artifacts), routes SIGINT/SIGTERM while it runs, starts the
playbook through ansible-runner, waits, scrubs the artifacts, collects per-host outcomes and reports, and
raises the run's typed error.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driver.errors import (
    AnsibleFailure,
    BadInventory,
    Disconnected,
    DriverError,
    HostUnreachable,
    Interrupted,
    NoHostsMatched,
    OutputsNotCopied,
)
from driver.execution import playbook
from driver.execution.events import (
    NOTICE,
    Connection,
    HostOutcome,
    HostReport,
    Launched,
    NoHosts,
    Output,
    Progress,
    Queue,
    Translator,
)
from driver.execution.relay import Relay

log = logging.getLogger("driver.play")
# Where a Slurm job stands in the queue: shown even under --quiet (a pod's log, say), since a job that waits
# says nothing else.
queue_log = logging.getLogger("driver.queue")


def local_inventory(path: Path) -> str:
    """This machine over the local connection, with the driver's own python for Ansible's side."""
    path.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    return str(path)


@contextmanager
def signals(handler: Callable[[str], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to handler for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda s, f: handler("SIGINT")),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: handler("SIGTERM")),
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Play:
    """Collects what a playbook run reports; subclasses add what their verb needs (see ops/train.py)."""

    def __init__(
        self,
        local: Path,
        inventory: str | None,
        limit: str | None,
        relay: Relay | None = None,
        *,
        interrupt_message: str = "interrupted ({signal}): Ansible was stopped",
        interrupt_hint: str | None = None,
    ) -> None:
        self.local = local
        (local / "runner").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.relay = relay
        self.hosts: list[str] = []
        self.inventory = inventory
        self.limit = limit
        self.translator = Translator()
        self.outcomes: list[HostOutcome] = []
        self.copy_errors: list[OutputsNotCopied] = []  # outputs that did not come back (job unaffected)
        self.reports: dict[str, dict[str, Any]] = {}
        self.no_hosts = False
        self.run: playbook.PlaybookRun | None = None
        # Set by interrupt(): the signal, and what raise_for_hosts() then says.
        self.interrupted: str | None = None
        self.interrupt_message = interrupt_message
        self.interrupt_hint = interrupt_hint
        # The job this run follows (its id names it in what a lost connection says), and the hosts the
        # driver stopped waiting for while the job goes on there.
        self.job_id: str | None = None
        self.gone: dict[str, Connection] = {}
        self.queued: dict[str, Queue] = {}  # the Slurm executor: each host's last word from Slurm

    def play(
        self,
        name: str,
        extravars: dict[str, Any],
        *,
        limit: str | None = None,
        accept_new_host_keys: bool = False,
        on_signal: Callable[[str], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        raise_errors: bool = True,
    ) -> Play:
        """Run playbooks/<name> to its end (signals go to on_signal, default interrupt()); raise its error."""
        inventory = self.inventory or local_inventory(self.local / "local-inventory.ini")
        if "," not in inventory and os.path.exists(inventory):
            inventory = os.path.abspath(inventory)  # ansible-runner runs elsewhere: relative to where we are
        with signals(on_signal or self.interrupt):
            self.run = playbook.start(
                name,
                private_data_dir=self.local / "runner",
                inventory=inventory,
                limit=limit if limit is not None else self.limit,
                extravars=extravars,
                event_handler=self.on_event,
                accept_new_host_keys=accept_new_host_keys,
                ssh_inventory=inventory if self.inventory else None,
            )
            try:
                while not self.run.wait(0.2):
                    if on_tick is not None:
                        on_tick()
            finally:
                self.run.scrub_artifacts()
        if self.relay is not None:
            self.relay.finish()
        if raise_errors:
            self.raise_for_hosts()
        return self

    def interrupt(self, reason: str) -> None:
        """The default signal handler: stop ansible-playbook; raise_for_hosts() raises Interrupted."""
        log.warning("stopping ansible-playbook (%s)", reason)
        self.interrupted = self.interrupted or reason
        if self.run is not None:
            self.run.terminate()

    def on_event(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event_handler: True keeps the event in the runner artifacts."""
        item = self.translator.translate(event)
        if isinstance(item, Output) and self.relay is not None:
            self.relay.feed(item.host, item.offset, item.data)
            return False  # relayed bytes are kept in logs/, not as event files
        if isinstance(item, Launched):
            self.hosts.append(item.host)
            if item.hosts > 1 and self.relay is not None:
                self.relay.prefix_hosts = True
            self.handle(item)
            return False
        if isinstance(item, Queue):
            line = item.describe(first=item.host not in self.queued)
            self.queued[item.host] = item
            if line:
                queue_log.log(NOTICE, "[%s] %s", item.host, line)
        elif isinstance(item, Connection):
            self.on_connection(item)
        elif isinstance(item, Progress):
            log.log(NOTICE, "[%s] %s", item.host, item.text)
        elif isinstance(item, NoHosts):
            self.no_hosts = True
        elif isinstance(item, HostReport):
            self.reports[item.host] = item.report
        elif isinstance(item, HostOutcome) and isinstance(item.error, OutputsNotCopied):
            self.copy_errors.append(item.error)  # the job itself is not affected: not an outcome
            return True
        elif isinstance(item, HostOutcome):
            if self.relay is not None:
                self.relay.finish(item.host)
            if item.kind == "unreachable" and item.host in self.gone:
                item.error = self.disconnected(item.host)
                item.state = "running"
            self.outcomes.append(item)
        return self.handle(item)

    def on_connection(self, item: Connection) -> None:
        """Say at once when a followed host's connection drops, comes back, or is given up on."""
        if item.state == "lost":
            log.warning(
                "[%s] the connection was lost; retrying for up to %g s (the job goes on there)",
                item.host,
                item.wait,
            )
        elif item.state == "back":
            log.warning("[%s] connected again; the output resumes where it stopped", item.host)
        elif item.state == "gone":
            self.gone[item.host] = item

    def disconnected(self, host: str) -> Disconnected:
        """What the user is told when the driver stops waiting for a host whose job goes on."""
        job = self.job_id or "JOB"
        waited = self.gone[host].wait if host in self.gone else 0
        return Disconnected(
            f"lost the connection to {host} for more than {waited:g} s; job {job} goes on there "
            "without this driver",
            hint=f"`driver logs -f {job}` reattaches (every line once, then until the end); "
            f"`driver status {job}` asks the host, `driver cancel {job}` stops it",
        )

    def handle(self, item: object) -> bool:
        return True

    def first_failure(self) -> HostOutcome | None:
        """The first host (in time) that failed, or whose script exited non-zero or was lost."""
        return next((o for o in self.outcomes if o.error is not None or o.rc or o.state == "lost"), None)

    def raise_for_hosts(self) -> None:
        """Raise the error of the run as a whole: interrupted, no host matched, a host's failure, or
        Ansible ended before any host."""
        if self.interrupted:
            raise Interrupted(
                self.interrupted, self.interrupt_message.format(signal=self.interrupted), self.interrupt_hint
            )
        if self.no_hosts:
            raise no_hosts_error(self.inventory, self.limit)
        failed = self.first_failure()
        if failed is not None and failed.error is not None:
            raise self.explained(failed.error)
        if not self.outcomes and not self.reports:
            raise self.explained(self.early_failure())

    def explained(self, error: DriverError) -> DriverError:
        """A failure the driver cannot tell apart (or an unreachable host), explained by the inventory when
        that is what is wrong (read only now that the run failed: a good inventory is not parsed twice)."""
        if type(error) not in (AnsibleFailure, HostUnreachable):
            return error
        from driver.job.spec import inventory_problem

        return inventory_problem(self.inventory) or error

    def early_failure(self) -> DriverError:
        """Ansible ended before any host did anything: tell why from what it printed."""
        text = "\n".join(self.translator.messages)
        status = f"{self.run.status}, rc {self.run.rc}" if self.run else "not started"
        if "no hosts to target" in text or "hosts list is empty" in text:
            return no_hosts_error(self.inventory, self.limit)
        missing = re.search(r"couldn't resolve module/action '([\w.]+)'", text)
        if missing:
            name = missing.group(1)
            collection = ".".join(name.split(".")[:2])
            return AnsibleFailure(
                f"Ansible here cannot find {name}: the collection {collection} is not installed",
                hint=f"install the `ansible` package beside the driver (a dependency of remote-trainer) "
                f"or run `ansible-galaxy collection install {collection}`",
            )
        if self.inventory and "inventory" in text.lower():
            causes = [line.strip() for line in text.splitlines() if "Failed to parse" in line]
            return BadInventory(
                f"inventory {self.inventory!r} could not be parsed" + (f": {causes[-1]}" if causes else ""),
                hint="check its syntax with `ansible-inventory -i INVENTORY --list`",
            )
        last = text.strip().splitlines()[-1] if text.strip() else "no message"
        return AnsibleFailure(
            f"ansible-playbook ended ({status}) before the job ran: {last}",
            hint=f"rerun with -vv; runner artifacts are in {self.local / 'runner'}",
        )


def first_nonzero(outcomes: list[HostOutcome]) -> HostOutcome | None:
    """The host whose script ended first with a non-zero code: the job's exit code is that host's.

    "First" by the end time the host recorded (so a detached job observed later agrees with a followed
    one), arrival order where there is none.
    """
    failed = [(float(o.result.get("rt_ended") or math.inf), i, o) for i, o in enumerate(outcomes) if o.rc]
    return min(failed, key=lambda t: (t[0], t[1]))[2] if failed else None


def report_copy_errors(errors: list[OutputsNotCopied], code: int) -> None:
    """Outputs that did not come back never hide the job's own code: each is logged, and when the job
    itself succeeded (code 0) the first is raised (exit 84)."""
    if not errors:
        return
    for err in errors if code else errors[1:]:
        log.error("%s", err.message)
    if code:
        log.warning("%s", errors[0].hint)
        return
    raise errors[0]


def no_hosts_error(inventory: str | None, limit: str | None) -> DriverError:
    if inventory and not limit:  # nothing narrowed it: the inventory itself has no host (68)
        return BadInventory(
            f"inventory {inventory!r} has no hosts",
            hint="add the hosts to it, one a line (gpu1 ansible_host=10.0.0.5), or give another inventory",
        )
    where = f"inventory {inventory!r}" if inventory else "the local inventory (this machine)"
    what = f"--limit {limit!r}" if limit else "any host"
    hint = (
        "list the inventory's hosts with `ansible-inventory -i INVENTORY --graph` and fix --limit"
        if inventory
        else "without -i the only host is `localhost`; give an inventory with -i to use other hosts"
    )
    return NoHostsMatched(f"{what} matches no host of {where}", hint=hint)

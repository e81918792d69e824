"""Translate ansible-runner events into what the driver acts on: relayed output, host outcomes, log lines.

A failed task is told apart by the kind it reports (the fact `<role>_failure: {kind, msg}`, see
driver/errors.py FAILURE_KINDS), never by its task name or message; only what ssh itself says about an
unreachable host is read as text.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from driver.errors import (
    AnsibleFailure,
    AuthenticationFailed,
    DriverError,
    HostKeyFailed,
    HostUnreachable,
    failure_error,
)

log = logging.getLogger("driver.ansible")

# Progress of long steps: shown by default (between INFO, shown with -v, and WARNING).
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

# Must match RELAY_MARKER of the collection's plugins/plugin_utils/relay.py.
RELAY_MARKER = "@@remote-trainer-relay@@"


@dataclass
class Output:
    """New bytes of a host's job log, starting at `offset`."""

    host: str
    offset: int
    data: bytes


@dataclass
class Launched:
    host: str
    job_dir: str
    pgid: int
    hosts: int
    rank: int | None = None
    slurm_id: str | None = None  # the Slurm executor: the job's id in Slurm


@dataclass
class Connection:
    """A host's connection while a job is followed: `lost` (retried for `wait` seconds), `back` (resumed at
    the same byte), or `gone` (the driver stops waiting; the job goes on there)."""

    host: str
    state: str
    offset: int
    wait: float = 0.0


@dataclass
class Queue:
    """A Slurm job's place as its login node sees it: Slurm's state (PENDING, RUNNING, ...), the reason it
    waits (Priority, Resources, ...) and the nodes it got; sent when either changes."""

    host: str
    slurm_id: str
    state: str
    reason: str = ""
    nodes: str = ""

    def describe(self, first: bool) -> str | None:
        """The line for the user, or None for a state not worth one."""
        if self.state == "PENDING":
            why = f" ({self.reason})" if self.reason else ""
            return (
                f"Slurm job {self.slurm_id} is queued{why}"
                if first
                else f"Slurm job {self.slurm_id} waits{why}"
            )
        if self.state in ("RUNNING", "CONFIGURING"):
            on = f" on {self.nodes}" if self.nodes else ""
            return f"Slurm job {self.slurm_id} is running{on}"
        if self.state in ("SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "STOPPED"):
            return f"Slurm job {self.slurm_id} is {self.state.lower()}" + (
                f" ({self.reason})" if self.reason else ""
            )
        return None


@dataclass
class HostOutcome:
    """How the job ended on one host: an exit code, or an error that kept it from running.

    state: running, ended, lost or not_started (stopped before the launch); stopped: why the job was
    stopped (timeout, SIGINT, SIGTERM, cancelled, rank_failed), None when it ended on its own.
    """

    host: str
    rc: int | None = None
    stopped: str | None = None
    error: DriverError | None = None
    kind: str | None = None  # the failure's kind, when the host failed
    state: str = "ended"
    result: dict[str, Any] = field(default_factory=dict)  # the task's rt_* values


@dataclass
class NoHosts:
    pass


@dataclass
class Progress:
    """A long step begins on a host (e.g. a venv is built): one line for the user, at once."""

    host: str
    text: str


def plan_progress(host: str, plan: dict[str, Any]) -> Progress | None:
    """What the remote_host role is about to do, from its plan (remote_host__plan): only a real install."""
    if not plan.get("install") or plan.get("ready"):
        return None
    wanted = [line for line in str(plan.get("requirements", "")).splitlines() if not line.startswith("-")]
    names = ", ".join(wanted[:3]) + (", ..." if len(wanted) > 3 else "")
    if plan.get("in_image"):
        where = f"a package directory for the job's image, {plan['venv']}"
    elif plan.get("uses_venv"):
        where = f"a new venv {plan['venv']}"
    else:
        where = "the user's site-packages"
    return Progress(
        host, f"installing {len(wanted)} requirements ({names}) into {where}; this can take a while"
    )


@dataclass
class HostReport:
    """What the remote_host role found and did on one host (its remote_host_report fact)."""

    host: str
    report: dict[str, Any]


def describe_report(report: dict[str, Any]) -> str:
    python = f"python {report.get('python')} ({report.get('python_version')})"
    note = "; no rsync (outputs and --workdir need it)" if lacks_rsync(report) else ""
    action = report.get("action")
    if action == "none":
        return f"{python}; no requirements{note}"
    where = f"venv {report.get('venv')}" if report.get("venv") else "user site-packages"
    return f"{python}; requirements {'installed in' if action == 'installed' else 'ready in'} {where}{note}"


def lacks_rsync(report: dict[str, Any]) -> bool:
    """A host over SSH without rsync: its outputs cannot come back, --workdir cannot reach it."""
    return str(report.get("rsync")).lower() == "false" and str(report.get("local")).lower() != "true"


def reported_failure(res: dict[str, Any]) -> dict[str, Any] | None:
    """The {kind, msg, ...} a role's failed task reported in its `<role>_failure` fact, if any."""
    facts = res.get("ansible_facts") or {}
    for name, value in facts.items():
        if name.endswith("_failure") and isinstance(value, dict) and "kind" in value:
            return value
    return None


@dataclass
class Translator:
    """Stateless apart from the messages Ansible printed outside tasks (such as inventory errors) and the
    hosts already warned of for a malformed relay record."""

    messages: list[str] = field(default_factory=list)
    malformed: set[str] = field(default_factory=set)  # hosts whose malformed relay record was warned of

    def translate(
        self, event: dict[str, Any]
    ) -> Output | Launched | Connection | Queue | HostOutcome | HostReport | NoHosts | Progress | None:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "verbose":
            return self._verbose(event.get("stdout", ""))
        host = data.get("host", "")
        if kind == "playbook_on_task_start":
            log.info("TASK %s", data.get("task", ""))
        elif kind == "runner_on_start":
            log.debug("[%s] start: %s", host, data.get("task", ""))
        elif kind == "runner_on_ok":
            res = data.get("res", {}) or {}
            log.info("[%s] %s: %s", host, "changed" if res.get("changed") else "ok", data.get("task", ""))
            return outcome_of(host, res)
        elif kind == "runner_on_failed":
            res = data.get("res", {}) or {}
            failure = reported_failure(res)
            msg = failure["msg"] if failure else str(res.get("msg", "")).strip()
            log.info("[%s] failed: %s: %s", host, data.get("task", ""), msg)
            if failure is not None:
                return HostOutcome(host, error=failure_error(failure), kind=str(failure["kind"]))
            return HostOutcome(
                host,
                error=AnsibleFailure(
                    f"the job failed on {host}: {_last_line(msg)}",
                    hint="rerun with -vv to see what the host said",
                ),
            )
        elif kind == "runner_on_unreachable":
            msg = str((data.get("res", {}) or {}).get("msg", "")).strip()
            log.info("[%s] unreachable: %s", host, msg)
            return HostOutcome(host, error=unreachable_error(host, msg), kind="unreachable")
        elif kind == "playbook_on_no_hosts_matched":
            return NoHosts()
        elif kind == "warning":
            log.warning("ansible: %s", (event.get("stdout") or "").strip())
        return None

    def _verbose(self, stdout: str) -> Output | Launched | Connection | Queue | HostReport | None:
        text = stdout.strip()
        if not text.startswith(RELAY_MARKER):
            # Not a record: a record is a whole displayed line of its own (the marker in the middle of a
            # message, such as a host's stderr quoted at -vvv, is text).
            if text:
                if len(self.messages) < 200:
                    self.messages.append(text)
                log.debug("ansible: %s", text)
            return None
        record: Any = None
        try:
            record = json.loads(text[len(RELAY_MARKER) :])
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            return self._record(record)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            self._malformed(record, text, exc)
            return None

    def _malformed(self, record: Any, text: str, exc: Exception) -> None:
        """A record that is not what the collection's plugins send (a hostile or broken host's answer, see
        plugin_utils/relay.py): one warning line per host, the rest at -vv; whatever it carried is dropped and
        the job's outcome, which comes from the task's result, is still reported."""
        host = record.get("h") if isinstance(record, dict) and isinstance(record.get("h"), str) else "?"
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0][:200] if str(exc) else ""
        if host not in self.malformed:
            self.malformed.add(host)
            log.warning(
                "[%s] ignored a malformed relay record (%s: %s), not what the collection's plugin sends: a "
                "broken or hostile host's answer; what it carried is not shown (any more only with -vv)",
                host,
                type(exc).__name__,
                why,
            )
        log.debug("malformed relay record from %s: %.300r", host, text)

    def _record(self, record: dict[str, Any]) -> Output | Launched | Connection | Queue | HostReport | None:
        """The event of one record; KeyError, TypeError or ValueError where a field is missing or wrong."""
        kind, host = record["k"], record["h"]
        if not isinstance(host, str) or not isinstance(kind, str):
            raise TypeError("`k` and `h` must be strings")
        if kind == "out":
            offset = record["o"]
            if not isinstance(offset, int) or offset < 0 or not isinstance(record["d"], str):
                raise TypeError("`o` must be an offset and `d` base64 text")
            return Output(host, offset, base64.b64decode(record["d"], validate=True))
        if kind == "pip":  # the remote_host role's build: pip's own output while it runs
            log.info("[%s] pip: %s", host, record["line"])
            return None
        if kind == "queue":
            return Queue(
                host,
                str(record["id"]),
                str(record["s"]),
                str(record.get("r") or ""),
                str(record.get("n") or ""),
            )
        if kind == "report":  # a job run in one step: remote_host's report from its check
            if not isinstance(record["report"], dict):
                raise TypeError("`report` must be an object")
            return HostReport(host, record["report"])
        if kind == "conn":
            return Connection(host, str(record["s"]), int(record["o"]), float(record.get("w") or 0))
        if kind == "launched":
            if record.get("slurm"):
                log.info("[%s] job submitted from %s as Slurm job %s", host, record["job"], record["slurm"])
            else:
                log.info("[%s] job started in %s (process group %s)", host, record["job"], record["pgid"])
            return Launched(
                host,
                str(record["job"]),
                int(record["pgid"]),
                int(record.get("n", 1)),
                None if record.get("r") is None else int(record["r"]),
                None if record.get("slurm") is None else str(record["slurm"]),
            )
        return None


def outcome_of(host: str, res: dict[str, Any]) -> HostOutcome | HostReport | Progress | None:
    """What a successful task said: a job's state on the host, or the remote_host role's report."""
    if "rt_state" in res or "rt_removed" in res:
        values = {k: v for k, v in res.items() if k.startswith("rt_") or k == "job_dir"}
        return HostOutcome(
            host,
            rc=res.get("rt_rc"),
            stopped=res.get("rt_stopped"),
            state=res.get("rt_state", "ended"),
            result=values,
        )
    facts = res.get("ansible_facts") or {}
    if isinstance(facts.get("remote_host__plan"), dict):
        # The check: an install to come is news now (its report follows the install); else the report.
        progress = plan_progress(host, facts["remote_host__plan"])
        if progress is not None:
            return progress
    if facts.get("remote_host_report"):
        return HostReport(host, facts["remote_host_report"])
    if facts.get("remote_host_pruned"):
        return HostReport(host, {"pruned": facts["remote_host_pruned"]})
    if facts.get("remote_host_cache"):
        return HostReport(host, {"cache": facts["remote_host_cache"]})
    return None


def unreachable_error(host: str, msg: str) -> DriverError:
    """Tell apart the reasons ssh gives for not connecting."""
    lowered = msg.lower()
    if "host identification has changed" in lowered or "has changed and you have requested strict" in lowered:
        # ssh says which line of which known_hosts holds the old key, and how to remove it.
        remove = re.search(r"ssh-keygen -f .* -R \S+", msg)
        command = f"`{remove.group(0)}`" if remove else "`ssh-keygen -R HOST` (its name or [address]:port)"
        return HostKeyFailed(
            f"the host key of {host} has changed: it is not the key your known_hosts holds for it",
            hint="this can be an attack (someone between you and the host): check the new key with the "
            f"host's administrator; only if the host was reinstalled or its key replaced, remove the old key "
            f"with {command} and connect again (--accept-new-host-keys then remembers the new one)",
        )
    if "host key verification failed" in lowered or "host key is known for" in lowered:
        return HostKeyFailed(
            f"the host key of {host} is unknown: it is not in your known_hosts",
            hint="add the host's key to known_hosts (ssh-keyscan it and compare its fingerprint), or rerun "
            "with --accept-new-host-keys to accept it once and remember it",
        )
    if "permission denied" in lowered or "authentication" in lowered:
        return AuthenticationFailed(
            f"SSH authentication failed for {host}: {_last_line(msg)}",
            hint="check ansible_user and ansible_ssh_private_key_file for this host in the inventory",
        )
    return HostUnreachable(
        f"host {host} is unreachable: {_last_line(msg)}",
        hint="check that the host is up, its address and port in the inventory, and that sshd runs",
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()

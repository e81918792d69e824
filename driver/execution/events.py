"""Translate ansible-runner events into what the driver acts on: relayed output, host outcomes, log lines."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from driver.errors import (
    AnsibleFailure,
    AuthenticationFailed,
    BadNodes,
    DriverError,
    HostKeyFailed,
    HostUnreachable,
    JobMissing,
    NoPython,
    OutputsNotCopied,
    PreflightFailed,
    RequirementsFailed,
)

log = logging.getLogger("driver.ansible")

# Must match RELAY_MARKER in roles/training_job/action_plugins/training_job.py.
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


@dataclass
class HostOutcome:
    """How the job ended on one host: an exit code, or an error that kept it from running."""

    host: str
    rc: int | None = None
    cancelled: str | None = None
    error: DriverError | None = None
    state: str = "ended"  # running, ended or lost (the job on this host)
    result: dict[str, Any] = field(default_factory=dict)  # the task's rt_* values


@dataclass
class NoHosts:
    pass


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


@dataclass
class Translator:
    """Stateless apart from the messages Ansible printed outside tasks (such as inventory errors)."""

    messages: list[str] = field(default_factory=list)

    def translate(
        self, event: dict[str, Any]
    ) -> Output | Launched | HostOutcome | HostReport | NoHosts | None:
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
            if "rt_state" in res or "rt_detached" in res or "rt_removed" in res:
                state = "running" if res.get("rt_detached") else res.get("rt_state", "ended")
                values = {k: v for k, v in res.items() if k.startswith("rt_") or k == "job_dir"}
                return HostOutcome(
                    host, rc=res.get("rt_rc"), cancelled=res.get("rt_cancelled"), state=state, result=values
                )
            facts = res.get("ansible_facts") or {}
            if facts.get("remote_host_report"):
                return HostReport(host, facts["remote_host_report"])
            if facts.get("remote_host_pruned"):
                return HostReport(host, {"pruned": facts["remote_host_pruned"]})
        elif kind == "runner_on_failed":
            res = data.get("res", {}) or {}
            msg = str(res.get("msg", "")).strip()
            log.info("[%s] failed: %s: %s", host, data.get("task", ""), msg)
            task = data.get("task", "")
            return HostOutcome(host, error=failure_error(host, res, data.get("task_action", ""), task))
        elif kind == "runner_on_unreachable":
            msg = str((data.get("res", {}) or {}).get("msg", "")).strip()
            log.info("[%s] unreachable: %s", host, msg)
            return HostOutcome(host, error=unreachable_error(host, msg))
        elif kind == "playbook_on_no_hosts_matched":
            return NoHosts()
        elif kind == "warning":
            log.warning("ansible: %s", (event.get("stdout") or "").strip())
        return None

    def _verbose(self, stdout: str) -> Output | Launched | None:
        start = stdout.find(RELAY_MARKER)
        if start < 0:
            text = stdout.strip()
            if text:
                if len(self.messages) < 200:
                    self.messages.append(text)
                log.debug("ansible: %s", text)
            return None
        record = json.loads(stdout[start + len(RELAY_MARKER) :].strip())
        if record["k"] == "out":
            return Output(record["h"], record["o"], base64.b64decode(record["d"]))
        if record["k"] == "launched":
            log.info("[%s] job started in %s (process group %s)", record["h"], record["job"], record["pgid"])
            return Launched(record["h"], record["job"], record["pgid"], record.get("n", 1), record.get("r"))
        return None


def unreachable_error(host: str, msg: str) -> DriverError:
    """Tell apart the reasons ssh gives for not connecting."""
    lowered = msg.lower()
    if "host key verification failed" in lowered or "host identification has changed" in lowered:
        return HostKeyFailed(
            f"host key verification failed for {host}",
            hint="check the host's key and your known_hosts; to accept the key of a new host "
            "once, rerun with --accept-new-host-keys",
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


def failure_error(host: str, res: dict[str, Any], action: str = "", task: str = "") -> DriverError:
    reason = res.get("rt_error")
    msg = str(res.get("msg", "")).strip()
    if "outputs back" in task:  # collect.yml
        return OutputsNotCopied(
            f"the outputs of {host} were not copied back: {_copy_cause(res)}",
            hint="they stay in the job's directory on the host; make rsync (3.2.3+) available there and "
            "here, then `driver status JOB` copies them",
        )
    if action.endswith("synchronize"):  # stage.yml
        return AnsibleFailure(
            f"the workdir could not be staged to {host}: {_copy_cause(res)}",
            hint="hosts need rsync 3.2.3 or newer (and this machine rsync) for --workdir",
        )
    if msg.startswith("nodes:"):
        return BadNodes(msg.removeprefix("nodes:").strip(), hint="lower --nodes or widen --limit/--inventory")
    if msg.startswith("preflight:"):
        return PreflightFailed(
            msg.removeprefix("preflight:").strip(),
            hint="check MASTER_ADDR (set train_master_addr per host in the inventory), the firewall, "
            "--master-port, and that every host has the same python/torch",
        )
    if msg.startswith("no usable python"):
        return NoPython(
            msg, hint="install python3 (3.9 or newer) on the host, or set remote_host_python for it"
        )
    if action.endswith("pip") or "Install the requirements" in task:  # remote_host: build.yml
        text = "\n".join(str(res.get(k, "")) for k in ("stderr", "stdout", "msg"))
        errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR:")]
        cause = errors[-1].removeprefix("ERROR:").strip() if errors else _last_line(msg)
        return RequirementsFailed(
            f"requirements could not be installed on {host}: {cause}",
            hint="fix the requirement (name, version, index or wheelhouse) and run again; "
            "the unfinished venv is rebuilt",
        )
    if action.endswith("package"):
        return RequirementsFailed(
            f"system packages could not be installed on {host}: {_last_line(msg)}",
            hint="check the package names and that the user may escalate privileges (become)",
        )
    if reason == "missing":
        return JobMissing(f"{msg}: its directory is gone", hint="it may have been cleaned; see `driver jobs`")
    if reason in ("no_python", "old_python"):
        return NoPython(
            f"no usable python on {host}: {_last_line(msg)}",
            hint="install python3 (3.6 or newer) on the host, or set ansible_python_interpreter "
            "for it in the inventory",
        )
    return AnsibleFailure(f"the job failed on {host}: {_last_line(msg)}")


def _copy_cause(res: dict[str, Any]) -> str:
    """Why rsync (synchronize) failed: its own error line, or the module's message (rsync missing here)."""
    text = "\n".join(str(res.get(k, "")) for k in ("stderr", "msg"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if "rsync" in line.lower() or "not found" in line.lower()]
    cause = (reasons or lines or ["no message"])[0]
    rc = res.get("rc")
    return f"{cause} (rsync exit {rc})" if rc not in (None, 0) else cause


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()

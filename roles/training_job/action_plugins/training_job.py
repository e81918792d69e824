"""Action plugin: stage, launch and follow one training job on one host, over the task's own connection.

One remote command unpacks the job's payload (the script, the staged workdir, the job spec and
jobctl.py) from stdin into a new private job directory and starts the script detached (setsid). The
plugin then long-polls the job's log (`jobctl.py poll`) and hands new bytes to Ansible's display,
one message per poll, which ansible-runner turns into `verbose` events while the task still runs.
The task ends when the script has ended and every byte of its log was relayed.

Cancellation: when `cancel_file` appears on the controller or `timeout` seconds have passed since the
launch, the plugin runs `jobctl.py kill` (SIGTERM to the job's processes, SIGKILL after `grace`) and
keeps relaying until the job has ended, so the last words of the script are not lost.

Relay messages are single lines: the marker `RELAY_MARKER`, a space, and JSON with `k` (kind: `launched`
or `out`), `h` (inventory host), and for `out` the log offset `o` and base64 bytes `d`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import tarfile
import time

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

RELAY_MARKER = "@@remote-trainer-relay@@"
RECONNECT_WINDOW = 60.0  # seconds a host may stay unreachable while its job runs before the task fails


def _quote_path(path: str) -> str:
    """Shell-quote a remote path, keeping a leading ~/ expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(
        (
            "job_id",
            "root",
            "script",
            "workdir",
            "spec_file",
            "job_env",
            "python",
            "helper_python",
            "timeout",
            "grace",
            "cancel_file",
            "poll_wait",
            "max_chunk",
        )
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        host = task_vars.get("inventory_hostname", "?") if task_vars else "?"
        self._host = host
        self._task_vars = task_vars
        helper = args.get("helper_python") or "python3"
        # `auto*` names ask Ansible's module interpreter discovery; the helper just needs a python3.
        self._py = shlex.quote("python3" if helper.startswith("auto") else helper)
        # Under ansible-runner the driver decodes relay records; under plain ansible-playbook print lines.
        self._records = os.environ.get("ANSIBLE_STDOUT_CALLBACK") == "awx_display"
        self._partial = b""
        payload = self._build_payload(args)
        job_dir = self._launch(args, payload, result)
        if job_dir is None:
            return result
        self._job_dir = job_dir
        outcome = self._follow(args)
        result.update(outcome)
        result["changed"] = True
        result["job_dir"] = job_dir
        return result

    # -- staging and launch -------------------------------------------------------------------
    def _build_payload(self, args: dict) -> bytes:
        script = args["script"]
        workdir = args.get("workdir")
        with open(args["spec_file"], "rb") as f:
            spec_in = json.load(f)
        jobctl = self._find_needle("files", "jobctl.py")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            if workdir:
                tar.add(workdir, arcname="work", recursive=True)
                rel = os.path.relpath(os.path.realpath(script), os.path.realpath(workdir))
                script_in_work = not rel.startswith("..")
            else:
                script_in_work = False
            if not script_in_work:
                rel = os.path.basename(script)
                tar.add(script, arcname="work/" + rel)
            with open(jobctl, "rb") as f:
                _add_bytes(tar, ".rt/jobctl.py", f.read(), 0o700)
            spec = {
                "argv": [args.get("python") or "python3", rel, *spec_in.get("args", [])],
                "env": {
                    **{str(k): str(v) for k, v in (args.get("job_env") or {}).items()},
                    **spec_in.get("env", {}),
                },
            }
            _add_bytes(tar, ".rt/spec.json", json.dumps(spec).encode())
        return buf.getvalue()

    def _launch(self, args: dict, payload: bytes, result: dict) -> str | None:
        root = _quote_path(args["root"])
        job = shlex.quote(args["job_id"])
        cmd = (
            f"umask 077 && mkdir -p {root} && cd {root} && mkdir {job} && cd {job} && "
            f'tar -xzf - && exec {self._py} -S .rt/jobctl.py launch "$PWD"'
        )
        res = self._low_level_execute_command(cmd, sudoable=False, in_data=payload)
        info = self._last_json(res.get("stdout", ""))
        if res["rc"] != 0 or info is None:
            stderr = (res.get("stderr") or "").strip()
            reason = "launch_failed"
            if res["rc"] == 127 or "not found" in stderr or "No such file" in stderr:
                reason = "no_python"
            elif "SyntaxError" in stderr:
                reason = "old_python"
            # Nothing of a job that never started stays on the host.
            self._low_level_execute_command(f"rm -rf {root}/{job}", sudoable=False)
            result.update(
                failed=True,
                rt_error=reason,
                msg=f"could not start the job on {self._host}: {stderr or res.get('stdout', '')}".strip(),
                rc=res["rc"],
            )
            return None
        hosts = (self._task_vars or {}).get("ansible_play_hosts_all") or [self._host]
        self._relay({"k": "launched", "job": info["job"], "pgid": info["pgid"], "n": len(hosts)})
        return info["job"]

    # -- following ------------------------------------------------------------------------------
    def _follow(self, args: dict) -> dict:
        timeout = float(args.get("timeout") or 0)
        grace = float(args.get("grace") or 10)
        cancel_file = args.get("cancel_file")
        poll_wait = float(args.get("poll_wait") or 1.0)
        max_chunk = int(args.get("max_chunk") or 256 * 1024)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        offset = 0
        cancelled = None
        unreachable_since = None
        while True:
            if cancelled is None:
                if cancel_file and os.path.exists(cancel_file):
                    cancelled = self._read_reason(cancel_file)
                elif deadline is not None and time.monotonic() >= deadline:
                    cancelled = "timeout"
                if cancelled is not None:
                    self._jobctl(f"kill {shlex.quote(self._job_dir)} {grace}")
            wait = poll_wait
            if cancelled is None and deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                st = self._jobctl(f"poll {shlex.quote(self._job_dir)} {offset} {wait:.3f} {max_chunk}")
                unreachable_since = None
            except AnsibleConnectionFailure:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > RECONNECT_WINDOW:
                    raise
                time.sleep(1.0)
                continue
            if st["n"]:
                self._relay({"k": "out", "o": offset, "d": st["data"]})
                offset += st["n"]
            if st["eof"]:
                if self._partial and not self._records:
                    display.display(f"[{self._host}] {self._partial.decode('utf-8', 'replace')}")
                return {"rt_rc": st["rc"], "rt_cancelled": cancelled, "rt_bytes": offset}
            if st["rc"] is None and not st["alive"] and st["n"] == 0:
                return {
                    "failed": True,
                    "rt_error": "lost",
                    "rt_bytes": offset,
                    "msg": f"the job's launcher on {self._host} is gone and left no exit code",
                }

    def _jobctl(self, command: str) -> dict:
        res = self._low_level_execute_command(
            f"{self._py} -S {shlex.quote(self._job_dir)}/.rt/jobctl.py {command}", sudoable=False
        )
        info = self._last_json(res.get("stdout", ""))
        if res["rc"] != 0 or info is None:
            raise AnsibleActionFail(
                f"jobctl {command.split()[0]} failed on {self._host} (rc {res['rc']}): "
                f"{(res.get('stderr') or '').strip()}"
            )
        return info

    # -- helpers --------------------------------------------------------------------------------
    def _relay(self, record: dict) -> None:
        record["h"] = self._host
        if self._records:
            display.display(RELAY_MARKER + " " + json.dumps(record, separators=(",", ":")))
        elif record["k"] == "out":
            lines = (self._partial + base64.b64decode(record["d"])).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                display.display(f"[{self._host}] {line.decode('utf-8', 'replace')}")

    @staticmethod
    def _read_reason(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip() or "cancelled"
        except OSError:
            return "cancelled"

    @staticmethod
    def _last_json(stdout: str) -> dict | None:
        for line in reversed(stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    return None
        return None

"""Action plugin: build a requirement set with files/venvset.py and relay pip's own output live.

Arguments: `python` (the host python that runs venvset.py), `build` (its build spec; `log` names the file on
the host that venvset.py copies pip's output to) and `environment` (variables for pip: proxies and the like).

The build is one remote command over the task's connection, run in a worker thread and attached to the
connection as a plain task's command is: when the controller goes away (Ctrl+C stops ansible-playbook), the
connection closes and the build ends with it (SIGHUP), so no pip outlives a cancelled provision. Meanwhile
this thread reads the build's log on the host twice a second and hands each new line to Ansible's display:
for the driver as a relay record of kind `pip` (plugin_utils/relay.py; it logs them with -v), in a
playbook of one's own as a `[host] pip: LINE` message at -v. The result is the command's (rc, stdout, stderr).
"""

from __future__ import annotations

import base64
import json
import shlex
import threading

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.remote_trainer.core.plugins.plugin_utils.check_mode import refuse_check_mode
from ansible_collections.remote_trainer.core.plugins.plugin_utils.relay import record_line, wants_records
from ansible_collections.remote_trainer.core.plugins.plugin_utils.role_files import role_file

display = Display()

POLL = 0.5  # seconds between two reads of the build's log
READ = (
    "import base64, sys\n"
    "try:\n"
    "    f = open(sys.argv[1], 'rb')\n"
    "except OSError:\n"
    "    sys.exit(0)\n"
    "f.seek(int(sys.argv[2]))\n"
    "sys.stdout.write(base64.b64encode(f.read(262144)).decode())\n"
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    # It installs packages: under --check it is skipped, with a warning that says why.
    _supports_check_mode = False
    _VALID_ARGS = frozenset(("python", "build", "environment"))

    def run(self, tmp=None, task_vars=None):
        refuse_check_mode(self._task, "installs packages")
        result = super().run(tmp, task_vars)
        args = self._task.args
        self._host = (task_vars or {}).get("inventory_hostname", "?")
        self._records = wants_records(task_vars)
        python = shlex.quote(str(args["python"]))
        build = dict(args["build"])
        env = {str(k): str(v) for k, v in (args.get("environment") or {}).items()}
        with open(role_file("remote_host", "venvset.py"), "rb") as f:
            source = f.read()  # bytes: the local connection writes them to the command's stdin as they are
        # The spec and the environment (index URLs with credentials, the inventory's values) go in the script.
        given = json.dumps({"spec": build, "env": env})
        source = f"INPUT = {given!r}\n".encode() + source
        command = f"{python} - build"
        done: dict = {}

        def work() -> None:
            try:
                done["res"] = self._low_level_execute_command(command, sudoable=False, in_data=source)
            except Exception as exc:  # raised again in this thread below
                done["exc"] = exc

        worker = threading.Thread(target=work, name="venvset-build", daemon=True)
        worker.start()
        offset, partial = 0, b""
        log = build.get("log") or ""
        while worker.is_alive():
            worker.join(POLL)
            if log and worker.is_alive():
                offset, partial = self._relay_new(python, log, offset, partial)
        if log and "exc" not in done:
            # pip's last lines (written after the last read), then the log goes.
            offset, partial = self._relay_new(python, log, offset, partial)
            self._relay_lines([partial] if partial.strip() else [])
            self._low_level_execute_command(f"rm -f {shlex.quote(log)}", sudoable=False)
        if "exc" in done:
            raise done["exc"]
        res = done["res"]
        stdout, stderr = res.get("stdout", ""), res.get("stderr", "")
        result.update(
            rc=res["rc"],
            stdout=stdout,
            stdout_lines=stdout.splitlines(),
            stderr=stderr,
            stderr_lines=stderr.splitlines(),
            changed=stdout.splitlines()[-1:] == ["installed"],
        )
        if res["rc"] != 0:
            result.update(failed=True, msg=f"the build exited with {res['rc']}")
        return result

    def _relay_new(self, python: str, log: str, offset: int, partial: bytes) -> tuple[int, bytes]:
        """Show the lines the build's log gained since offset; the new offset and the unfinished line."""
        try:
            res = self._low_level_execute_command(
                f"{python} -c {shlex.quote(READ)} {shlex.quote(log)} {offset}", sudoable=False
            )
        except Exception as exc:  # a read that fails costs a progress line, never the build
            display.vvv(f"{self._host}: reading the build's log failed: {exc}")
            return offset, partial
        data = base64.b64decode(res.get("stdout", "").strip() or b"")
        lines = (partial + data).split(b"\n")
        self._relay_lines(lines[:-1])
        return offset + len(data), lines[-1]

    def _relay_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip("\r")
            if not text.strip():
                continue
            if self._records:
                display.display(record_line("pip", self._host, line=text))
            else:
                display.v(f"[{self._host}] pip: {text}")

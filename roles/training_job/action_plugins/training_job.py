"""Action plugin: launch, follow, inspect, stop and clean training jobs on a host, over the task's connection.

Modes (argument `mode`):
- `launch`: one remote command unpacks the job's payload (the script, the job spec and jobctl.py) from
  stdin into a new private job directory (after copying the staged workdir mirror into it, when there is
  one) and starts the script detached (setsid). Then, unless `detach`, it follows the job like `follow`.
- `follow`: long-polls the job's log from `offset` (`jobctl.py poll`) and hands new bytes to Ansible's
  display, one message per poll, which ansible-runner turns into `verbose` events while the task runs.
  Ends when the job has ended and every byte was relayed (or, with `until_now`, at the log's current end).
  A host that becomes unreachable is retried for `reconnect` seconds, resuming at the same offset.
- `kill`: SIGTERM to the job's processes, SIGKILL after `grace` (by a detached reaper on the host), then
  waits for the end without relaying.
- `status`: the job's state without waiting.
- `clean`: removes ended job directories under `root` older than `older_than` seconds.

While following a launched job, the appearance of `cancel_file` on the controller, or `timeout` seconds
after the launch, stops the job like `kill` and keeps relaying until it has ended, so that the script's
last words are not lost.

Relay messages are single lines: the marker RELAY_MARKER, a space, and JSON with `k` (kind: `launched` or
`out`), `h` (inventory host), and for `out` the log offset `o` and base64 bytes `d`. Under plain
ansible-playbook (not ansible-runner) the lines themselves are displayed, prefixed with the host.
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
MODES = ("launch", "follow", "kill", "status", "clean")


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
            "mode",
            "job_id",
            "root",
            "script",
            "spec_file",
            "job_env",
            "python",
            "helper_python",
            "stage",
            "output",
            "detach",
            "timeout",
            "grace",
            "cancel_file",
            "poll_wait",
            "max_chunk",
            "offset",
            "until_now",
            "reconnect",
            "older_than",
            "nodes",
            "rank",
            "master_addr",
            "master_port",
            "launcher",
            "nproc_per_node",
        )
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        self._host = (task_vars or {}).get("inventory_hostname", "?")
        self._task_vars = task_vars or {}
        helper = args.get("helper_python") or "python3"
        # `auto*` names ask Ansible's module interpreter discovery; the helper just needs a python3.
        self._py = shlex.quote("python3" if helper.startswith("auto") else helper)
        # Under ansible-runner the driver decodes relay records; under plain ansible-playbook print lines.
        self._records = os.environ.get("ANSIBLE_STDOUT_CALLBACK") == "awx_display"
        self._partial = b""
        mode = args.get("mode") or "launch"
        if mode not in MODES:
            raise AnsibleActionFail(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        self._job_q = f"{_quote_path(args['root'])}/{shlex.quote(args['job_id'])}" if mode != "clean" else ""
        if mode == "launch":
            job_dir = self._launch(args, result)
            if job_dir is None:
                return result
            self._job_q = shlex.quote(job_dir)
            result.update(changed=True, job_dir=job_dir)
            if args.get("detach"):
                result["rt_detached"] = True
                return result
            result.update(self._follow(args, offset=0, cancellable=True))
            return result
        if mode == "clean":
            return self._clean(args, result)
        status = self._jobctl("status")
        result["job_dir"] = status["job"]
        if status.get("missing"):
            result.update(failed=True, rt_error="missing", msg=f"no job {args['job_id']} on {self._host}")
            return result
        self._job_q = shlex.quote(status["job"])
        if mode == "status":
            result.update(self._status_fields(status))
        elif mode == "follow":
            result.update(
                self._follow(args, offset=int(args.get("offset") or 0), until_now=args.get("until_now"))
            )
        elif mode == "kill":
            result["changed"] = status["rc"] is None and status["alive"]
            if result["changed"]:
                self._jobctl(f"kill {float(args.get('grace') or 10)}")
            result.update(self._follow(args, offset=status["size"], quiet=True))
        return result

    # -- launch -----------------------------------------------------------------------------------
    def _payload(self, args: dict) -> tuple[bytes, bool]:
        """The tar.gz sent on stdin: jobctl, the spec, and the script unless the workdir mirror has it."""
        script = args["script"]
        with open(args["spec_file"], "rb") as f:
            spec_in = json.load(f)
        stage = spec_in.get("stage") or {}
        rel = stage.get("script") or os.path.basename(script)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            if not stage.get("script"):
                tar.add(script, arcname="work/" + rel)
            with open(self._find_needle("files", "jobctl.py"), "rb") as f:
                _add_bytes(tar, ".rt/jobctl.py", f.read(), 0o700)
            launcher, dist_env = self._distributed(args)
            spec = {
                "argv": [*launcher, rel, *spec_in.get("args", [])],
                "env": {
                    **{str(k): str(v) for k, v in (args.get("job_env") or {}).items()},
                    **dist_env,
                    **spec_in.get("env", {}),
                },
                "output": args.get("output") or "",
            }
            _add_bytes(tar, ".rt/spec.json", json.dumps(spec).encode())
        return buf.getvalue(), bool(stage)

    @staticmethod
    def _distributed(args: dict) -> tuple[list[str], dict[str, str]]:
        """The command that starts the script, and the rendezvous environment of a multi-node job."""
        python = args.get("python") or "python3"
        nodes = int(args.get("nodes") or 0)
        if nodes <= 0:
            return [python], {}
        rank, addr, port = int(args.get("rank") or 0), str(args["master_addr"]), int(args["master_port"])
        nproc = str(args.get("nproc_per_node") or 1)  # a number, or torchrun's gpu, cpu, auto
        env = {"NODE_RANK": rank, "NNODES": nodes, "MASTER_ADDR": addr, "MASTER_PORT": port}
        if args.get("launcher") == "torchrun":
            argv = [
                python,
                "-m",
                "torch.distributed.run",
                f"--nnodes={nodes}",
                f"--nproc-per-node={nproc}",
                f"--node-rank={rank}",
                f"--master-addr={addr}",
                f"--master-port={port}",
            ]
            if nproc.isdigit():  # else torchrun counts the processes (and sets WORLD_SIZE for each)
                env["WORLD_SIZE"] = nodes * int(nproc)
        else:
            argv = [python]
            env.update(WORLD_SIZE=nodes, RANK=rank, LOCAL_RANK=0, LOCAL_WORLD_SIZE=1)
        return argv, {k: str(v) for k, v in env.items()}

    def _launch(self, args: dict, result: dict) -> str | None:
        payload, staged = self._payload(args)
        root = _quote_path(args["root"])
        job = shlex.quote(args["job_id"])
        copy = ""
        if staged and args.get("stage"):
            mirror = _quote_path(args["stage"])
            # Hard links make the private copy of an unchanged workdir nearly free.
            copy = f"{{ cp -al {mirror}/. work/ 2>/dev/null || cp -a {mirror}/. work/; }} && "
        cmd = (
            f"umask 077 && mkdir -p {root} && cd {root} && mkdir {job} && cd {job} && mkdir work && {copy}"
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
        hosts = self._task_vars.get("ansible_play_hosts_all") or [self._host]
        launched = {"k": "launched", "job": info["job"], "pgid": info["pgid"], "n": len(hosts)}
        if int(args.get("nodes") or 0) > 0:
            launched["r"] = int(args.get("rank") or 0)
        self._relay(launched)
        return info["job"]

    # -- following ----------------------------------------------------------------------------------
    def _follow(
        self, args: dict, offset: int, cancellable: bool = False, until_now: bool = False, quiet: bool = False
    ) -> dict:
        timeout = float(args.get("timeout") or 0) if cancellable else 0
        grace = float(args.get("grace") or 10)
        cancel_file = args.get("cancel_file") if cancellable else None
        poll_wait = float(args.get("poll_wait") or 1.0)
        max_chunk = int(args.get("max_chunk") or 256 * 1024)
        reconnect = float(args.get("reconnect") or 60)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        cancelled = None
        unreachable_since = None
        stop_at = None
        while True:
            if cancellable and cancelled is None:
                if cancel_file and os.path.exists(cancel_file):
                    cancelled = self._read_reason(cancel_file)
                elif deadline is not None and time.monotonic() >= deadline:
                    cancelled = "timeout"
                if cancelled is not None:
                    self._jobctl(f"kill {grace}")
            wait = 0.0 if until_now else poll_wait
            if cancelled is None and deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                st = self._jobctl(f"poll {offset} {wait:.3f} {0 if quiet else max_chunk}")
                unreachable_since = None
            except AnsibleConnectionFailure as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > reconnect:
                    raise
                display.vvv(f"{self._host}: connection lost ({exc}); retrying")
                time.sleep(1.0)
                continue
            if quiet:
                offset = st["size"]
            elif st["n"]:
                self._relay({"k": "out", "o": offset, "d": st["data"]})
                offset += st["n"]
            if stop_at is None and until_now:
                stop_at = st["size"]
            done = st["eof"] or (st["rc"] is not None and quiet)
            if done or (stop_at is not None and offset >= stop_at):
                self._flush_partial()
                out = {"rt_bytes": offset, "rt_cancelled": cancelled, **self._status_fields(st)}
                return out
            if st["rc"] is None and not st["alive"] and (quiet or st["n"] == 0):
                self._flush_partial()
                return {"rt_bytes": offset, "rt_cancelled": cancelled, **self._status_fields(st)}

    @staticmethod
    def _status_fields(st: dict) -> dict:
        lost = st["rc"] is None and not st["alive"]
        return {
            "rt_rc": st["rc"],
            "rt_state": "ended" if st["rc"] is not None else ("lost" if lost else "running"),
            "rt_size": st["size"],
            "rt_outputs": st.get("outputs", False),
            "rt_started": st.get("started"),
            "rt_ended": st.get("ended"),
        }

    # -- cleaning ---------------------------------------------------------------------------------------
    def _clean(self, args: dict, result: dict) -> dict:
        with open(self._find_needle("files", "jobctl.py"), "rb") as f:
            source = f.read()
        root = _quote_path(args["root"])
        res = self._low_level_execute_command(
            f"{self._py} -S - clean {root} {float(args.get('older_than') or 0)}",
            sudoable=False,
            in_data=source,
        )
        info = self._last_json(res.get("stdout", ""))
        if res["rc"] != 0 or info is None:
            raise AnsibleActionFail(
                f"cleaning {args['root']} failed on {self._host}: {res.get('stderr', '')}"
            )
        result.update(changed=bool(info["removed"]), rt_removed=info["removed"], rt_kept=info["kept"])
        return result

    # -- helpers ------------------------------------------------------------------------------------
    def _jobctl(self, command: str) -> dict:
        res = self._low_level_execute_command(
            f"{self._py} -S {self._job_q}/.rt/jobctl.py {command.split()[0]} {self._job_q} "
            + " ".join(command.split()[1:]),
            sudoable=False,
        )
        info = self._last_json(res.get("stdout", ""))
        if info is None and command == "status" and res["rc"] != 0:
            return {"missing": True, "job": ""}
        if res["rc"] != 0 or info is None:
            raise AnsibleActionFail(
                f"jobctl {command.split()[0]} failed on {self._host} (rc {res['rc']}): "
                f"{(res.get('stderr') or '').strip()}"
            )
        return info

    def _relay(self, record: dict) -> None:
        record["h"] = self._host
        if self._records:
            display.display(RELAY_MARKER + " " + json.dumps(record, separators=(",", ":")))
        elif record["k"] == "out":
            lines = (self._partial + base64.b64decode(record["d"])).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                display.display(f"[{self._host}] {line.decode('utf-8', 'replace')}")

    def _flush_partial(self) -> None:
        if self._partial and not self._records:
            display.display(f"[{self._host}] {self._partial.decode('utf-8', 'replace')}")
        self._partial = b""

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

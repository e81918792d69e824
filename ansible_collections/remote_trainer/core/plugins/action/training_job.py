"""Action plugin: launch, follow, inspect, stop and clean training jobs on a host, over the task's connection.

Arguments: `mode`, `job` (the training_job dict with its defaults filled in: plugin_utils/job_options.py) and,
for `launch`, `host` (this host's values set by the playbook: python, helper_python, environment, rank,
master_addr, nodes (the resolved count), stage (the workdir mirror on this host, or ""), container (the
engine and image of a container job, or {})).

Modes:
- `quick`: a plain job on a prepared host in one step. `job` is the job as given (defaults not filled in yet)
  and `host` what the inventory says of this host (root, executor, image, python_interpreter; the
  remote_host_* settings are read from the task's variables). When the job needs nothing but its script (the
  process executor, no workdir, no image, no nodes) and the host is prepared for it (remote_host's check:
  a python, and the venv of its requirements ready), this is `launch` after that check, with remote_host's
  report relayed first (a `report` record); the result has `rt_quick` true, the job with its defaults
  (`quick_job`), the python that ran jobctl (`quick_helper_python`) and `rt_next`, true when the outputs are
  to be brought back. Otherwise it starts nothing and returns `rt_quick` false (and `rt_next` true): the
  playbook then takes the steps one by one (and reports any problem there).
- `launch`: one remote command unpacks the job's payload (the script, the job spec and jobctl.py) from
  stdin into a new private job directory (after copying the staged workdir mirror into it, when there is
  one) and starts the script detached (setsid). Then, unless `detach`, it follows the job like `follow`.
  A cancel file present before the launch, or a timeout already spent (provisioning counts), starts nothing.
- `follow`: reads the job's log from `offset` and hands new bytes to Ansible's display, one message per
  batch, which ansible-runner turns into `verbose` events while the task runs. Over ssh without a password
  and on the local connection it is one remote command for the whole job (`jobctl.py stream`, read as it
  comes, `_Stream`); otherwise, and with `until_now`, it long-polls (`jobctl.py poll`). Ends when the job
  has ended and every byte was relayed (or, with `until_now`, at the log's current end). A host that
  becomes unreachable is retried for `reconnect` seconds, resuming at the same offset.
- `kill`: SIGTERM to the job's processes, SIGKILL after `grace` (by a detached reaper on the host), then
  waits for the end without relaying. A job that already ended is left as it is.
- `status`: the job's state without waiting.
- `collected`: marks the job's outputs as copied back (`clean` keeps uncollected outputs until then).
- `clean`: removes ended job directories under `root` older than `older_than` seconds.

The timeout is enforced on the host by the job's own launcher (jobctl.py), whether or not anything follows
the job. While following a launched job, the appearance of `cancel_file` on the controller stops the job
like `kill` and keeps relaying until it has ended, so that the script's last words are not lost.

Every failure carries its kind in the fact `training_job_failure` ({kind, msg, ...}); the driver maps kinds
to exit codes (driver/errors.py). How the script is started on the host is the job's `executor`, turned
into the host's command in one place (`command`).

Relay records (plugin_utils/relay.py, when the run asks for them) are single lines: a marker, a space, and
JSON with `k` (kind: `launched`, `out`, `conn`, `queue` or `report`), `h` (inventory host), for `report`
remote_host's report `report`, for `out` the log offset `o` and base64 bytes `d`, for `conn` (a followed
host's connection) the state `s` (`lost`, `back`, or `gone`: given up after `reconnect` seconds, the task then
fails as unreachable while the job goes on), the offset `o` and the wait `w`, for `queue` (a job of an
executor with a queue: Slurm) its `id`, state `s`, reason `r` and nodes `n`, sent when they change. In a
playbook of one's own (no records asked for) the script's lines themselves are displayed, prefixed with the
host.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import select
import shlex
import signal
import subprocess
import tarfile
import time

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.remote_trainer.core.plugins.plugin_utils import executor as executors
from ansible_collections.remote_trainer.core.plugins.plugin_utils import host_check, job_options
from ansible_collections.remote_trainer.core.plugins.plugin_utils.check_mode import refuse_check_mode
from ansible_collections.remote_trainer.core.plugins.plugin_utils.relay import (
    CUT,
    CUT_HERE,
    REDRAW,
    Lines,
    record_line,
    wants_records,
)
from ansible_collections.remote_trainer.core.plugins.plugin_utils.role_files import role_file

display = Display()

MODES = ("quick", "launch", "follow", "kill", "status", "collected", "clean")
MAX_CHUNK = 256 * 1024  # most log bytes relayed by one poll
MAX_STREAM_LINE = 2 * MAX_CHUNK + 65536  # longest line of `jobctl stream` (MAX_CHUNK in base64, the state)
STREAM_CHECK = 0.25  # seconds between looks at the cancel file while a stream says nothing
FIRST_POLL_WAIT = 0.25  # longest wait of the poll made by the launch's own command (a no-op job ends in it)
RESTAGE = shlex.quote(json.dumps({"restage": True}))  # a quick launch's answer: the mirror is not the workdir
# The launch's answer when the job's directory is there already (an id used twice).
EXISTS = shlex.quote(json.dumps({"exists": True}))


def _quote_path(path: str) -> str:
    """Shell-quote a remote path, keeping a leading ~/ or $VAR/ (say $SCRATCH) expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    var = re.match(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?(/|$)", path)
    if var:
        rest = path[var.end() :]
        return f'"${var.group(1)}"' + ("/" + shlex.quote(rest) if rest else "")
    return shlex.quote(path)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _warm() -> None:
    """Load what the workers need before ansible-playbook forks them.

    This module is imported by ansible-playbook's main process, and every task of every host runs in a fork
    of it: what is loaded here is loaded once, not once per host and task (about 25 ms each: the job's
    options and remote_host's, both from their argument specs).
    """
    import importlib

    importlib.import_module("ansible.module_utils.common.arg_spec")  # the argument specs' validator
    job_options.job_options("main")
    host_check.spec_options()


def command(job: dict, host: dict, script: str, args: list[str], env_names: list[str]) -> dict:
    """How the script starts on this host: the launcher's part of spec.json (jobctl.py).

    The one place that turns the host's executor (host["executor"], decided by plugin_utils/executor.py)
    into the host's command, through COMMANDS: `process` (the host's python or the provisioned venv's),
    `container` (host["container"] set: the engine runs the script in the image) or `slurm` (the host's
    python, in an allocation that sbatch asks for). Returns {"argv", "env" (the rendezvous environment of a
    multi-node job), for a container "expand", "term" and "stop", for an executor of its own on the host
    "executor" (its module jobctl_NAME.py, sent with jobctl), "host_files" (more files it needs there) and its
    settings (jobctl.py)}. env_names are the names of every variable the script gets (their values travel
    in the spec, never in argv).
    """
    executor = host.get("executor") or ("container" if host.get("container") else "process")
    if executor in COMMANDS:
        return COMMANDS[executor](job, host, script, args, env_names)
    if executor not in executors.EXECUTORS:
        raise AnsibleActionFail(f"unknown executor {executor!r}")
    # An executor of its own: its command in plugin_utils/executor_NAME.py (its host side: jobctl_NAME.py).
    return executors.module(executor).command(job, host, script, args, env_names, rank_command)


rank_command = executors.rank_command


def process_command(job: dict, host: dict, script: str, args: list[str], env_names: list[str]) -> dict:
    """The process executor: the host's python (or the provisioned venv's) runs the script."""
    nodes = int(host.get("nodes") or 0)
    rank, addr = int(host.get("rank") or 0), str(host.get("master_addr") or "")
    argv, env = rank_command(job, host["python"], script, args, nodes, rank, addr)
    return {"argv": argv, "env": env, "python": host["python"]}


def container_command(job: dict, host: dict, script: str, args: list[str], env_names: list[str]) -> dict:
    """The container executor: the host's engine runs the script in the job's image."""
    container = host.get("container") or {}
    if not container:
        raise AnsibleActionFail("the container executor without a container engine on this host")
    python = job["container"]["python"]
    nodes = int(host.get("nodes") or 0)
    rank, addr = int(host.get("rank") or 0), str(host.get("master_addr") or "")
    argv, env_s = rank_command(job, python, script, args, nodes, rank, addr)
    engine, name = container_engine_argv(job, container)
    launch: dict = {}
    packages = container.get("packages") or ""
    if packages:
        # The requirements, installed for this image by remote_host (pip --target): mounted read-only and
        # first on the path; the set's python mark lets jobctl record its use (cache list / prune).
        engine.append(f"--volume={packages}:{packages}:ro,z")
        env_s["PYTHONPATH"] = packages
        launch["python"] = packages + "/bin/python"
    names = sorted({*env_names, *env_s, "PYTHONUNBUFFERED"})
    prefix = engine + [f"--env={n}" for n in names] + [container["image"]]
    return {
        **launch,
        "argv": prefix + argv,
        "env": env_s,
        "expand": len(prefix),
        "term": [container["path"], "kill", "--signal=TERM", name],
        "stop": container_stop(job, container, name),
    }


def merged_env(inventory_env: dict, launch_env: dict, user_env: dict) -> dict:
    """The script's environment: the inventory's, the launcher's (rendezvous, the image's packages), then
    --env; a PYTHONPATH of the inventory or --env comes after the image's packages, not instead of them."""
    env = {**inventory_env, **launch_env, **user_env}
    theirs = user_env.get("PYTHONPATH") or inventory_env.get("PYTHONPATH")
    if "PYTHONPATH" in launch_env and theirs:
        env["PYTHONPATH"] = launch_env["PYTHONPATH"] + os.pathsep + theirs
    return env


def container_name(job: dict) -> str:
    return "remote-trainer-" + job["id"]


def container_engine_argv(job: dict, container: dict) -> tuple[list[str], str]:
    """`ENGINE run ...` up to the image: the job's working directory mounted at the same path (@WORK@, filled
    in by jobctl; `z`: relabelled for the container where SELinux is on) and the script's cwd, host
    networking (multi-node rendezvous, services on the host), an init that passes SIGTERM on to the script,
    the host user's files (rootless engines map it to the container's root; else --user), GPUs and /dev/shm
    as asked."""
    spec = job["container"]
    engine, kind, name = container["path"], container["name"], container_name(job)
    argv = [engine, "run", f"--name={name}", "--init", "--network=host", "--pull=never"]
    if not spec["keep"]:
        argv.append("--rm")
    argv += ["--volume=@WORK@:@WORK@:z", "--workdir=@WORK@"]
    if not container.get("rootless") and int(container.get("uid") or 0) != 0:
        argv.append(f"--user={int(container['uid'])}:{int(container['gid'])}")
    if spec["shm_size"]:
        argv.append(f"--shm-size={spec['shm_size']}")
    gpus = spec["gpus"]
    if gpus and kind == "docker":
        argv.append(f"--gpus={gpus}")
    elif gpus:  # podman: the NVIDIA container toolkit's CDI devices
        ids = ["all"] if gpus == "all" else [str(i) for i in range(int(gpus))]
        argv += [f"--device=nvidia.com/gpu={i}" for i in ids]
    return argv, name


def container_stop(job: dict, container: dict, name: str) -> list[str]:
    """The engine command that leaves no container of the job behind (kept: stops it only)."""
    engine = container["path"]
    if job["container"]["keep"]:
        return [engine, "kill", name]
    if container["name"] == "podman":
        return [engine, "rm", "--force", "--time=0", "--ignore", name]
    return [engine, "rm", "--force", name]


# The commands of the executors that jobctl.py itself carries out (any other: an executor of its own).
COMMANDS = {"process": process_command, "container": container_command}


class _Stream:
    """A remote `jobctl stream` read as it comes: one JSON line at a time (a poll's answer).

    jobctl's lines are at most MAX_CHUNK bytes of base64 and a few fields: a line longer than MAX_STREAM_LINE
    (a host that answers with something else) ends the stream rather than fill the memory; each byte read is
    searched for the line's end once."""

    def __init__(self, argv: list, host: str) -> None:
        self._host = host
        self._buf = bytearray()
        self._searched = 0  # bytes of _buf known to hold no "\n"
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_us,
        )

    def next(self, timeout: float) -> dict | None:
        """The next line's state; None when none came within timeout. A connection that broke (ssh's 255)
        raises AnsibleConnectionFailure, any other end before the job's, a line too long or not a JSON
        object AnsibleActionFail."""
        deadline = time.monotonic() + timeout
        while (end := self._buf.find(b"\n", self._searched)) < 0:
            self._searched = len(self._buf)
            if len(self._buf) > MAX_STREAM_LINE:
                raise AnsibleActionFail(
                    f"jobctl stream on {self._host} sent a line longer than {MAX_STREAM_LINE} bytes"
                )
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self._proc.stdout.fileno(), 1 << 20)
            if not chunk:
                rc = self._proc.wait()
                err = self._proc.stderr.read(4096).decode("utf-8", "replace").strip()
                if rc == 255:
                    raise AnsibleConnectionFailure(f"ssh to {self._host} ended: {err}")
                raise AnsibleActionFail(f"jobctl stream ended on {self._host} (rc {rc}): {err}")
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        self._searched = 0
        try:
            st = json.loads(line)
        except (ValueError, RecursionError):
            st = None
        if not isinstance(st, dict):
            raise AnsibleActionFail(f"jobctl stream on {self._host} sent a line that is not a JSON object")
        return st

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            pipe.close()


def _die_with_us() -> None:
    """In the stream's ssh (before exec): end with the worker that reads it (Linux), so that no ssh outlives
    an ansible-playbook that was stopped."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ActionModule(ActionBase):
    # Files travel on stdin of one command (never through a remote temporary directory, which would cost two
    # round trips on every call: mkdir before the action, rm after it).
    TRANSFERS_FILES = False
    # It starts, stops and removes jobs: under --check the task is skipped, with a warning that says why, and
    # nothing runs on the host.
    _supports_check_mode = False
    _VALID_ARGS = frozenset(("mode", "job", "host"))

    def run(self, tmp=None, task_vars=None):
        refuse_check_mode(self._task, "starts, stops and removes jobs")
        result = super().run(tmp, task_vars)
        args = self._task.args
        self._host = (task_vars or {}).get("inventory_hostname", "?")
        self._task_vars = task_vars or {}
        job = args.get("job") or {}
        host = args.get("host") or {}
        self._records = wants_records(task_vars)
        self._lines = Lines()  # a plain playbook's display of the output
        if args.get("mode") == "quick":
            return self._quick(job, host, result)
        helper = str(host.get("helper_python") or "")
        if not helper:  # the role's tasks pass training_job_helper_python (its default is in defaults/)
            raise AnsibleActionFail("host.helper_python is required")
        # `auto*` names ask Ansible's module interpreter discovery; the helper just needs a python3.
        self._py = shlex.quote("python3" if helper.startswith("auto") else helper)
        mode = args.get("mode")
        if mode not in MODES:
            raise AnsibleActionFail(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if mode == "clean":
            return self._clean(job, result)
        self._job_q = f"{_quote_path(job['root'])}/{shlex.quote(job['id'])}"
        if mode == "launch":
            return self._launch(job, host, result)
        status = self._jobctl("status")
        result["job_dir"] = status["job"]
        if status.get("missing"):
            return self._fail(result, "missing", f"no job {job['id']} on {self._host}", job=job["id"])
        self._job_q = shlex.quote(status["job"])
        if mode == "status":
            result.update(self._status_fields(status))
        elif mode == "follow":
            offset = int((job.get("offsets") or {}).get(self._host, job["offset"]))
            result.update(self._follow(job, offset=offset, until_now=job["until_now"]))
        elif mode == "kill":
            killed = self._jobctl(f"kill {job['grace']} {shlex.quote(job['reason'])}")
            result["changed"] = bool(killed.get("signalled"))
            result.update(self._follow(job, offset=killed["size"], quiet=True))
        elif mode == "collected":
            self._jobctl("collected")
            result.update(changed=True, rt_collected=True)
        return result

    def _fail(self, result: dict, kind: str, msg: str, **extra) -> dict:
        """A failure the driver can tell apart by its kind (never by this message)."""
        result.update(failed=True, msg=msg)
        failure = {"kind": kind, "msg": msg, "host": self._host, **extra}
        result["ansible_facts"] = {"training_job_failure": failure}
        return result

    # -- quick ------------------------------------------------------------------------------------
    def _quick(self, given: dict, inventory: dict, result: dict) -> dict:
        planned = self._quick_plan(given, inventory)
        if planned is None:
            result.update(rt_quick=False, rt_next=True, changed=False)
            return result
        job, host, report = planned
        helper = str(host["helper_python"])
        self._py = shlex.quote("python3" if helper.startswith("auto") else helper)
        self._job_q = f"{_quote_path(job['root'])}/{shlex.quote(job['id'])}"
        if report is not None:
            self._relay({"k": "report", "report": report})
        result.update(rt_quick=True, quick_job=job, quick_helper_python=helper)
        self._launch(job, host, result, stage_must_match=bool(host["stage"]))
        if result.pop("rt_restage", False):
            result.update(rt_quick=False, rt_next=True, changed=False)
            return result
        # What the role's collect step would be included for (main.yml): the outputs to bring back.
        result["rt_next"] = bool(
            not result.get("failed")
            and job["output_dir"]
            and result.get("rt_state") in ("ended", "lost")
            and result.get("rt_outputs")
        )
        return result

    def _quick_plan(self, given: dict, inventory: dict) -> tuple[dict, dict, dict | None] | None:
        """The job with its defaults, this host's launch values and remote_host's report, when the job can
        start in one step; None when it needs the playbook's steps (or they must say what is wrong)."""
        try:
            job = job_options.training_job_contract(given, "main", str(inventory.get("root") or ""))
        except Exception:  # the steps' own contract check reports it
            return None
        image = job["container"]["image"] or str(inventory.get("image") or "")
        try:
            executor = executors.training_job_executor(
                job["executor"], str(inventory.get("executor") or ""), image
            )
        except Exception:
            return None
        plain = executor == "process" and not (image or job["container"]["build"])
        # A workdir: when its mirror on the host may already hold it (checked by the launch itself).
        local = self._task_vars.get("ansible_connection", "ssh") == "local"
        staged = not job["workdir"] or (job["stage_manifest"] and not local)
        if not plain or not staged or job["nodes"] != "0":
            return None
        names = [name for name in self._task_vars if name.startswith("remote_host_")]
        check = host_check
        settings = check.validated_settings(
            {name: self._templar.template(self._task_vars[name]) for name in names}
        )
        if settings is None:
            return None
        report = None
        if job["provision"]:
            settings["image"] = {}
            plan = check.check_host(self, settings, self._host)
            if not plan["python"] or (plan["install"] and not plan["ready"]):
                return None  # no python (the steps say so), or a set to install
            python, helper = plan["run_python"], plan["python"]
            report = check.report(plan, settings["interpreter"], local)
        else:
            python, helper = job["python"], str(inventory.get("python_interpreter") or "python3")
        hosts = self._task_vars.get("ansible_play_hosts_all") or [self._host]
        host = {
            "python": python,
            "helper_python": helper,
            "environment": settings["environment"],
            "executor": executor,
            "nodes": 0,
            "rank": hosts.index(self._host) if self._host in hosts else 0,
            "master_addr": "",
            "stage": "",
            "container": {},
        }
        if job["workdir"]:
            key = job["stage_key"] or hashlib.sha1(job["workdir"].encode()).hexdigest()[:16]
            host["stage"] = f"{job['stage_root']}/{key}"  # as the role's stage.yml names the mirror
        return job, host, report

    # -- launch -----------------------------------------------------------------------------------
    def _stopped_before_launch(self, job: dict) -> tuple[str | None, float]:
        """A reason not to start at all (cancel file present, timeout spent), and the time left."""
        if job["cancel_file"] and os.path.exists(job["cancel_file"]):
            return self._read_reason(job["cancel_file"]), 0.0
        if job["timeout"] <= 0:
            return None, 0.0
        left = job["timeout"] - (time.time() - (job["created"] or time.time()))
        return ("timeout", 0.0) if left <= 0 else (None, left)

    def _payload(self, job: dict, host: dict, left: float) -> tuple[bytes, bool]:
        """The tar.gz sent on stdin: jobctl, the spec, and the script unless the workdir mirror has it."""
        spec_in = {}
        if job["spec_file"]:
            with open(job["spec_file"], "rb") as f:
                spec_in = json.load(f)
        stage = spec_in.get("stage") or {}
        rel = stage.get("script") or os.path.basename(job["script"])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            if not stage.get("script"):
                tar.add(job["script"], arcname="work/" + rel)
            with open(role_file("training_job", "jobctl.py"), "rb") as f:
                _add_bytes(tar, ".rt/jobctl.py", f.read(), 0o700)
            inventory_env = {str(k): str(v) for k, v in (host.get("environment") or {}).items()}
            user_env = spec_in.get("env", {})
            launch = command(job, host, rel, spec_in.get("args", []), [*inventory_env, *user_env])
            if launch.get("executor"):  # an executor of its own: its host side (and the preflight) by jobctl
                names = [f"jobctl_{launch['executor']}.py", *launch.pop("host_files", [])]
                for name in names:
                    with open(role_file("training_job", name), "rb") as f:
                        _add_bytes(tar, f".rt/{name}", f.read(), 0o600)
            spec = {
                **launch,
                "env": merged_env(inventory_env, launch["env"], user_env),
                "output": job["output"],
                "timeout": left,
                "grace": job["grace"],
                "collect": bool(job["output_dir"]),
            }
            _add_bytes(tar, ".rt/spec.json", json.dumps(spec).encode())
        return buf.getvalue(), bool(stage)

    def _launch(self, job: dict, host: dict, result: dict, stage_must_match: bool = False) -> dict:
        """Start the job (and follow it unless detached). stage_must_match (quick): start only when the
        workdir's mirror was made from the job's stage_manifest, else start nothing and set rt_restage."""
        problem = job_options.output_problem(job["output"])
        if problem:
            return self._fail(result, "bad_output", f"output {job['output']!r} is not usable: {problem}")
        reason, left = self._stopped_before_launch(job)
        if reason is not None:
            # Stopped during an earlier phase (provisioning, staging, preflight): the script never starts.
            result.update(rt_state="not_started", rt_stopped=reason, rt_rc=None)
            return result
        try:
            payload, staged = self._payload(job, host, left)
        except AnsibleActionFail as exc:
            return self._fail(result, "executor", f"{exc} (on {self._host})")
        root = _quote_path(job["root"])
        job_q = shlex.quote(job["id"])
        copy = check = ""
        # A followed job's first poll is part of the launch's own remote command (one round trip less), and
        # short: until it answers, the driver does not know the job started (a connection lost then loses
        # the launch's own reply).
        first_wait = min(float(job["poll_wait"]), FIRST_POLL_WAIT)
        first_poll = "" if job["detach"] else f" --poll {first_wait:.3f} {MAX_CHUNK}"
        if staged and host.get("stage"):
            mirror = _quote_path(host["stage"])
            # Hard links make the private copy of an unchanged workdir nearly free.
            copy = f"{{ cp -al {mirror}/. work/ 2>/dev/null || cp -a {mirror}/. work/; }} && "
            # The mirror's manifest: what the driver listed when the mirror was last made from its workdir.
            # Staging removes it before rsync changes the mirror (stage.yml); a launch that follows staging
            # writes it; a quick launch checks it before it starts anything.
            manifest = str(job.get("stage_manifest") or "")
            marker = _quote_path(host["stage"] + ".manifest")
            if stage_must_match:
                held = f'"$(cat {marker} 2>/dev/null)"'
                check = f"[ {held} = {shlex.quote(manifest)} ] || exec echo {RESTAGE}; "
            elif manifest:
                copy += f"printf %s {shlex.quote(manifest)} > {marker} && "
        cmd = (
            f"{check}umask 077 && mkdir -p {root} && cd {root} && "
            f"{{ mkdir {job_q} 2>/dev/null || exec echo {EXISTS}; }} && cd {job_q} && "
            f'mkdir work && {copy}tar -xzf - && exec {self._py} -S .rt/jobctl.py launch "$PWD"{first_poll}'
        )
        res = self._low_level_execute_command(cmd, sudoable=False, in_data=payload)
        replies = self._json_lines(res.get("stdout", ""))
        info = replies[0] if replies else None
        polled = replies[1] if len(replies) > 1 else None
        if stage_must_match and info is not None and info.get("restage"):
            result["rt_restage"] = True  # the mirror is not this workdir's: nothing was started
            return result
        if info is not None and info.get("exists"):
            # Another job's directory (an id used twice): left as it is, that job may still be running.
            return self._fail(
                result,
                "launch",
                f"a job {job['id']} already exists on {self._host} (in {job['root']}): start this one with "
                "another id",
            )
        if info is not None and info.get("refused"):
            # sbatch said no (a partition, account or option it does not take): its own words, nothing left.
            self._low_level_execute_command(f"rm -rf {root}/{job_q}", sudoable=False)
            kind = "no_slurm" if info.get("why") == "no_sbatch" else "slurm_refused"
            return self._fail(result, kind, f"Slurm refused the job on {self._host}: {info['refused']}")
        if res["rc"] != 0 or info is None:
            stderr = (res.get("stderr") or "").strip()
            # No python for jobctl (127, not found) or one too old for it (SyntaxError).
            signs = ("not found", "No such file", "SyntaxError")
            unusable = res["rc"] == 127 or any(sign in stderr for sign in signs)
            kind = "helper_python" if unusable else "launch"
            # Nothing of a job that never started stays on the host.
            self._low_level_execute_command(f"rm -rf {root}/{job_q}", sudoable=False)
            detail = stderr or res.get("stdout", "").strip()
            if not detail:  # say what ran, since it said nothing
                detail = f"{self._py} -S .rt/jobctl.py launch exited {res['rc']} and printed nothing"
            return self._fail(
                result, kind, f"could not start the job on {self._host}: {detail}".strip(), rc=res["rc"]
            )
        hosts = self._task_vars.get("ansible_play_hosts_all") or [self._host]
        launched = {"k": "launched", "job": info["job"], "pgid": info["pgid"], "n": len(hosts)}
        if info.get("slurm"):
            launched["slurm"] = info["slurm"]
        if int(host.get("nodes") or 0) > 0 and not info.get("slurm"):  # Slurm's ranks are srun's labels
            launched["r"] = int(host["rank"])
        self._relay(launched)
        self._job_q = shlex.quote(info["job"])
        result.update(changed=True, job_dir=info["job"])
        if job["detach"]:
            result.update(rt_state="running", rt_rc=None, rt_stopped=None)
            return result
        result.update(self._follow(job, offset=0, cancel_file=job["cancel_file"], first=polled))
        return result

    # -- following ----------------------------------------------------------------------------------
    def _follow(
        self,
        job: dict,
        offset: int,
        cancel_file: str = "",
        until_now: bool = False,
        quiet: bool = False,
        first: dict | None = None,
    ) -> dict:
        """Relay the job's log from `offset` until its end (see the module's docstring); `first` is a poll
        already made (by the launch), used for the first round."""
        cancelled = None
        unreachable_since = None
        stop_at = None
        queue = None  # Slurm: the last state and reason relayed
        # Following a job to its end: one remote `jobctl stream` for as long as it runs, where the connection
        # lets the plugin read a command's output as it comes (ssh without a password, local); else polls.
        streamable = not (until_now or quiet) and self._stream_argv("true") is not None
        stream = None
        try:
            while True:
                if cancel_file and cancelled is None and os.path.exists(cancel_file):
                    cancelled = self._read_reason(cancel_file)
                    self._jobctl(f"kill {job['grace']} {shlex.quote(cancelled)}")
                wait = 0.0 if until_now else job["poll_wait"]
                try:
                    if first is not None and cancelled is None:
                        st = first
                    elif streamable:
                        if stream is None:
                            stream = _Stream(
                                self._stream_argv(
                                    self._jobctl_command(f"stream {offset} {wait:.3f} {MAX_CHUNK}")
                                ),
                                self._host,
                            )
                        try:
                            st = stream.next(STREAM_CHECK)
                        except AnsibleActionFail as exc:
                            # Not the connection: a jobctl without `stream` (a job started by an older
                            # version) or a stream that broke. Polls take over from the same offset.
                            display.vvv(f"{self._host}: {exc}; polling")
                            stream.close()
                            stream, streamable = None, False
                            continue
                        if st is None:
                            continue  # nothing new yet: look at the cancel file again
                    else:
                        st = self._jobctl(f"poll {offset} {wait:.3f} {0 if quiet else MAX_CHUNK}")
                    first = None
                    if unreachable_since is not None:
                        self._relay({"k": "conn", "s": "back", "o": offset})
                    unreachable_since = None
                except AnsibleConnectionFailure as exc:
                    if stream is not None:
                        stream.close()
                        stream = None
                    if self._gone(job, offset, exc, unreachable_since):
                        raise
                    unreachable_since = unreachable_since or time.monotonic()
                    time.sleep(1.0)
                    continue
                result = self._round(job, st, offset, quiet, queue, until_now, stop_at)
                offset, queue, stop_at, ended = result
                if ended is not None:
                    return ended
        finally:
            if stream is not None:
                stream.close()

    def _gone(self, job: dict, offset: int, exc: Exception, since: float | None) -> bool:
        """A followed host's connection failed: relay `lost` the first time, `gone` (True) once it has been
        down for longer than `reconnect` seconds."""
        now = time.monotonic()
        if since is None:
            since = now
            self._relay({"k": "conn", "s": "lost", "o": offset, "w": job["reconnect"]})
        if now - since > job["reconnect"]:
            # The job goes on there; the driver tells the user how to reattach.
            self._relay({"k": "conn", "s": "gone", "o": offset, "w": job["reconnect"]})
            return True
        display.vvv(f"{self._host}: connection lost ({exc}); retrying")
        return False

    def _round(
        self, job: dict, st: dict, offset: int, quiet: bool, queue, until_now: bool, stop_at
    ) -> tuple[int, object, object, dict | None]:
        """Relay one poll's news. Returns the new offset, queue and stop_at, and the result once it ended."""
        slurm = st.get("slurm")
        if slurm and not quiet and (slurm.get("state"), slurm.get("reason")) != queue and st["rc"] is None:
            queue = (slurm.get("state"), slurm.get("reason"))
            if slurm.get("state"):
                self._relay(
                    {
                        "k": "queue",
                        "id": slurm["id"],
                        "s": slurm["state"],
                        "r": slurm["reason"],
                        "n": slurm.get("nodes") or "",
                    }
                )
        if quiet:
            offset = st["size"]
        elif st["n"]:
            self._relay({"k": "out", "o": offset, "d": st["data"]})
            offset += st["n"]
        if stop_at is None and until_now:
            stop_at = st["size"]
        done = st["eof"] or (st["rc"] is not None and quiet)
        lost = st["rc"] is None and not st["alive"] and (quiet or st["n"] == 0)
        if done or lost or (stop_at is not None and offset >= stop_at):
            self._flush_partial()
            return offset, queue, stop_at, {"rt_bytes": offset, **self._status_fields(st)}
        return offset, queue, stop_at, None

    @staticmethod
    def _status_fields(st: dict) -> dict:
        lost = st["rc"] is None and not st["alive"]
        return {
            "rt_rc": st["rc"],
            "rt_state": "ended" if st["rc"] is not None else ("lost" if lost else "running"),
            "rt_stopped": st.get("stopped"),
            "rt_size": st["size"],
            "rt_outputs": st.get("outputs", False),
            "rt_collected": st.get("collected", False),
            "rt_started": st.get("started"),
            "rt_ended": st.get("ended"),
            "rt_lost": st.get("lost") if lost else None,
            "rt_disk_full": bool(st.get("disk_full")),
            "rt_slurm": st.get("slurm"),
        }

    # -- cleaning ---------------------------------------------------------------------------------------
    def _clean(self, job: dict, result: dict) -> dict:
        with open(role_file("training_job", "jobctl.py"), "rb") as f:
            source = f.read()
        root = _quote_path(job["root"])
        force = " force" if job["force"] else ""
        stage = _quote_path(job["stage_root"])
        res = self._low_level_execute_command(
            f"{self._py} -S - clean {root} {job['older_than']}{force} --stage {stage}",
            sudoable=False,
            in_data=source,
        )
        info = self._last_json(res.get("stdout", ""))
        if res["rc"] != 0 or info is None:
            stderr = (res.get("stderr") or "").strip()
            return self._fail(result, "clean", f"cleaning {job['root']} failed on {self._host}: {stderr}")
        result.update(
            changed=bool(info["removed"]),
            rt_removed=info["removed"],
            rt_kept=info["kept"],
            rt_uncollected=info.get("uncollected", []),
            rt_partial=info.get("partial", []),
        )
        return result

    # -- helpers ------------------------------------------------------------------------------------
    def _jobctl_command(self, command: str) -> str:
        name, _sep, rest = command.partition(" ")
        return f"{self._py} -S {self._job_q}/.rt/jobctl.py {name} {self._job_q} {rest}".rstrip()

    def _stream_argv(self, command: str) -> list | None:
        """The local argv that runs `command` on the host with its output read as it comes: the task's own
        ssh (its options, its multiplexed connection) or, on this machine, sh; None for a connection that
        cannot (another plugin, or a password to type: then the job is polled)."""
        conn = self._connection
        remote = f"/bin/sh -c {shlex.quote(command)}"
        if conn.transport == "local":
            return ["/bin/sh", "-c", command]
        if conn.transport != "ssh" or not hasattr(conn, "_build_command"):
            return None
        try:
            if conn.get_option("password") or getattr(conn, "host", None) is None:
                return None
            return conn._build_command(conn.get_option("ssh_executable"), "ssh", conn.host, remote)
        except Exception as exc:  # an ssh plugin that builds its command otherwise: poll
            display.vvv(f"{self._host}: no streaming ({exc}); polling")
            return None

    def _jobctl(self, command: str) -> dict:
        name = command.partition(" ")[0]
        res = self._low_level_execute_command(self._jobctl_command(command), sudoable=False)
        info = self._last_json(res.get("stdout", ""))
        if info is None and name == "status" and res["rc"] != 0:
            return {"missing": True, "job": ""}
        if res["rc"] != 0 or info is None:
            raise AnsibleActionFail(
                f"jobctl {name} failed on {self._host} (rc {res['rc']}): {(res.get('stderr') or '').strip()}"
            )
        return info

    def _relay(self, record: dict) -> None:
        record["h"] = self._host
        if self._records:
            fields = {k: v for k, v in record.items() if k not in ("k", "h")}
            display.display(record_line(record["k"], self._host, **fields))
        elif record["k"] == "queue":  # where a Slurm job stands, for the user of a plain playbook too
            why = f" ({record['r']})" if record.get("r") else ""
            display.display(
                f"[{self._host}] Slurm job {record['id']}: {record['s']}{why} {record.get('n', '')}".rstrip()
            )
        elif record["k"] == "out":
            # As the driver's relay, by the same rule (plugin_utils/relay.py Lines): a line ends with "\n" or
            # "\r\n", or with a lone "\r" (a progress bar's redraw), shown without a newline so that the next
            # one overwrites it; a line longer than 1 MiB comes in pieces, each but the last with a marker.
            try:
                data = base64.b64decode(record["d"], validate=True)
            except (TypeError, ValueError):
                display.warning(f"[{self._host}] jobctl sent output that is not base64; it is not shown")
                return
            for line, ended in self._lines.feed(data):
                text = line.decode("utf-8", "replace")
                if ended == REDRAW:
                    display.display(f"[{self._host}] {text}\r", newline=False)
                else:
                    display.display(f"[{self._host}] {text}{CUT if ended == CUT_HERE else ''}")

    def _flush_partial(self) -> None:
        rest = self._lines.rest()
        if rest and not self._records:
            display.display(f"[{self._host}] {rest.decode('utf-8', 'replace')}")

    @staticmethod
    def _read_reason(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip() or "cancelled"
        except OSError:
            return "cancelled"

    @staticmethod
    def _json_lines(stdout: str) -> list[dict]:
        """The JSON objects of stdout, one a line, in order (other lines skipped)."""
        found = []
        for line in stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

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


try:
    _warm()
except Exception as exc:  # each is loaded again where it is used, and fails there with its own message
    display.vvv(f"training_job: not loaded ahead: {exc}")

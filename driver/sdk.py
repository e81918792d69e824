"""Kubeflow SDK without a cluster: a TrainerClient whose backend runs CustomTrainer functions on hosts.

    from driver.sdk import RemoteBackendConfig, RemoteTrainerClient
    from kubeflow.trainer import CustomTrainer

    client = RemoteTrainerClient(RemoteBackendConfig(inventory="hosts.ini"))
    job = client.train(trainer=CustomTrainer(func=train, func_args={"lr": 0.01}, packages_to_install=["six"]))
    for line in client.get_job_logs(job, follow=True):
        print(line)
    client.wait_for_job_status(job)

The SDK's own dispatch (TrainerClient.__init__) is a closed if/elif over its config types, so the
subclass sets its backend itself. Jobs are the driver's detached jobs: their state lives in the driver's
job store and on the hosts, so a second Python process (or `driver jobs`) sees them. The function is
called as the Kubernetes backend calls it: func(**func_args).
"""

from __future__ import annotations

import inspect
import queue
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kubeflow.trainer.api.trainer_client import TrainerClient
from kubeflow.trainer.backends.base import RuntimeBackend
from kubeflow.trainer.constants import constants
from kubeflow.trainer.types import types

from driver.cluster.submit import valid_name
from driver.execution import assets
from driver.job import store as jobs
from driver.job.spec import Container, JobSpec, Requirements
from driver.ops import control
from driver.ops.train import train as run_train

RUNTIME_NAME = "remote"


@dataclass
class RemoteBackendConfig:
    """Where CustomTrainer functions run: an Ansible inventory (None: this machine) and a host pattern."""

    inventory: str | None = None
    limit: str | None = None
    python: str | None = None
    index_url: str | None = None
    wheelhouse: str | None = None
    no_index: bool = False
    # The venv of packages_to_install also sees the host python's packages (a CUDA torch, say).
    system_site_packages: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run the functions in a container of this image on each host (as `driver train --image`); the engine
    # (auto: podman, else docker), GPUs ("all" or a count), /dev/shm, and whether to send the local image.
    image: str | None = None
    engine: str | None = None
    gpus: str | None = None
    shm_size: str | None = None
    image_from_local: bool = False


def _runtime() -> types.Runtime:
    trainer = types.RuntimeTrainer(
        trainer_type=types.TrainerType.CUSTOM_TRAINER,
        framework=RUNTIME_NAME,
        image="(none: runs on the hosts)",
    )
    trainer.set_command(constants.DEFAULT_COMMAND)
    return types.Runtime(name=RUNTIME_NAME, trainer=trainer, kind=types.RuntimeKind.CLUSTER_TRAINING_RUNTIME)


def function_script(func: Callable, func_args: dict | None) -> str:
    """The function's source and its call, as the SDK's Kubernetes backend writes them: func(**func_args)."""
    if not callable(func):
        raise ValueError(f"CustomTrainer.func must be callable, got {type(func)}")
    source = textwrap.dedent(inspect.getsource(func))
    call = f"{func.__name__}()" if func_args is None else f"{func.__name__}(**{func_args!r})"
    return f"{source}\n{call}\n"


class RemoteBackend(RuntimeBackend):
    """RuntimeBackend of the Kubeflow SDK over the driver: train, jobs, logs, wait, delete."""

    def __init__(self, cfg: RemoteBackendConfig) -> None:
        self.cfg = cfg

    # -- runtimes -----------------------------------------------------------------------------------
    def list_runtimes(self) -> list[types.Runtime]:
        return [_runtime()]

    def get_runtime(self, name: str) -> types.Runtime:
        if name != RUNTIME_NAME:
            raise ValueError(f"Runtime {name!r} not found: this backend has one runtime, {RUNTIME_NAME!r}")
        return _runtime()

    def get_runtime_packages(self, runtime: types.Runtime):
        raise NotImplementedError(
            "get_runtime_packages is not supported by the remote backend: packages are per job "
            "(CustomTrainer.packages_to_install), installed in a cached venv on each host"
        )

    # -- training -------------------------------------------------------------------------------------
    def train(
        self,
        runtime: str | types.Runtime | None = None,
        initializer: types.Initializer | None = None,
        trainer: types.CustomTrainer | types.CustomTrainerContainer | types.BuiltinTrainer | None = None,
        options: list | None = None,
    ) -> str:
        name = runtime.name if isinstance(runtime, types.Runtime) else (runtime or RUNTIME_NAME)
        self.get_runtime(name)
        if initializer is not None:
            raise ValueError(
                "initializers are not supported by the remote backend: fetch data in the function"
            )
        if not isinstance(trainer, types.CustomTrainer):
            raise ValueError("the remote backend runs CustomTrainer functions only")
        job_name = None
        for option in options or []:
            if type(option).__name__ == "Name":
                job_name = check_job_name(option.name)
            else:
                raise ValueError(f"option {type(option).__name__} is not supported by the remote backend")
        job_id = job_name or jobs_new_id()
        if job_name is not None and (assets.state_dir() / "jobs" / job_name).exists():
            raise ValueError(f"a job named {job_name!r} exists already")
        script_dir = assets.job_dir(job_id) / "function"
        script_dir.mkdir(exist_ok=True, mode=0o700)
        script = script_dir / f"{Path(inspect.getfile(trainer.func)).stem or 'train'}.py"
        script.write_text(function_script(trainer.func, trainer.func_args), encoding="utf-8")
        index_urls = list(trainer.pip_index_urls or [])
        requirements = Requirements(
            packages=list(trainer.packages_to_install or []),
            python=self.cfg.python,
            index_url=self.cfg.index_url
            or (index_urls[0] if trainer.packages_to_install and index_urls else None),
            extra_index_urls=index_urls[1:] if trainer.packages_to_install else [],
            wheelhouse=Path(self.cfg.wheelhouse) if self.cfg.wheelhouse else None,
            no_index=self.cfg.no_index,
            system_site_packages=self.cfg.system_site_packages,
        )
        spec = JobSpec(
            script=script,
            inventory=self.cfg.inventory,
            limit=self.cfg.limit,
            python=self.cfg.python,
            env={**self.cfg.extra_env, **(trainer.env or {})},
            requirements=requirements,
            container=Container(
                image=self.cfg.image,
                engine=self.cfg.engine,
                gpus=self.cfg.gpus,
                shm_size=self.cfg.shm_size,
                from_local=self.cfg.image_from_local,
            ),
            detach=True,
            nodes=trainer.num_nodes if trainer.num_nodes and trainer.num_nodes > 1 else 0,
            job_id=job_id,
        )
        return run_train(spec, lambda line: None).job_id

    # -- jobs -------------------------------------------------------------------------------------------
    def list_jobs(self, runtime: types.Runtime | None = None) -> list[types.TrainJob]:
        return [self._trainjob(r) for r in jobs.all_records() if not r.deleted]

    def get_job(self, name: str) -> types.TrainJob:
        record = jobs.resolve(name)
        if record.deleted:
            raise ValueError(f"TrainJob {name} was deleted")
        if record.running:
            record, _ = control.status(record.id)
        return self._trainjob(record)

    def get_job_logs(
        self, name: str, follow: bool = False, step: str = constants.NODE + "-0"
    ) -> Iterator[str]:
        record = jobs.resolve(name)
        host = self._host_of(record, step)
        lines: queue.Queue[str | None] = queue.Queue()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                control.logs(record.id, lines.put, follow=follow, host=host)
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)
            finally:
                lines.put(None)

        threading.Thread(target=read, name=f"logs-{record.id}", daemon=True).start()
        while (line := lines.get()) is not None:
            yield line
        if errors:
            raise errors[0]

    def get_job_events(self, name: str) -> list[types.Event]:
        raise NotImplementedError("get_job_events is not supported by the remote backend: there are no pods")

    def wait_for_job_status(
        self,
        name: str,
        status: set[str] = {constants.TRAINJOB_COMPLETE},  # noqa: B006  (the SDK's signature)
        timeout: int = 600,
        polling_interval: int = 2,
        callbacks: list[Callable[[types.TrainJob], None]] | None = None,
    ) -> types.TrainJob:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(name)
            for callback in callbacks or []:
                callback(job)
            if job.status in status:
                return job
            if job.status == constants.TRAINJOB_FAILED:
                record = jobs.resolve(name)
                raise RuntimeError(
                    f"TrainJob {name} is Failed ({record.state}, exit code {record.exit_code})"
                    + (f": {record.message}" if record.message else "")
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Timeout waiting for TrainJob {name} to reach status: {status}")
            time.sleep(polling_interval)

    def delete_job(self, name: str) -> None:
        """Stop the job's process tree on every host (if it runs) and forget it."""
        record = jobs.resolve(name)
        if record.running:
            control.cancel(record.id)
        jobs.update(record.id, state="deleted" if record.running else record.state, deleted=True)

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def _host_of(record: jobs.JobRecord, step: str) -> str | None:
        prefix = constants.NODE + "-"
        if not step.startswith(prefix) or not step[len(prefix) :].isdigit():
            raise ValueError(
                f"unknown step {step!r}: the steps are node-0 ... node-{max(len(record.hosts) - 1, 0)}"
            )
        index = int(step[len(prefix) :])
        if record.hosts and index >= len(record.hosts):
            raise ValueError(f"step {step!r} does not exist: the job ran on {len(record.hosts)} host(s)")
        return record.hosts[index] if len(record.hosts) > 1 else None

    @staticmethod
    def _trainjob(record: jobs.JobRecord) -> types.TrainJob:
        if record.running:
            status = constants.TRAINJOB_RUNNING
        elif record.state == "ended" and record.exit_code == 0:
            status = constants.TRAINJOB_COMPLETE
        else:
            status = constants.TRAINJOB_FAILED
        steps = [
            types.Step(name=f"{constants.NODE}-{i}", status=status, pod_name=host)
            for i, host in enumerate(record.hosts or ["localhost"])
        ]
        return types.TrainJob(
            name=record.id,
            runtime=_runtime(),
            steps=steps,
            num_nodes=max(1, len(record.hosts)),
            creation_timestamp=datetime.fromtimestamp(record.started, tz=UTC),
            status=status,
        )


def check_job_name(name: object) -> str:
    """options.Name: a TrainJob's name (a DNS-1123 label that starts with a letter), never a path."""
    if not isinstance(name, str) or not valid_name(name):
        raise ValueError(
            f"invalid job name {name!r} (options.Name): lower-case letters, digits and '-', starting with a "
            "letter and ending with a letter or digit, at most 63 characters (a Kubernetes DNS-1123 label), "
            "e.g. 'mnist-lr-0-01'"
        )
    return name


def jobs_new_id() -> str:
    """A job name the SDK's way (a letter and 11 hex digits), valid as a TrainJob name too."""
    import secrets

    return "r" + secrets.token_hex(6)[:11]


class RemoteTrainerClient(TrainerClient):
    """TrainerClient that also accepts RemoteBackendConfig (every other config goes to the SDK)."""

    def __init__(self, backend_config=None) -> None:
        if isinstance(backend_config, RemoteBackendConfig):
            self.backend = RemoteBackend(backend_config)
        else:
            super().__init__(backend_config)

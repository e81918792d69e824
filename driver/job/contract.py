"""The job contract: the one `training_job` dict the driver hands to the roles, and the defaults it relies on.

The fields and their defaults are written once, in the collection's
roles/training_job/meta/argument_specs.yml; the role fills them in (plugins/plugin_utils/job_options.py,
which also holds the rule of `output`) and the driver reads both through that module (help texts, its own
waits, the early check of --output), so no default or rule is written twice. The driver passes only the
fields it sets. Secrets (argument and environment values) never enter this dict: they travel in the 0600
spec file it names.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

from driver.execution import assets


def _role_contract() -> ModuleType:
    """The role's job options (the collection's plugin_utils/job_options.py): fields, defaults, rules."""
    return assets.plugin_utils("job_options")


def _options(entry: str) -> dict[str, dict[str, Any]]:
    return _role_contract().job_options(entry)


def default(name: str, entry: str = "main") -> Any:
    """The default of one field of the job (as written in the role's argument_specs)."""
    return _options(entry)[name].get("default")


def fields(entry: str = "main") -> set[str]:
    return set(_options(entry))


def output_problem(output: str) -> str | None:
    """Why --output is not a directory inside the job's working directory, or None (the role's rule)."""
    return _role_contract().output_problem(output)


def job_id_problem(job_id: str) -> str | None:
    """Why job_id cannot name a job directory, or None (the role's rule)."""
    return _role_contract().id_problem(job_id)


def check_id(job_id: str) -> str:
    """job_id, when it can name a job directory (the role's rule: no `/`, no `..`); else BadJobId."""
    from driver.errors import BadJobId

    problem = job_id_problem(job_id)
    if problem:
        raise BadJobId(f"invalid job id {job_id!r}: {problem}", hint="list the jobs with `driver jobs`")
    return job_id


def train_job(
    spec: Any, *, spec_file: Path, cancel_file: Path, output_dir: Path, stage: Any | None
) -> dict[str, Any]:
    """The training_job dict of `driver train` (playbooks/train.yml): only the fields that are set."""
    given: dict[str, Any] = {
        "id": spec.job_id,
        "script": str(spec.script.resolve()),
        "spec_file": str(spec_file),
        "cancel_file": str(cancel_file),
        "created": time.time(),
        "output_dir": str(output_dir),
        "output": spec.output,
        "provision": False if not spec.provision else None,
        "python": spec.python if not spec.provision else None,
        "detach": True if spec.detach else None,
        "workdir": str(stage.workdir) if stage else None,
        "stage_key": stage.key if stage else None,
        "stage_manifest": (stage.manifest or None) if stage else None,
        "nodes": str(spec.nodes) if spec.nodes else None,
        "launcher": spec.launcher or None,
        "nproc_per_node": str(spec.nproc_per_node) if spec.nproc_per_node is not None else None,
        "master_port": spec.master_port,
        "timeout": spec.timeout,
        "grace": spec.grace,
        "reconnect": spec.reconnect,
        "executor": spec.executor or ("container" if spec.container.wanted else None),
        "container": spec.container.contract(),
        "slurm": spec.slurm.contract(),
    }
    return only_set(given)


def only_set(given: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}

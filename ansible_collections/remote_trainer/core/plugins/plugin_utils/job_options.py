"""The training_job role's job options, written once: their defaults filled in, and `output_problem`.

meta/argument_specs.yml is the one place where the job's fields and their defaults are written; Ansible's
role argument validation checks a job against it but does not fill in the defaults, so the role applies
them here with Ansible's own validator (types converted, choices checked). What a spec cannot say (an
output directory must stay inside the job's working directory; a job id names one directory under the jobs
root) is `output_problem` and `id_problem`.

The driver loads this file by its path too (driver/job/contract.py): the fields, their defaults and the
output rule come from here for both. It imports Ansible only where the filter runs, so the driver's start
stays fast.
"""

from __future__ import annotations

import os
import posixpath
import re

import yaml

SPEC_FILE = os.path.join(
    os.path.dirname(__file__), "..", "..", "roles", "training_job", "meta", "argument_specs.yml"
)
_SPECS: dict = {}
# A job id names one directory under the jobs root (and a local one): no separator, no leading dot.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def job_options(entry: str) -> dict:
    """The suboptions of `training_job` in one entry point (main, control or clean) of the role."""
    if not _SPECS:
        with open(SPEC_FILE, encoding="utf-8") as f:
            # libyaml's loader where PyYAML has it (several times faster than the pure-Python one).
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            _SPECS.update(yaml.load(f, Loader=loader)["argument_specs"])
    return _SPECS[entry]["options"]["training_job"].get("options") or {}


def output_problem(output: str) -> str | None:
    """Why `output` is not a directory inside the job's working directory, or None."""
    if not output or not output.strip():
        return "it is empty"
    if output.startswith(("/", "~")):
        return "it is absolute"
    if ".." in output.replace("\\", "/").split("/"):
        return "it climbs out of the job's working directory (..)"
    if posixpath.normpath(output) in (".", ""):
        return "it is the working directory itself"
    return None


def id_problem(job_id: object) -> str | None:
    """Why `job_id` cannot name a job directory (it would climb out of the jobs root, say), or None."""
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        return (
            "a job id is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(no '/', no '..')"
        )
    return None


def training_job_contract(job: dict, entry: str = "main", root: str = "") -> dict:
    """The job with its defaults filled in (Ansible's validator); root, when given (the host's
    training_job_root), is where this host keeps its job directories."""
    from ansible.errors import AnsibleFilterError
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    if not isinstance(job, dict):
        raise AnsibleFilterError(f"training_job must be a dict, got {type(job).__name__}")
    result = ArgumentSpecValidator(job_options(entry)).validate(dict(job))
    if result.error_messages:
        raise AnsibleFilterError("training_job: " + "; ".join(result.error_messages))
    job = result.validated_parameters
    problem = id_problem(job["id"]) if job.get("id") is not None else None
    if problem:
        raise AnsibleFilterError(f"training_job: invalid id {job['id']!r}: {problem}")
    if root and "root" in job:
        job["root"] = root
    return job

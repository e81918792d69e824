"""Filter `training_job_contract`: the training_job dict, the defaults of meta/argument_specs.yml filled in.

meta/argument_specs.yml is the one place where the job's fields and their defaults are written; Ansible's
role argument validation checks a job against it but does not fill in the defaults, so the role applies
them here with Ansible's own validator (types converted, choices checked). The driver reads the same file.
"""

from __future__ import annotations

import os

import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

SPEC_FILE = os.path.join(os.path.dirname(__file__), "..", "meta", "argument_specs.yml")
_SPECS: dict = {}


def job_options(entry: str) -> dict:
    """The suboptions of `training_job` in one entry point (main, control or clean) of the role."""
    if not _SPECS:
        with open(SPEC_FILE, encoding="utf-8") as f:
            _SPECS.update(yaml.safe_load(f)["argument_specs"])
    return _SPECS[entry]["options"]["training_job"].get("options") or {}


def training_job_contract(job: dict, entry: str = "main") -> dict:
    if not isinstance(job, dict):
        raise AnsibleFilterError(f"training_job must be a dict, got {type(job).__name__}")
    result = ArgumentSpecValidator(job_options(entry)).validate(dict(job))
    if result.error_messages:
        raise AnsibleFilterError("training_job: " + "; ".join(result.error_messages))
    return result.validated_parameters


class FilterModule:
    def filters(self) -> dict:
        return {"training_job_contract": training_job_contract}

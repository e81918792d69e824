"""The training_job role's filters: the job with its defaults, the executor of a host, Slurm's settings, why a
copy failed, why a multi-node job cannot start on its ranks.

Each is a function of plugin_utils (tested there, shared with the action plugins); this file only names them.
"""

from __future__ import annotations

from ansible_collections.remote_trainer.core.plugins.plugin_utils.copy_cause import copy_cause
from ansible_collections.remote_trainer.core.plugins.plugin_utils.executor import training_job_executor
from ansible_collections.remote_trainer.core.plugins.plugin_utils.executor_slurm import slurm_settings
from ansible_collections.remote_trainer.core.plugins.plugin_utils.job_options import training_job_contract
from ansible_collections.remote_trainer.core.plugins.plugin_utils.preflight import preflight_errors


class FilterModule:
    """remote_trainer.core.training_job_contract, .training_job_executor, .training_job_slurm_settings,
    .training_job_copy_cause, .training_job_preflight_errors."""

    def filters(self) -> dict:
        return {
            "training_job_contract": training_job_contract,
            "training_job_executor": training_job_executor,
            "training_job_slurm_settings": slurm_settings,
            "training_job_copy_cause": copy_cause,
            "training_job_preflight_errors": preflight_errors,
        }

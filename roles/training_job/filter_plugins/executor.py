"""The job's executor, decided in one place, and what the Slurm executor asks of sbatch.

An executor is the way a job's script is started on a host: `process` (the host's python, or the provisioned
venv's), `container` (an engine runs it in an image) or `slurm` (the host is a Slurm login node: sbatch puts
the job's launcher in an allocation). `training_job_executor` picks it per host; the action plugin turns it
into the host's command (`command`) and, for Slurm, into sbatch options (`sbatch_options`). jobctl.py (and
jobctl_slurm.py) carry it out on the host.
"""

from __future__ import annotations

import math

EXECUTORS = ("process", "container", "slurm")
# Settings of the Slurm executor (the job's `slurm`, the inventory's training_job_slurm) -> sbatch option.
SBATCH_FLAGS = {
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "gpus": "--gpus",
    "cpus_per_task": "--cpus-per-task",
    "mem": "--mem",
    "constraint": "--constraint",
}
# Minutes of Slurm's time limit beyond --timeout and --grace: the job's own launcher stops it first (SIGTERM,
# then SIGKILL after the grace, exit 124); Slurm's limit only catches a launcher that could not.
TIME_SLACK = 60.0
# Asked of Slurm for every job: SIGUSR1 to the launcher (the batch step) --grace (+10 s) before Slurm's time
# limit, wherever that limit comes from (the site's partition, --sbatch=--time); the launcher then stops the
# script as --timeout does (SIGTERM, SIGKILL after the grace; exit 124). Slurm may send it up to 60 s early.
LIMIT_SIGNAL = "USR1"


def training_job_executor(job_executor: str, inventory_executor: str = "", image: str = "") -> str:
    """The executor on one host: the job's (--executor) when given, else the host's inventory
    (training_job_executor), else `container` when an image is named for the host, else `process`."""
    for chosen in (job_executor, inventory_executor):
        if chosen:
            if chosen not in EXECUTORS:
                from ansible.errors import AnsibleFilterError

                choices = ", ".join(EXECUTORS)
                raise AnsibleFilterError(
                    f"unknown executor {chosen!r} (training_job_executor): one of {choices}"
                )
            return chosen
    return "container" if image else "process"


def slurm_settings(job_slurm: dict | None, site: dict | None) -> dict:
    """The job's Slurm settings over the site's (the inventory's training_job_slurm, per host or group): a
    value the job sets wins, and the job's extra sbatch options come after the site's."""
    site = dict(site or {})
    job_slurm = dict(job_slurm or {})
    merged = {k: v for k, v in site.items() if k != "options"}
    merged.update({k: v for k, v in job_slurm.items() if k != "options" and v not in (None, "")})
    merged["options"] = [str(o) for o in [*(site.get("options") or []), *(job_slurm.get("options") or [])]]
    return merged


def sbatch_options(settings: dict, nodes: int = 0, timeout: float = 0.0, grace: float = 0.0) -> list[str]:
    """sbatch's options for a job (each one argv element: no value meets a shell): the named settings, the
    nodes of a multi-node job (one task each), a time limit past --timeout and --grace, then the extra ones
    (so that a site's or a user's own option has the last word)."""
    options = [
        f"{flag}={settings[key]}" for key, flag in SBATCH_FLAGS.items() if settings.get(key) not in (None, "")
    ]
    if nodes > 0:
        options += [f"--nodes={nodes}", "--ntasks-per-node=1"]
    if timeout and timeout > 0:
        options.append(f"--time={max(1, math.ceil((timeout + grace + TIME_SLACK) / 60))}")
    options.append(f"--signal=B:{LIMIT_SIGNAL}@{math.ceil(grace) + 10}")
    return options + [str(o) for o in settings.get("options") or []]


class FilterModule:
    def filters(self) -> dict:
        return {"training_job_executor": training_job_executor, "training_job_slurm_settings": slurm_settings}

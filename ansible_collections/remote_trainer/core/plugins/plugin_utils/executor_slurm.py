"""The Slurm executor's command (the action plugin's half; files/jobctl_slurm.py is the host's): the script
under the login node's python, its launcher submitted with sbatch options from the job's and the site's
settings, and the filter that merges those settings (training_job_slurm_settings).
"""

from __future__ import annotations

import math

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


# Filled in by `jobctl.py rank` on each node of an allocation (its node id, the allocation's first node).
RANK_MARK, MASTER_MARK = "@NODE_RANK@", "@MASTER_ADDR@"


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


def command(job: dict, host: dict, script: str, args: list[str], env_names: list[str], rank_command) -> dict:
    """The slurm executor: the script under the host's python, its launcher submitted with sbatch options from
    the job's and the site's settings (host["slurm"], merged by the playbook) and the job's timeout. A job of
    N nodes gets one allocation of N nodes, one task each: its launcher runs the preflight and then the
    script on every node (srun), each with its rank filled in there."""
    nodes = int(host.get("nodes") or 0)
    options = sbatch_options(
        host.get("slurm") or {},
        nodes=nodes,
        timeout=float(job["timeout"] or 0),
        grace=float(job["grace"] or 0),
    )
    argv, env = rank_command(job, host["python"], script, args, nodes, RANK_MARK, MASTER_MARK)
    slurm: dict = {"sbatch": options, "name": f"rt-{job['id']}"}
    if nodes > 0:
        slurm.update(nodes=nodes, port=int(job["master_port"]), preflight=float(job["preflight_timeout"]))
    return {
        "executor": "slurm",  # jobctl_slurm.py on the host
        "host_files": ["preflight.py"] if nodes > 0 else [],
        "argv": argv,
        "env": env,
        "python": host["python"],
        "slurm": slurm,
    }

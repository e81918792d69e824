"""The job's executor, decided in one place, and what every executor shares: one node's command.

An executor is the way a job's script is started on a host: `process` (the host's python, or the provisioned
venv's), `container` (an engine runs it in an image) or `slurm` (the host is a Slurm login node: sbatch puts
the job's launcher in an allocation). `training_job_executor` picks it per host; the action plugin turns it
into the host's command (its `command`): itself for process and container, which jobctl.py carries out on the
host, and through the executor's own modules for the others: plugin_utils/executor_NAME.py here (its
`command`, its settings) and files/jobctl_NAME.py on the host (jobctl.py's "executors of their own"). A new
executor is those two modules and its name in EXECUTORS (and in the role's argument_specs choices).
"""

from __future__ import annotations

EXECUTORS = ("process", "container", "slurm")


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


def rank_command(
    job: dict, python: str, script: str, args: list[str], nodes: int, rank: int | str, addr: str
) -> tuple[list[str], dict[str, str]]:
    """The command of one node of a job (nodes 0: a job of its own) and its rendezvous environment: NODE_RANK,
    NNODES, MASTER_ADDR, MASTER_PORT, and WORLD_SIZE, RANK... or torchrun's options. rank and addr may be
    jobctl's placeholders (RANK_MARK, MASTER_MARK), filled in on each node of a Slurm allocation."""
    if nodes <= 0:
        return [python, script, *args], {}
    port = int(job["master_port"])
    nproc = str(job["nproc_per_node"])  # a number, or torchrun's gpu, cpu, auto
    env: dict[str, object] = {"NODE_RANK": rank, "NNODES": nodes, "MASTER_ADDR": addr, "MASTER_PORT": port}
    if job["launcher"] == "torchrun":
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
    return [*argv, script, *args], {k: str(v) for k, v in env.items()}


def module(name: str):
    """The module of an executor of its own (plugin_utils/executor_NAME.py): its `command`, its settings."""
    import importlib

    return importlib.import_module(f"{__name__.rpartition('.')[0]}.executor_{name}")

"""The Slurm executor, the driver's half: its settings (--partition and friends, checked here, judged by
sbatch), its command-line options, and its words in `train`'s summary. The rest of it lives with the role:
the collection's plugins/plugin_utils/executor_slurm.py (sbatch's options, the command) and the role's
files/jobctl_slurm.py (the login node's side: submit, Slurm's state, stop); the exit codes of Slurm's ends
are in driver/errors.py's one table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driver.errors import UsageError

if TYPE_CHECKING:
    from driver.job.spec import Container

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Slurm:
    """What a job asks of sbatch under the slurm executor (--partition and friends); the inventory's
    training_job_slurm gives the site's defaults under them (plugin_utils/executor_slurm.py).

    Values travel as argv elements to sbatch on the login node, never through a shell; sbatch itself judges
    them (a refusal is one line with its reason, exit 93).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus: str | None = None
    cpus_per_task: str | None = None
    mem: str | None = None
    constraint: str | None = None
    options: list[str] = field(default_factory=list)

    @property
    def wanted(self) -> bool:
        return any(v for v in asdict(self).values())

    def validate(self) -> None:
        for name, value in asdict(self).items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is not None and (not str(v).strip() or "\n" in str(v) or "\0" in str(v)):
                    flag = "--sbatch" if name == "options" else "--" + name.replace("_", "-")
                    raise UsageError(f"invalid {flag} {v!r}", hint=f"give {flag} a value on one line")
        for option in self.options:
            if not option.startswith("-"):
                raise UsageError(
                    f"invalid --sbatch {option!r}: it is no sbatch option",
                    hint="give one sbatch option per --sbatch, as sbatch takes it: --sbatch=--exclusive",
                )

    def contract(self) -> dict[str, object] | None:
        given = {k: v for k, v in asdict(self).items() if v}
        return given or None


_options = [
    click.option("--partition", help="Slurm: sbatch --partition."),
    click.option("--account", help="Slurm: sbatch --account."),
    click.option("--qos", help="Slurm: sbatch --qos."),
    click.option("--cpus-per-task", metavar="N", help="Slurm: sbatch --cpus-per-task."),
    click.option("--mem", metavar="SIZE", help="Slurm: sbatch --mem (e.g. 16G)."),
    click.option("--constraint", help="Slurm: sbatch --constraint."),
    click.option(
        "--sbatch",
        "sbatch_options",
        multiple=True,
        metavar="OPTION",
        help="Slurm: any other sbatch option, as sbatch takes it (repeatable): --sbatch=--exclusive.",
    ),
]


def cli_options(fn: F) -> F:
    """The Slurm executor's options of `driver train`."""
    for option in reversed(_options):
        fn = option(fn)
    return fn


def from_params(params: dict[str, Any], container: Container) -> tuple[str | None, Slurm]:
    """Pop the executor and the Slurm options; --gpus goes to Slurm under --executor slurm."""
    executor = params.pop("executor")
    gpus = None
    if executor == "slurm" and not container.wanted and container.gpus:
        gpus, container.gpus = container.gpus, None
    slurm = Slurm(
        partition=params.pop("partition"),
        account=params.pop("account"),
        qos=params.pop("qos"),
        gpus=gpus,
        cpus_per_task=params.pop("cpus_per_task"),
        mem=params.pop("mem"),
        constraint=params.pop("constraint"),
        options=list(params.pop("sbatch_options")),
    )
    return executor, slurm


def summary_words(slurm: dict[str, Any] | None) -> str:
    """The summary's words on a job of the Slurm executor (", Slurm job 12 COMPLETED on n1"), else ""."""
    if not slurm or not slurm.get("id"):
        return ""
    on = f" on {slurm['nodes']}" if slurm.get("nodes") else ""
    return f", Slurm job {slurm['id']} {slurm.get('state') or ''}{on}".rstrip()

"""Command-line options shared by several commands (click decorators) and their conversion to specs; the
JOB argument and exit codes of the commands on one job; how an error names an option's value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from driver.cli.app import Codes
from driver.cli.complete import complete_hosts, complete_jobs, complete_paths
from driver.cli.config import envvar
from driver.errors import (
    EXIT_AUTH_FAILED,
    EXIT_BAD_INVENTORY,
    EXIT_BAD_VALUE,
    EXIT_DISCONNECTED,
    EXIT_DRIVER_FAILURE,
    EXIT_HOST_KEY,
    EXIT_LOST,
    EXIT_NO_HOSTS,
    EXIT_NO_SUCH_JOB,
    EXIT_OK,
    EXIT_OUTPUTS_NOT_COPIED,
    EXIT_SCRIPT_OWN,
    EXIT_SIGINT,
    EXIT_SIGNAL,
    EXIT_SIGTERM,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_UNSAFE_RSYNC,
)
from driver.job.spec import Container, Requirements

F = Callable[..., Any]


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


hosts_options = _stack(
    click.option(
        "-i",
        "--inventory",
        envvar=envvar("inventory"),
        shell_complete=complete_paths,
        help="Ansible inventory: file, directory or comma list. Default: this machine.",
    ),
    click.option(
        "-l",
        "--limit",
        envvar=envvar("limit"),
        shell_complete=complete_hosts,
        help="Host pattern selecting the inventory hosts.",
    ),
    click.option(
        "--accept-new-host-keys",
        is_flag=True,
        envvar=envvar("accept_new_host_keys"),
        help="Accept and remember the key of a host not yet in known_hosts (a changed key still fails).",
    ),
)

# What reaching the hosts of hosts_options can end with (provision, cache, clean: commands over an inventory).
HOSTS_CODES: Codes = (EXIT_BAD_INVENTORY, EXIT_NO_HOSTS, EXIT_UNREACHABLE, EXIT_AUTH_FAILED, EXIT_HOST_KEY)

requirements_options = _stack(
    click.option(
        "--python",
        "python",
        envvar=envvar("python"),
        help="Interpreter on the host (default: the newest python3 >= 3.9).",
    ),
    click.option(
        "-r",
        "--requirements",
        type=click.Path(path_type=Path, readable=False),
        help="Requirements file to install on the host.",
    ),
    click.option("--packages", multiple=True, metavar="SPECS", help="Packages to install (space-separated)."),
    click.option(
        "--interpreter",
        type=click.Choice(["virtualenv", "system"]),
        help="Install into a cached venv (default) or for the user into the system python.",
    ),
    click.option("--index-url", envvar=envvar("index_url"), help="pip --index-url for the host."),
    click.option(
        "--extra-index-url", "extra_index_urls", multiple=True, help="pip --extra-index-url (repeatable)."
    ),
    click.option("--find-links", multiple=True, help="pip --find-links location on the host (repeatable)."),
    click.option(
        "--wheelhouse",
        type=click.Path(path_type=Path, readable=False),
        help="Local directory of wheels copied to the host and used by pip (offline hosts).",
    ),
    click.option("--no-index", is_flag=True, help="pip --no-index: only --find-links and --wheelhouse."),
    click.option(
        "--system-site-packages",
        is_flag=True,
        help="The venv also sees the python's own packages (e.g. a CUDA torch already on the host).",
    ),
)


def requirements_from(params: dict[str, Any]) -> Requirements:
    """Pop the requirements options out of a command's parameters."""
    packages = [spec for group in params.pop("packages") for spec in group.split()]
    return Requirements(
        file=params.pop("requirements"),
        packages=packages,
        python=params.pop("python"),
        interpreter=params.pop("interpreter"),
        index_url=params.pop("index_url"),
        extra_index_urls=list(params.pop("extra_index_urls")),
        find_links=list(params.pop("find_links")),
        wheelhouse=params.pop("wheelhouse"),
        no_index=params.pop("no_index"),
        system_site_packages=params.pop("system_site_packages"),
    )


container_options = _stack(
    click.option(
        "--image",
        envvar=envvar("image"),
        help="Run the script in a container of IMAGE on each host (pulled there unless sent or built).",
    ),
    click.option(
        "--engine",
        type=click.Choice(["auto", "podman", "docker"]),
        envvar=envvar("engine"),
        help="Container engine on the hosts (default: auto, podman else docker).",
    ),
    click.option("--gpus", metavar="all|N", help="Pass GPUs into the container (docker --gpus, podman CDI)."),
    click.option("--shm-size", metavar="SIZE", help="Size of the container's /dev/shm (e.g. 8g)."),
    click.option(
        "--build", is_flag=True, help="Build the image on each host from the --workdir's Containerfile."
    ),
    click.option(
        "--image-from-local",
        is_flag=True,
        help="Send --image from this machine's engine to the hosts (only what changed) instead of pulling.",
    ),
    click.option("--keep-container", is_flag=True, help="Keep the job's container after it ends."),
)


executor_option = click.option(
    "--executor",
    type=click.Choice(["process", "container", "slurm"]),
    envvar=envvar("executor"),
    help="How the script starts on each host (default: the inventory's training_job_executor, else "
    "container with --image, else process); slurm: the host is a Slurm login node, sbatch runs the job.",
)


def container_from(params: dict[str, Any]) -> Container:
    """Pop the container options out of a command's parameters."""
    return Container(
        image=params.pop("image"),
        engine=params.pop("engine"),
        gpus=params.pop("gpus"),
        shm_size=params.pop("shm_size"),
        build=params.pop("build"),
        from_local=params.pop("image_from_local"),
        keep=params.pop("keep_container"),
    )


def given(name: str, flag: str) -> str:
    """How an error names an option's value: the option, and where the value came from when it was not on
    the command line (REMOTE_TRAINER_<NAME>, or the config file)."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    if source is ParameterSource.ENVIRONMENT:
        return f"{flag} (from {envvar(name)})"
    if source is ParameterSource.DEFAULT_MAP:
        from driver.cli import config

        return f"{flag} (from the config file {config.config_path()})"
    return flag


def shown_seconds(value: object) -> str:
    """A default duration as a --help text shows it: 30s."""
    number = float(value)  # type: ignore[arg-type]
    return f"{number:g}s"


# The commands on one job (status, wait, logs, cancel): their JOB argument and their exit codes.
def _job_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """JOB as given: an id, a prefix of one, or `last`; never a path (`../x` would leave the jobs root)."""
    from driver.cli.app import UsageProblem
    from driver.job import contract

    problem = contract.job_id_problem(value)
    if problem:
        raise UsageProblem(
            f"invalid job id {value!r}: {problem}",
            ctx,
            hint="list the jobs with `driver jobs` (or give `last`)",
        )
    return value


job_argument = click.argument("job", shell_complete=complete_jobs, callback=_job_id)

JOB_CODES: Codes = (
    (EXIT_OK, "done (logs -f: the job succeeded)"),
    (EXIT_SCRIPT_OWN, "logs -f: the script's own exit code"),
    (EXIT_TIMEOUT, "logs -f: the job reached its --timeout"),
    EXIT_DRIVER_FAILURE,
    (EXIT_SIGNAL, "logs -f: the script died from signal N"),
    (EXIT_SIGINT, "interrupted (Ctrl+C); the job itself goes on (cancel: it may still run)"),
    (EXIT_SIGTERM, "the driver got SIGTERM; the job itself goes on (cancel: it may still run)"),
    EXIT_BAD_VALUE,
    EXIT_BAD_INVENTORY,
    EXIT_UNREACHABLE,
    EXIT_AUTH_FAILED,
    EXIT_HOST_KEY,
    EXIT_NO_SUCH_JOB,
    EXIT_LOST,
    EXIT_OUTPUTS_NOT_COPIED,
    (
        EXIT_DISCONNECTED,
        "logs -f: the connection to a host was lost for longer than --reconnect; the job goes on",
    ),
    EXIT_UNSAFE_RSYNC,
)

"""Command-line options shared by several commands (click decorators) and their conversion to specs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from driver.cli.complete import complete_hosts, complete_paths
from driver.cli.config import envvar
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

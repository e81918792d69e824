"""The `driver` group: --version, the config file's defaults, and every command added to it."""

from __future__ import annotations

import click

from driver.cli.app import DriverGroup, report
from driver.cli.cache import cache_group
from driver.cli.cancel import cancel
from driver.cli.clean import clean
from driver.cli.cluster import cluster
from driver.cli.completion import completion
from driver.cli.config import settings_from_environment
from driver.cli.config_show import config_group
from driver.cli.jobs import jobs_command
from driver.cli.logs import logs
from driver.cli.provision import provision
from driver.cli.status import status
from driver.cli.submit import submit
from driver.cli.train import train
from driver.cli.wait import wait
from driver.errors import DriverError


@click.group(cls=DriverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remote-trainer")
@click.pass_context
def main(ctx: click.Context) -> None:
    """remote-trainer: run training scripts on machines outside a Kubernetes cluster.

    Defaults for options come from the environment (REMOTE_TRAINER_INVENTORY, ...) and the config file
    (~/.config/remote-trainer/config.toml or $REMOTE_TRAINER_CONFIG); the command line wins. `driver config
    show` prints what is in effect. Shell completion: `driver completion bash|zsh|fish`.
    """
    from driver.cli import config

    try:
        loaded = config.load()
    except DriverError as exc:
        ctx.exit(report(exc))
    commands = {n: {p.name for p in c.params if p.name and p.expose_value} for n, c in main.commands.items()}
    ctx.default_map = config.default_map(loaded, commands)


for _command in (
    train,
    provision,
    jobs_command,
    status,
    wait,
    logs,
    cancel,
    clean,
    submit,
    cluster,
    cache_group,
    config_group,
    completion,
):
    main.add_command(_command)
settings_from_environment(main)

"""`driver config show`: the settings in effect for a command, each with where it comes from."""

from __future__ import annotations

import json

import click

from driver.cli.app import command, write_line
from driver.errors import EXIT_OK, EXIT_USAGE, UsageError
from driver.redact import redact_all


@click.group(name="config")
def config_group() -> None:
    """The defaults in effect: environment (REMOTE_TRAINER_*) and config file, under the command line."""


@command(name="show", codes=((EXIT_OK, "the settings were shown"), EXIT_USAGE))
@click.option(
    "--command", "for_command", default="train", show_default=True, help="The command to show them for."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def config_show(for_command: str, as_json: bool) -> int:
    """Print each setting in effect for a command, its value and where it comes from."""
    from driver.cli import config
    from driver.cli.group import main

    loaded = config.load()
    command_obj = main.commands.get(for_command)
    if command_obj is None:
        raise UsageError(f"no command {for_command!r}", hint=f"commands: {', '.join(sorted(main.commands))}")
    params = {p.name: p for p in command_obj.params if p.name in config.SETTINGS and p.expose_value}
    shown = {}
    for name, param in sorted(params.items()):
        plain = param.default if isinstance(param.default, str | int | float | bool) else None  # not UNSET
        value, source = config.effective(loaded, for_command, name, plain)
        shown[name] = {"value": redact_all(value), "source": source, "env": config.envvar(name)}
    if as_json:
        write_line(json.dumps({"config_file": str(loaded.path), "command": for_command, "settings": shown}))
        return EXIT_OK
    exists = "" if loaded.path.is_file() else " (none)"
    write_line(f"config file: {loaded.path}{exists}")
    for name, got in shown.items():
        write_line(f"{name} = {json.dumps(got['value'])}  # {got['source']}")
    return EXIT_OK


config_group.add_command(config_show)

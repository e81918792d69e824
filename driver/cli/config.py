"""Defaults without retyping: a config file and environment variables under the command line's options.

Where a value comes from, the first that has it: the command line, the environment (REMOTE_TRAINER_<NAME>),
the config file ($REMOTE_TRAINER_CONFIG, else $XDG_CONFIG_HOME or ~/.config, remote-trainer/config.toml),
the built-in default. The file holds settings at its top level (for every command that has the option)
and in tables per command ([train], [provision], ...) that win over the top level:

    inventory = "~/lab/hosts.ini"
    accept_new_host_keys = true

    [train]
    timeout = "2h"
    output_dir = "~/runs"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from driver.errors import UsageError

# Settings a user may set once: option name -> (type, whether a leading ~ is a home directory).
SETTINGS: dict[str, tuple[type, bool]] = {
    "inventory": (str, True),
    "limit": (str, False),
    "accept_new_host_keys": (bool, False),
    "output_dir": (str, True),
    "python": (str, False),
    "timeout": (str, False),
    "grace": (str, False),
    "reconnect": (str, False),
    "max_workdir_size": (str, False),
    "index_url": (str, False),
    "executor": (str, False),
    "partition": (str, False),
    "account": (str, False),
    "qos": (str, False),
    "namespace": (str, False),
    "context": (str, False),
}
ENV_PREFIX = "REMOTE_TRAINER_"


def envvar(name: str) -> str:
    return ENV_PREFIX + name.upper()


def settings_from_environment(command: click.Command) -> None:
    """Give every option of a setting, on every command (groups walked), its REMOTE_TRAINER_<NAME> variable,
    so that the environment is read wherever `driver config show` says it is in effect."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name in SETTINGS and not param.envvar:
            param.envvar = envvar(param.name)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            settings_from_environment(sub)


def config_path() -> Path:
    explicit = os.environ.get("REMOTE_TRAINER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "remote-trainer" / "config.toml"


@dataclass
class Config:
    path: Path
    top: dict[str, Any]
    commands: dict[str, dict[str, Any]]

    def value(self, command: str, name: str) -> Any:
        """The file's value of a setting for a command (its table first), or None."""
        if name in self.commands.get(command, {}):
            return self.commands[command][name]
        return self.top.get(name)


def load() -> Config:
    """The config file (empty when there is none); bad content is one clear error (exit 2)."""
    path = config_path()
    if not path.is_file():
        if os.environ.get("REMOTE_TRAINER_CONFIG"):
            raise UsageError(
                f"config file {str(path)!r} (REMOTE_TRAINER_CONFIG) not found", hint="fix the path"
            )
        return Config(path, {}, {})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(
            f"config file {str(path)!r} cannot be read: {exc}", hint="fix its TOML syntax"
        ) from None
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    commands = {k: v for k, v in data.items() if isinstance(v, dict)}
    for table, values in [("", top), *commands.items()]:
        for name, value in values.items():
            where = f"[{table}] " if table else ""
            if name not in SETTINGS:
                raise UsageError(
                    f"config file {str(path)!r}: unknown setting {where}{name!r}",
                    hint=f"settings: {', '.join(SETTINGS)}",
                )
            kind, _ = SETTINGS[name]
            if not isinstance(value, kind):
                raise UsageError(
                    f"config file {str(path)!r}: {where}{name} must be a {kind.__name__}, not {value!r}",
                    hint='quote durations and paths, e.g. timeout = "2h"',
                )
    return Config(path, top, commands)


def _expand(name: str, value: Any) -> Any:
    return os.path.expanduser(value) if SETTINGS[name][1] and isinstance(value, str) else value


def default_map(config: Config, commands: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """click's default_map: per command, the file's values of the settings that command has."""
    found: dict[str, dict[str, Any]] = {}
    for command, params in commands.items():
        for name in SETTINGS.keys() & params:
            value = config.value(command, name)
            if value is not None:
                found.setdefault(command, {})[name] = _expand(name, value)
    return found


def effective(config: Config, command: str, name: str, default: Any) -> tuple[Any, str]:
    """A setting's value for a command without command-line options, and where it comes from."""
    env = os.environ.get(envvar(name))
    if env is not None:
        return _expand(name, env), f"environment ({envvar(name)})"
    value = config.value(command, name)
    if value is not None:
        table = f" [{command}]" if name in config.commands.get(command, {}) else ""
        return _expand(name, value), f"config file ({config.path}{table})"
    return default, "default"

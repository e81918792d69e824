"""The remote_host role's filters: the engine's probe script and what it printed, pip's arguments and
environment.

Each is a function of plugin_utils (tested there); this file only names them.
"""

from __future__ import annotations

from ansible_collections.remote_trainer.core.plugins.plugin_utils.engine import (
    engine_candidates,
    engine_probe_script,
    engine_probe_values,
)
from ansible_collections.remote_trainer.core.plugins.plugin_utils.pip_args import pip_args, pip_env


class FilterModule:
    """remote_trainer.core.remote_host_engine_candidates, _engine_probe, _engine_values, _pip_args,
    _pip_env."""

    def filters(self) -> dict:
        return {
            "remote_host_engine_candidates": engine_candidates,
            "remote_host_engine_probe": engine_probe_script,
            "remote_host_engine_values": engine_probe_values,
            "remote_host_pip_args": pip_args,
            "remote_host_pip_env": pip_env,
        }

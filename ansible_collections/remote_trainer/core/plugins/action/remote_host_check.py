"""Action plugin: the check of a host in one remote command: probe python and the venv cache, choose the venv.

It replaces a raw probe, a templated plan and the tasks that published it: on a prepared host this is the only
thing the role does, so every task it saves is saved on every launch and for every host.

Arguments: every `remote_host_*` setting the check reads, by its name without the prefix (python,
python_candidates, python_min_version, interpreter, system_site_packages, cache_dir, requirements_file,
packages, index_url, extra_index_urls, find_links, no_index, wheelhouse, pip_extra_args, image).

The probe, the plan and the settings' check are plugin_utils/host_check.py (training_job's one-step launch
runs the same check).

Result facts: `remote_host__plan` (what the host has and what this requirements set needs), and what the role
publishes: `remote_host_python_path` and `remote_host_report`. No usable python fails with
`remote_host_failure` {kind: no_python, msg}.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.remote_trainer.core.plugins.plugin_utils.host_check import (
    SETTINGS,
    check_host,
    no_python_message,
    report,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(SETTINGS)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        host = task_vars.get("inventory_hostname", "?")
        missing = [name for name in SETTINGS if name not in self._task.args]
        if missing:
            raise AnsibleActionFail(f"remote_host_check needs {', '.join(missing)}")
        settings = dict(self._task.args)
        found = check_host(self, settings, host)
        result["changed"] = False
        if not found["python"]:
            msg = no_python_message(host, settings, found["too_old"])
            result.update(failed=True, msg=msg)
            result["ansible_facts"] = {"remote_host_failure": {"kind": "no_python", "msg": msg}}
            return result
        local = task_vars.get("ansible_connection", "ssh") == "local"
        result["ansible_facts"] = {
            "remote_host__plan": found,
            "remote_host_python_path": found["run_python"],
            "remote_host_report": report(found, settings["interpreter"], local),
        }
        return result

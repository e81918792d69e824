# Copyright: remote-trainer contributors
# Apache License 2.0 (see the collection's galaxy.yml)
"""Documentation of the training_job action (plugins/action/training_job.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: training_job
short_description: Launch, follow, inspect, stop and clean training jobs on a host
description:
  - Runs on the controller (an action plugin) and talks to the host over the task's connection.
  - The training_job role calls it; use the role, whose argument spec documents the job's fields.
  - A launched job runs detached on the host under C(jobctl.py), which enforces its timeout whether or not
    anything follows it. Following relays the script's output live and ends with the job.
  - Refuses check mode (the task is skipped), since it starts, stops and removes jobs.
version_added: 0.1.0
author: remote-trainer maintainers (!UNKNOWN)
options:
  mode:
    description:
      - What to do. V(quick) is a plain job on a prepared host in one step (or nothing, when it needs the
        role's steps); V(launch) starts the job and, unless it is detached, follows it; V(follow), V(kill),
        V(status), V(collected) and V(clean) act on a job already started.
    type: str
    required: true
    choices: [quick, launch, follow, kill, status, collected, clean]
  job:
    description:
      - The training_job dict (the role's C(training_job) variable), with its defaults filled in by the
        C(remote_trainer.core.training_job_contract) filter (except in mode V(quick)).
    type: dict
    required: true
  host:
    description:
      - This host's values, as the role sets them (python, helper_python, environment, executor, rank,
        master_addr, nodes, stage, container); in mode V(quick) what the inventory says of the host.
    type: dict
    default: {}
extends_documentation_fragment:
  - remote_trainer.core.attributes
attributes:
  check_mode:
    support: none
    details: The task is skipped under C(--check), with a warning that says why.
notes:
  - The variable C(remote_trainer_relay=records) (set by the driver) turns the relayed output into records
    that the driver reads; without it the script's lines are displayed as they come, prefixed with the host.
"""

EXAMPLES = r"""
- name: Run a job through the role (the usual way)
  ansible.builtin.include_role:
    name: remote_trainer.core.training_job
  vars:
    training_job:
      id: "20261205-120000-abcd"
      script: /home/me/train.py
      output_dir: /home/me/runs

- name: Stop a job that runs on these hosts
  remote_trainer.core.training_job:
    mode: kill
    job: "{{ training_job | remote_trainer.core.training_job_contract('control', training_job_root) }}"
    host:
      helper_python: python3
"""

RETURN = r"""
rt_rc:
  description: The script's exit code, once it ended.
  returned: when the job ended
  type: int
rt_state:
  description: V(running), V(ended) or V(lost) (the job's processes are gone without an exit code).
  returned: modes launch, follow, kill and status
  type: str
job_dir:
  description: The job's directory on the host.
  returned: modes other than quick and clean
  type: str
rt_quick:
  description: In mode quick, whether the job ran in this one step.
  returned: mode quick
  type: bool
rt_removed:
  description: The job directories that mode clean removed.
  returned: mode clean
  type: list
  elements: str
"""

"""remote-trainer's driver: run training scripts on hosts outside a Kubernetes cluster, through Ansible.

The library works without the CLI: `from driver import JobSpec, train`.
"""

from driver.job.spec import JobSpec
from driver.ops.train import JobResult, train

__all__ = ["JobResult", "JobSpec", "train"]

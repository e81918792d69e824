"""Kubeflow SDK, in a cluster: a TrainJob on the `remote` ClusterTrainingRuntime (after `make cluster-up`).

The function runs on the external host of the runtime's inventory, not in the pod; packages_to_install
become that host's requirements; the pod's log is the host's output.

    python examples/sdk_cluster.py
"""

from kubeflow.trainer import CustomTrainer, TrainerClient


def train(lr: float):
    import platform

    print(f"training on {platform.node()} with lr={lr}")


client = TrainerClient()
print([runtime.name for runtime in client.list_runtimes()])
job = client.train(runtime="remote", trainer=CustomTrainer(func=train, func_args={"lr": 0.01}))
client.wait_for_job_status(job, timeout=900)
print("".join(client.get_job_logs(job)))

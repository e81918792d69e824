"""Kubeflow SDK, no cluster: run a function on your own GPU hosts (a notebook cell, as a script).

pip install 'remote-trainer[kubeflow]'
python examples/sdk_remote_backend.py hosts.ini
"""

import sys

from kubeflow.trainer import CustomTrainer

from driver.sdk import RemoteBackendConfig, RemoteTrainerClient


def train(lr: float, epochs: int):
    import platform

    for epoch in range(epochs):
        print(f"{platform.node()}: epoch {epoch} lr={lr} loss={1 / (epoch + 1):.3f}")


client = RemoteTrainerClient(RemoteBackendConfig(inventory=sys.argv[1] if len(sys.argv) > 1 else None))
print([runtime.name for runtime in client.list_runtimes()])
job = client.train(
    trainer=CustomTrainer(func=train, func_args={"lr": 0.01, "epochs": 3}, env={"WANDB_MODE": "offline"})
)
for line in client.get_job_logs(job, follow=True):
    print(line)
print(client.wait_for_job_status(job).status)

"""The Kubernetes side: TrainJobs on the `remote` runtime and the cluster check (the Kubeflow SDK backend that
needs no cluster is driver/sdk.py)."""

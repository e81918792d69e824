"""The Kubernetes side: TrainJobs on the `remote` runtime, the cluster check, and the Kubeflow SDK backend."""

"""`cluster status`: what of Kubeflow Trainer and the `remote` runtime is installed and ready.

The runtime's Secrets (the SSH key, the inventory) are read as metadata alone (PartialObjectMetadata): their
values never reach this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driver.cluster.submit import GROUP, RUNTIME, VERSION, ClusterUnreachable, connection_reason

SSH_SECRET = "remote-trainer-ssh"
INVENTORY_SECRET = "remote-trainer-inventory"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def status(namespace: str = "default", context: str | None = None) -> list[Check]:
    """One check per piece `make cluster-up` installs; raises ClusterUnreachable without a cluster."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    def get(fn, *args):  # None when absent
        try:
            return fn(*args)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    try:
        config.load_kube_config(context=context)
        version = client.VersionApi().get_code()
        crd = get(client.ApiextensionsV1Api().read_custom_resource_definition, f"trainjobs.{GROUP}")
        deploy = get(
            client.AppsV1Api().read_namespaced_deployment,
            "kubeflow-trainer-controller-manager",
            "kubeflow-system",
        )
        runtime = get(
            client.CustomObjectsApi().get_cluster_custom_object,
            GROUP,
            VERSION,
            "clustertrainingruntimes",
            RUNTIME,
        )
        secret = get(secret_metadata, namespace, SSH_SECRET)
        inventory = get(secret_metadata, namespace, INVENTORY_SECRET)
    except ConfigException as exc:
        raise ClusterUnreachable(f"no usable kubeconfig: {exc}", hint="run `make cluster-up`") from exc
    except (OSError, HTTPError) as exc:
        raise ClusterUnreachable(
            f"the cluster's API server is unreachable: {connection_reason(exc)}",
            hint="check that the cluster runs",
        ) from exc
    ready = deploy is not None and (deploy.status.available_replicas or 0) >= 1
    image = deploy.spec.template.spec.containers[0].image if deploy is not None else ""
    runner = ""
    if runtime is not None:
        jobs = runtime["spec"]["template"]["spec"]["replicatedJobs"]
        runner = jobs[0]["template"]["spec"]["template"]["spec"]["containers"][0].get("image", "")
    return [
        Check("kubernetes", True, f"API server {version.git_version}"),
        Check("trainer CRDs", crd is not None, "trainjobs.trainer.kubeflow.org" if crd else "not installed"),
        Check("trainer controller", ready, image or "not installed"),
        Check("runtime remote", runtime is not None, runner or "not installed"),
        Check(f"secret {namespace}/{SSH_SECRET}", secret is not None, "present" if secret else "missing"),
        Check(
            f"secret {namespace}/{INVENTORY_SECRET}",
            inventory is not None,
            "present" if inventory else "missing",
        ),
    ]


def secret_metadata(namespace: str, name: str) -> dict[str, Any]:
    """The Secret's metadata alone: the API server answers with a PartialObjectMetadata, no data."""
    from kubernetes import client

    api = client.ApiClient()
    return api.call_api(
        f"/api/v1/namespaces/{namespace}/secrets/{name}",
        "GET",
        header_params={"Accept": METADATA_ONLY},
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
    )

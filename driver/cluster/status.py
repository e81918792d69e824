"""`cluster status`: what of Kubeflow Trainer and the `remote` runtime is installed and ready."""

from __future__ import annotations

from dataclasses import dataclass

from driver.cluster.submit import GROUP, RUNTIME, VERSION, ClusterUnreachable, connection_reason


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
        secret = get(client.CoreV1Api().read_namespaced_secret, "remote-trainer-ssh", namespace)
        inventory = get(client.CoreV1Api().read_namespaced_config_map, "remote-trainer-inventory", namespace)
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
        Check(
            f"secret {namespace}/remote-trainer-ssh", secret is not None, "present" if secret else "missing"
        ),
        Check(
            f"configmap {namespace}/remote-trainer-inventory",
            inventory is not None,
            "present" if inventory else "missing",
        ),
    ]

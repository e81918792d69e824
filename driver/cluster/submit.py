"""`submit`: a TrainJob on the `remote` ClusterTrainingRuntime for a plain script (kubernetes client).

The script travels inside the TrainJob's trainer command (base64, like the Kubeflow SDK embeds a
function), so that nothing but the TrainJob is needed; the runtime's runner image decodes it and runs it
with `driver train` on the external hosts (runner/remote-trainer-runner).
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any

from driver.errors import EXIT_USAGE, ClusterUnreachable, DriverError
from driver.job.spec import check_script

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
RUNTIME = "remote"
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_ITEM = 1 << 20  # the CRD's limit on one command item


class BadJobSpec(DriverError):
    exit_code = EXIT_USAGE


def job_name(name: str | None) -> str:
    """The given name, checked against the TrainJob name rules; else a random one like the SDK's."""
    if name is None:
        return "r" + secrets.token_hex(6)[:11]
    if not NAME.match(name) or len(name) > 63:
        raise BadJobSpec(
            f"invalid --name {name!r}: a TrainJob name is lower-case letters, digits and '-', "
            "starts with a letter, at most 63 characters",
            hint="for example --name mnist-lr-0-01",
        )
    return name


def trainjob(
    script: Path,
    args: list[str],
    *,
    name: str | None = None,
    namespace: str = "default",
    env: dict[str, str] | None = None,
    deadline: float | None = None,
    runtime: str = RUNTIME,
    limit: str | None = None,
    packages: list[str] | None = None,
) -> dict[str, Any]:
    """The TrainJob object for SCRIPT ARGS on the remote runtime. `limit` and `packages` reach the
    runner as REMOTE_TRAINER_LIMIT and REMOTE_TRAINER_PACKAGES (one spec per line)."""
    check_script(script)
    for spec in packages or []:
        if not spec.strip() or any(c.isspace() for c in spec):
            raise BadJobSpec(f"invalid --packages {spec!r}: one package spec per option, without spaces")
    encoded = base64.b64encode(script.read_bytes()).decode("ascii")
    if len(encoded) > MAX_ITEM:
        raise BadJobSpec(
            f"script {str(script)!r} is too large for a TrainJob ({len(encoded)} bytes encoded, limit 1 MiB)",
            hint="keep the script small and put code and data on the host (or use `driver train --workdir`)",
        )
    trainer: dict[str, Any] = {
        "command": ["remote-trainer-runner", "--script-b64", script.name, encoded, *args]
    }
    env = dict(env or {})
    if limit:
        env["REMOTE_TRAINER_LIMIT"] = limit
    if packages:
        env["REMOTE_TRAINER_PACKAGES"] = "\n".join(packages)
    if env:
        trainer["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {
        "runtimeRef": {"name": runtime, "apiGroup": GROUP, "kind": "ClusterTrainingRuntime"},
        "trainer": trainer,
    }
    if deadline:
        spec["activeDeadlineSeconds"] = max(1, int(deadline))
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": job_name(name), "namespace": namespace},
        "spec": spec,
    }


def create(obj: dict[str, Any], context: str | None = None) -> dict[str, Any]:
    """Create the TrainJob in the cluster of the kubeconfig (its current context, or `context`)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        config.load_kube_config(context=context)
        api = client.CustomObjectsApi()
        return api.create_namespaced_custom_object(GROUP, VERSION, obj["metadata"]["namespace"], PLURAL, obj)
    except ConfigException as exc:
        raise ClusterUnreachable(
            f"no usable kubeconfig: {exc}", hint="run `make cluster-up`, or set KUBECONFIG / --context"
        ) from exc
    except ApiException as exc:
        raise ClusterUnreachable(
            f"the cluster refused the TrainJob: {exc.status} {exc.reason}",
            hint="check that Kubeflow Trainer and the `remote` runtime are installed (`make cluster-up`)",
        ) from exc
    except (OSError, HTTPError) as exc:
        raise ClusterUnreachable(
            f"the cluster's API server is unreachable: {connection_reason(exc)}",
            hint="check that the cluster runs: `make cluster-up`",
        ) from exc


def connection_reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, without urllib3's object reprs."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    return text.split(": ", 1)[-1] if "Failed to establish a new connection" in text else text

"""`submit`: a TrainJob on the `remote` ClusterTrainingRuntime for a plain script (kubernetes client).

The script travels inside the TrainJob's trainer command (base64, like the Kubeflow SDK embeds a
function); the runtime's runner image decodes it and runs it with `driver train` on the external hosts
(runner/remote-trainer-runner). `--env` values travel in a Secret made with the TrainJob (NAME-env, owned
by it, so that it goes with it): the TrainJob, its JobSet and its pod name them (secretKeyRef) and never
hold a value.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driver.errors import EXIT_USAGE, ClusterUnreachable, DriverError
from driver.job.spec import check_script

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
RUNTIME = "remote"
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_ITEM = 1 << 20  # the CRD's limit on one command item

log = logging.getLogger(__name__)


class BadJobSpec(DriverError):
    exit_code = EXIT_USAGE


def valid_name(name: object) -> bool:
    """A TrainJob's name: a DNS-1123 label (at most 63 lower-case letters, digits and '-', ending with a
    letter or digit) that starts with a letter."""
    return isinstance(name, str) and len(name) <= 63 and NAME.match(name) is not None


def job_name(name: str | None) -> str:
    """The given name, checked against the TrainJob name rules; else a random one like the SDK's."""
    if name is None:
        return "r" + secrets.token_hex(6)[:11]
    if not valid_name(name):
        raise BadJobSpec(
            f"invalid --name {name!r}: a TrainJob name is lower-case letters, digits and '-', "
            "starts with a letter, at most 63 characters",
            hint="for example --name mnist-lr-0-01",
        )
    return name


@dataclass
class Submission:
    """The TrainJob and, when it has --env values, the Secret that holds them (None without)."""

    trainjob: dict[str, Any]
    secret: dict[str, Any] | None

    def documents(self, hide_values: bool = True) -> list[dict[str, Any]]:
        """What `--dry-run` prints: the TrainJob, then the Secret with its values hidden."""
        if self.secret is None:
            return [self.trainjob]
        secret = dict(self.secret)
        if hide_values:
            secret["stringData"] = {key: "(hidden)" for key in self.secret["stringData"]}
        return [self.trainjob, secret]


def env_secret_name(name: str) -> str:
    return f"{name}-env"


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
) -> Submission:
    """The TrainJob for SCRIPT ARGS on the remote runtime, and the Secret of its `env` values. `limit` and
    `packages` reach the runner as REMOTE_TRAINER_LIMIT and REMOTE_TRAINER_PACKAGES (one spec per line)."""
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
    name = job_name(name)
    trainer: dict[str, Any] = {
        "command": ["remote-trainer-runner", "--script-b64", script.name, encoded, *args]
    }
    env = dict(env or {})
    secret: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = []
    if env:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": env_secret_name(name),
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "remote-trainer", "remote-trainer/trainjob": name},
            },
            "stringData": env,
        }
        entries = [
            {"name": k, "valueFrom": {"secretKeyRef": {"name": env_secret_name(name), "key": k}}} for k in env
        ]
    if limit:
        entries.append({"name": "REMOTE_TRAINER_LIMIT", "value": limit})
    if packages:
        entries.append({"name": "REMOTE_TRAINER_PACKAGES", "value": "\n".join(packages)})
    if entries:
        trainer["env"] = entries
    spec: dict[str, Any] = {
        "runtimeRef": {"name": runtime, "apiGroup": GROUP, "kind": "ClusterTrainingRuntime"},
        "trainer": trainer,
    }
    if deadline:
        spec["activeDeadlineSeconds"] = max(1, int(deadline))
    job = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return Submission(job, secret)


def create(submission: Submission, context: str | None = None) -> dict[str, Any]:
    """Create the TrainJob (and first its Secret, then owned by it) in the cluster of the kubeconfig (its
    current context, or `context`). Nothing is left behind when a step fails."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    obj, secret = submission.trainjob, submission.secret
    namespace = obj["metadata"]["namespace"]
    what = "the TrainJob"
    try:
        config.load_kube_config(context=context)
        core, custom = client.CoreV1Api(), client.CustomObjectsApi()
        if secret is None:
            return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj)
        secret_name = secret["metadata"]["name"]
        what = f"Secret {secret_name} (the --env values)"
        core.create_namespaced_secret(namespace, secret)
        created: dict[str, Any] | None = None
        try:
            what = "the TrainJob"
            created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj)
            what = f"the owner of Secret {secret_name}"
            core.patch_namespaced_secret(secret_name, namespace, _owned_by(created))
            return created
        except BaseException:
            _remove(core, custom, secret_name, obj["metadata"]["name"] if created else None, namespace)
            raise
    except ConfigException as exc:
        raise ClusterUnreachable(
            f"no usable kubeconfig: {exc}", hint="run `make cluster-up`, or set KUBECONFIG / --context"
        ) from exc
    except ApiException as exc:
        if exc.status == 409:
            raise ClusterUnreachable(
                f"the cluster refused {what}: it exists already in namespace {namespace}",
                hint="choose another --name",
            ) from exc
        raise ClusterUnreachable(
            f"the cluster refused {what}: {exc.status} {exc.reason}{_denial(exc)}",
            hint="check that Kubeflow Trainer and the `remote` runtime are installed (`make cluster-up`)",
        ) from exc
    except (OSError, HTTPError) as exc:
        raise ClusterUnreachable(
            f"the cluster's API server is unreachable: {connection_reason(exc)}",
            hint="check that the cluster runs: `make cluster-up`",
        ) from exc


def _owned_by(trainjob: dict[str, Any]) -> dict[str, Any]:
    """The patch that makes the TrainJob the Secret's owner: the garbage collector deletes it with it."""
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "name": trainjob["metadata"]["name"],
        "uid": trainjob["metadata"]["uid"],
    }
    return {"metadata": {"ownerReferences": [owner]}}


def _remove(core: Any, custom: Any, secret: str, trainjob: str | None, namespace: str) -> None:
    """After a failed step: the TrainJob made (if any), then the Secret, go."""
    from kubernetes.client.exceptions import ApiException

    try:
        if trainjob is not None:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, trainjob, body={"propagationPolicy": "Background"}
            )
        core.delete_namespaced_secret(secret, namespace)
    except (ApiException, OSError) as exc:
        log.warning("could not clean up after a failed submit: %s", exc)


def _denial(exc: Any) -> str:
    """The API server's message of a refusal (an admission policy's, say), without the object."""
    import json

    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if message else ""


def connection_reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, without urllib3's object reprs."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    return text.split(": ", 1)[-1] if "Failed to establish a new connection" in text else text

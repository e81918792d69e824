"""`submit --follow`: stream a TrainJob's pod log until it ends and return the script's exit code.

The pod of a TrainJob on the `remote` runtime runs the runner, whose output is the host's output and whose
exit code is the script's. Following means: wait for that pod, stream its log (reconnecting without
repeating a line if the stream breaks), then read the container's exit code and the TrainJob's condition.
SIGINT/SIGTERM while following delete the TrainJob (its pod then stops the remote run) unless `keep`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driver.cluster.submit import GROUP, PLURAL, VERSION, ClusterUnreachable, connection_reason
from driver.errors import EXIT_CLUSTER_NOT_READY, EXIT_TIMEOUT, DriverError, Interrupted
from driver.execution.play import signals

log = logging.getLogger(__name__)

CONTAINER = "node"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
# Waiting reasons of the runner container that never resolve by themselves.
STUCK = {
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}


class PodNotStarted(DriverError):
    """The TrainJob's pod cannot start (image or a Secret missing); the TrainJob was deleted."""

    exit_code = EXIT_CLUSTER_NOT_READY


@dataclass
class Ending:
    exit_code: int
    condition: str  # Complete, Failed, or "" when the TrainJob ended without one in time
    message: str


class _Stop(Exception):
    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name


def _apis() -> tuple[Any, Any]:
    from kubernetes import client

    return client.CoreV1Api(), client.CustomObjectsApi()


def _pod(core: Any, name: str, namespace: str) -> Any | None:
    pods = core.list_namespaced_pod(namespace, label_selector=f"{JOBSET_LABEL}={name}").items
    live = [p for p in pods if p.metadata.deletion_timestamp is None] or pods
    return max(live, key=lambda p: p.metadata.creation_timestamp) if live else None


def _read_pod(core: Any, pod: str, namespace: str) -> Any | None:
    """The pod, or None once it is gone (deleted by a deadline, a deletion of the TrainJob, ...)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_pod(pod, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _container(pod: Any) -> Any | None:
    if pod is None:
        return None
    for status in pod.status.container_statuses or []:
        if status.name == CONTAINER:
            return status
    return None


def _condition(custom: Any, name: str, namespace: str) -> tuple[str, str]:
    job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    for cond in job.get("status", {}).get("conditions", []):
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return cond["type"], cond.get("message", "")
    return "", ""


def wait_for_start(core: Any, custom: Any, name: str, namespace: str, timeout: float) -> str:
    """The pod's name once its runner container runs or has ended."""
    deadline = time.monotonic() + timeout
    while True:
        pod = _pod(core, name, namespace)
        status = _container(pod) if pod else None
        if status is not None and (status.state.running or status.state.terminated):
            return pod.metadata.name
        if status is not None and status.state.waiting and status.state.waiting.reason in STUCK:
            waiting = status.state.waiting
            raise PodNotStarted(
                f"the pod of trainjob/{name} cannot start: {waiting.reason}: {waiting.message or ''}".strip(),
                hint="check the runtime's image and its Secrets: `driver cluster status`",
            )
        if pod is None:
            condition, message = _condition(custom, name, namespace)
            if condition == "Failed":
                raise DriverError(
                    f"trainjob/{name} failed before its pod started: {message}",
                    hint=f"see `kubectl describe trainjob {name}` and `driver cluster status`",
                )
        if time.monotonic() > deadline:
            raise PodNotStarted(
                f"the pod of trainjob/{name} did not start within {timeout:.0f} s",
                hint="see `kubectl describe trainjob " + name + "` and its pod's events",
            )
        time.sleep(0.5)


def _instant(stamp: bytes) -> tuple[int, int]:
    """An RFC 3339 timestamp of the kubelet (2026-12-01T21:11:18.2905Z) as (seconds, nanoseconds), ordered."""
    import datetime

    text = stamp.decode("ascii", "replace").rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        seconds = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return (0, 0)
    return int(seconds), int((fraction + "000000000")[:9])


def stream(core: Any, pod: str, namespace: str, write: Callable[[bytes], None]) -> None:
    """Write the runner's log as it comes; after a broken stream, resume after the last line written
    (the kubelet's timestamps say where), until the container has ended and its log is read to the end."""
    from kubernetes.client.exceptions import ApiException

    last = (-1, -1)
    while True:
        try:
            resp = core.read_namespaced_pod_log(
                pod, namespace, container=CONTAINER, follow=True, timestamps=True, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:  # the pod went (a deadline, a deletion) after its log was read
                return
            raise
        pending = b""
        try:
            for chunk in resp.stream(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    stamp, _, text = line.partition(b" ")
                    ts = _instant(stamp)
                    if ts <= last:
                        continue
                    last = ts
                    write(text + b"\n")
        finally:
            resp.release_conn()
        status = _container(_read_pod(core, pod, namespace))
        if status is None or status.state.terminated:
            return
        log.info("the log stream of %s broke; resuming", pod)
        time.sleep(0.5)


def wait_for_end(core: Any, custom: Any, name: str, pod: str, namespace: str, timeout: float = 90) -> Ending:
    """The runner's exit code and the TrainJob's condition. A TrainJob past its activeDeadlineSeconds ends
    with 124, as `driver train --timeout` does, whatever the stopped runner returned."""
    deadline = time.monotonic() + timeout
    code: int | None = None
    gone = False
    condition, message = "", ""
    while time.monotonic() < deadline:
        if code is None and not gone:
            found = _read_pod(core, pod, namespace)
            status = _container(found)
            gone = found is None
            if status is not None and status.state.terminated:
                code = status.state.terminated.exit_code
        condition, message = _condition(custom, name, namespace)
        if condition and (code is not None or gone):
            break
        time.sleep(0.5)
    if condition == "Failed" and "deadline" in message.lower():
        return Ending(EXIT_TIMEOUT, condition, message)
    if code is None:
        raise DriverError(
            f"the pod {pod} of trainjob/{name} ended without an exit code"
            + (f" (trainjob {condition}: {message})" if condition else ""),
            hint=f"kubectl describe trainjob {name}",
        )
    return Ending(code, condition, message)


def delete(custom: Any, core: Any, name: str, namespace: str, wait: float = 120) -> bool:
    """Delete the TrainJob; wait until its pod is gone (the runner stopped the remote run first).

    Background propagation: the TrainJob goes at once and the garbage collector removes its JobSet, Job and
    pod after it. With Foreground the TrainJob stays (being deleted) until its children are gone, and Trainer
    v2.3's reconciler, which does not look at a TrainJob's deletion, applies the JobSet again when the
    collector has removed it: a new pod that starts the script again, and a TrainJob that lingers.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body={"propagationPolicy": "Background"}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _pod(core, name, namespace) is None:
            return True
        time.sleep(0.5)
    return False


def follow(
    name: str,
    namespace: str,
    write: Callable[[bytes], None],
    *,
    keep: bool = False,
    start_timeout: float = 300,
) -> Ending:
    """Follow trainjob/NAME (kubeconfig already loaded) to its end."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    core, custom = _apis()

    def stop(signal_name: str) -> None:
        raise _Stop(signal_name)

    try:
        with signals(stop):
            try:
                pod = wait_for_start(core, custom, name, namespace, start_timeout)
                stream(core, pod, namespace, write)
            except PodNotStarted:
                delete(custom, core, name, namespace, wait=30)
                raise
            return wait_for_end(core, custom, name, pod, namespace)
    except _Stop as stopped:
        if keep:
            raise Interrupted(
                stopped.signal_name,
                f"stopped following trainjob/{name}; it goes on in the cluster",
                hint=f"kubectl logs -f -l {JOBSET_LABEL}={name} -c {CONTAINER}",
            ) from None
        log.warning("%s: deleting trainjob/%s (its pod stops the remote run)", stopped.signal_name, name)
        gone = delete(custom, core, name, namespace)
        raise Interrupted(
            stopped.signal_name,
            f"deleted trainjob/{name}"
            + ("; its pod stopped the remote run" if gone else "; its pod still ends"),
            hint="submit it again with `driver submit` when you want it to run",
        ) from None
    except ApiException as exc:
        raise ClusterUnreachable(
            f"following trainjob/{name} failed: {exc.status} {exc.reason}",
            hint=f"the TrainJob goes on; `kubectl get trainjob {name}` shows it",
        ) from exc
    except (OSError, HTTPError) as exc:
        raise ClusterUnreachable(
            f"the cluster's API server is unreachable: {connection_reason(exc)}",
            hint=f"the TrainJob goes on; check the kubeconfig's cluster, then `kubectl get trainjob {name}`",
        ) from exc

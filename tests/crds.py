"""Validate custom resources against Kubeflow Trainer's CRD schemas (OpenAPI v3 -> JSON Schema, strict).

The CRDs are read from the Go module github.com/kubeflow/trainer/v2@v2.3.0 in Go's module cache
(`make modules` downloads it; never copied into the project); $REMOTE_TRAINER_CRDS names another directory.
Strict: an object whose schema lists its properties and does not preserve unknown fields gets
additionalProperties: false, like kubeconform -strict or server-side fieldValidation=Strict. CEL rules and
webhooks are not evaluated: the checks a schema misses that matter here (names, the trainer ancestor label,
container `node`) are done by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
TRAINER_MODULE = "github.com/kubeflow/trainer/v2@v2.3.0"
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"


def crd_dir() -> Path:
    explicit = os.environ.get("REMOTE_TRAINER_CRDS")
    if explicit:
        candidate = Path(explicit)
    else:
        modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
        candidate = Path(modcache.stdout.strip()) / TRAINER_MODULE / "manifests" / "base" / "crds"
    if not (candidate / "trainer.kubeflow.org_trainjobs.yaml").is_file():
        raise FileNotFoundError(f"Kubeflow Trainer v2.3.0 CRDs not found in {candidate}: run `make modules`")
    return candidate


def _convert(schema: Any, strict: bool) -> Any:
    if isinstance(schema, list):
        return [_convert(s, strict) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _convert(v, strict) for k, v in schema.items() if k != "format"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if strict and out.get("type") == "object" and "properties" in out and not preserve:
        out.setdefault("additionalProperties", False)
    return out


def schema_for(kind: str, strict: bool = True) -> dict[str, Any]:
    for path in crd_dir().glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd.get("kind") == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
            schema = _convert(version["schema"]["openAPIV3Schema"], strict)
            schema["properties"]["metadata"] = {"type": "object"}
            return schema
    raise KeyError(kind)


def validate(obj: dict[str, Any]) -> list[str]:
    """Problems of a TrainJob or (Cluster)TrainingRuntime: schema errors and the rules the CRDs state."""
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema_for(obj["kind"])).iter_errors(obj)
    ]
    name = obj.get("metadata", {}).get("name", "")
    if not NAME.match(name) or len(name) > 63:
        problems.append(f"metadata.name {name!r} must match {NAME.pattern} and have at most 63 characters")
    if obj["kind"] in ("ClusterTrainingRuntime", "TrainingRuntime"):
        jobs = obj["spec"]["template"]["spec"]["replicatedJobs"]
        trainers = [
            j for j in jobs if j["template"].get("metadata", {}).get("labels", {}).get(ANCESTOR) == "trainer"
        ]
        if len(trainers) != 1:
            problems.append(f"exactly one replicatedJob needs the label {ANCESTOR}: trainer")
        for job in trainers:
            names = [c["name"] for c in job["template"]["spec"]["template"]["spec"]["containers"]]
            if "node" not in names:
                problems.append(f"the trainer job {job['name']!r} has no container named 'node'")
            if job.get("replicas", 1) != 1:
                problems.append("the trainer job must have replicas: 1")
        if "trainer.kubeflow.org/framework" not in obj["metadata"].get("labels", {}):
            problems.append("the label trainer.kubeflow.org/framework is missing (the SDK needs it)")
        if obj["spec"].get("mlPolicy") is None:
            problems.append("spec.mlPolicy must not be null (the SDK needs it)")
    return problems


# The remote runtime's kustomize base and overlays (the remote_runtime role's files).
KUSTOMIZE = (
    REPO
    / "ansible_collections"
    / "remote_trainer"
    / "core"
    / "roles"
    / "remote_runtime"
    / "files"
    / "kustomize"
)

"""EKS serving stacks and the validators every Kubernetes object of the slice must pass."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from eks_stacks import TODAY, plan_for
from unit_stacks import FULL

from modelfleet.kube.manifest import CUSTOM_KINDS, KubeObject, all_objects, placeholder_refs
from modelfleet.plan import FleetPlan

# Every kind the serving slice creates (modelfleet/kube/objects.py).
SLICE_KINDS = {
    "Namespace",
    "Secret",
    "NetworkPolicy",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Job",
    "Service",
    "TargetGroupBinding",
    "Deployment",
    "PodDisruptionBudget",
    "ScaledObject",
    "TriggerAuthentication",
}
CRD_DIR = Path(__file__).resolve().parents[2] / "components" / "eks" / "crds"
CRD_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
    "TargetGroupBinding": "aws-load-balancer-controller_crds.yaml",
}


def two_model_config() -> dict[str, Any]:
    """The issue's stack: two models on EKS, `custom-7b` at replicas.min 0 (with a LoRA
    adapter), `llama-8b` at min 2 on mixed capacity, a stack schedule, every secret."""
    cfg = copy.deepcopy(FULL)
    cfg["modelfleet:platform"] = "eks"
    # Warm pools are ECS's: an EKS stack that sets them is refused (test_eks_config).
    cfg.pop("modelfleet:coldStart", None)
    # So are capacity providers kept through an upgrade (keepCapacityProviders).
    cfg.pop("modelfleet:keepCapacityProviders", None)
    return cfg


def unscheduled_config() -> dict[str, Any]:
    cfg = two_model_config()
    del cfg["modelfleet:schedule"]
    return cfg


def eks_plan_for(tmp: Path, cfg: dict[str, Any]) -> FleetPlan:
    tmp.mkdir(parents=True, exist_ok=True)
    return plan_for(tmp, cfg, TODAY)


def placeholder_objects(plan: FleetPlan, secrets: dict[str, str] | None = None) -> list[KubeObject]:
    refs, model_refs = placeholder_refs(plan)
    values = secrets if secrets is not None else {s.key: f"value-of-{s.key}" for s in plan.secrets}
    return all_objects(plan, refs, model_refs, values)


def _strict(schema: Any) -> Any:
    """Reject fields a CRD does not declare, as the API server's structural pruning would
    drop them silently (and as `kubectl apply --validate=strict` refuses them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    group, _, version = api_version.partition("/")
    for doc in yaml.safe_load_all((CRD_DIR / CRD_FILES[kind]).read_text()):
        if not doc or doc["spec"]["names"]["kind"] != kind or doc["spec"]["group"] != group:
            continue
        for v in doc["spec"]["versions"]:
            if v["name"] == version:
                schema = _strict(v["schema"]["openAPIV3Schema"])
                return jsonschema.Draft202012Validator(schema)
    raise LookupError(f"no CRD version {api_version} for {kind}")


def validate(body: dict[str, Any], kubernetes_version: str) -> None:
    """Raise on any schema error: built-in kinds against the Kubernetes version's OpenAPI
    schema (strict: unknown fields are errors), custom kinds against their vendored CRD."""
    kind = body["kind"]
    if kind in CUSTOM_KINDS:
        errors = sorted(crd_validator(kind, body["apiVersion"]).iter_errors(body), key=str)
        if errors:
            raise AssertionError(f"{kind} {body['metadata']['name']}: {errors[0].message}")
        return
    kubernetes_validate.validate(body, kubernetes_version, strict=True)


# The pulumi-python SDK marks secret inputs with this key (pulumi.runtime.rpc).
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def plain(value: Any) -> Any:
    """Recorded inputs as the API server reads them: whole floats back to integers (the
    mocks' wire format has no integers), secrets unwrapped."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value

"""Every Kubernetes object of an EKS stack's serving slice, in the order they must exist.

The Pulumi component applies these objects; `modelfleet render` writes the same ones (with
placeholder references and secrets redacted) for review and `kubectl diff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.kube import objects, scaling
from modelfleet.kube.serving import ServingPlan, serving_plan
from modelfleet.plan import FleetPlan

REDACTED = "<redacted: Pulumi secret config>"
# Kinds that KEDA and the AWS Load Balancer Controller define (validated against their CRDs).
CUSTOM_KINDS = frozenset({"ScaledObject", "TriggerAuthentication", "TargetGroupBinding"})


@dataclass(frozen=True)
class KubeObject:
    """One manifest; `model` is None for the stack's shared objects."""

    model: str | None
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def logical(self, prefix: str) -> str:
        """Pulumi's logical name: unique per kind and name (the slice has one namespace)."""
        return f"{prefix}-{self.kind.lower()}-{self.name}"


@dataclass(frozen=True)
class ModelRefs:
    """References the scaler needs per model (ALB metric dimensions)."""

    wake_dimensions: Any


def stack_objects(
    sp: ServingPlan, refs: objects.SliceRefs, secret_values: Mapping[str, Any]
) -> list[KubeObject]:
    """Namespace first (labelled for readiness gates), then what every model uses."""
    out = [KubeObject(None, objects.namespace(sp))]
    if secret_values:
        out.append(KubeObject(None, objects.secret(sp, secret_values)))
    out += [KubeObject(None, p) for p in objects.network_policies(sp, refs)]
    out.append(KubeObject(None, scaling.trigger_authentication(sp)))
    return out


def model_objects(
    plan: FleetPlan, sp: ServingPlan, name: str, refs: objects.SliceRefs, model_refs: ModelRefs
) -> list[KubeObject]:
    """One model's objects: the weights and the compile cache, the pre-warm Job, then Service
    and binding before the pods (or no readiness gate is injected), the Deployment, its budget
    and its scaler."""
    m = plan.model(name)
    sm = sp.models[name]
    bodies = [
        objects.persistent_volume(sp, sm, refs),
        objects.persistent_volume_claim(sp, sm),
        objects.compile_cache_volume(sp, sm, refs),
        objects.compile_cache_claim(sp, sm),
        objects.prewarm_job(plan, m, sp, sm, refs),
        objects.service(sp, sm),
        objects.target_group_binding(sp, sm, refs),
        objects.deployment(plan, m, sp, sm, refs),
    ]
    pdb = objects.disruption_budget(sp, sm)
    if pdb is not None:
        bodies.append(pdb)
    bodies.append(scaling.scaled_object(plan, m, sp, sm, refs.region, model_refs.wake_dimensions))
    return [KubeObject(name, b) for b in bodies]


def all_objects(
    plan: FleetPlan,
    refs: objects.SliceRefs,
    model_refs: Mapping[str, ModelRefs],
    secret_values: Mapping[str, Any],
) -> list[KubeObject]:
    sp = serving_plan(plan)
    out = stack_objects(sp, refs, secret_values)
    for m in plan.models:
        out += model_objects(plan, sp, m.name, refs, model_refs[m.name])
    return out


def secret_roles(plan: FleetPlan) -> list[str]:
    """Which secrets the stack has (the plan's secrets table), as the Secret keys them."""
    return [spec.key for spec in plan.secrets]


def placeholder_refs(plan: FleetPlan) -> tuple[objects.SliceRefs, dict[str, ModelRefs]]:
    """References as they read before `pulumi up` knows them: `<what>` placeholders, for
    `modelfleet render` and the pure tests (CRD schemas only check their types)."""
    c = plan.config
    refs = objects.SliceRefs(
        region=c.region,
        vpc_id=c.network.vpc_id or "<vpc-id>",
        cache_volume_handles={
            m.name: objects.efs_volume_handle("<fs-id>", f"<fsap-id:{m.name}>") for m in plan.models
        },
        compile_volume_handles={
            m.name: objects.efs_volume_handle("<fs-id>", f"<fsap-id:{m.name}-compile>")
            for m in plan.models
        },
        target_group_arns={m.name: f"<target-group-arn:{m.name}>" for m in plan.models},
        # The engine image the pods pull: in the account's registry, by the digest the cache
        # resolves at `pulumi up` (`<unresolved-digest:TAG>` until then), as the program does.
        vllm_image=plan.engine_image.offline_reference(c.region),
        sidecar_image=c.images.sidecar or "<sidecar-image@digest>",
        fetcher_image=c.images.fetcher or "<fetcher-image@digest>",
        alb_cidrs=["<alb-subnet-cidr>"],
    )
    model_refs = {
        m.name: ModelRefs(
            scaling.wake_dimension_value(f"targetgroup/<{m.name}>/<id>", "app/<alb>/<id>")
        )
        for m in plan.models
    }
    return refs, model_refs


def redacted_secrets(plan: FleetPlan) -> dict[str, str]:
    return {role: REDACTED for role in secret_roles(plan)}


def type_token(obj: KubeObject) -> str:
    """The pulumi-kubernetes type token of an object (`kubernetes:apps/v1:Deployment`)."""
    api = str(obj.body["apiVersion"])
    return f"kubernetes:{api if '/' in api else 'core/' + api}:{obj.kind}"


def planned_resources(plan: FleetPlan) -> list[tuple[str, str]]:
    """(type token, logical name) of every object the serving component creates, in order."""
    refs, model_refs = placeholder_refs(plan)
    return [
        (type_token(o), o.logical(plan.config.prefix))
        for o in all_objects(plan, refs, model_refs, redacted_secrets(plan))
    ]

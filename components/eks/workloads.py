"""The serving slice of an EKS stack: every model's Kubernetes objects through the platform's
provider, bound to the same ALB target groups, cache access points and alarms as on ECS.

The manifests are built in `modelfleet.kube` from the plan; this component only fills in
references to other resources and creates them in order: namespace (labelled for readiness
gates), secret and policies; per model the cache, the pre-warm Job, the Service and its
TargetGroupBinding, then the Deployment (after the Job, so a failed fetch fails `pulumi up`
before any pod loads a half cache), its budget and its ScaledObject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._common import child
from modelfleet.kube import objects
from modelfleet.kube.manifest import (
    KubeObject,
    ModelRefs,
    model_objects,
    secret_roles,
    stack_objects,
)
from modelfleet.kube.serving import serving_plan
from modelfleet.plan import FleetPlan


@dataclass(frozen=True)
class WorkloadsArgs:
    plan: FleetPlan
    provider: k8s.Provider
    vpc_id: pulumi.Input[str]
    file_system_id: pulumi.Input[str]
    access_point_ids: Mapping[str, pulumi.Input[str]]  # by model
    compile_access_point_ids: Mapping[str, pulumi.Input[str]]  # by model: vLLM's compile cache
    target_group_arns: Mapping[str, pulumi.Input[str]]  # by model
    target_group_suffixes: Mapping[str, pulumi.Input[str]]  # by model
    load_balancer_suffix: pulumi.Input[str]
    # The ALB's subnets, the only sources the NetworkPolicy admits to the sidecar port. The
    # security-group side is the platform's: GPU nodes join the shared tasks group, which
    # admits the ALB's group on that port (a TargetGroupBinding opens nothing by itself).
    alb_subnet_cidrs: Sequence[pulumi.Input[str]]
    # The engine image in the account's registry, by digest (EngineImage.reference).
    vllm_image: pulumi.Input[str]
    sidecar_image: pulumi.Input[str]
    fetcher_image: pulumi.Input[str]
    # Pulumi secret config by role (api_keys, fallback_api_key, hf_token).
    secret_values: Mapping[str, pulumi.Input[str]]
    # The controllers and CRDs the objects need (load balancer controller, KEDA, the EFS CSI
    # driver), and each model's listener rule, so its target group serves before pods bind.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    listener_rules: Mapping[str, pulumi.Resource] = field(default_factory=dict)


_TYPED: dict[str, Any] = {
    "Namespace": k8s.core.v1.Namespace,
    "Secret": k8s.core.v1.Secret,
    "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
    "PersistentVolume": k8s.core.v1.PersistentVolume,
    "PersistentVolumeClaim": k8s.core.v1.PersistentVolumeClaim,
    "Job": k8s.batch.v1.Job,
    "Service": k8s.core.v1.Service,
    "Deployment": k8s.apps.v1.Deployment,
    "PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
}
# Within a model: what each object waits for. The Deployment waits for the pre-warm Job (so
# `pulumi up` fails with the Job's failure, not with pods loading a half cache) and for the
# Service and binding (readiness gates are injected only if they exist before the pods).
_AFTER: dict[str, tuple[str, ...]] = {
    "PersistentVolumeClaim": ("PersistentVolume",),
    "Job": ("PersistentVolumeClaim",),
    "TargetGroupBinding": ("Service",),
    "Deployment": ("PersistentVolumeClaim", "Job", "Service", "TargetGroupBinding"),
    "PodDisruptionBudget": ("Deployment",),
    "ScaledObject": ("Deployment",),
}
# Python-side argument names of each body's top-level fields.
_FIELDS = {"metadata": "metadata", "spec": "spec", "stringData": "string_data", "type": "type"}


class Workloads(pulumi.ComponentResource):
    deployments: dict[str, pulumi.Resource]
    prewarm_jobs: dict[str, pulumi.Resource]

    def __init__(
        self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Workloads", name, None, opts)
        plan = args.plan
        c = plan.config
        sp = serving_plan(plan)
        refs = objects.SliceRefs(
            region=c.region,
            vpc_id=args.vpc_id,
            cache_volume_handles={
                m.name: pulumi.Output.concat(
                    args.file_system_id, "::", args.access_point_ids[m.name]
                )
                for m in plan.models
            },
            compile_volume_handles={
                m.name: pulumi.Output.concat(
                    args.file_system_id, "::", args.compile_access_point_ids[m.name]
                )
                for m in plan.models
            },
            target_group_arns=dict(args.target_group_arns),
            vllm_image=args.vllm_image,
            sidecar_image=args.sidecar_image,
            fetcher_image=args.fetcher_image,
            alb_cidrs=list(args.alb_subnet_cidrs),
        )
        secrets = {
            role: pulumi.Output.secret(args.secret_values[role]) for role in secret_roles(plan)
        }
        base = list(args.depends_on)
        shared = self._apply(stack_objects(sp, refs, secrets), args, base)
        ns_deps = base + list(shared.values())
        self.deployments = {}
        self.prewarm_jobs = {}
        for m in plan.models:
            wake = pulumi.Output.concat(
                args.target_group_suffixes[m.name], ";", args.load_balancer_suffix
            )
            # By kind: a model has two volumes and two claims (weights, compile cache).
            made: dict[str, list[pulumi.Resource]] = {}
            for obj in model_objects(plan, sp, m.name, refs, ModelRefs(wake)):
                deps = ns_deps + [r for k in _AFTER.get(obj.kind, ()) for r in made.get(k, [])]
                if obj.kind == "TargetGroupBinding" and m.name in args.listener_rules:
                    deps.append(args.listener_rules[m.name])
                made.setdefault(obj.kind, []).append(self._create(obj, args, deps))
            (self.deployments[m.name],) = made["Deployment"]
            (self.prewarm_jobs[m.name],) = made["Job"]
        self.namespace = sp.namespace
        self.register_outputs({"namespace": sp.namespace})

    def _apply(
        self, objs: list[KubeObject], args: WorkloadsArgs, deps: list[pulumi.Resource]
    ) -> dict[str, pulumi.Resource]:
        made: dict[str, pulumi.Resource] = {}
        for obj in objs:
            # Everything namespaced waits for the namespace (and its readiness-gate label).
            made[obj.logical(args.plan.config.prefix)] = self._create(
                obj, args, deps + list(made.values())[:1]
            )
        return made

    def _create(
        self, obj: KubeObject, args: WorkloadsArgs, deps: list[pulumi.Resource]
    ) -> pulumi.Resource:
        opts = child(self, provider=args.provider, depends_on=deps)
        logical = obj.logical(args.plan.config.prefix)
        body = obj.body
        if obj.kind in _TYPED:
            kwargs = {_FIELDS[k]: v for k, v in body.items() if k not in ("apiVersion", "kind")}
            resource: pulumi.Resource = _TYPED[obj.kind](logical, opts=opts, **kwargs)
            return resource
        return k8s.apiextensions.CustomResource(
            logical,
            api_version=body["apiVersion"],
            kind=body["kind"],
            metadata=body["metadata"],
            spec=body["spec"],
            opts=opts,
        )

"""Policy rules for the Kubernetes objects of the serving slice (pulumi-kubernetes inputs).

Props are what `pulumi_kubernetes` registers: the manifest's fields in camelCase (`metadata`,
`spec`, ...). Pod templates are found in Deployments, StatefulSets, DaemonSets, Jobs and
ReplicaSets (`spec.template`), CronJobs (`spec.jobTemplate.spec.template`) and bare Pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rules._registry import RuleContext, StackResource, resource_rule, stack_rule
from policies.rules.ecs import image_pin_problem

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
REPLICA_SET = "kubernetes:apps/v1:ReplicaSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
WORKLOADS = (DEPLOYMENT, STATEFUL_SET, DAEMON_SET, REPLICA_SET, JOB, CRON_JOB, POD)
GPU = "nvidia.com/gpu"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def _who(resource_type: str, ctx: RuleContext) -> str:
    return f"{resource_type.rsplit(':', 1)[-1]} {ctx.name!r}"


def _pod_template(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod (metadata + spec) a workload runs; empty when it has none."""
    if resource_type == POD:
        return props
    spec = props.get("spec") or {}
    if resource_type == CRON_JOB:
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, Mapping) else {}


def _containers(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pod = _pod_template(resource_type, props).get("spec") or {}
    out: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers"):
        items = pod.get(key) or []
        if isinstance(items, Sequence):
            out += [c for c in items if isinstance(c, Mapping)]
    return out


def _requests_gpu(c: Mapping[str, Any]) -> bool:
    res = c.get("resources") or {}
    return any(GPU in (res.get(k) or {}) for k in ("limits", "requests"))


@resource_rule(
    "k8s-images-pinned",
    "Kubernetes containers use pinned images (version tag or digest), never latest.",
    WORKLOADS,
)
def k8s_images_pinned(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    out = []
    containers = _containers(resource_type, props)
    if not containers:
        return [f"{_who(resource_type, ctx)}: no containers. Fix: give the pod its containers."]
    for c in containers:
        image = c.get("image")
        problem = (
            image_pin_problem(image) if isinstance(image, str) and image.strip() else "is empty"
        )
        if problem:
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} image {problem}. "
                "Fix: pin it (repo:version or repo@sha256:<digest>)."
            )
    return out


@resource_rule(
    "k8s-no-privileged",
    "Kubernetes containers are not privileged and cannot escalate privileges.",
    WORKLOADS,
)
def k8s_no_privileged(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    out = []
    for c in _containers(resource_type, props):
        sc = c.get("securityContext") or {}
        if sc.get("privileged") is True:
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} is privileged. "
                "Fix: remove securityContext.privileged; GPUs come from the device plugin."
            )
        if sc.get("allowPrivilegeEscalation") is not False:
            # Kubernetes defaults it to true: absent is a violation.
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} may escalate "
                "privileges. Fix: set securityContext.allowPrivilegeEscalation: false."
            )
    return out


@resource_rule(
    "k8s-resource-limits",
    "Kubernetes containers set a memory limit, and a GPU limit equal to their GPU request.",
    WORKLOADS,
)
def k8s_resource_limits(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    out = []
    for c in _containers(resource_type, props):
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        if not limits.get("memory"):
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} has no memory limit. "
                "Fix: set resources.limits.memory (a runaway process must not evict its node)."
            )
        requested = (res.get("requests") or {}).get(GPU)
        if requested is not None and str(limits.get(GPU)) != str(requested):
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} requests {GPU} "
                f"{requested} without the same limit. Fix: set resources.limits.{GPU} to the "
                "tensor-parallel size."
            )
    return out


@resource_rule(
    "k8s-gpu-pods-not-disruptible",
    "Pods using GPUs carry karpenter.sh/do-not-disrupt, so consolidation never evicts them.",
    WORKLOADS,
)
def k8s_gpu_pods_not_disruptible(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if not any(_requests_gpu(c) for c in _containers(resource_type, props)):
        return []
    ann = (_pod_template(resource_type, props).get("metadata") or {}).get("annotations") or {}
    if str(ann.get(DO_NOT_DISRUPT, "")).lower() == "true":
        return []
    return [
        f"{_who(resource_type, ctx)}: its pods use GPUs but Karpenter may consolidate their "
        f'nodes mid-request. Fix: annotate the pod template {DO_NOT_DISRUPT}: "true".'
    ]


def _scale_target(r: StackResource) -> tuple[str, str, str] | None:
    spec = r.props.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    ns = (r.props.get("metadata") or {}).get("namespace") or "default"
    if not ref.get("name"):
        return None
    return (str(ref.get("kind") or "Deployment"), str(ns), str(ref["name"]))


@stack_rule(
    "k8s-no-replicas-under-autoscaler",
    "Workloads targeted by a ScaledObject or HPA leave spec.replicas unset.",
)
def k8s_no_replicas_under_autoscaler(
    resources: Sequence[StackResource], ctx: RuleContext
) -> list[tuple[str, str]]:
    """A workload an autoscaler owns must leave `replicas` unset, or Pulumi resets it at every
    `up` and fights the autoscaler (pulumi-kubernetes #2491)."""
    scaled = {
        t: r.name
        for r in resources
        if r.type in (SCALED_OBJECT, HPA) and (t := _scale_target(r)) is not None
    }
    out = []
    kinds = {DEPLOYMENT: "Deployment", STATEFUL_SET: "StatefulSet"}
    for r in resources:
        if r.type not in kinds:
            continue
        meta = r.props.get("metadata") or {}
        key = (kinds[r.type], str(meta.get("namespace") or "default"), str(meta.get("name")))
        if key in scaled and "replicas" in (r.props.get("spec") or {}):
            out.append(
                (
                    r.name,
                    f"{kinds[r.type]} {r.name!r} sets spec.replicas while {scaled[key]!r} "
                    "autoscales it. Fix: remove spec.replicas; the autoscaler owns it.",
                )
            )
    return out

"""Names and derived numbers of an EKS stack's serving slice, decided once from the plan.

Keyed by model name, never by list position. Every window here is derived from the same
cold-start and drain figures the ECS slice uses, so switching `platform` keeps behaviour.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from modelfleet.containers import fetcher_sources
from modelfleet.eks import ROLLOUT_MAX_SURGE, EksPlan
from modelfleet.plan import STARTUP_MARGIN, FleetPlan, ModelPlan
from modelfleet.sizing import round_up

# Label keys (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
APP_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
COMPONENT_LABEL = "app.kubernetes.io/component"
MODEL_LABEL = "modelfleet.dev/model"
# The AWS Load Balancer Controller injects target-health readiness gates into pods of
# namespaces with this label (docs: deploy/pod_readiness_gate.md, controller v2.x/3.x).
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
# Karpenter never voluntarily disrupts a node running a pod with this annotation
# (karpenter.sh/v1 `Disruption` docs, "Pod-Level Controls").
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# pulumi-kubernetes await annotations (pulumi/pulumi-kubernetes provider/pkg/await: annotations).
PULUMI_TIMEOUT = "pulumi.com/timeoutSeconds"
PULUMI_REPLACE_UNREADY = "pulumi.com/replaceUnready"

# Probe cadence. The startup probe's window is period x failureThreshold; liveness only starts
# once it succeeded, so a pod still loading weights is never killed (kserve #5062).
STARTUP_PERIOD_S = 10
LIVENESS_PERIOD_S = 15
LIVENESS_FAILURES = 3
READINESS_PERIOD_S = 5
READINESS_FAILURES = 2
PROBE_TIMEOUT_S = 5
# Pre-warm: retried pods resume (the fetcher verifies what is there and fetches the rest);
# Pulumi waits a little past the Job's own deadline so it reports the Job's failure reason.
PREWARM_BACKOFF_LIMIT = 2
PREWARM_AWAIT_MARGIN_S = 120
# One Secret per stack holds what the pods must know but config must not show.
SECRET_NAME = "modelfleet-secrets"  # noqa: S105 - an object name, not a secret
# The sidecar's CPU request, millicores (ECS gives it 512 units of 1024).
SIDECAR_CPU_M = 500
# Share of the task's CPU the engine requests on a GPU node: the rest is for the sidecar and
# the node's daemons (vpc-cni, kube-proxy, EFS CSI, CloudWatch agent, Fluent Bit, pod
# identity agent), which ECS does not run beside the task.
VLLM_CPU_SHARE = 0.75
# Pulumi's own default await for Deployments, a floor for ours.
PULUMI_DEFAULT_AWAIT_S = 600


def _hash(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class ServingModel:
    """One model's objects and windows."""

    model: str
    deployment: str
    service: str
    target_group_binding: str
    scaled_object: str
    disruption_budget: str | None  # only for replicas.min >= 2
    volume: str  # cluster-scoped PersistentVolume: carries the stack prefix
    claim: str
    # vLLM's compile cache (VLLM_CACHE_ROOT) on the model's second access point, per engine
    # version (`ModelPlan.compile_cache_path`); only the vLLM container mounts it.
    compile_volume: str
    compile_claim: str
    prewarm_job: str  # changes with the source revisions: a new revision is a new Job
    metric_service: str  # EMF `Service` dimension: the same value the ECS service name has
    # From the platform's plan: the pods' identity, and the GPU class they schedule onto.
    service_account: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    labels: dict[str, str]
    sources: list[tuple[str, str]]  # (container name, source): the model and its adapters
    gpus: int
    vllm_cpu_m: int
    shm_mib: int
    cache_gib: int
    startup_failures: int
    drain_s: int
    pre_stop_s: int
    termination_grace_s: int
    rollout_surge: int
    rollout_await_s: int
    prewarm_deadline_s: int
    prewarm_await_s: int

    @property
    def startup_window_s(self) -> int:
        return STARTUP_PERIOD_S * self.startup_failures


@dataclass(frozen=True)
class ServingPlan:
    namespace: str
    secret_name: str
    trigger_authentication: str
    default_deny_policy: str
    alb_ingress_policy: str
    component: str  # the Pulumi component that applies the slice
    models: dict[str, ServingModel]
    # vpc-cni enforces NetworkPolicy only with this add-on setting (amazon-vpc-cni-k8s README,
    # "ENABLE_NETWORK_POLICY" / add-on configuration value `enableNetworkPolicy`).
    requires_network_policy_addon: bool = True


def eks_plan(plan: FleetPlan) -> EksPlan:
    if plan.eks is None:
        raise ValueError(f"stack {plan.stack}: the serving slice on Kubernetes needs platform: eks")
    return plan.eks


def serving_model(plan: FleetPlan, m: ModelPlan) -> ServingModel:
    eks = eks_plan(plan)
    where = eks.scheduling[m.name]
    sources = fetcher_sources(m, plan)
    d = plan.drain
    # The ALB stops sending new requests once it deregisters the pod, and keeps in-flight ones
    # for the deregistration delay: both containers stay up that long before SIGTERM, so no
    # request meets a closed socket (aws-load-balancer-controller #1719, #1064), as ECS waits
    # the delay out before SIGTERM. After it the sidecar drains for the whole requested drain
    # (no ECS stopTimeout cap on Kubernetes).
    # The NodePools' GPU limits leave room for this many pods above the max (modelfleet.eks),
    # so a rollout replaces at most that many replicas at a time.
    surge = ROLLOUT_MAX_SURGE
    waves = max(1, math.ceil(m.replicas_max / surge))
    # A new pod may need a new GPU node: the whole cold start, per rollout wave. With the
    # `replicas` field absent, the API creates one pod on the first deploy (also for
    # replicas.min 0, until KEDA scales it away), so the first deploy waits one cold start.
    cold = round_up(m.cold_start_s * STARTUP_MARGIN, 60)
    prewarm = m.prewarm_timeout_s * len(sources)
    return ServingModel(
        model=m.name,
        deployment=m.name,
        service=m.name,
        target_group_binding=m.name,
        scaled_object=m.name,
        disruption_budget=m.name if m.replicas_min >= 2 else None,
        volume=f"{eks.namespace}-{m.name}-cache",
        claim=f"{m.name}-cache",
        compile_volume=f"{eks.namespace}-{m.name}-compile-cache",
        compile_claim=f"{m.name}-compile-cache",
        prewarm_job=f"{m.name}-prewarm-{_hash(*(s for _, s in sources))}",
        metric_service=m.service_name,
        service_account=eks.workload_service_accounts[m.name],
        node_selector=dict(where.node_selector),
        tolerations=[dict(t) for t in where.tolerations],
        labels={
            APP_LABEL: m.name,
            PART_OF_LABEL: "modelfleet",
            COMPONENT_LABEL: "serving",
            MODEL_LABEL: m.name,
        },
        sources=sources,
        gpus=m.tensor_parallel,
        vllm_cpu_m=max(1000, int(m.task_cpu * 1000 / 1024 * VLLM_CPU_SHARE) - SIDECAR_CPU_M),
        shm_mib=m.shared_memory_mib,
        # EFS ignores the size; Kubernetes requires one. The weights, rounded up.
        cache_gib=max(1, math.ceil(m.weights_gib)),
        startup_failures=max(6, math.ceil(m.container_start_s * STARTUP_MARGIN / STARTUP_PERIOD_S)),
        drain_s=d.pod_sidecar_drain_s,
        pre_stop_s=d.pod_pre_stop_s,
        termination_grace_s=d.pod_termination_grace_s,
        rollout_surge=surge,
        rollout_await_s=max(PULUMI_DEFAULT_AWAIT_S, waves * cold),
        prewarm_deadline_s=prewarm,
        prewarm_await_s=prewarm + PREWARM_AWAIT_MARGIN_S,
    )


def serving_plan(plan: FleetPlan) -> ServingPlan:
    return ServingPlan(
        namespace=eks_plan(plan).namespace,
        secret_name=SECRET_NAME,
        trigger_authentication="keda-operator-identity",
        default_deny_policy="default-deny-ingress",
        alb_ingress_policy="alb-to-sidecar",
        component=f"{plan.config.prefix}-workloads",
        models={m.name: serving_model(plan, m) for m in plan.models},
    )

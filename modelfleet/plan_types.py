"""The plan's types: the complete, typed description of what a stack builds.

A leaf of the package (it imports only config, sizing and identities), so the modules that
turn a plan into payloads (containers, monitoring, limits) never import the planner itself;
`modelfleet.plan.build_plan` is the one step that makes these objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from modelfleet import coldstart, sizing
from modelfleet.coldstart import ColdStartPlan
from modelfleet.config import Platform, StackConfig
from modelfleet.identities import Identities, Res
from modelfleet.partitions import partition_of

if TYPE_CHECKING:
    from modelfleet.eks import EksPlan


@dataclass(frozen=True)
class SecretSpec:
    """A secret a container needs: where the user sets it and where it arrives.

    The one table of secrets: the secrets component creates one entry per spec present in the
    stack, the container definitions read them by `key`, the task roles grant exactly them,
    and the cost counts them.
    """

    key: str  # api_keys | fallback_api_key | hf_token
    config_key: str  # the stack key, as the user writes it
    env: str  # the container's variable
    container: str  # sidecar | fetcher


SECRET_SPECS = (
    SecretSpec("api_keys", "modelfleet:gateway.apiKeys", "SIDECAR_API_KEYS", "sidecar"),
    SecretSpec(
        "fallback_api_key",
        "modelfleet:gateway.fallback.apiKey",
        "SIDECAR_FALLBACK_API_KEY",
        "sidecar",
    ),
    SecretSpec("hf_token", "modelfleet:hfToken", "HF_TOKEN", "fetcher"),
)


@dataclass(frozen=True)
class SubnetLayout:
    """CIDRs of a new VPC's subnets, per AZ slot (the n-th zone AWS lists)."""

    vpc: str
    public: tuple[str, ...]
    private: tuple[str, ...]
    # Addresses each private subnet must hold when everything runs in one AZ, and why.
    private_addresses_needed: int


@dataclass(frozen=True)
class DrainPlan:
    """How long in-flight requests get when a replica stops, decided once for every consumer.

    `deregistration_delay_s` applies to every stop that goes through the load balancer
    (scale-in, deployments, scheduled scale-down): ECS deregisters the target, waits the delay
    out, and only then sends SIGTERM, so streams have the whole delay. `sidecar_drain_s`
    applies after SIGTERM, which on ECS is the whole budget only for stops that skip the load
    balancer (spot reclaim, StopTask); it must end before `stop_timeout_s`, when ECS sends
    SIGKILL.

    On Kubernetes (`pod_*`), the pod's preStop waits the deregistration delay out (the ALB keeps
    in-flight requests that long after it deregisters the pod, and readiness gates hold new
    ones back), then SIGTERM gives the sidecar the whole requested drain: no ECS cap applies,
    and terminationGracePeriodSeconds covers both plus the processes' exit.
    """

    requested_s: int  # gateway.drainSeconds
    deregistration_delay_s: int
    sidecar_drain_s: int  # ECS
    stop_timeout_s: int  # ECS
    pod_pre_stop_s: int  # Kubernetes
    pod_sidecar_drain_s: int  # Kubernetes
    pod_termination_grace_s: int  # Kubernetes
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SidecarTimeouts:
    """The gateway's clocks for one model, derived from the ALB idle timeout and the model's
    speed; the same values reach the sidecar on every platform."""

    # A blocking answer ends with a clean OpenAI-shaped 504 just before the ALB would cut the
    # connection.
    first_byte_s: int
    # A stream may run a whole maxModelLen at single-stream speed (with margin).
    total_s: int
    # SSE keep-alive comments, below the ALB idle timeout, so a slow first token never looks
    # like a dead connection.
    sse_keepalive_s: int
    # Idle HTTP connections outlive the ALB's, so the ALB never reuses one the sidecar is
    # closing (a spurious 502); 620 s is the sidecar's own default.
    http_keepalive_s: int


@dataclass(frozen=True)
class WarmPoolPlan:
    """Stopped, pre-initialized instances beside an on-demand group, images already pulled.

    Prepared capacity (running + warm) follows the group's instances at `replicas.max`, so a
    scale-out to the maximum never launches cold; instances are not returned to the pool on
    scale-in (ECS refuses ReuseOnScaleIn), so the pool refills with fresh instances.
    """

    max_group_prepared_capacity: int
    min_size: int
    pool_state: str  # Stopped: only the root volumes are paid for
    reuse_on_scale_in: bool
    hook_name: str  # the EC2_INSTANCE_LAUNCHING hook the user data completes
    heartbeat_s: int
    root_volume_gib: int
    stopped_volume_monthly_usd: float  # the whole pool stopped, at gp3's price


@dataclass(frozen=True)
class CapacityGroupPlan:
    """One ASG + capacity provider: the models that share an instance type and a purchase
    option (on-demand or spot). A `capacity: mixed` model uses an on-demand group for its
    minimum and a spot group above it, joined by its capacity provider strategy."""

    key: str  # g6e-xlarge-on-demand
    instance_type: str
    capacity: str  # on-demand | spot
    models: tuple[str, ...]  # model names
    instances_min: int
    instances_max: int
    # Twice the instances the models can ask for: a rolling deployment runs old and new
    # tasks side by side.
    max_size: int
    on_demand_base: int  # 0: an on-demand group is on-demand throughout, a spot group spot
    max_scaling_step: int
    warm_pool: WarmPoolPlan | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeptCapacityPlan:
    """A capacity group no model uses any more, kept for one `pulumi up` (stack key
    keepCapacityProviders): its launch template, Auto Scaling group and capacity provider stay
    as they are and the provider stays attached to the cluster while the services' strategies
    move to `moved_to`; ECS refuses to detach a provider that tasks still use
    (PutClusterCapacityProviders). The next `pulumi up`, without the key, detaches and deletes
    it."""

    key: str  # g6e-xlarge-mixed
    instance_type: str
    capacity: str  # on-demand | spot | mixed
    moved_to: tuple[str, ...]  # the groups this stack builds for the same instance type
    step: str  # what this run does and what the next one needs, as the plan shows it


@dataclass(frozen=True)
class CapacityShare:
    """One entry of a service's capacity provider strategy (ECS: base in tasks)."""

    group: str  # capacity group key
    base: int
    weight: int


@dataclass(frozen=True)
class EngineImagePlan:
    """Where the vLLM image comes from at scale-out.

    `pull-through`: a Docker Hub image pulled through the stack's ECR pull-through cache rule
    (credentials from `images.dockerHubCredentials`), pinned by digest: the given `@sha256:`
    or the one the cache resolves at `pulumi up`. `given`: the reference as written (another
    registry, or Docker Hub without credentials), pulled from where it points.
    """

    mode: str  # pull-through | given
    reference: str  # as written in images.vllm
    upstream_repository: str  # vllm/vllm-openai (library/<name> for official images)
    tag: str | None
    digest: str | None  # sha256:..., when given
    cache_prefix: str | None  # ECR repository prefix of the rule
    cache_repository: str | None  # <prefix>/<upstream repository>
    secret_name: str | None  # ecr-pullthroughcache/...
    version_key: str  # names the compile cache directory: one per engine version
    notes: tuple[str, ...] = ()

    def registry_reference(self, account_id: str, region: str, digest: str) -> str:
        """What every ECS task, warm instance and EKS pod pulls: the image in the stack's own
        registry, pinned by `digest`; the reference as written when there is no cache."""
        if self.mode != "pull-through":
            return self.reference
        # amazonaws.com.cn in the China regions (the registry's host is per partition).
        host = f"{account_id}.dkr.ecr.{region}.{partition_of(region)[1]}"
        return f"{host}/{self.cache_repository}@{digest}"

    def offline_reference(self, region: str) -> str:
        """`registry_reference` as far as it is known before `pulumi up`: the account reads
        `<account-id>`, and a digest the cache resolves at `pulumi up` reads
        `<unresolved-digest:TAG>`."""
        digest = self.digest or f"<unresolved-digest:{self.tag}>"
        return self.registry_reference("<account-id>", region, digest)


@dataclass(frozen=True)
class HealthCheck:
    start_period: int
    interval: int
    timeout: int
    retries: int

    @property
    def budget_s(self) -> int:
        """Seconds before ECS declares a starting container unhealthy."""
        return self.start_period + self.interval * self.retries


@dataclass(frozen=True)
class ScheduledAction:
    name: str  # the AWS name of the action, unique per stack
    action: str  # scale-down | scale-up: the action's identity within its model
    schedule: str  # AWS cron(...)
    timezone: str
    min_capacity: int
    max_capacity: int


@dataclass(frozen=True)
class ModelCost:
    on_demand_hourly: float
    instances_min: int
    instances_max: int
    hourly_min: float
    hourly_max: float
    monthly_usd: float  # min replicas, schedule applied
    monthly_max_usd: float
    usd_per_million_tokens: float  # at 50 % utilization, min replicas' price per replica


@dataclass(frozen=True)
class ModelPlan:
    name: str
    short: str
    source: str
    catalog_key: str
    instance_type: str
    gpu: str
    gpus_per_instance: int
    dtype: str
    kv_cache_dtype: str
    max_model_len: int
    tensor_parallel: int
    tasks_per_instance: int
    weights_gib: float
    kv_cache_gib: float
    kv_per_sequence_gib: float
    kv_cache_tokens: int
    budget_per_gpu_gib: float
    need_per_gpu_gib: float
    fits: bool
    max_num_seqs: int
    single_stream_tokens_per_s: float
    batched_tokens_per_s: float
    batch: int
    cold_start_s: float  # the warm start from the capacity request, zero running instances
    first_start_s: float  # nothing prepared: new instance, image pull, compile
    task_start_s: float
    container_start_s: float
    replicas_min: int
    replicas_max: int
    capacity: str
    model_path: str
    vllm_command: list[str]
    vllm_health_check: HealthCheck
    grace_period_s: int
    task_cpu: int
    task_memory_mib: int
    vllm_memory_mib: int
    shared_memory_mib: int
    sidecar_max_inflight: int
    cost: ModelCost
    service_name: str  # ECS service and task family; also the sidecar's metric dimension
    prewarm_family: str  # the pre-warm fetcher's task family
    listener_priority: int  # stable per model name across reorders
    prewarm_timeout_s: int
    scheduled_actions: tuple[ScheduledAction, ...] = ()
    cold_start: ColdStartPlan | None = None
    capacity_strategy: tuple[CapacityShare, ...] = ()
    compile_cache_path: str = ""  # the compile cache access point's root directory
    notes: list[str] = field(default_factory=list)
    # Checkpoint vs serving precision: what is fetched, stored and read at start (checkpoint)
    # against what sits on the GPU (dtype, weights_gib).
    checkpoint: str = "bfloat16"
    checkpoint_gib: float = 0.0
    quant_method: str | None = None  # config.json's quantization_config.quant_method
    max_lora_rank: int | None = None  # --max-lora-rank, None without adapters
    lora_gib: float = 0.0  # per GPU, preallocated adapter buffers
    # What the fetcher must find, per source (model and each adapter), keyed by the source:
    # `python -m fetcher SOURCE DEST_ROOT --expect JSON`.
    fetch_expect: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class SharedCost:
    efs_usd: float
    alb_usd: float
    nat_usd: float
    endpoints_usd: float
    monitoring_usd: float
    keys_and_secrets_usd: float
    warm_pools_usd: float = 0.0  # stopped instances' root volumes
    engine_cache_usd: float = 0.0  # the pull-through cache's copy of the engine image

    @property
    def total(self) -> float:
        return (
            self.efs_usd
            + self.alb_usd
            + self.nat_usd
            + self.endpoints_usd
            + self.monitoring_usd
            + self.keys_and_secrets_usd
            + self.warm_pools_usd
            + self.engine_cache_usd
        )


@dataclass(frozen=True)
class FleetPlan:
    config: StackConfig
    models: list[ModelPlan]
    running_fraction: float
    alb_idle_timeout_s: int
    https: bool
    interface_endpoints: list[str]
    subnets: SubnetLayout | None  # None: an existing VPC
    drain: DrainPlan
    capacity: dict[str, CapacityGroupPlan]  # by group key, in the order the models come
    sidecar: dict[str, SidecarTimeouts]  # by model name
    secrets: tuple[SecretSpec, ...]  # the ones this stack configures
    engine_image: EngineImagePlan
    ids: Identities
    shared_cost: SharedCost
    monthly_usd: float
    notes: list[str] = field(default_factory=list)
    # The EKS platform (cluster, pools, identities, add-ons) of a `platform: eks` stack.
    eks: EksPlan | None = None
    # Capacity groups kept attached for one more `pulumi up` (keepCapacityProviders), by key.
    kept_capacity: dict[str, KeptCapacityPlan] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        return self.config.stack

    def model(self, name: str) -> ModelPlan:
        return next(m for m in self.models if m.name == name)

    @property
    def partition(self) -> str:
        """The stack's AWS partition (aws, aws-cn, aws-us-gov, ...), from its Region."""
        return partition_of(self.config.region)[0]

    @property
    def ec2_service_principal(self) -> str:
        """What the roles of EC2 instances (ECS GPU hosts, EKS nodes, the image-cache builder)
        trust: ec2.<the partition's DNS suffix>, as Karpenter's own node role does
        (karpenter-provider-aws website/.../getting-started cloudformation.yaml:
        `!Sub "ec2.${AWS::URLSuffix}"`); in the China Regions EKS refuses a node role that
        trusts only ec2.amazonaws.com ("required service principals [ec2.amazonaws.com.cn]
        were not found", awslabs/cdk-eks-blueprints#558)."""
        return f"ec2.{partition_of(self.config.region)[1]}"

    @property
    def capacity_groups(self) -> dict[str, list[ModelPlan]]:
        """Models sharing GPU capacity, by group key."""
        return {k: [self.model(n) for n in g.models] for k, g in self.capacity.items()}

    @property
    def scheduled_actions(self) -> list[ScheduledAction]:
        return [a for m in self.models for a in m.scheduled_actions]

    @property
    def target_type(self) -> str:
        """How the ALB's target groups reach replicas, per platform: ECS awsvpc tasks by their
        ENI address, EKS pods by their vpc-cni address (a TargetGroupBinding with
        `targetType: ip`), so one target group serves either."""
        return {Platform.ECS: "ip", Platform.EKS: "ip"}[self.config.platform]

    @property
    def resources(self) -> list[Res]:
        """Every resource `pulumi up` creates (components excluded), in creation order."""
        out = self.ids.resources()
        if self.eks is not None:
            # The serving slice's Kubernetes objects, last: they need the cluster, its
            # controllers and the target groups (manifests built from this plan).
            from modelfleet.kube.manifest import planned_resources

            out += [Res(t, n) for t, n in planned_resources(self)]
        return out

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "stack": c.stack,
            "environment": c.environment.value,
            "team": c.team,
            "region": c.region,
            "platform": c.platform.value,
            "ephemeral": c.ephemeral,
            "https": self.https,
            "alb_idle_timeout_s": self.alb_idle_timeout_s,
            "running_fraction": round(self.running_fraction, 4),
            "models": [_model_dict(m) for m in self.models],
            "scheduled_actions": [asdict(a) for a in self.scheduled_actions],
            "subnets": asdict(self.subnets) if self.subnets else None,
            "drain": asdict(self.drain),
            "sidecar_timeouts": {k: asdict(v) for k, v in self.sidecar.items()},
            "capacity_groups": [asdict(g) for g in self.capacity.values()],
            "kept_capacity_groups": [asdict(k) for k in self.kept_capacity.values()],
            "secrets": [asdict(s) for s in self.secrets],
            "engine_image": asdict(self.engine_image),
            "shared_monthly_usd": {k: round(v, 2) for k, v in asdict(self.shared_cost).items()},
            "monthly_usd": round(self.monthly_usd, 2),
            "resources": [{"type": r.type, "name": r.name} for r in self.resources],
            "notes": self.notes,
            "assumptions": [asdict(a) for a in (*sizing.ASSUMPTIONS, *coldstart.ASSUMPTIONS)],
            **({"eks": self.eks.to_dict()} if self.eks is not None else {}),
            **({"kubernetes_objects": _kubernetes_objects(self)} if self.eks is not None else {}),
        }


def _kubernetes_objects(plan: FleetPlan) -> dict[str, list[str]]:
    """platform: eks: the serving slice's objects per model (`modelfleet render` writes them).
    Its manifests are built from this plan, so that module is imported here, not at the top."""
    from modelfleet.kube.render import object_summary

    return object_summary(plan)


def _model_dict(m: ModelPlan) -> dict[str, Any]:
    d = asdict(m)
    for key in (
        "weights_gib",
        "kv_cache_gib",
        "kv_per_sequence_gib",
        "budget_per_gpu_gib",
        "need_per_gpu_gib",
        "single_stream_tokens_per_s",
        "batched_tokens_per_s",
        "cold_start_s",
        "first_start_s",
        "task_start_s",
        "container_start_s",
        "checkpoint_gib",
        "lora_gib",
    ):
        d[key] = round(d[key], 2)
    d["monthly_usd"] = round(m.cost.monthly_usd, 2)
    d["cost"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d["cost"].items()}
    return d

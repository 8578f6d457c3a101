"""StackConfig -> FleetPlan: every derived number, computed once, before any resource exists.

The CLI prints this plan and the Pulumi program deploys it, so the two cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fetcher.paths import model_dir
from fetcher.source import HfSource, parse_source

from modelfleet import cost, sizing
from modelfleet.catalog import Arch, InstanceType
from modelfleet.config import (
    Capacity,
    ConfigError,
    Dtype,
    Environment,
    ModelConfig,
    Platform,
    StackConfig,
)
from modelfleet.cron import parse_cron, running_fraction, starts_per_month
from modelfleet.eks import EksPlan, build_eks_plan
from modelfleet.limits import ECS_HEALTHCHECK, TARGET_GROUP_DEREGISTRATION_DELAY, check_limits
from modelfleet.naming import short_name

MODELS_MOUNT = "/models"
VLLM_PORT = 8000
SIDECAR_PORT = 8080
READY_PATH = "/ready"
# Sidecar's share of a task: it proxies bytes and must not take the CPU vLLM's scheduler and
# tokenizer need, so it gets a small, fixed slice.
SIDECAR_CPU_UNITS = 512
SIDECAR_MEMORY_MIB = 512
FETCHER_CPU_UNITS = 256
FETCHER_MEMORY_MIB = 1024
# ECS registers less memory than the instance has (kernel, agent, Docker): ~6 % on GPU AMIs.
# Asking for more than the registered figure leaves the task PENDING forever, so keep a margin.
ECS_REGISTERED_MEMORY_SHARE = 0.90
# Headroom on every duration we derive from the cold-start estimate.
STARTUP_MARGIN = 1.5


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
    name: str
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
    cold_start_s: float
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
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SharedCost:
    efs_usd: float
    alb_usd: float
    nat_usd: float
    endpoints_usd: float
    monitoring_usd: float
    keys_and_secrets_usd: float

    @property
    def total(self) -> float:
        return (
            self.efs_usd
            + self.alb_usd
            + self.nat_usd
            + self.endpoints_usd
            + self.monitoring_usd
            + self.keys_and_secrets_usd
        )


def capacity_groups(models: list[ModelPlan]) -> dict[str, list[ModelPlan]]:
    """Models sharing GPU capacity (one ASG and capacity provider): same instance type and
    capacity mode, keyed `g6e-xlarge-mixed`, in the order the models come."""
    groups: dict[str, list[ModelPlan]] = {}
    for m in models:
        groups.setdefault(f"{m.instance_type.replace('.', '-')}-{m.capacity}", []).append(m)
    return groups


@dataclass(frozen=True)
class FleetPlan:
    config: StackConfig
    models: list[ModelPlan]
    running_fraction: float
    scheduled_actions: list[ScheduledAction]
    alb_idle_timeout_s: int
    https: bool
    interface_endpoints: list[str]
    shared_cost: SharedCost
    monthly_usd: float
    notes: list[str] = field(default_factory=list)
    # The EKS platform (cluster, pools, identities, add-ons) of a `platform: eks` stack.
    eks: EksPlan | None = None

    @property
    def stack(self) -> str:
        return self.config.stack

    def model(self, name: str) -> ModelPlan:
        return next(m for m in self.models if m.name == name)

    @property
    def capacity_groups(self) -> dict[str, list[ModelPlan]]:
        return capacity_groups(self.models)

    @property
    def target_type(self) -> str:
        """How the ALB's target groups reach replicas, per platform: ECS awsvpc tasks and EKS
        pods (vpc-cni addresses, bound by the load balancer controller's TargetGroupBinding
        with `targetType: ip`) both register by IP address."""
        return {Platform.ECS: "ip", Platform.EKS: "ip"}[self.config.platform]

    @property
    def deregistration_delay_s(self) -> int:
        """The ALB keeps a leaving replica's connections this long: the sidecar's drain plus a
        little, so in-flight streams finish."""
        drain = self.config.gateway.drain_seconds + 5
        return min(drain, int(TARGET_GROUP_DEREGISTRATION_DELAY.maximum))

    def _kubernetes_objects(self) -> dict[str, list[str]]:
        """platform: eks: the serving slice's objects per model (`modelfleet render` writes
        them)."""
        return _kubernetes_objects_of(self)

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
            "shared_monthly_usd": {k: round(v, 2) for k, v in asdict(self.shared_cost).items()},
            "monthly_usd": round(self.monthly_usd, 2),
            "notes": self.notes,
            "assumptions": [asdict(a) for a in sizing.ASSUMPTIONS],
            **({"eks": self.eks.to_dict()} if self.eks is not None else {}),
            **({"kubernetes_objects": self._kubernetes_objects()} if self.eks is not None else {}),
        }


def _kubernetes_objects_of(plan: FleetPlan) -> dict[str, list[str]]:
    # The serving slice's manifests are built from this plan, so that module imports this one.
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
        "task_start_s",
        "container_start_s",
    ):
        d[key] = round(d[key], 2)
    d["monthly_usd"] = round(m.cost.monthly_usd, 2)
    d["cost"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d["cost"].items()}
    return d


def vllm_health_check(container_start_s: float) -> HealthCheck:
    """Cover the estimated start (with margin) inside ECS's health-check limits.

    ECS counts no failures during startPeriod (at most 300 s); past that, `retries` failures
    `interval` apart mark the container unhealthy. A start longer than 300 s is covered by
    stretching interval x retries, which also slows detection of a hang, so only as far as
    needed.
    """
    lim = ECS_HEALTHCHECK
    need = math.ceil(container_start_s * STARTUP_MARGIN)
    if need <= lim["startPeriod"].maximum:
        return HealthCheck(start_period=max(need, 60), interval=15, timeout=5, retries=3)
    rest = need - lim["startPeriod"].maximum
    retries = int(lim["retries"].maximum)
    interval = max(15, math.ceil(rest / retries))
    if interval > lim["interval"].maximum:
        raise sizing.SizingError(
            f"vLLM would take ~{need} s to start (with margin), beyond what ECS health checks "
            f"can wait ({lim['startPeriod'].maximum} + {lim['interval'].maximum} x {retries} s);"
            " use a faster cache or a smaller model"
        )
    return HealthCheck(
        start_period=int(lim["startPeriod"].maximum),
        interval=interval,
        timeout=min(10, interval - 1),
        retries=retries,
    )


def _vllm_command(m: ModelConfig, tp: int, seqs: int, path: str) -> list[str]:
    cmd = [
        "--model",
        path,
        "--served-model-name",
        m.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(VLLM_PORT),
        "--max-model-len",
        str(m.max_model_len),
        "--tensor-parallel-size",
        str(tp),
        "--gpu-memory-utilization",
        f"{m.gpu_memory_utilization:g}",
        "--max-num-seqs",
        str(seqs),
    ]
    if m.dtype in (Dtype.BFLOAT16, Dtype.FLOAT16):
        cmd += ["--dtype", m.dtype.value]
    elif m.dtype in (Dtype.AWQ, Dtype.GPTQ) and m.instance.gpu.arch is not Arch.TURING:
        # An explicit `--quantization awq` (or gptq) makes vLLM force the plain kernel even
        # where the Marlin one runs (Ampere and newer), several times slower at decode; the
        # _marlin method still checks that the checkpoint is an AWQ (GPTQ) one.
        cmd += ["--quantization", f"{m.dtype.value}_marlin"]
    else:
        cmd += ["--quantization", m.dtype.value]
    if m.kv_cache_dtype == "fp8":
        cmd += ["--kv-cache-dtype", "fp8"]
    if m.lora_adapters:
        cmd += ["--enable-lora", "--lora-modules"]
        cmd += [f"{a.name}={model_dir(a.source, MODELS_MOUNT)}" for a in m.lora_adapters]
    return cmd + list(m.vllm_args)


def _task_resources(inst: InstanceType, tasks_per_instance: int, tp: int) -> tuple[int, int, int]:
    cpu = inst.vcpus * 1024 // tasks_per_instance
    memory = int(inst.memory_gib * 1024 * ECS_REGISTERED_MEMORY_SHARE) // tasks_per_instance
    # NCCL moves tensors between TP ranks through /dev/shm; Docker's 64 MiB default fails.
    shm = min(memory // 4, 2048 * tp if tp > 1 else 1024)
    return cpu, memory, shm


def plan_model(m: ModelConfig, stack: StackConfig, fraction: float) -> ModelPlan:
    inst = m.instance
    s = sizing.size(
        m.arch,
        inst,
        dtype=m.dtype.value,
        kv_cache_dtype=m.kv_cache_dtype,
        max_model_len=m.max_model_len,
        tensor_parallel=m.tensor_parallel,
        gpu_memory_utilization=m.gpu_memory_utilization,
        max_num_seqs=m.max_num_seqs,
    )
    fit, tps = s.fit, s.throughput
    path = model_dir(m.source, MODELS_MOUNT)
    hc = vllm_health_check(s.cold_start.container_start_s)
    grace = sizing.round_up(s.cold_start.container_start_s * STARTUP_MARGIN, 30)
    cpu, memory, shm = _task_resources(inst, s.tasks_per_instance, fit.tensor_parallel)

    on_demand = cost.hourly_price(m.instance_type, stack.pricing.instances)
    n_min = sizing.ceil_div(m.replicas.min, s.tasks_per_instance)
    n_max = sizing.ceil_div(m.replicas.max, s.tasks_per_instance)
    # mixed: the minimum stays on on-demand (it must survive a spot reclaim), bursts on spot.
    base = n_min if m.capacity is Capacity.MIXED else 0
    discount = stack.pricing.spot_discount
    h_min = cost.blended_hourly(on_demand, m.capacity.value, n_min, base, discount)
    h_max = cost.blended_hourly(on_demand, m.capacity.value, n_max, base, discount)
    per_replica = cost.blended_hourly(on_demand, m.capacity.value, 1, 1 if base else 0, discount)
    per_replica /= s.tasks_per_instance
    mc = ModelCost(
        on_demand_hourly=on_demand,
        instances_min=n_min,
        instances_max=n_max,
        hourly_min=h_min,
        hourly_max=h_max,
        monthly_usd=h_min * cost.HOURS_PER_MONTH * fraction,
        monthly_max_usd=h_max * cost.HOURS_PER_MONTH * fraction,
        usd_per_million_tokens=cost.usd_per_million_tokens(
            per_replica, tps.batched_tokens_per_s, 0.5
        ),
    )
    notes = list(s.notes)
    if m.replicas.min == 0:
        notes.append("replicas.min 0: the first request after idle waits a cold start")
    return ModelPlan(
        name=m.name,
        short=short_name(m.name),
        source=m.source,
        catalog_key=m.catalog_key,
        instance_type=m.instance_type,
        gpu=inst.gpu.name,
        gpus_per_instance=inst.gpus,
        dtype=m.dtype.value,
        kv_cache_dtype=m.kv_cache_dtype,
        max_model_len=m.max_model_len,
        tensor_parallel=fit.tensor_parallel,
        tasks_per_instance=s.tasks_per_instance,
        weights_gib=fit.weights_gib,
        kv_cache_gib=fit.kv_pool_gib,
        kv_per_sequence_gib=fit.kv_per_sequence_gib,
        kv_cache_tokens=fit.kv_pool_tokens,
        budget_per_gpu_gib=fit.budget_gib,
        need_per_gpu_gib=fit.need_per_gpu_gib,
        fits=fit.fits,
        max_num_seqs=s.max_num_seqs,
        single_stream_tokens_per_s=tps.single_stream_tokens_per_s,
        batched_tokens_per_s=tps.batched_tokens_per_s,
        batch=tps.batch,
        cold_start_s=s.cold_start.total_s,
        task_start_s=s.cold_start.task_start_s,
        container_start_s=s.cold_start.container_start_s,
        replicas_min=m.replicas.min,
        replicas_max=m.replicas.max,
        capacity=m.capacity.value,
        model_path=path,
        vllm_command=_vllm_command(m, fit.tensor_parallel, s.max_num_seqs, path),
        vllm_health_check=hc,
        grace_period_s=grace,
        task_cpu=cpu,
        task_memory_mib=memory,
        # What the others reserve: the sidecar and one fetcher per source (model + adapters);
        # ECS rejects a task whose containers reserve more than its memory.
        vllm_memory_mib=memory
        - SIDECAR_MEMORY_MIB
        - FETCHER_MEMORY_MIB * (1 + len(m.lora_adapters)),
        shared_memory_mib=shm,
        sidecar_max_inflight=stack.gateway.max_inflight or 2 * s.max_num_seqs,
        cost=mc,
        notes=notes,
    )


def _idle_timeout(stack: StackConfig, models: list[ModelPlan]) -> int:
    """Cover the longest non-streamed answer: a full maxModelLen at single-stream speed.

    Streams are kept alive by the sidecar's SSE comments, so this bounds blocking calls only.
    """
    if stack.network.idle_timeout_seconds is not None:
        return stack.network.idle_timeout_seconds
    longest = max(
        min(m.max_model_len, 4096) / max(m.single_stream_tokens_per_s, 1.0) for m in models
    )
    return min(4000, max(120, sizing.round_up(longest * STARTUP_MARGIN, 30)))


def _scheduled_actions(stack: StackConfig, models: list[ModelPlan]) -> list[ScheduledAction]:
    sch = stack.schedule
    if sch is None:
        return []
    down, up = parse_cron(sch.scale_down).to_aws(), parse_cron(sch.scale_up).to_aws()
    out = []
    for m in models:
        out.append(ScheduledAction(f"{m.short}-scale-down", down, sch.timezone, 0, 0))
        out.append(
            ScheduledAction(f"{m.short}-scale-up", up, sch.timezone, m.replicas_min, m.replicas_max)
        )
    return out


# Hub organisations whose models need an accepted licence and a token to download.
GATED_HUB_ORGS = frozenset({"meta-llama", "mistralai"})

# Interface endpoints that keep image pulls, logs, secrets and metrics off the NAT gateway.
# S3 is a gateway endpoint (free) and always present: ECR serves image layers from S3.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring")


def _shared_cost(stack: StackConfig, models: list[ModelPlan], endpoints: list[str]) -> SharedCost:
    """Infrastructure that runs all month, schedule or not."""
    # The alarms are built from the models' plans, so that module imports this one.
    from modelfleet.monitoring import alarm_count

    p = cost.PRICES
    h = cost.HOURS_PER_MONTH
    gb = sum(m.weights_gib * 1024**3 / 1e9 for m in models)
    if stack.schedule is not None:
        per_month = starts_per_month(
            stack.schedule.scale_down, stack.schedule.scale_up, cost.HOURS_PER_MONTH
        )
    else:
        per_month = cost.STARTS_PER_MONTH_UNSCHEDULED
    starts = [(m, max(m.replicas_min, 1) * per_month) for m in models]
    efs_reads = sum(m.weights_gib * 1024**3 / 1e9 * n for m, n in starts)
    efs = gb * p["efs_storage_gb_month"].usd + efs_reads * p["efs_elastic_read_gb"].usd
    alb = h * (p["alb_hour"].usd + cost.ASSUMED_LCUS * p["alb_lcu_hour"].usd)
    nat_gb = sum(n for _, n in starts) * sizing.VLLM_IMAGE_GB + gb  # image pulls + first fetch
    nat = stack.nat_gateway_count * h * p["nat_hour"].usd + (
        nat_gb * p["nat_gb"].usd if stack.nat_gateway_count else 0.0
    )
    azs = (
        stack.network.availability_zones
        if stack.network.vpc_id is None
        else len(stack.network.private_subnet_ids)
    )
    ep = len(endpoints) * azs * h * p["endpoint_az_hour"].usd
    # One host alarm per Auto Scaling group; EKS has none (Karpenter launches GPU nodes).
    asgs = len(capacity_groups(models)) if stack.platform is Platform.ECS else 0
    alarms = alarm_count(stack, models, asgs)
    metrics = 2 * len(models)
    mon = alarms * p["alarm_month"].usd + p["dashboard_month"].usd + metrics * p["metric_month"].usd
    secrets = 1 + (1 if stack.hf_token else 0) + (1 if stack.gateway.fallback else 0)
    keys = 2 * p["kms_key_month"].usd + secrets * p["secret_month"].usd
    return SharedCost(efs, alb, nat, ep, mon, keys)


def build_plan(
    stack: StackConfig, origin: str | None = None, as_of: dt.date | None = None
) -> FleetPlan:
    """Plan a validated stack; a model that cannot run raises ConfigError naming its key.

    `as_of` (default: today) only matters on EKS: a Kubernetes version's support status, and
    so its control-plane price, depends on the date.
    """
    fraction = 1.0
    if stack.schedule is not None:
        fraction = running_fraction(stack.schedule.scale_down, stack.schedule.scale_up)
    models: list[ModelPlan] = []
    problems: list[str] = []
    for i, m in enumerate(stack.models):
        try:
            models.append(plan_model(m, stack, fraction))
        except sizing.SizingError as exc:
            problems.append(f"modelfleet:models[{i}] ({m.name}): {exc}")
    if problems:
        raise ConfigError(origin or f"stacks/Pulumi.{stack.stack}.yaml", problems)
    endpoints = (
        list(INTERFACE_ENDPOINTS)
        if (stack.environment is Environment.PROD and stack.network.vpc_id is None)
        else []
    )
    shared = _shared_cost(stack, models, endpoints)
    notes = []
    gated = [
        m.name
        for m in models
        if isinstance(src := parse_source(m.source), HfSource) and src.org in GATED_HUB_ORGS
    ]
    if gated and stack.hf_token is None:
        notes.append(
            f"{', '.join(gated)}: gated on the Hugging Face Hub; set hfToken "
            "(pulumi config set --secret hfToken hf_...) or the pre-warm fetch fails"
        )
    eks_plan = None
    if stack.platform is Platform.EKS:
        try:
            eks_plan = build_eks_plan(stack, models, as_of or dt.date.today(), fraction)
        except ValueError as exc:
            raise ConfigError(origin or f"stacks/Pulumi.{stack.stack}.yaml", [str(exc)]) from None
        notes.extend(eks_plan.notes)
    plan = FleetPlan(
        config=stack,
        models=models,
        running_fraction=fraction,
        scheduled_actions=_scheduled_actions(stack, models),
        alb_idle_timeout_s=_idle_timeout(stack, models),
        https=stack.network.certificate_arn is not None,
        interface_endpoints=endpoints,
        shared_cost=shared,
        monthly_usd=sum(m.cost.monthly_usd for m in models)
        + shared.total
        + (eks_plan.cost.total if eks_plan else 0.0),
        notes=notes,
        eks=eks_plan,
    )
    limit_problems = check_limits(plan)
    if limit_problems:
        raise ConfigError(origin or f"stacks/Pulumi.{stack.stack}.yaml", limit_problems)
    return plan

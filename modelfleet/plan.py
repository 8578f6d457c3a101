"""StackConfig -> FleetPlan: every derived number and every resource identity, decided once,
before any resource exists.

The CLI prints this plan and the Pulumi program deploys it, so the two cannot disagree. This is
the top of the package: it imports the leaves (config, catalog, sizing, cost, contract,
plan_types, identities, containers, monitoring, limits) and nothing imports it but the CLI and
the program.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from fetcher.paths import model_dir
from fetcher.source import HfSource, parse_source

from modelfleet import coldstart, cost, identities, sizing
from modelfleet.catalog import Arch, InstanceType
from modelfleet.config import (
    CAPACITY_PURCHASES,
    Capacity,
    ConfigError,
    Dtype,
    Environment,
    ModelConfig,
    Platform,
    StackConfig,
    is_commit_sha,
    is_encrypted,
)
from modelfleet.contract import (
    ECS_REGISTERED_MEMORY_SHARE,
    FETCHER_CPU_UNITS,
    FETCHER_MEMORY_MIB,
    MAX_REQUEST_SECONDS,
    MAX_STOP_TIMEOUT,
    MODELS_MOUNT,
    READY_PATH,
    SIDECAR_CPU_UNITS,
    SIDECAR_MEMORY_MIB,
    SIDECAR_PORT,
    STARTUP_MARGIN,
    VLLM_PORT,
)
from modelfleet.cron import parse_cron, running_fraction, starts_per_month
from modelfleet.eks import EksPlan, build_eks_plan
from modelfleet.limits import (
    ALB_MIN_SUBNET_PREFIX,
    ECS_HEALTHCHECK,
    LISTENER_RULE_PRIORITY,
    SUBNET_PREFIX,
    SUBNET_RESERVED_ADDRESSES,
    TARGET_GROUP_DEREGISTRATION_DELAY,
    check_limits,
)
from modelfleet.monitoring import WAKE_EVALUATION_PERIODS, WAKE_PERIOD_S, alarm_names
from modelfleet.naming import short_name
from modelfleet.plan_types import (
    SECRET_SPECS,
    CapacityGroupPlan,
    CapacityShare,
    DrainPlan,
    EngineImagePlan,
    FleetPlan,
    HealthCheck,
    KeptCapacityPlan,
    ModelCost,
    ModelPlan,
    ScheduledAction,
    SecretSpec,
    SharedCost,
    SidecarTimeouts,
    SubnetLayout,
    WarmPoolPlan,
)

__all__ = [
    "FETCHER_CPU_UNITS",
    "FETCHER_MEMORY_MIB",
    "MODELS_MOUNT",
    "READY_PATH",
    "SIDECAR_CPU_UNITS",
    "SIDECAR_MEMORY_MIB",
    "SIDECAR_PORT",
    "STARTUP_MARGIN",
    "VLLM_PORT",
    "FleetPlan",
    "HealthCheck",
    "ModelPlan",
    "build_plan",
    "vllm_health_check",
]

# Download from the hub or S3 through NAT at ~100 MiB/s sustained; the pre-warm allows three
# times that plus ten minutes before calling a fetch hung.
DOWNLOAD_MIBPS = 100.0


def prewarm_timeout_s(checkpoint_gib: float) -> int:
    """From the checkpoint as stored: a bf16 repository served as fp8 downloads 2 bytes a
    weight."""
    return math.ceil(3 * checkpoint_gib * 1024 / DOWNLOAD_MIBPS) + 600


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


# How far the checkpoint's weight files may be from the plan's figure before the fetcher fails
# the pre-warm. The plan's bytes come from the catalog's parameter counts (3-4 significant
# digits: <= 0.3 % off), 16-bit embedding and LM head, and a per-format body (AWQ/GPTQ 4-bit
# with group-128 fp16 scales and packed zeros = 0.52 bytes/weight; FP8 = 1 byte plus
# per-channel scales, < 0.1 %); safetensors headers add < 0.01 %. A group-64 AWQ checkpoint
# stores ~6 % more. 10 % absorbs all of these while failing every mismatch that matters: a
# 16-bit checkpoint where fp8 was assumed is +90 %, where AWQ was assumed +250 %, and a repository
# whose two weight sets (consolidated + sharded) were both fetched is +100 %.
WEIGHT_BYTES_TOLERANCE = 0.10


def fetch_expectations(m: ModelConfig, checkpoint_bytes: float) -> dict[str, dict[str, Any]]:
    """The fetcher's `--expect` per source: what the plan assumed, for it to verify.

    Keys name the stack entry so a mismatch fails `pulumi up` with one line a user can act
    on. Adapters carry the engine's --max-lora-rank (their rank must not exceed it); their
    size depends on target modules the stack does not state, so it is not checked.
    """
    fmt = m.checkpoint_format
    model_key = f"modelfleet:models[{m.name}]"
    out: dict[str, dict[str, Any]] = {
        m.source: {
            "key": model_key,
            "quant_method": m.quant_method,
            # A quantized checkpoint's torch_dtype is its activation dtype (AWQ: float16,
            # FP8-dynamic: bfloat16), not its storage: quant_method is what identifies it.
            "torch_dtype": fmt.value if m.quant_method is None else None,
            "weight_bytes": round(checkpoint_bytes),
            "weight_bytes_tolerance": WEIGHT_BYTES_TOLERANCE,
            "max_lora_rank": None,
        }
    }
    for a in m.lora_adapters:
        out[a.source] = {
            "key": f"{model_key}.loraAdapters[{a.name}]",
            "max_lora_rank": m.max_lora_rank,
        }
    return out


def quantization_flags(m: ModelConfig) -> list[str]:
    """--dtype / --quantization for vLLM 0.31, from the checkpoint and the serving dtype.

    Read in vLLM's own source as the code index holds it (the v0.31.0 tree itself was too
    large to check out here; the paths below are those of the 0.30/0.31 line).

    - 16-bit checkpoint as bfloat16/float16: `--dtype` (vLLM casts at load).
    - 16-bit checkpoint as fp8: online quantization, `--quantization fp8_per_tensor`. In 0.31
      `fp8` on a 16-bit checkpoint is a deprecated alias that warns and redirects to it
      (vllm/model_executor/model_loader/weight_utils.py, get_quant_config; the shorthand is
      registered in vllm/model_executor/layers/quantization/__init__.py `QuantizationMethods`
      "online quant shorthand names" and resolves to online/fp8.py
      `Fp8PerTensorOnlineLinearMethod`, "Loads fp16/bf16 weights and quantizes them
      per-tensor during loading").
    - FP8 checkpoint: no flag. vLLM reads `quantization_config` from config.json and takes
      its method (vllm/config/model.py `_verify_quantization`: `self.quantization =
      quant_method` when none is given), which is `fp8` for some repositories and
      `compressed-tensors` for others (RedHatAI's); a forced `fp8` would be refused on the
      latter as a mismatch.
    - AWQ/GPTQ checkpoint: `awq_marlin`/`gptq_marlin` from Ampere up. An explicit `awq`
      (or `gptq`) makes vLLM keep the slow plain kernel: awq_marlin.py
      `override_quantization_method` converts only when the user's choice is None, "marlin"
      or "awq_marlin", and logs "you specified quantization=awq explicitly, so forcing awq";
      the _marlin method still checks the checkpoint is an AWQ (GPTQ) one. Turing (sm_75)
      keeps the plain method.
    """
    fmt = m.checkpoint_format
    if m.dtype in (Dtype.BFLOAT16, Dtype.FLOAT16):
        return ["--dtype", m.dtype.value]
    if m.dtype is Dtype.FP8:
        return ["--quantization", "fp8_per_tensor"] if fmt.value != "fp8" else []
    if m.instance.gpu.arch is not Arch.TURING:
        return ["--quantization", f"{m.dtype.value}_marlin"]
    return ["--quantization", m.dtype.value]


def _vllm_command(
    m: ModelConfig, tp: int, seqs: int, path: str, load_strategy: str = "lazy"
) -> list[str]:
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
        # How weights leave the network file system; the task's memory holds what it buffers
        # (modelfleet/coldstart.py reads vLLM's LoadConfig for the choices).
        "--safetensors-load-strategy",
        load_strategy,
    ]
    cmd += quantization_flags(m)
    if m.kv_cache_dtype == "fp8":
        cmd += ["--kv-cache-dtype", "fp8"]
    if m.lora_adapters:
        # vLLM refuses an adapter whose rank exceeds --max-lora-rank (default 16).
        cmd += ["--enable-lora", "--max-lora-rank", str(m.max_lora_rank), "--lora-modules"]
        cmd += [f"{a.name}={model_dir(a.source, MODELS_MOUNT)}" for a in m.lora_adapters]
    return cmd + list(m.vllm_args)


def _task_resources(inst: InstanceType, tasks_per_instance: int, tp: int) -> tuple[int, int, int]:
    cpu = inst.vcpus * 1024 // tasks_per_instance
    memory = int(inst.memory_gib * 1024 * ECS_REGISTERED_MEMORY_SHARE) // tasks_per_instance
    # NCCL moves tensors between TP ranks through /dev/shm; Docker's 64 MiB default fails.
    shm = min(memory // 4, 2048 * tp if tp > 1 else 1024)
    return cpu, memory, shm


def _vllm_memory_mib(memory: int, sources: int) -> int:
    """The task's memory less what the others reserve: the sidecar and one fetcher per source
    (model + adapters); ECS rejects a task whose containers reserve more than its memory."""
    return memory - SIDECAR_MEMORY_MIB - FETCHER_MEMORY_MIB * sources


def cold_start_estimate(
    *,
    instance: InstanceType,
    tasks_per_instance: int,
    tensor_parallel: int,
    checkpoint_gib: float,
    sources: int,
    capacity: Capacity,
    replicas_min: int,
    stack: StackConfig | None = None,
) -> coldstart.ColdStartPlan:
    """The cold start a model gets with these settings: what `plan` shows and `recommend`
    ranks by. `sources`: the model and its adapters (one fetcher each); `stack`: its platform
    and coldStart settings (defaults when None)."""
    _, memory, _ = _task_resources(instance, tasks_per_instance, tensor_parallel)
    platform = stack.platform if stack is not None else Platform.ECS
    enabled = stack.cold_start.warm_pool if stack is not None else True
    # Warm pools are Auto Scaling's: ECS only (EKS's Karpenter launches nodes itself).
    warm_pool = (
        platform is Platform.ECS
        and enabled
        and (capacity is Capacity.ON_DEMAND or (capacity is Capacity.MIXED and replicas_min > 0))
    )
    return coldstart.plan_cold_start(
        # What vLLM reads from EFS: the checkpoint as stored, not the serving dtype's bytes.
        checkpoint_gib=checkpoint_gib,
        vllm_memory_mib=_vllm_memory_mib(memory, sources),
        tensor_parallel=tensor_parallel,
        warm_pool=warm_pool,
        wake_period_s=WAKE_PERIOD_S,
        wake_evaluation_periods=WAKE_EVALUATION_PERIODS,
        platform=platform.value,
        **_image_cache_args(stack),
    )


def _image_cache_args(stack: StackConfig | None) -> dict[str, Any]:
    """EKS: whether GPU nodes start from the prepared image snapshot, and how it initializes."""
    if stack is None or stack.eks is None or not stack.eks.image_cache.enabled:
        return {}
    ic = stack.eks.image_cache
    rate = ic.rate_mibps(stack.environment)
    args: dict[str, Any] = {"image_cache": ic.mode(stack.environment)}
    if rate is not None:
        args["initialization_rate_mibps"] = rate
    return args


def plan_model(m: ModelConfig, stack: StackConfig, fraction: float, priority: int) -> ModelPlan:
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
        checkpoint=m.checkpoint_format.value,
        max_lora_rank=m.max_lora_rank,
    )
    fit, tps = s.fit, s.throughput
    path = model_dir(m.source, MODELS_MOUNT)
    cpu, memory, shm = _task_resources(inst, s.tasks_per_instance, fit.tensor_parallel)
    vllm_memory = _vllm_memory_mib(memory, 1 + len(m.lora_adapters))
    cs = cold_start_estimate(
        instance=inst,
        tasks_per_instance=s.tasks_per_instance,
        tensor_parallel=fit.tensor_parallel,
        checkpoint_gib=s.checkpoint_gib,
        sources=1 + len(m.lora_adapters),
        capacity=m.capacity,
        replicas_min=m.replicas.min,
        stack=stack,
    )
    # Health checks and the grace period cover the slowest start made on purpose: the first
    # one, which compiles (the warm start reads the compile cache and is shorter).
    hc = vllm_health_check(cs.first.container_start_s)
    grace = sizing.round_up(cs.first.container_start_s * STARTUP_MARGIN, 30)

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
    notes = list(s.notes) + list(cs.notes)
    # recommend plans its options with build_plan, so it imports this module.
    from modelfleet.recommend import costlier_note

    costlier = costlier_note(m, stack, h_max)
    if costlier:
        notes.append(costlier)
    if m.replicas.min == 0:
        notes.append(
            f"replicas.min 0: the first request after idle waits the trigger and a start "
            f"(~{round(cs.trigger.total_s)} s)"
        )
    if m.replicas.min > 1:
        again = (
            "ECS starts it again"
            if stack.platform is Platform.ECS
            else "Kubernetes restarts its vLLM container"
        )
        notes.append(
            f"{m.replicas.min} replicas starting together on an empty compile cache each "
            "compile and write the same files without a lock; one that reads the index while "
            f"another rewrites it fails to start, and {again} on the complete cache"
        )
    if (
        m.capacity is Capacity.SPOT
        and stack.cold_start.warm_pool
        and stack.platform is Platform.ECS
    ):
        notes.append(
            "capacity spot: Auto Scaling refuses warm pools on spot groups, so a start from zero "
            "boots a new instance and pulls the engine image; capacity mixed keeps replicas.min "
            "on a warm on-demand group"
        )
    # Only ephemeral stacks get here with a branch or tag (the schema refuses it elsewhere).
    for source in [m.source, *(a.source for a in m.lora_adapters)]:
        src = parse_source(source)
        if isinstance(src, HfSource) and not is_commit_sha(src.revision):
            notes.append(
                f"{source} follows {src.revision!r}: the weights can change between two "
                "deploys; the fetcher records the commit it resolved"
            )
    short = short_name(m.name)
    return ModelPlan(
        name=m.name,
        short=short,
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
        cold_start_s=cs.warm.total_s,
        first_start_s=cs.first.total_s,
        task_start_s=cs.first.total_s - cs.first.phase("capacity").seconds,
        container_start_s=cs.first.container_start_s,
        replicas_min=m.replicas.min,
        replicas_max=m.replicas.max,
        capacity=m.capacity.value,
        model_path=path,
        vllm_command=_vllm_command(
            m, fit.tensor_parallel, s.max_num_seqs, path, cs.weight_load.strategy
        ),
        vllm_health_check=hc,
        grace_period_s=grace,
        task_cpu=cpu,
        task_memory_mib=memory,
        vllm_memory_mib=vllm_memory,
        shared_memory_mib=shm,
        sidecar_max_inflight=stack.gateway.max_inflight or 2 * s.max_num_seqs,
        cost=mc,
        service_name=f"{stack.prefix}-{short}",
        prewarm_family=f"{stack.prefix}-{short}-prewarm",
        listener_priority=priority,
        prewarm_timeout_s=prewarm_timeout_s(s.checkpoint_gib),
        scheduled_actions=_scheduled_actions(stack, m, short),
        cold_start=cs,
        capacity_strategy=tuple(
            CapacityShare(n.key, n.base, n.weight)
            for n in _group_needs(m.instance_type, m.capacity, m.replicas.min, n_min, n_max)
        ),
        notes=notes,
        checkpoint=m.checkpoint_format.value,
        checkpoint_gib=s.checkpoint_gib,
        quant_method=m.quant_method,
        max_lora_rank=m.max_lora_rank,
        lora_gib=s.lora_gib,
        fetch_expect=fetch_expectations(
            m, sizing.checkpoint_bytes(m.arch, m.checkpoint_format.value)
        ),
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


def _scheduled_actions(
    stack: StackConfig, m: ModelConfig, short: str
) -> tuple[ScheduledAction, ...]:
    """The stack's schedule for one model: to zero at night, its own bounds in the morning."""
    sch = stack.schedule
    if sch is None:
        return ()
    down, up = parse_cron(sch.scale_down).to_aws(), parse_cron(sch.scale_up).to_aws()
    return (
        ScheduledAction(
            f"{stack.prefix}-{short}-scale-down", "scale-down", down, sch.timezone, 0, 0
        ),
        ScheduledAction(
            f"{stack.prefix}-{short}-scale-up",
            "scale-up",
            up,
            sch.timezone,
            m.replicas.min,
            m.replicas.max,
        ),
    )


def listener_priorities(names: list[str]) -> dict[str, int]:
    """A listener-rule priority per model, from its name alone, so reordering or removing
    models never renumbers another model's rule mid-update.

    A hash of the name picks a priority in AWS's range (1-50000); on the rare collision, the
    name that sorts first keeps it and the other takes the next free one (deterministic, and it
    moves only the colliding model). Rules match disjoint path prefixes (`/<name>/*`), so their
    relative order never changes which rule serves a request. A changed priority is updated in
    place (SetRulePriorities in terraform-provider-aws's `internal/service/elbv2/
    listener_rule.go`, resourceListenerRuleUpdate), so the first release's 100 + index
    priorities move without replacing a rule.
    """
    lo, hi = int(LISTENER_RULE_PRIORITY.minimum), int(LISTENER_RULE_PRIORITY.maximum)
    span = hi - lo + 1
    taken: dict[int, str] = {}
    out: dict[str, int] = {}
    for name in sorted(names):
        slot = int(hashlib.sha256(name.encode()).hexdigest(), 16) % span
        while lo + slot in taken:
            slot = (slot + 1) % span
        taken[lo + slot] = name
        out[name] = lo + slot
    return out


# Hub organisations whose models need an accepted licence and a token to download.
GATED_HUB_ORGS = frozenset({"meta-llama", "mistralai"})

# Interface endpoints that keep image pulls, logs, secrets and metrics off the NAT gateway.
# S3 is a gateway endpoint (free) and always present: ECR serves image layers from S3.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring")


def _shared_cost(
    stack: StackConfig,
    models: list[ModelPlan],
    endpoints: list[str],
    alarms: int,
    secrets: int,
    groups: dict[str, CapacityGroupPlan] | None = None,
    engine: EngineImagePlan | None = None,
) -> SharedCost:
    """Infrastructure that runs all month, schedule or not."""
    p = cost.PRICES
    h = cost.HOURS_PER_MONTH
    # EFS stores, every start reads and the first fetch pulls through NAT the checkpoint as
    # stored (a bf16 repository served as fp8 is still 2 bytes a weight on disk).
    gb = sum(m.checkpoint_gib * 1024**3 / 1e9 for m in models)
    if stack.schedule is not None:
        per_month = starts_per_month(
            stack.schedule.scale_down, stack.schedule.scale_up, cost.HOURS_PER_MONTH
        )
    else:
        per_month = cost.STARTS_PER_MONTH_UNSCHEDULED
    starts = [(m, max(m.replicas_min, 1) * per_month) for m in models]
    efs_reads = sum(m.checkpoint_gib * 1024**3 / 1e9 * n for m, n in starts)
    efs = gb * p["efs_storage_gb_month"].usd + efs_reads * p["efs_elastic_read_gb"].usd
    alb = h * (p["alb_hour"].usd + cost.ASSUMED_LCUS * p["alb_lcu_hour"].usd)
    # Engine image pulls cross the NAT gateway unless they come from the region's ECR through
    # the VPC's ECR and S3 endpoints (new-VPC prod stacks); the first fetch of weights always.
    pull_through = engine is not None and engine.mode == "pull-through"
    in_region = pull_through and {"ecr.api", "ecr.dkr"} <= set(endpoints)
    image_gb = 0.0 if in_region else sum(n for _, n in starts) * sizing.VLLM_IMAGE_GB
    nat_gb = image_gb + gb
    nat = stack.nat_gateway_count * h * p["nat_hour"].usd + (
        nat_gb * p["nat_gb"].usd if stack.nat_gateway_count else 0.0
    )
    ep = len(endpoints) * _subnet_count(stack) * h * p["endpoint_az_hour"].usd
    metrics = 2 * len(models)
    mon = alarms * p["alarm_month"].usd + p["dashboard_month"].usd + metrics * p["metric_month"].usd
    keys = 2 * p["kms_key_month"].usd + (secrets + pull_through) * p["secret_month"].usd
    warm = sum(
        g.warm_pool.stopped_volume_monthly_usd
        for g in (groups or {}).values()
        if g.warm_pool is not None
    )
    cache = sizing.VLLM_IMAGE_GB * p["ecr_storage_gb_month"].usd if pull_through else 0.0
    return SharedCost(efs, alb, nat, ep, mon, keys, warm, cache)


def _subnet_count(stack: StackConfig) -> int:
    """Private subnets: one per AZ of a new VPC, or the ones given for an existing VPC."""
    net = stack.network
    return net.availability_zones if net.vpc_id is None else len(net.private_subnet_ids)


_VPC_KEY = "modelfleet:network.vpcCidr"


def _private_addresses(
    models: list[ModelPlan],
    groups: dict[str, CapacityGroupPlan],
    endpoints: list[str],
    sources: int,
) -> int:
    """Addresses one private subnet needs if every task, host and fetcher lands in its AZ.

    awsvpc tasks take an ENI each, and a rolling deployment runs up to twice the tasks
    (maximumPercent 200); every GPU host, one mount target, one ENI per interface endpoint
    and one per concurrent pre-warm fetcher (a Fargate task per source) take one more.
    """
    tasks = 2 * sum(m.replicas_max for m in models)
    hosts = sum(g.max_size for g in groups.values())
    return SUBNET_RESERVED_ADDRESSES + tasks + hosts + 1 + len(endpoints) + sources


def subnet_layout(cidr: str, azs: int, private_needed: int) -> SubnetLayout | str:
    """Public subnets from the bottom half of the VPC, private (larger: every task takes an
    address) from the top half, one of each per AZ; or why the range cannot hold them.

    Up to four AZs the halves split into 8 public and 4 private slots (a /16 gives /20 public
    and /19 private subnets); five or six AZs need twice the slots, so subnets halve.
    """
    net = ipaddress.IPv4Network(cidr)
    p = net.prefixlen
    if not SUBNET_PREFIX.minimum <= p <= SUBNET_PREFIX.maximum:
        return f"{_VPC_KEY}: {cidr} is a /{p}; a VPC's range is /16 to /28 ({SUBNET_PREFIX.source})"
    room = 1 + max(2, math.ceil(math.log2(azs)))  # bits below the VPC's prefix, private

    def fits(q: int) -> bool:
        public_ok = q + room + 1 <= ALB_MIN_SUBNET_PREFIX.maximum
        return public_ok and 2 ** (32 - (q + room)) >= private_needed

    if not fits(p):
        ok = [q for q in range(int(SUBNET_PREFIX.minimum), p) if fits(q)]
        fix = (
            f"use a /{ok[-1]} or larger (e.g. {_example(net, ok[-1])})"
            if ok
            else "use fewer AZs or replicas"
        )
        if p + room + 1 > ALB_MIN_SUBNET_PREFIX.maximum:
            why = (
                f"each AZ needs a public subnet of at least /{ALB_MIN_SUBNET_PREFIX.maximum:g} for "
                f"the ALB ({ALB_MIN_SUBNET_PREFIX.source}), and this range gives /{p + room + 1}"
            )
        else:
            why = (
                f"each private subnet (/{p + room}, {2 ** (32 - p - room)} addresses) must hold "
                f"{private_needed}: every task twice (a rolling deployment), every GPU host, the "
                "EFS mount target, interface endpoints, pre-warm fetchers and the "
                f"{SUBNET_RESERVED_ADDRESSES} addresses AWS reserves"
            )
        return f"{_VPC_KEY}: {cidr} is too small for {azs} AZs: {why}; {fix}"
    private_prefix = p + room
    public_prefix = private_prefix + 1
    halves = list(net.subnets(prefixlen_diff=1))
    public = [str(s) for s in halves[0].subnets(new_prefix=public_prefix)][:azs]
    private = [str(s) for s in halves[1].subnets(new_prefix=private_prefix)][:azs]
    return SubnetLayout(cidr, tuple(public), tuple(private), private_needed)


def _example(net: ipaddress.IPv4Network, prefix: int) -> str:
    return str(ipaddress.IPv4Network((int(net.network_address), max(prefix, 16)), strict=False))


def sidecar_timeouts(alb_idle_timeout_s: int, m: ModelPlan) -> SidecarTimeouts:
    first_byte = max(30, alb_idle_timeout_s - 5)
    longest = m.max_model_len / max(m.single_stream_tokens_per_s, 1.0) * STARTUP_MARGIN
    return SidecarTimeouts(
        first_byte_s=first_byte,
        total_s=min(MAX_REQUEST_SECONDS, first_byte + math.ceil(longest / 60) * 60),
        sse_keepalive_s=min(15, alb_idle_timeout_s // 4),
        http_keepalive_s=max(620, alb_idle_timeout_s + 60),
    )


# Seconds of terminationGracePeriodSeconds beyond preStop + drain, for the processes to exit.
POD_EXIT_MARGIN_S = 10


def drain_plan(stack: StackConfig) -> DrainPlan:
    asked = stack.gateway.drain_seconds
    dereg = min(asked + 5, int(TARGET_GROUP_DEREGISTRATION_DELAY.maximum))
    stop = MAX_STOP_TIMEOUT
    # The sidecar must be done before ECS's SIGKILL; 5 s leave room for its own exit.
    sidecar = min(asked, stop - 5)
    grace = dereg + asked + POD_EXIT_MARGIN_S
    if stack.platform is Platform.EKS:
        notes = [
            f"a stopping pod keeps serving in-flight requests for {dereg} s (preStop waits out "
            f"the deregistration delay), then the sidecar drains for {asked} s; "
            f"terminationGracePeriodSeconds {grace}"
        ]
    else:
        notes = [
            f"stops through the load balancer (scale-in, deployments, the schedule) give "
            f"in-flight requests {dereg} s: ECS waits out the deregistration delay before SIGTERM"
        ]
        if sidecar < asked:
            notes.append(
                f"stops that skip the load balancer (spot reclaim, StopTask) give them {sidecar} "
                f"s of gateway.drainSeconds {asked}: ECS kills a container {stop} s after SIGTERM"
            )
    return DrainPlan(asked, dereg, sidecar, stop, dereg, asked, grace, tuple(notes))


@dataclass(frozen=True)
class _GroupNeed:
    key: str  # capacity group key
    purchase: str  # on-demand | spot
    instances_min: int
    instances_max: int
    base: int  # tasks, in the service's capacity provider strategy
    weight: int


def group_key(instance_type: str, purchase: str) -> str:
    return f"{instance_type.replace('.', '-')}-{purchase}"


def _group_needs(
    instance_type: str, capacity: Capacity, replicas_min: int, n_min: int, n_max: int
) -> list[_GroupNeed]:
    """Which capacity groups a model uses, with how many instances and its strategy entry.

    Auto Scaling refuses a warm pool on a group with a mixed instances policy or spot
    instances, so `capacity: mixed` is two groups: its minimum on an on-demand group (base =
    replicas.min tasks, which the warm pool keeps ready) and everything above on a spot group
    (weight 1; the on-demand entry's weight 0 keeps bursts off on-demand).
    """
    od, spot = Capacity.ON_DEMAND.value, Capacity.SPOT.value
    if capacity is not Capacity.MIXED:
        p = capacity.value
        return [_GroupNeed(group_key(instance_type, p), p, n_min, n_max, 0, 1)]
    needs: list[_GroupNeed] = []
    burst = n_max > n_min
    if replicas_min > 0:
        needs.append(
            _GroupNeed(
                group_key(instance_type, od), od, n_min, n_min, replicas_min, 0 if burst else 1
            )
        )
    if burst or not needs:
        needs.append(_GroupNeed(group_key(instance_type, spot), spot, 0, n_max - n_min, 0, 1))
    return needs


def _warm_pool(stack: StackConfig, key: str, instances_max: int) -> WarmPoolPlan:
    """Stopped hosts up to the group's instances at replicas.max; they pay for their root
    volumes at gp3's list price."""
    return WarmPoolPlan(
        max_group_prepared_capacity=instances_max,
        min_size=0,
        pool_state="Stopped",
        reuse_on_scale_in=False,
        hook_name=f"{stack.prefix}-{key}-launching",
        heartbeat_s=coldstart.lifecycle_heartbeat_s(STARTUP_MARGIN),
        root_volume_gib=coldstart.ROOT_VOLUME_GIB,
        stopped_volume_monthly_usd=instances_max
        * coldstart.ROOT_VOLUME_GIB
        * 1024**3
        / 1e9
        * cost.PRICES["ebs_gp3_gb_month"].usd,
    )


def capacity_plans(models: list[ModelPlan], stack: StackConfig) -> dict[str, CapacityGroupPlan]:
    """Models sharing GPU capacity (one ASG and capacity provider): same instance type and
    purchase option, keyed `g6e-xlarge-on-demand`, in the order the models come."""
    members: dict[str, list[tuple[ModelPlan, _GroupNeed]]] = {}
    for m in models:
        for need in _group_needs(
            m.instance_type,
            Capacity(m.capacity),
            m.replicas_min,
            m.cost.instances_min,
            m.cost.instances_max,
        ):
            members.setdefault(need.key, []).append((m, need))
    warm = stack.cold_start.warm_pool and stack.platform is Platform.ECS
    out: dict[str, CapacityGroupPlan] = {}
    for key, ms in members.items():
        n_min = sum(n.instances_min for _, n in ms)
        n_max = sum(n.instances_max for _, n in ms)
        purchase = ms[0][1].purchase
        on_demand = purchase == Capacity.ON_DEMAND.value
        notes: tuple[str, ...] = ()
        if not on_demand:
            notes = (
                "spot: no warm pool (Auto Scaling refuses them on spot groups); starts from zero "
                "boot a new instance and pull the engine image",
            )
        elif not warm:
            notes = ("coldStart.warmPool false: every instance launches cold",)
        out[key] = CapacityGroupPlan(
            key=key,
            instance_type=ms[0][0].instance_type,
            capacity=purchase,
            models=tuple(m.name for m, _ in ms),
            instances_min=n_min,
            instances_max=n_max,
            max_size=2 * n_max,
            on_demand_base=0,
            max_scaling_step=max(1, n_max),
            warm_pool=_warm_pool(stack, key, n_max) if on_demand and warm else None,
            notes=notes,
        )
    return out


KEEP_KEY = "modelfleet:keepCapacityProviders"


def kept_capacity_plans(
    stack: StackConfig, groups: dict[str, CapacityGroupPlan]
) -> tuple[dict[str, KeptCapacityPlan], list[str]]:
    """The groups `keepCapacityProviders` keeps for one more `pulumi up`, and the problems
    with the key: a group this stack builds cannot be kept (it is kept anyway)."""
    out: dict[str, KeptCapacityPlan] = {}
    problems: list[str] = []
    for i, key in enumerate(stack.keep_capacity_providers):
        if key in groups:
            problems.append(
                f"{KEEP_KEY}[{i}] ({key}): a capacity group this stack builds (models "
                f"{', '.join(groups[key].models)}); list only groups no model uses any more"
            )
            continue
        purchase = next(p for p in CAPACITY_PURCHASES if key.endswith(f"-{p}"))
        itype, _, rest = key.removesuffix(f"-{purchase}").partition("-")
        instance_type = f"{itype}.{rest}"
        moved = tuple(k for k, g in groups.items() if g.instance_type == instance_type)
        where = f"to {', '.join(moved)}" if moved else "off this instance type"
        out[key] = KeptCapacityPlan(
            key=key,
            instance_type=instance_type,
            capacity=purchase,
            moved_to=moved,
            step=(
                f"upgrade, run 1 of 2: capacity group {key} stays as it is and its provider "
                f"stays attached to the cluster while the services move {where} (ECS refuses "
                f"to detach a provider that tasks use). Run 2: once the services are stable "
                f"and {key}'s Auto Scaling group has no instances, remove {key} from "
                f"keepCapacityProviders and `pulumi up` again; that detaches and deletes its "
                f"provider, group and launch template"
            ),
        )
    return out, problems


_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_IMAGE_KEY = "modelfleet:images.vllm"


def engine_image_plan(stack: StackConfig) -> EngineImagePlan:
    """Where the engine image is pulled from at scale-out, and how it is pinned."""
    ref = stack.images.vllm
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    registry = None
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, rest
    repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    version = re.sub(r"[^A-Za-z0-9._-]", "-", digest.removeprefix("sha256:")[:16] or tag)
    hub = registry is None or registry in _DOCKER_HUB_HOSTS
    creds = stack.images.docker_hub_credentials
    if not hub or creds is None:
        notes: tuple[str, ...] = ()
        if hub:
            notes = (
                f"{_IMAGE_KEY} comes from Docker Hub through NAT at every cold start (rate-"
                "limited, billed per GB); set images.dockerHubCredentials (pulumi config set "
                "--secret --path 'modelfleet:images.dockerHubCredentials' 'user:token') to pull "
                "it through the stack's ECR cache",
            )
        return EngineImagePlan(
            "given", ref, repo, tag or None, digest or None, None, None, None, version, notes
        )
    upstream = repo if "/" in repo else f"library/{repo}"  # official images live under library/
    prefix = f"{stack.prefix}-hub"
    return EngineImagePlan(
        mode="pull-through",
        reference=ref,
        upstream_repository=upstream,
        tag=tag or None,
        digest=digest or None,
        cache_prefix=prefix,
        cache_repository=f"{prefix}/{upstream}",
        secret_name=f"ecr-pullthroughcache/{stack.prefix}-docker-hub",
        version_key=version,
        notes=()
        if digest
        else (
            f"{_IMAGE_KEY} is pinned by tag: `pulumi up` resolves {tag} to its digest through "
            "the cache and every task and warm instance uses that digest",
        ),
    )


def _credentials_problem(stack: StackConfig) -> str | None:
    creds = stack.images.docker_hub_credentials
    if creds is None or is_encrypted(creds):
        return None
    user, _, token = creds.get_secret_value().partition(":")
    if not user or not token:
        return "modelfleet:images.dockerHubCredentials: expected 'username:accessToken'"
    return None


def compile_cache_path(model: str, version_key: str) -> str:
    """The compile cache's directory on EFS, per model and engine version. Outside every
    model's weights directory (`/<model>`): `_` never starts a model name."""
    return f"/_compile/{model}/{version_key}"


def _identities(
    stack: StackConfig,
    models: list[ModelPlan],
    groups: dict[str, CapacityGroupPlan],
    endpoints: list[str],
    https: bool,
    secrets: tuple[SecretSpec, ...],
    eks: EksPlan | None = None,
) -> identities.Identities:
    c = stack
    p = c.prefix
    shorts = {m.name: m.short for m in models}
    # On EKS the ECS compute (capacity groups, task roles, pre-warm tasks, services) is
    # replaced by the EKS platform; everything else is shared.
    ecs = {} if eks is not None else shorts
    if eks is not None:
        groups = {}
    engine = engine_image_plan(c)
    pull_through = engine.mode == "pull-through"
    warm = any(g.warm_pool is not None for g in groups.values())
    new_vpc = c.network.vpc_id is None
    built = [
        role
        for role, given in (("sidecar", c.images.sidecar), ("fetcher", c.images.fetcher))
        if given is None
    ]
    return identities.Identities(
        encryption=identities.encryption_ids(p, c.team, c.stack),
        network=(
            identities.network_ids(p, c.network.availability_zones, c.nat_gateway_count, endpoints)
            if new_vpc
            else identities.NetworkIds(f"{p}-network")
        ),
        security=identities.security_ids(p, c.network.ingress_cidrs, [443, 80] if https else [80]),
        cache=identities.cache_ids(p, _subnet_count(c), shorts),
        secrets=identities.secrets_ids(p, [s.key for s in secrets]),
        images=identities.images_ids(p, built),
        engine_image=identities.engine_image_ids(
            p, pull_through=pull_through, resolve_digest=engine.digest is None
        ),
        gpu=(
            identities.gpu_ids(
                p, list(groups), host_policy=warm or pull_through, kept=c.keep_capacity_providers
            )
            if eks is None
            else None
        ),
        roles=identities.roles_ids(p, ecs),
        load_balancer=identities.load_balancer_ids(
            p, shorts, access_logs=not c.ephemeral, https=https
        ),
        prewarm=identities.prewarm_ids(p, ecs),
        serving={
            m.name: identities.serving_ids(
                p,
                m.short,
                from_zero=m.replicas_min == 0,
                actions=[a.action for a in m.scheduled_actions],
            )
            for m in models
            if eks is None
        },
        eks=tuple(identities.Res(r.type, r.name) for r in eks.resources) if eks else (),
        monitoring=identities.monitoring_ids(
            p, c.alarms.emails, alarm_names(c, models, list(groups))
        ),
    )


def build_plan(
    stack: StackConfig, origin: str | None = None, as_of: dt.date | None = None
) -> FleetPlan:
    """Plan a validated stack; what cannot be built raises ConfigError naming its key.

    `as_of` (default: today) only matters on EKS: a Kubernetes version's support status, and
    so its control-plane price, depends on the date.
    """
    where = origin or f"stacks/Pulumi.{stack.stack}.yaml"
    fraction = 1.0
    if stack.schedule is not None:
        fraction = running_fraction(stack.schedule.scale_down, stack.schedule.scale_up)
    priorities = listener_priorities([m.name for m in stack.models])
    models: list[ModelPlan] = []
    problems: list[str] = []
    for i, m in enumerate(stack.models):
        try:
            models.append(plan_model(m, stack, fraction, priorities[m.name]))
        except sizing.SizingError as exc:
            problems.append(f"modelfleet:models[{i}] ({m.name}): {exc}")
    if problems:
        raise ConfigError(where, problems)
    shorts: dict[str, str] = {}
    for mp in models:
        if mp.short in shorts:
            problems.append(
                f"modelfleet:models: {shorts[mp.short]!r} and {mp.name!r} shorten to the same "
                f"resource name {mp.short!r}; rename one"
            )
        shorts[mp.short] = mp.name
    endpoints = (
        list(INTERFACE_ENDPOINTS)
        if (stack.environment is Environment.PROD and stack.network.vpc_id is None)
        else []
    )
    engine = engine_image_plan(stack)
    # Both platforms mount it: the ECS task's vLLM container, the EKS pod's.
    models = [
        replace(mp, compile_cache_path=compile_cache_path(mp.name, engine.version_key))
        for mp in models
    ]
    if problem := _credentials_problem(stack):
        problems.append(problem)
    groups = capacity_plans(models, stack)
    kept, kept_problems = kept_capacity_plans(stack, groups)
    problems += kept_problems
    subnets: SubnetLayout | None = None
    if stack.network.vpc_id is None:
        sources = sum(1 + len(m.lora_adapters) for m in stack.models)
        layout = subnet_layout(
            stack.network.cidr,
            stack.network.availability_zones,
            _private_addresses(models, groups, endpoints, sources),
        )
        if isinstance(layout, str):
            problems.append(layout)
        else:
            subnets = layout
    if problems:
        raise ConfigError(where, problems)
    https = stack.network.certificate_arn is not None
    secrets = tuple(
        s
        for s in SECRET_SPECS
        if {
            "api_keys": stack.gateway.api_keys is not None,
            "fallback_api_key": stack.gateway.fallback is not None,
            "hf_token": stack.hf_token is not None,
        }[s.key]
    )
    eks_plan = None
    if stack.platform is Platform.EKS:
        try:
            eks_plan = build_eks_plan(
                stack,
                models,
                as_of or dt.date.today(),
                fraction,
                engine_pull_through=engine.mode == "pull-through",
            )
        except ValueError as exc:
            raise ConfigError(where, [str(exc)]) from None
    ids = _identities(stack, models, groups, endpoints, https, secrets, eks_plan)
    alarms = len(ids.monitoring.alarms) + sum(
        1 for s in ids.serving.values() if s.from_zero_alarm is not None
    )
    shared = _shared_cost(stack, models, endpoints, alarms, len(secrets), groups, engine)
    notes = list(engine.notes)
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
    drain = drain_plan(stack)
    idle = _idle_timeout(stack, models)
    plan = FleetPlan(
        config=stack,
        models=models,
        running_fraction=fraction,
        alb_idle_timeout_s=idle,
        https=https,
        interface_endpoints=endpoints,
        subnets=subnets,
        drain=drain,
        capacity=groups,
        sidecar={m.name: sidecar_timeouts(idle, m) for m in models},
        secrets=secrets,
        engine_image=engine,
        ids=ids,
        shared_cost=shared,
        monthly_usd=sum(m.cost.monthly_usd for m in models)
        + shared.total
        + (eks_plan.cost.total if eks_plan else 0.0),
        notes=notes
        + [k.step for k in kept.values()]
        + list(drain.notes)
        + (eks_plan.notes if eks_plan else []),
        eks=eks_plan,
        kept_capacity=kept,
    )
    limit_problems = check_limits(plan)
    if limit_problems:
        raise ConfigError(where, limit_problems)
    return plan

"""`modelfleet recommend`: the cheapest GPU setup that serves a model at a load, and whether
self-hosting pays at all.

No arithmetic of its own for memory, speed or price: fits, throughput and cold starts come
from `sizing`, prices from `cost`, instances from `catalog`, exactly as `modelfleet plan`
uses them. What this module adds is the load model (how many replicas a load needs at its
peak, stated in `assumptions`) and the search over the catalog. The options it returns are
planned with `build_plan` itself, so one that `modelfleet plan` would reject never reaches
the list, and every `model_entry` pastes into a stack file and plans as a fit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelfleet import cost, sizing
from modelfleet.catalog import (
    API_PRICES,
    INSTANCE_TYPES,
    MODEL_ALIASES,
    MODELS,
    QUANTIZED,
    ApiPrice,
    InstanceType,
    ModelArch,
    canonical_model,
    lookup_model,
)
from modelfleet.config import (
    Capacity,
    Checkpoint,
    ConfigError,
    Dtype,
    InstanceTypeName,
    ModelConfig,
    PricingConfig,
    Replicas,
    ScheduleConfig,
    StackConfig,
    load_stack_file,
    serving_problem,
)
from modelfleet.cron import CronError, parse_cron, running_fraction
from modelfleet.plan import FleetPlan, build_plan

# --- The load model ---------------------------------------------------------------------------
# Traffic is not flat: a day's requests bunch into busy hours. A globally spread user base
# peaks at 1.6-1.7x its daily mean, one in a few time zones swings 3-4x between trough and
# peak (https://www.robustperception.io/do-you-know-your-peak-to-mean-ratio/, read
# 2026-12-01). 2x is the default: above the global figure, for the single-region users a team
# stack usually serves; `--peak-to-average` sets a measured one.
PEAK_TO_AVERAGE = 2.0
PEAK_SOURCE = "https://www.robustperception.io/do-you-know-your-peak-to-mean-ratio/ (2026-12-01)"
# Run replicas at most this busy at the peak: queueing delay grows as rho / (1 - rho), 2.3x
# the service time at 70 %, and serving guides scale out once a replica sustains more than
# 70 % of its capacity (https://gigagpu.com/?p=9876, read 2026-12-01).
TARGET_UTILIZATION = 0.7
UTILIZATION_SOURCE = "https://gigagpu.com/?p=9876 (2026-12-01)"
# `modelfleet plan` notes a model whose instances cost more than this multiple of the cheapest
# catalog instance that fits the same model, context and replicas.
COSTLIER_THAN_CHEAPEST = 1.5
DEFAULT_MAX_MODEL_LEN = 8192
DEFAULT_TOP = 5
SECONDS_PER_DAY = 86400.0
ALWAYS = "24x7"
# Serving dtypes a 16-bit checkpoint can be served in: as is, or quantized to FP8 at load
# (vLLM's online FP8). AWQ and GPTQ need a checkpoint quantized that way.
FROM_16BIT = ("bfloat16", "float16", "fp8")


def _replicas_limit() -> int:
    """The most replicas a stack entry may ask for (`replicas.max` in config.Replicas)."""
    for meta in Replicas.model_fields["max"].metadata:
        le = getattr(meta, "le", None)
        if le is not None:
            return int(le)
    raise AssertionError("config.Replicas.max has no upper bound")


MAX_REPLICAS = _replicas_limit()


class RecommendError(ValueError):
    """A request that cannot be answered: one line, naming the option and what would work."""


# --- Input ------------------------------------------------------------------------------------


def _hours(value: str) -> str:
    if value.strip().lower() == ALWAYS:
        return ALWAYS
    up, sep, down = value.partition(";")
    if not sep:
        raise ValueError(
            f'expected {ALWAYS} or "SCALE-UP CRON; SCALE-DOWN CRON", e.g. '
            '"0 7 * * MON-FRI; 0 20 * * MON-FRI"'
        )
    try:
        parse_cron(up.strip())
        parse_cron(down.strip())
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return f"{up.strip()}; {down.strip()}"


Hours = Annotated[str, AfterValidator(_hours)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class RecommendRequest(BaseModel):
    """Everything `modelfleet recommend` takes; CLI options map one to one (`--max-model-len`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    max_model_len: int | None = Field(None, ge=256, le=1_048_576)
    dtype: list[Dtype] = []
    requests_per_day: float | None = Field(None, ge=0, allow_inf_nan=False)
    input_tokens: int = Field(sizing.TYPICAL_PROMPT_TOKENS, ge=1, le=1_048_576)
    output_tokens: int = Field(sizing.TYPICAL_OUTPUT_TOKENS, ge=1, le=1_048_576)
    tokens_per_second: float | None = Field(None, ge=0, allow_inf_nan=False)
    hours: Hours | None = None
    capacity: Capacity | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None
    top: int = Field(DEFAULT_TOP, ge=1, le=50)
    instance_type: list[InstanceTypeName] = []
    min_replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS)  # default: the entry's, or 1
    peak_to_average: float = Field(PEAK_TO_AVERAGE, ge=1, le=100, allow_inf_nan=False)
    target_utilization: float = Field(TARGET_UTILIZATION, gt=0, le=1)
    api: str | None = None
    api_input_price: Money | None = None
    api_output_price: Money | None = None
    engineering_hours: Money = 0.0
    engineering_rate: Money = 0.0

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.requests_per_day is not None and self.tokens_per_second is not None:
            raise ValueError(
                "--tokens-per-second: give the load either as --requests-per-day (with "
                "--input-tokens/--output-tokens) or as --tokens-per-second, not both"
            )
        if (self.api_input_price is None) != (self.api_output_price is None):
            raise ValueError(
                "--api-input-price: give both --api-input-price and --api-output-price"
            )
        if self.api is not None:
            if self.api_input_price is not None:
                raise ValueError("--api: give a named API price or --api-*-price, not both")
            if self.api not in API_PRICES:
                raise ValueError(
                    f"--api: unknown API price {self.api!r}; the catalog has: "
                    + ", ".join(sorted(API_PRICES))
                )
        return self

    @property
    def api_price(self) -> ApiPrice | None:
        if self.api is not None:
            return API_PRICES[self.api]
        if self.api_input_price is not None and self.api_output_price is not None:
            return ApiPrice("given", "given", self.api_input_price, self.api_output_price, None)
        return None


def _flag(loc: tuple[int | str, ...]) -> str:
    name = next((p for p in loc if isinstance(p, str)), "")
    return "MODEL" if name == "model" else "--" + name.replace("_", "-")


def parse_request(values: dict[str, Any]) -> RecommendRequest:
    """Validate the CLI's values; a bad one raises RecommendError naming its option."""
    try:
        return RecommendRequest.model_validate(values)
    except ValidationError as exc:
        e = exc.errors()[0]
        msg = e["msg"].removeprefix("Value error, ")
        if not e["loc"]:
            raise RecommendError(msg) from None  # cross-option rules name their option
        got = e.get("input")
        suffix = f" (got {got!r})" if isinstance(got, str | int | float) else ""
        raise RecommendError(f"{_flag(e['loc'])}: {msg}{suffix}") from None


# --- What is being served ---------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """One checkpoint of the model: where it is, how it is stored, what it can be served as."""

    source: str
    model: str | None  # the entry's `model:` (catalog key), when the source does not say it
    stored: str  # how the repository stores the weights: bfloat16, fp8, awq, ...
    dtypes: tuple[str, ...]  # serving dtypes vLLM can load it as


@dataclass(frozen=True)
class Subject:
    """The model to place: a catalog entry, or one model of a stack file."""

    label: str
    arch: ModelArch
    entry: dict[str, Any]  # stack-file form, without the keys recommend decides or the source
    weights: tuple[Weights, ...]  # the checkpoints known for it
    kv_cache_dtype: str
    gpu_memory_utilization: float
    max_model_len: int | None
    stack: StackConfig | None
    capacity: Capacity | None
    pinned: bool  # the source names a commit, not a branch
    max_lora_rank: int | None = None
    replicas_min: int = 1  # a stack entry's replicas.min: the floor it asked for

    @property
    def checkpoint_dtypes(self) -> tuple[str, ...]:
        """Serving dtypes some known checkpoint gives, in the order the checkpoints come."""
        return tuple(dict.fromkeys(d for w in self.weights for d in w.dtypes))


# Keys of a models[] entry that recommend chooses for each option.
DECIDED = ("instance_type", "tensor_parallel", "dtype", "replicas", "capacity", "max_model_len")


def _entry_name(key: str) -> str:
    """A `models[].name` (route prefix) from a catalog key: `llama-3.1-8b` -> `llama-3-1-8b`."""
    short = next((a for a, k in MODEL_ALIASES.items() if k == key), key.rsplit("/", 1)[-1])
    name = re.sub(r"[^a-z0-9]+", "-", short.lower()).strip("-")[:24].strip("-")
    return name if name[:1].isalpha() else f"m-{name}"[:24].strip("-")


def _alias(repo: str) -> str:
    return next((a for a, k in MODEL_ALIASES.items() if k == repo), repo)


def _servable(stored: str) -> tuple[str, ...]:
    """Serving dtypes vLLM can load a checkpoint stored as `stored` in (config.serving_problem)."""
    return tuple(d.value for d in Dtype if serving_problem(Checkpoint(stored), d) is None)


def resolve_subject(text: str) -> Subject:
    """MODEL: a catalog key (repo id or short name), or `stack.yaml[#model-name]`."""
    path_text, _, wanted = text.partition("#")
    path = Path(path_text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return _from_stack(path, wanted)
    arch = lookup_model(text)
    if arch is None:
        raise RecommendError(
            f"MODEL: {text!r} is neither a catalog model ("
            + ", ".join(sorted(MODEL_ALIASES))
            + ") nor a stack file (stacks/Pulumi.<stack>.yaml#<model name>)"
        )
    key = canonical_model(text)
    # The model's own repository and, for a 16-bit one, every quantized checkpoint of it the
    # catalog knows. The catalog names repositories, not commits: `@main` plans on an
    # ephemeral stack, and the printed entry says to pin a commit before any other deploy.
    repos = [key]
    if arch.checkpoint in ("bfloat16", "float16"):
        repos += [repo for repo, (base, *_) in QUANTIZED.items() if base == key]
    weights = tuple(
        Weights(
            f"hf://{repo}@main",
            _alias(repo),
            MODELS[repo].checkpoint,
            _servable(MODELS[repo].checkpoint),
        )
        for repo in repos
    )
    return Subject(
        label=key,
        arch=arch,
        entry={"name": _entry_name(key)},
        weights=weights,
        kv_cache_dtype="auto",
        gpu_memory_utilization=ModelConfig.model_fields["gpu_memory_utilization"].default,
        max_model_len=None,
        stack=None,
        capacity=None,
        pinned=False,
    )


def _from_stack(path: Path, wanted: str) -> Subject:
    try:
        stack = load_stack_file(path)
    except ConfigError as exc:
        raise RecommendError(f"MODEL: {exc}") from None
    names = [m.name for m in stack.models]
    if not wanted and len(names) > 1:
        raise RecommendError(
            f"MODEL: {path} has {len(names)} models; name one: "
            + ", ".join(f"{path}#{n}" for n in names)
        )
    m = next((m for m in stack.models if m.name == (wanted or names[0])), None)
    if m is None:
        raise RecommendError(f"MODEL: {path} has no model {wanted!r}; it has: {', '.join(names)}")
    entry = m.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_defaults=True, exclude=set(DECIDED)
    )
    entry["name"] = m.name
    entry.pop("source", None)
    entry.pop("model", None)
    stored = m.checkpoint_format.value
    dtypes = _servable(stored)
    revision = m.source.rpartition("@")[2] if m.source.startswith("hf://") else ""
    return Subject(
        label=f"{path}#{m.name}",
        arch=m.arch,
        entry=entry,
        weights=(Weights(m.source, m.model, stored, dtypes),),
        max_lora_rank=m.max_lora_rank,
        kv_cache_dtype=m.kv_cache_dtype,
        gpu_memory_utilization=m.gpu_memory_utilization,
        max_model_len=m.max_model_len,
        stack=stack,
        capacity=m.capacity,
        replicas_min=m.replicas.min,
        pinned=not m.source.startswith("hf://") or bool(re.fullmatch(r"[0-9a-f]{40}", revision)),
    )


# --- Load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    input_tokens: int  # per request
    output_tokens: int
    requests_per_day: float | None  # as given; None when the load came as tokens/s
    average_tokens_per_s: float  # input + output, averaged over the hours the fleet runs
    running_fraction: float
    hours: str
    peak_to_average: float
    target_utilization: float

    @property
    def tokens_per_day(self) -> float:
        return self.average_tokens_per_s * SECONDS_PER_DAY * self.running_fraction

    @property
    def input_tokens_per_day(self) -> float:
        return self.tokens_per_day * self.input_tokens / (self.input_tokens + self.output_tokens)

    @property
    def output_tokens_per_day(self) -> float:
        return self.tokens_per_day * self.output_tokens / (self.input_tokens + self.output_tokens)

    @property
    def peak_tokens_per_s(self) -> float:
        return self.average_tokens_per_s * self.peak_to_average

    @property
    def needed_tokens_per_s(self) -> float:
        """Capacity the fleet needs: the peak, at the target utilization."""
        return self.peak_tokens_per_s / self.target_utilization

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_per_day": self.requests_per_day,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_tokens_per_day": round(self.input_tokens_per_day),
            "output_tokens_per_day": round(self.output_tokens_per_day),
            "hours": self.hours,
            "running_fraction": round(self.running_fraction, 4),
            "average_tokens_per_s": round(self.average_tokens_per_s, 2),
            "peak_tokens_per_s": round(self.peak_tokens_per_s, 2),
            "needed_tokens_per_s": round(self.needed_tokens_per_s, 2),
        }


def _load(req: RecommendRequest, hours: str, fraction: float) -> Load:
    per_request = req.input_tokens + req.output_tokens
    if req.requests_per_day is not None:
        # A calendar day's requests, served while the fleet runs.
        average = req.requests_per_day * per_request / (SECONDS_PER_DAY * fraction)
    else:
        average = req.tokens_per_second or 0.0
    return Load(
        input_tokens=req.input_tokens,
        output_tokens=req.output_tokens,
        requests_per_day=req.requests_per_day,
        average_tokens_per_s=average,
        running_fraction=fraction,
        hours=hours,
        peak_to_average=req.peak_to_average,
        target_utilization=req.target_utilization,
    )


# --- Options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    instance_type: str
    gpu: str
    gpus_per_instance: int
    tensor_parallel: int
    dtype: str
    checkpoint: str  # how the source stores the weights
    replicas: int  # what serves the peak: replicas.max, every GPU of the instances paid for
    replicas_min: int  # what serves the average load
    instances: int
    tasks_per_instance: int
    replica_tokens_per_s: float  # input + output tokens of the request shape, one replica
    capacity_tokens_per_s: float  # all `replicas`
    bound: str  # what limits a replica: memory (decode), compute (decode or prefill)
    monthly_usd: float  # `replicas` running every scheduled hour: plan's monthly_max_usd
    usd_per_million_tokens: float
    cold_start_s: float
    model_entry: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.instance_type,
            "gpu": self.gpu,
            "gpus_per_instance": self.gpus_per_instance,
            "tensor_parallel": self.tensor_parallel,
            "dtype": self.dtype,
            "checkpoint": self.checkpoint,
            "replicas": self.replicas,
            "replicas_min": self.replicas_min,
            "instances": self.instances,
            "capacity_tokens_per_s": round(self.capacity_tokens_per_s, 1),
            "replica_tokens_per_s": round(self.replica_tokens_per_s, 1),
            "bound": self.bound,
            "monthly_usd": round(self.monthly_usd, 2),
            "usd_per_million_tokens": round(self.usd_per_million_tokens, 4),
            "cold_start_s": round(self.cold_start_s, 1),
            "model_entry": self.model_entry,
        }


@dataclass(frozen=True)
class Rejection:
    instance_type: str
    kind: str  # "dtype", "fit", "throughput", "plan", "costlier"
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"instance_type": self.instance_type, "kind": self.kind, "reason": self.reason}


@dataclass
class _Search:
    options: list[Option] = field(default_factory=list)
    # per instance: (kind, reason, need over budget) for each dtype that gave no option
    misses: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    # the longest context that fits, over everything tried: (tokens, where)
    longest: tuple[int, str] = (0, "")
    best_capacity: tuple[float, str] = (0.0, "")

    def miss(self, instance: str, kind: str, reason: str, need: float = 0.0) -> None:
        self.misses.setdefault(instance, []).append((kind, reason, need))


@dataclass(frozen=True)
class _Context:
    subject: Subject
    max_model_len: int
    capacity: Capacity
    pricing: PricingConfig
    load: Load
    min_replicas: int


def _serving_dtypes(inst: InstanceType, wanted: tuple[str, ...], explicit: bool) -> list[str]:
    ok = [d for d in wanted if d in inst.gpu.dtypes]
    if not explicit and "bfloat16" in ok and "float16" in ok:
        ok.remove("float16")  # the same memory and speed: float16 only where bf16 cannot run
    return ok


@dataclass(frozen=True)
class _TooSlow:
    reason: str
    replica_tokens_per_s: float


def _option(
    ctx: _Context, inst: InstanceType, weights: Weights, dtype: str, tp: int
) -> Option | _TooSlow:
    """One instance x checkpoint x dtype x TP, sized and priced, or why it cannot keep up."""
    arch, s_in, max_len = ctx.subject.arch, ctx.subject, ctx.max_model_len
    sized = sizing.size(
        arch,
        inst,
        dtype=dtype,
        kv_cache_dtype=s_in.kv_cache_dtype,
        max_model_len=max_len,
        tensor_parallel=tp,
        gpu_memory_utilization=s_in.gpu_memory_utilization,
        max_num_seqs=None,
        checkpoint=weights.stored,
        max_lora_rank=s_in.max_lora_rank,
    )
    load = ctx.load
    shape = load.input_tokens + load.output_tokens
    rate = sizing.requests_per_second(
        arch, inst, sized, dtype, max_len, load.input_tokens, load.output_tokens
    )
    per_replica = rate.requests_per_s * shape
    usable = per_replica * load.target_utilization
    peak = max(ctx.min_replicas, math.ceil(load.needed_tokens_per_s / per_replica - 1e-9))
    if peak > MAX_REPLICAS:
        return _TooSlow(
            f"not enough throughput: {per_replica:,.0f} tokens/s per replica needs {peak} "
            f"replicas for {load.needed_tokens_per_s:,.0f} tokens/s; a stack allows "
            f"{MAX_REPLICAS}",
            per_replica,
        )
    average = max(1, math.ceil(load.average_tokens_per_s / usable - 1e-9))
    tasks = sized.tasks_per_instance
    instances = sizing.ceil_div(peak, tasks)
    replicas = min(instances * tasks, MAX_REPLICAS)  # the GPUs paid for all serve
    replicas_min = min(max(average, ctx.min_replicas), replicas)
    on_demand = cost.hourly_price(inst.name, ctx.pricing.instances)
    base = sizing.ceil_div(replicas_min, tasks) if ctx.capacity is Capacity.MIXED else 0
    hourly = cost.blended_hourly(
        on_demand, ctx.capacity.value, instances, base, ctx.pricing.spot_discount
    )
    monthly = hourly * cost.HOURS_PER_MONTH * load.running_fraction
    capacity = per_replica * replicas
    if load.average_tokens_per_s > 0:
        per_million = cost.usd_per_million_tokens(hourly, load.average_tokens_per_s, 1.0)
    else:
        per_million = cost.usd_per_million_tokens(hourly, capacity, load.target_utilization)
    entry: dict[str, Any] = {"name": s_in.entry["name"], "source": weights.source}
    if weights.model:
        entry["model"] = weights.model
    entry |= {k: v for k, v in s_in.entry.items() if k != "name"}
    entry |= {
        "dtype": dtype,
        "maxModelLen": max_len,
        "instanceType": inst.name,
        "tensorParallel": tp,
        "replicas": {"min": replicas_min, "max": replicas},
        "capacity": ctx.capacity.value,
    }
    if s_in.kv_cache_dtype != "auto":
        entry["kvCacheDtype"] = s_in.kv_cache_dtype
    return Option(
        instance_type=inst.name,
        gpu=inst.gpu.name,
        gpus_per_instance=inst.gpus,
        tensor_parallel=tp,
        dtype=dtype,
        checkpoint=weights.stored,
        replicas=replicas,
        replicas_min=replicas_min,
        instances=instances,
        tasks_per_instance=tasks,
        replica_tokens_per_s=per_replica,
        capacity_tokens_per_s=capacity,
        bound=rate.bound,
        monthly_usd=monthly,
        usd_per_million_tokens=per_million,
        cold_start_s=sized.cold_start.total_s,
        model_entry=entry,
    )


KIND_ORDER = {"throughput": 0, "fit": 1, "dtype": 2}
# At the same price, serve the checkpoint as it is: quantizing changes the model's answers,
# so it has to buy something (fewer or cheaper GPUs) to be recommended.
QUANTIZATION_RANK = {"bfloat16": 0, "float16": 0, "fp8": 1, "awq": 2, "gptq": 2}


def _rank(o: Option) -> tuple[float, int, float, float, str]:
    # then the faster start: a smaller checkpoint is fetched and read sooner
    return (
        round(o.monthly_usd, 2),
        QUANTIZATION_RANK[o.dtype],
        -o.capacity_tokens_per_s,
        o.cold_start_s,
        o.instance_type,
    )


def _search(
    ctx: _Context, instances: list[InstanceType], dtypes: tuple[str, ...], explicit: bool
) -> _Search:
    out = _Search()
    arch, s_in, max_len = ctx.subject.arch, ctx.subject, ctx.max_model_len
    for inst in instances:
        pairs = [
            (w, d)
            for w in s_in.weights
            for d in _serving_dtypes(inst, tuple(x for x in w.dtypes if x in dtypes), explicit)
        ]
        if not pairs:
            out.miss(
                inst.name,
                "dtype",
                f"dtype unsupported: {inst.gpu.name} ({inst.gpu.arch.value}) runs "
                f"{', '.join(sorted(inst.gpu.dtypes))}; asked for {', '.join(dtypes)}",
            )
            continue
        for weights, dtype in pairs:
            best: Option | None = None
            last_fit: sizing.Fit | None = None
            slow = ""
            ckpt = weights.model or weights.source
            where = dtype if len(s_in.weights) == 1 else f"{dtype} from {ckpt}"
            for tp in sizing.valid_tensor_parallel(arch, inst):
                fit = sizing.evaluate_fit(
                    arch,
                    inst,
                    dtype,
                    s_in.kv_cache_dtype,
                    max_len,
                    tp,
                    s_in.gpu_memory_utilization,
                    sizing.lora_bytes(arch, s_in.max_lora_rank) / sizing.GIB,
                )
                last_fit = fit
                longest = fit.kv_pool_tokens // 256 * 256
                if longest > out.longest[0]:
                    out.longest = (
                        min(longest, arch.max_context),
                        f"{inst.name} (TP {tp}, {where})",
                    )
                if not fit.fits:
                    continue
                got = _option(ctx, inst, weights, dtype, tp)
                if got.replica_tokens_per_s > out.best_capacity[0]:
                    out.best_capacity = (
                        got.replica_tokens_per_s,
                        f"{inst.name} (TP {tp}, {where})",
                    )
                if isinstance(got, _TooSlow):
                    slow = got.reason
                    continue
                if best is None or (got.monthly_usd, -got.capacity_tokens_per_s) < (
                    best.monthly_usd,
                    -best.capacity_tokens_per_s,
                ):
                    best = got
            if best is not None:
                out.options.append(best)
            elif slow:
                out.miss(inst.name, "throughput", f"{slow} ({where})")
            else:
                assert last_fit is not None  # TP 1 is always valid
                f = last_fit
                out.miss(
                    inst.name,
                    "fit",
                    f"does not fit: {where} needs {f.need_per_gpu_gib:.1f} GiB per GPU at TP "
                    f"{f.tensor_parallel} (weights {f.weights_per_gpu_gib:.1f} + runtime "
                    f"{f.overhead_per_gpu_gib:.1f} + one {max_len}-token sequence "
                    f"{f.kv_per_gpu_for_sequence_gib:.1f}) > {f.budget_gib:.1f} budget",
                    f.need_per_gpu_gib / f.budget_gib,
                )
    out.options.sort(key=_rank)
    return out


# --- The answer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assumption:
    value: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "why": self.why}


@dataclass(frozen=True)
class BreakevenResult:
    api: ApiPrice
    result: cost.Breakeven
    gpu_monthly_usd: float
    shared_monthly_usd: float
    engineering_monthly_usd: float

    def as_dict(self) -> dict[str, Any]:
        a = self.api
        api: dict[str, Any] = {
            "name": None if a.source is None else a.provider + "/" + a.model,
            "input_usd_per_million": a.input_usd_per_million,
            "output_usd_per_million": a.output_usd_per_million,
        }
        if a.source is not None:
            api |= {"source": a.source.url, "date": a.source.date, "read_via": a.read_via}
        return self.result.as_dict() | {
            "gpu_monthly_usd": round(self.gpu_monthly_usd, 2),
            "shared_monthly_usd": round(self.shared_monthly_usd, 2),
            "engineering_monthly_usd": round(self.engineering_monthly_usd, 2),
            "api": api,
        }


@dataclass(frozen=True)
class Recommendation:
    model: str
    max_model_len: int
    capacity: str
    load: Load
    options: list[Option]
    rejected: list[Rejection]
    assumptions: dict[str, Assumption]
    breakeven: BreakevenResult | None
    shared_monthly_usd: float
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_model_len": self.max_model_len,
            "capacity": self.capacity,
            "options": [o.as_dict() for o in self.options],
            "rejected": [r.as_dict() for r in self.rejected],
            "load": self.load.as_dict(),
            "assumptions": {k: a.as_dict() for k, a in self.assumptions.items()},
            "shared_monthly_usd": round(self.shared_monthly_usd, 2),
            "breakeven": None if self.breakeven is None else self.breakeven.as_dict(),
            "notes": self.notes,
        }


def _base_stack(subject: Subject, req: RecommendRequest) -> StackConfig:
    """The stack each option is planned in: the subject's own, or a one-model dev stack."""
    if subject.stack is not None:
        stack = subject.stack
        if req.region:
            stack = stack.model_copy(update={"region": req.region})
        return stack
    w = subject.weights[0]
    placeholder = subject.entry | {
        "source": w.source,
        "maxModelLen": 256,
        "instanceType": "g6.xlarge",
    }
    if w.model:
        placeholder["model"] = w.model
    return StackConfig.model_validate(
        {
            "stack": "recommend",
            "region": req.region or "us-east-1",
            "team": "recommend",
            "ephemeral": True,
            "gateway": {"allowNoAuth": True},
            "models": [placeholder],
        }
    )


def _schedule(hours: str) -> ScheduleConfig | None:
    if hours == ALWAYS:
        return None
    up, _, down = hours.partition(";")
    return ScheduleConfig(scale_up=up.strip(), scale_down=down.strip())


def plan_option(base: StackConfig, schedule: ScheduleConfig | None, option: Option) -> FleetPlan:
    """The option as `modelfleet plan` sees it: its entry alone in the base stack."""
    model = ModelConfig.model_validate(option.model_entry)
    stack = base.model_copy(update={"models": [model], "schedule": schedule})
    return build_plan(stack, origin="recommend")


def recommend(req: RecommendRequest) -> Recommendation:
    subject = resolve_subject(req.model)
    arch = subject.arch
    max_len = (
        req.max_model_len or subject.max_model_len or min(arch.max_context, DEFAULT_MAX_MODEL_LEN)
    )
    if max_len > arch.max_context:
        raise RecommendError(
            f"--max-model-len: {max_len} exceeds {subject.label}'s context of {arch.max_context} "
            f"tokens; nearest: --max-model-len {arch.max_context}"
        )
    if req.input_tokens + req.output_tokens > max_len:
        raise RecommendError(
            f"--input-tokens: a {req.input_tokens}+{req.output_tokens}-token request does not "
            f"fit maxModelLen {max_len}; raise --max-model-len or shorten the request"
        )
    wanted = tuple(d.value for d in req.dtype) or subject.checkpoint_dtypes
    impossible = [d for d in wanted if d not in subject.checkpoint_dtypes]
    if impossible and len(impossible) == len(wanted):
        have = "16-bit" if subject.checkpoint_dtypes == FROM_16BIT else subject.checkpoint_dtypes[0]
        raise RecommendError(
            f"--dtype: {', '.join(impossible)} needs a checkpoint quantized that way; "
            f"{subject.label} is a {have} checkpoint; nearest: --dtype "
            + " or --dtype ".join(subject.checkpoint_dtypes)
            + (" (or a stack file entry whose source is such a checkpoint)")
        )
    wanted = tuple(d for d in wanted if d in subject.checkpoint_dtypes)
    schedule: ScheduleConfig | None
    if req.hours is not None:
        hours, schedule = req.hours, _schedule(req.hours)
    elif subject.stack is not None and subject.stack.schedule is not None:
        schedule = subject.stack.schedule  # the stack's own, time zone and all
        hours = f"{schedule.scale_up}; {schedule.scale_down}"
    else:
        hours, schedule = ALWAYS, None
    fraction = 1.0 if schedule is None else running_fraction(schedule.scale_down, schedule.scale_up)
    if fraction <= 0:
        raise RecommendError(f"--hours: {hours!r} never runs the fleet")
    load = _load(req, hours, fraction)
    capacity = req.capacity or subject.capacity or Capacity.ON_DEMAND
    pricing = subject.stack.pricing if subject.stack is not None else PricingConfig()
    floor = req.min_replicas or max(subject.replicas_min, 1)
    ctx = _Context(subject, max_len, capacity, pricing, load, floor)
    chosen = [INSTANCE_TYPES[n] for n in req.instance_type] or list(INSTANCE_TYPES.values())
    found = _search(ctx, chosen, wanted, explicit=bool(req.dtype))
    base = _base_stack(subject, req)

    options: list[Option] = []
    rejected: dict[str, Rejection] = {}
    shared = 0.0
    for opt in found.options:
        if len(options) == req.top:
            break
        try:
            p = plan_option(base, schedule, opt)
        except ConfigError as exc:
            rejected.setdefault(
                opt.instance_type,
                Rejection(opt.instance_type, "plan", "; ".join(exc.problems)),
            )
            continue
        mp = p.models[0]
        # The plan is the authority on price: an option costs what `modelfleet plan` shows.
        opt = _with_plan_cost(opt, mp.cost.monthly_max_usd, load)
        if not options:
            shared = p.shared_cost.total
        options.append(opt)
    shown = {o.instance_type for o in options}
    rejected = {k: v for k, v in rejected.items() if k not in shown}  # another dtype made it
    for opt in found.options:
        if opt.instance_type not in shown and opt.instance_type not in rejected:
            rejected[opt.instance_type] = Rejection(
                opt.instance_type,
                "costlier",
                f"costs more: {_usd(opt.monthly_usd)}/month at best ({opt.dtype}, TP "
                f"{opt.tensor_parallel}, {opt.replicas} replica(s))",
            )
    for name, misses in found.misses.items():
        if name not in shown and name not in rejected:
            # the nearest miss speaks for the instance: too slow, else the closest to fitting
            kind, reason, _ = min(misses, key=lambda m: (KIND_ORDER[m[0]], m[2]))
            rejected[name] = Rejection(name, kind, reason)
    if not options:
        raise RecommendError(_nothing_serves(ctx, wanted, chosen, found, rejected, req))

    notes = []
    if impossible:
        notes.append(
            f"--dtype {', '.join(impossible)}: no such checkpoint of {subject.label} is known; "
            "left out"
        )
    if not subject.pinned:
        notes.append(
            "source follows a branch (@main): pin it to a commit "
            "(hf://org/name@<40-hex sha>) before a non-ephemeral deploy"
        )
    if base.region != "us-east-1":
        notes.append(f"prices are us-east-1 list prices; {base.region} differs")
    result = Recommendation(
        model=subject.label,
        max_model_len=max_len,
        capacity=capacity.value,
        load=load,
        options=options,
        rejected=sorted(rejected.values(), key=lambda r: (r.kind, r.instance_type)),
        assumptions=_assumptions(req, subject, pricing, hours, base),
        breakeven=None,
        shared_monthly_usd=shared,
        notes=notes,
    )
    api = req.api_price
    if api is None:
        return result
    return _with_breakeven(result, api, req)


def _with_plan_cost(opt: Option, monthly: float, load: Load) -> Option:
    hourly = monthly / (cost.HOURS_PER_MONTH * load.running_fraction)
    if load.average_tokens_per_s > 0:
        per_million = cost.usd_per_million_tokens(hourly, load.average_tokens_per_s, 1.0)
    else:
        per_million = cost.usd_per_million_tokens(
            hourly, opt.capacity_tokens_per_s, load.target_utilization
        )
    return replace(opt, monthly_usd=monthly, usd_per_million_tokens=per_million)


def _with_breakeven(r: Recommendation, api: ApiPrice, req: RecommendRequest) -> Recommendation:
    winner = r.options[0]
    engineering = req.engineering_hours * req.engineering_rate
    # `cost.breakeven` prices always-on instances; the self-hosted month here already holds
    # the schedule and the stack's shared costs, so it goes in as one hourly figure.
    self_hosted = winner.monthly_usd + r.shared_monthly_usd
    b = cost.breakeven(
        input_tokens_per_day=r.load.input_tokens_per_day,
        output_tokens_per_day=r.load.output_tokens_per_day,
        api_input_price=api.input_usd_per_million,
        api_output_price=api.output_usd_per_million,
        hourly_price_usd=self_hosted / cost.HOURS_PER_MONTH,
        instances=1,
        engineering_hours=req.engineering_hours,
        engineering_rate=req.engineering_rate,
    )
    return replace(
        r,
        breakeven=BreakevenResult(api, b, winner.monthly_usd, r.shared_monthly_usd, engineering),
    )


def _nothing_serves(
    ctx: _Context,
    dtypes: tuple[str, ...],
    chosen: list[InstanceType],
    found: _Search,
    rejected: dict[str, Rejection],
    req: RecommendRequest,
) -> str:
    subject, max_len = ctx.subject, ctx.max_model_len
    kinds = {r.kind for r in rejected.values()}
    tried = (
        f"tried {len(chosen)} instance type(s) x tensor parallel 1-8 x dtype "
        f"{'/'.join(dtypes)} at maxModelLen {max_len}"
    )
    nearest: list[str] = []
    if req.instance_type and len(chosen) < len(INSTANCE_TYPES):
        wider = _search(
            ctx,
            list(INSTANCE_TYPES.values()),
            dtypes,
            explicit=bool(req.dtype),
        )
        if wider.options:
            o = wider.options[0]
            nearest.append(f"--instance-type {o.instance_type} (TP {o.tensor_parallel}, {o.dtype})")
    if "throughput" in kinds and found.best_capacity[0] > 0:
        per, where = found.best_capacity
        nearest.append(
            f"{MAX_REPLICAS} replicas of {where} serve {per * MAX_REPLICAS:,.0f} tokens/s "
            "at full load; split the load over several models (stack entries)"
        )
    other = [d for d in subject.checkpoint_dtypes if d not in dtypes]
    if other:
        more = _search(
            ctx,
            list(INSTANCE_TYPES.values()),
            tuple(other),
            explicit=True,
        )
        if more.options:
            o = more.options[0]
            nearest.append(f"--dtype {o.dtype} on {o.instance_type} (TP {o.tensor_parallel})")
    if found.longest[0] >= 256 and found.longest[0] < max_len:
        nearest.append(f"--max-model-len {found.longest[0]} on {found.longest[1]}")
    if not nearest and "throughput" not in kinds and "awq" not in subject.checkpoint_dtypes:
        q = _search(
            ctx,
            list(INSTANCE_TYPES.values()),
            ("awq",),
            explicit=True,
        )
        if q.options:
            o = q.options[0]
            nearest.append(
                f"an AWQ checkpoint (a stack entry with dtype: awq) on {o.instance_type} "
                f"(TP {o.tensor_parallel})"
            )
    if not nearest and "fit" in kinds:
        biggest = max(INSTANCE_TYPES.values(), key=lambda i: i.gpu_memory_gib_total)
        smallest = min(
            sizing.weights_bytes(subject.arch, d) / sizing.GIB for d in subject.checkpoint_dtypes
        )
        nearest.append(
            f"none: its weights alone take {smallest:,.1f} GiB, the largest instance "
            f"({biggest.name}) has {biggest.gpu_memory_gib_total:,.1f} GiB of GPU memory"
        )
    why = {
        "fit": "too large for the GPU memory",
        "dtype": "dtype unsupported",
        "throughput": "not enough throughput",
        "plan": "rejected by the plan",
    }
    reasons = ", ".join(why[k] for k in sorted(kinds) if k in why)
    return f"no option serves {subject.label}: {tried} ({reasons}); nearest: " + (
        "; ".join(nearest) if nearest else "none in the catalog"
    )


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _assumptions(
    req: RecommendRequest, subject: Subject, pricing: PricingConfig, hours: str, base: StackConfig
) -> dict[str, Assumption]:
    # The plan's own sizing assumptions hold here too (modelfleet/sizing.py gives sources).
    planned = {
        "sizing." + a.name.replace(" ", "_"): Assumption(a.value, a.why) for a in sizing.ASSUMPTIONS
    }
    return planned | {
        "peak_to_average": Assumption(
            f"{req.peak_to_average:g}",
            "replicas serve the peak, not the daily mean: a global user base peaks at "
            "1.6-1.7x its mean, a regional one higher; "
            + ("given" if req.peak_to_average != PEAK_TO_AVERAGE else f"source {PEAK_SOURCE}"),
        ),
        "target_utilization": Assumption(
            f"{req.target_utilization:.0%}",
            "replicas run at most this busy at the peak: queueing delay grows as rho/(1-rho); "
            + (
                "given"
                if req.target_utilization != TARGET_UTILIZATION
                else f"source {UTILIZATION_SOURCE}"
            ),
        ),
        "request_shape": Assumption(
            f"{req.input_tokens} in / {req.output_tokens} out",
            "sets the KV cache each sequence holds (batch size) and the prefill work per "
            "request; capacity counts input + output tokens",
        ),
        "replica_throughput": Assumption(
            "decode roofline (sizing.throughput) capped by the compute roof over prompt + "
            "output tokens (sizing.requests_per_second)",
            "vLLM schedules prefill and decode tokens in the same step (chunked prefill)",
        ),
        "replicas": Assumption(
            "max serves the peak at the target utilization (every GPU of the instances paid "
            "for), min the average; priced at max for every scheduled hour",
            "an upper bound: autoscaling runs fewer replicas off-peak",
        ),
        "dtype": Assumption(
            "/".join(subject.checkpoint_dtypes) + " (what the checkpoint can be served in)",
            "at the same monthly cost the checkpoint's own precision wins over quantized",
        ),
        "hours": Assumption(
            hours,
            "the fleet runs this share of the month and the day's requests arrive then"
            if hours != ALWAYS
            else "always on",
        ),
        "prices": Assumption(
            "us-east-1 on-demand list prices (catalog.py), spot at "
            f"{pricing.spot_discount:.0%} off"
            + (" with the stack's pricing overrides" if pricing.instances else ""),
            "a month is 730 h, as AWS prices it",
        ),
        "usd_per_million_tokens": Assumption(
            "the month's cost over the load's input + output tokens",
            "with no load given: over the capacity at the target utilization",
        ),
        "shared_costs": Assumption(
            "the winner planned alone in "
            + (f"stack {base.stack}" if subject.stack is not None else "a one-model dev stack"),
            "ALB, NAT, EFS, endpoints, CloudWatch, KMS and secrets from `modelfleet plan`; "
            "counted in the break-even, not in the options' monthly cost",
        ),
    }


# --- `modelfleet plan`'s note -----------------------------------------------------------------


def cheapest_fit(m: ModelConfig, stack: StackConfig) -> tuple[InstanceType, int, float] | None:
    """The cheapest catalog instance that fits `m` as given (dtype, context, replicas.max).

    Returns (instance, TP, hourly price of the instances replicas.max needs) or None. Fit
    only: throughput is `modelfleet recommend`'s question.
    """
    best: tuple[InstanceType, int, float] | None = None
    for inst in INSTANCE_TYPES.values():
        if m.dtype.value not in inst.gpu.dtypes:
            continue
        for tp in sizing.valid_tensor_parallel(m.arch, inst):
            fit = sizing.evaluate_fit(
                m.arch,
                inst,
                m.dtype.value,
                m.kv_cache_dtype,
                m.max_model_len,
                tp,
                m.gpu_memory_utilization,
                sizing.lora_bytes(m.arch, m.max_lora_rank) / sizing.GIB,
            )
            if not fit.fits:
                continue
            hourly = _replicas_hourly(m, stack, inst, inst.gpus // tp)
            if best is None or hourly < best[2]:
                best = (inst, tp, hourly)
            break  # the smallest TP that fits packs the most replicas per instance
    return best


def _replicas_hourly(m: ModelConfig, stack: StackConfig, inst: InstanceType, tasks: int) -> float:
    n_max = sizing.ceil_div(m.replicas.max, tasks)
    base = sizing.ceil_div(m.replicas.min, tasks) if m.capacity is Capacity.MIXED else 0
    price = cost.hourly_price(inst.name, stack.pricing.instances)
    return cost.blended_hourly(price, m.capacity.value, n_max, base, stack.pricing.spot_discount)


def costlier_note(m: ModelConfig, stack: StackConfig, hourly_max: float) -> str | None:
    """A note when `m`'s instances cost over 1.5x the cheapest instance that fits it."""
    best = cheapest_fit(m, stack)
    if best is None:
        return None
    inst, tp, cheapest = best
    if inst.name == m.instance_type or hourly_max <= COSTLIER_THAN_CHEAPEST * cheapest:
        return None
    return (
        f"{m.instance_type} costs {_usd(hourly_max)}/h at replicas.max {m.replicas.max}, "
        f"{hourly_max / cheapest:.1f}x the {_usd(cheapest)}/h of {inst.name} (TP {tp}), the "
        f"cheapest instance that fits {m.dtype.value} at maxModelLen {m.max_model_len}; "
        "`modelfleet recommend` compares throughput too"
    )


# --- The JSON contract ------------------------------------------------------------------------

_NUM = {"type": "number", "minimum": 0}
_INT = {"type": "integer", "minimum": 0}
OUTPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["model", "options", "rejected", "load", "assumptions", "breakeven"],
    "properties": {
        "model": {"type": "string"},
        "max_model_len": _INT,
        "capacity": {"enum": [c.value for c in Capacity]},
        "options": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "instance_type",
                    "gpus_per_instance",
                    "tensor_parallel",
                    "dtype",
                    "replicas",
                    "capacity_tokens_per_s",
                    "monthly_usd",
                    "usd_per_million_tokens",
                    "cold_start_s",
                    "model_entry",
                ],
                "properties": {
                    "instance_type": {"enum": sorted(INSTANCE_TYPES)},
                    "gpus_per_instance": {"type": "integer", "minimum": 1},
                    "tensor_parallel": {"enum": [1, 2, 4, 8]},
                    "dtype": {"enum": [d.value for d in Dtype]},
                    "checkpoint": {"enum": [d.value for d in Dtype]},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS},
                    "replicas_min": {"type": "integer", "minimum": 1},
                    "capacity_tokens_per_s": {"type": "number", "exclusiveMinimum": 0},
                    "monthly_usd": _NUM,
                    "usd_per_million_tokens": _NUM,
                    "cold_start_s": {"type": "number", "exclusiveMinimum": 0},
                    "model_entry": {
                        "type": "object",
                        "required": [
                            "name",
                            "source",
                            "dtype",
                            "maxModelLen",
                            "instanceType",
                            "tensorParallel",
                            "replicas",
                        ],
                    },
                },
            },
        },
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["instance_type", "reason"],
                "properties": {
                    "instance_type": {"enum": sorted(INSTANCE_TYPES)},
                    "kind": {"enum": ["dtype", "fit", "throughput", "plan", "costlier"]},
                    "reason": {"type": "string", "minLength": 1},
                },
            },
        },
        "load": {
            "type": "object",
            "required": [
                "input_tokens",
                "output_tokens",
                "hours",
                "running_fraction",
                "average_tokens_per_s",
                "peak_tokens_per_s",
                "needed_tokens_per_s",
            ],
            "properties": {
                "requests_per_day": {"type": ["number", "null"], "minimum": 0},
                "input_tokens": {"type": "integer", "minimum": 1},
                "output_tokens": {"type": "integer", "minimum": 1},
                "running_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "average_tokens_per_s": _NUM,
                "peak_tokens_per_s": _NUM,
                "needed_tokens_per_s": _NUM,
            },
        },
        "assumptions": {
            "type": "object",
            "required": ["peak_to_average", "target_utilization"],
            "additionalProperties": {
                "type": "object",
                "required": ["value", "why"],
                "properties": {"value": {"type": "string"}, "why": {"type": "string"}},
            },
        },
        "breakeven": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": [
                        "api_monthly_usd",
                        "self_hosted_monthly_usd",
                        "breakeven_tokens_per_day",
                        "cheaper",
                        "api",
                    ],
                    "properties": {"cheaper": {"enum": ["api", "self-hosted"]}},
                },
            ]
        },
    },
}

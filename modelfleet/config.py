"""The stack file schema: what a team writes under `config:` in `stacks/Pulumi.<stack>.yaml`.

One model, two loaders: `load_stack_file` reads the YAML file (offline CLI, tests) and
`load_config_mapping` takes the `namespace:key -> value` mapping that the Pulumi engine hands the
program. Both end in `StackConfig`, so what `modelfleet plan` shows is what `pulumi up` builds.
Every error is a `ConfigError` whose lines name the stack file and the key path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from fetcher.errors import SourceError
from fetcher.source import HfSource, parse_source
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from modelfleet import catalog, coldstart, eks_versions, partitions
from modelfleet.cron import CronError, parse_cron

NAMESPACE = "modelfleet"


class ConfigError(Exception):
    """A stack that cannot be planned. `str()` is the whole message a user sees."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__("\n".join(f"{origin}: {p}" for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=True,
    )


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class Platform(StrEnum):
    ECS = "ecs"
    EKS = "eks"


class Dtype(StrEnum):
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"


class Checkpoint(StrEnum):
    """How a repository stores its weights: what is fetched, stored and read at start."""

    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"


# The max_lora_rank values vLLM 0.31 accepts (vllm/config/lora.py:
# `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]`, default 16).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_LORA_RANK = 16

SIXTEEN_BIT = frozenset({Checkpoint.BFLOAT16, Checkpoint.FLOAT16})


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def serving_problem(checkpoint: Checkpoint, dtype: Dtype) -> str | None:
    """Why vLLM 0.31 cannot serve `checkpoint` weights as `dtype`, or None when it can.

    A 16-bit checkpoint serves as bfloat16/float16 (cast at load) or fp8 (quantized online
    after loading: vllm/model_executor/layers/quantization/online/fp8.py, "Loads fp16/bf16
    weights and quantizes them per-tensor during loading"). A quantized checkpoint serves only
    as what it is: vLLM reads its quantization_config from config.json and refuses a
    --quantization that differs (vllm/config/model.py `_verify_quantization`: "Quantization
    method specified in the model config (X) does not match the quantization method specified
    in the `quantization` argument (Y)"), and has no path that dequantizes it back to 16 bits
    or converts one 4-bit scheme into another.
    """
    if checkpoint in SIXTEEN_BIT:
        if dtype in (Dtype.AWQ, Dtype.GPTQ):
            fmt = dtype.value.upper()
            return (
                f"{dtype.value} needs {_a(fmt)} checkpoint and this source is "
                f"{_a(checkpoint.value)} one (vLLM quantizes 16-bit weights online only to "
                f"fp8); use dtype: fp8 or {checkpoint.value}, or {_a(fmt)} repository as the "
                f"source (checkpoint: {dtype.value})"
            )
        return None
    if dtype.value == checkpoint.value:
        return None
    return (
        f"the source is {checkpoint.value.upper()}-quantized and serves only as dtype: "
        f"{checkpoint.value} (vLLM "
        f"reads its quantization from config.json and cannot dequantize it to {dtype.value}); "
        f"use dtype: {checkpoint.value}, or a 16-bit source for dtype: {dtype.value}"
    )


def is_commit_sha(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


class Capacity(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"
    MIXED = "mixed"


def _cron(value: str) -> str:
    try:
        parse_cron(value)
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return value


def _instance_type(value: str) -> str:
    if value not in catalog.INSTANCE_TYPES:
        known = ", ".join(sorted(catalog.INSTANCE_TYPES))
        raise ValueError(f"unknown instance type {value!r}; the catalog has: {known}")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/New_York)") from None
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR block: {exc}") from None
    if net.version != 4:
        raise ValueError("an IPv4 CIDR block is required")
    return value


# What a capacity group's key is made of: the instance type with "-" for "." and the purchase
# option. `mixed` is the one-group-per-type layout of releases before issue 13 (one ASG with a
# mixed instances policy), kept here so an upgrade can name it.
CAPACITY_PURCHASES = ("on-demand", "spot", "mixed")


def _capacity_group_key(value: str) -> str:
    for purchase in CAPACITY_PURCHASES:
        itype, sep, rest = value.removesuffix(f"-{purchase}").partition("-")
        if value.endswith(f"-{purchase}") and sep and f"{itype}.{rest}" in catalog.INSTANCE_TYPES:
            return value
    raise ValueError(
        "not a capacity group key: <instance type with '-' for '.'>-<on-demand|spot|mixed>, "
        "as `modelfleet plan` lists the groups (e.g. g6e-xlarge-mixed)"
    )


Cron = Annotated[str, AfterValidator(_cron)]
InstanceTypeName = Annotated[str, AfterValidator(_instance_type)]
CapacityGroupKey = Annotated[str, AfterValidator(_capacity_group_key)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")]

# Secrets live in the stack file only as ciphertext (`pulumi config set --secret`). The engine
# decrypts them before the program runs; offline, the CLI sees `{secure: v1:...}` and keeps it
# opaque. Either way the value is a SecretStr and never reaches a log, an error or a plan.
ENCRYPTED = "<encrypted>"


Secret = SecretStr


def is_encrypted(secret: SecretStr) -> bool:
    """True offline, where the CLI holds only the ciphertext's placeholder."""
    return secret.get_secret_value() == ENCRYPTED


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


class NetworkConfig(_Model):
    vpc_cidr: Cidr | None = None
    availability_zones: int = Field(2, ge=2, le=6)
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = None
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    public_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    certificate_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$")]
        | None
    ) = None
    # One NAT gateway per AZ survives an AZ outage; one in total is a third of the cost.
    nat_gateways: Literal["single", "per-az"] | None = None
    ingress_cidrs: list[Cidr] = ["0.0.0.0/0"]
    # ALB idle timeout: None derives it from the slowest model's longest non-streamed answer.
    idle_timeout_seconds: int | None = Field(None, ge=120, le=4000)

    @model_validator(mode="after")
    def _new_or_existing(self) -> Self:
        if self.vpc_id is None:
            if self.private_subnet_ids or self.public_subnet_ids:
                raise ValueError("privateSubnetIds/publicSubnetIds need vpcId")
            return self
        if self.vpc_cidr is not None:
            raise ValueError("give either vpcCidr (a new VPC) or vpcId (an existing one), not both")
        for key, ids in (
            ("privateSubnetIds", self.private_subnet_ids),
            ("publicSubnetIds", self.public_subnet_ids),
        ):
            # An ALB needs subnets in at least two AZs.
            if len(ids) < 2:
                raise ValueError(f"{key} needs at least two subnets (two AZs) with vpcId")
        return self

    @property
    def cidr(self) -> str:
        return self.vpc_cidr or "10.40.0.0/16"


class Replicas(_Model):
    min: int = Field(1, ge=0, le=100)
    max: int = Field(1, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ModelParameters(_Model):
    """Architecture of a model that is not in the catalog, from its config.json."""

    parameters_b: float = Field(gt=0, le=2000, description="total parameters, billions")
    active_parameters_b: float | None = Field(None, gt=0)
    layers: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    max_context: int = Field(gt=0)
    vocab_size: int = Field(128256, gt=0)
    tied_embeddings: bool = False

    @model_validator(mode="after")
    def _heads(self) -> Self:
        if self.attention_heads % self.kv_heads:
            raise ValueError("attentionHeads must be a multiple of kvHeads")
        return self

    def to_arch(self) -> catalog.ModelArch:
        return catalog.ModelArch(
            parameters_b=self.parameters_b,
            layers=self.layers,
            attention_heads=self.attention_heads,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            max_context=self.max_context,
            vocab_size=self.vocab_size,
            tied_embeddings=self.tied_embeddings,
            active_parameters_b=self.active_parameters_b,
            source=catalog.Source("stack file (modelfleet:models[].parameters)", "n/a"),
        )


def _source(value: str) -> str:
    # The fetcher owns the grammar, so a source the stack accepts is one the fetcher can fetch.
    try:
        parse_source(value)
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    return value


Source = Annotated[str, AfterValidator(_source)]


class LoraAdapter(_Model):
    name: Name
    source: Source
    # The adapter's rank (adapter_config.json `r`); the engine is started with the smallest
    # --max-lora-rank vLLM accepts that covers every adapter of the model.
    rank: int = Field(VLLM_DEFAULT_LORA_RANK, ge=1, le=VLLM_LORA_RANKS[-1])


# vLLM flags the plan sets itself; a second copy in vllmArgs would silently win or clash.
RESERVED_VLLM_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--max-model-len",
        "--tensor-parallel-size",
        "--gpu-memory-utilization",
        "--quantization",
        "--dtype",
        "--kv-cache-dtype",
        "--host",
        "--port",
        "--enable-lora",
        "--lora-modules",
        "--max-num-seqs",
        "--download-dir",
        "--max-lora-rank",
        # How weights are read from the network file system: the plan picks it with the
        # task memory that must hold what it buffers (modelfleet/coldstart.py).
        "--safetensors-load-strategy",
    }
)


class ModelConfig(_Model):
    name: Name = Field(description="route prefix /<name>/v1 and the served model name")
    source: Source
    model: str | None = Field(None, description="catalog key; default: the repo id in source")
    parameters: ModelParameters | None = None
    # How the source stores its weights; default: the catalog's entry for the source repository
    # (or for `model`), else bfloat16. The fetcher checks it against config.json at pre-warm.
    checkpoint: Checkpoint | None = None
    dtype: Dtype = Dtype.BFLOAT16
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    max_model_len: int = Field(ge=256, le=1_048_576)
    instance_type: InstanceTypeName
    tensor_parallel: int | None = Field(None, ge=1, le=8)
    gpu_memory_utilization: float = Field(0.90, ge=0.5, le=0.98)
    max_num_seqs: int | None = Field(None, ge=1, le=1024)
    replicas: Replicas = Replicas()
    capacity: Capacity = Capacity.ON_DEMAND
    vllm_args: list[str] = []
    lora_adapters: list[LoraAdapter] = []

    @field_validator("vllm_args")
    @classmethod
    def _no_reserved(cls, args: list[str]) -> list[str]:
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in RESERVED_VLLM_FLAGS:
                raise ValueError(
                    f"{flag} is set by modelfleet from the plan; use the matching stack key "
                    "(maxModelLen, tensorParallel, gpuMemoryUtilization, dtype, maxNumSeqs, "
                    "loraAdapters[].rank); the weight-load strategy follows the task's memory"
                )
        return args

    @model_validator(mode="after")
    def _catalog(self) -> Self:
        if self.parameters is not None:
            return self
        key = self.catalog_key
        if catalog.lookup_model(key) is None:
            known = ", ".join(sorted(catalog.MODEL_ALIASES))
            raise ValueError(
                f"model {key!r} is not in the catalog; name one ({known}) in `model`, "
                "or describe it under `parameters`"
            )
        return self

    @model_validator(mode="after")
    def _servable(self) -> Self:
        problem = serving_problem(self.checkpoint_format, self.dtype)
        if problem:
            raise ValueError(f"dtype: {problem} (source {self.source})")
        return self

    @property
    def source_entry(self) -> catalog.ModelArch | None:
        """The catalog's entry for the source repository itself, when it has one."""
        src = parse_source(self.source)
        return catalog.MODELS.get(src.repo_id) if isinstance(src, HfSource) else None

    @property
    def checkpoint_format(self) -> Checkpoint:
        if self.checkpoint is not None:
            return self.checkpoint
        entry = self.source_entry or (
            None if self.parameters is not None else catalog.lookup_model(self.catalog_key)
        )
        return Checkpoint(entry.checkpoint) if entry else Checkpoint.BFLOAT16

    @property
    def quant_method(self) -> str | None:
        """config.json's quantization_config.quant_method the checkpoint must carry."""
        fmt = self.checkpoint_format
        if fmt in SIXTEEN_BIT:
            return None
        entry = self.source_entry or catalog.lookup_model(self.catalog_key)
        if entry is not None and entry.checkpoint == fmt.value and entry.quant_method:
            return entry.quant_method
        return fmt.value

    @property
    def max_lora_rank(self) -> int | None:
        """--max-lora-rank: the smallest value vLLM accepts that covers every adapter."""
        if not self.lora_adapters:
            return None
        need = max(a.rank for a in self.lora_adapters)
        return next(r for r in VLLM_LORA_RANKS if r >= need)

    @property
    def catalog_key(self) -> str:
        if self.model:
            return catalog.canonical_model(self.model)
        src = parse_source(self.source)
        return src.repo_id if isinstance(src, HfSource) else self.source

    @property
    def arch(self) -> catalog.ModelArch:
        if self.parameters is not None:
            return self.parameters.to_arch()
        arch = catalog.lookup_model(self.catalog_key)
        assert arch is not None  # checked by the validator
        return arch

    @property
    def instance(self) -> catalog.InstanceType:
        return catalog.INSTANCE_TYPES[self.instance_type]


class RateLimit(_Model):
    requests_per_minute: int = Field(0, ge=0)
    tokens_per_minute: int = Field(0, ge=0)


class Fallback(_Model):
    base_url: Annotated[str, Field(pattern=r"^https://[^\s/]+(/[^\s]*)?$")]
    model: str
    api_key: Secret


class GatewayConfig(_Model):
    api_keys: Secret | None = None
    allow_no_auth: bool = False
    rate_limit: RateLimit = RateLimit()
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    max_inflight: int | None = Field(None, ge=1, le=10_000)
    fallback: Fallback | None = None
    drain_seconds: int = Field(60, ge=5, le=600)


class ScheduleConfig(_Model):
    timezone: TimeZone = "UTC"
    scale_down: Cron
    scale_up: Cron


class AlarmsConfig(_Model):
    emails: list[Email] = []
    p99_latency_seconds: float = Field(30.0, gt=0)
    queue_depth: int = Field(16, ge=1)
    error_rate_percent: float = Field(5.0, gt=0, le=100)


class AutoscalingConfig(_Model):
    # Waiting requests per task that target tracking holds; vLLM batches up to maxNumSeqs
    # before anything waits, so any steady queue means the task is saturated.
    queue_depth_target: float = Field(4.0, gt=0)
    scale_out_cooldown: int = Field(60, ge=0, le=3600)
    scale_in_cooldown: int = Field(600, ge=0, le=3600)


def _pinned_image(value: str) -> str:
    name, _, digest = value.partition("@")
    if digest:
        return value
    tag = name.rsplit("/", 1)[-1].partition(":")[2]  # a registry's :port is before the last /
    if not tag or tag.lower() == "latest":
        raise ValueError(
            "pin the image to a version tag or an @sha256 digest, not latest: a moving tag "
            "changes what runs under a fleet at its next task start"
        )
    return value


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]


class ImagesConfig(_Model):
    # vLLM's OpenAI server image, pinned; a moving tag would change the engine under a fleet.
    # The ECS GPU-optimized AL2023 AMI the capacity uses ships NVIDIA driver 580 (580.95.05
    # from its 20251014 release, 580.126.09 by 2026-02: https://github.com/aws/amazon-ecs-ami
    # pull/560 and pull/619), which runs vLLM's default CUDA 13 build as well as this one
    # (CUDA 13 needs 580+: https://github.com/vllm-project/vllm/releases). The -cu129 build
    # stays the default because CUDA 12's minor-version compatibility also runs it on the
    # 570/575 drivers of older or custom AMIs; on the shipped AMI either tag works.
    vllm: Annotated[
        PinnedImage,
        # [registry[:port]/]path[:tag][@sha256:digest]
        Field(pattern=r"^[\w.-]+(:\d+)?(/[\w.-]+)*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$"),
    ] = "vllm/vllm-openai:v0.31.0-cu129"
    # Prebuilt sidecar/fetcher images; when absent, `pulumi up` builds them from docker/ and
    # pushes them to ECR repositories of the stack.
    sidecar: PinnedImage | None = None
    fetcher: PinnedImage | None = None
    # Docker Hub credentials ("username:accessToken", a Pulumi secret) for the ECR pull-through
    # cache that keeps the engine image inside the stack's region. Without them a Docker Hub
    # engine image is pulled from Docker Hub through NAT at every cold start.
    docker_hub_credentials: Secret | None = None


class ColdStartConfig(_Model):
    # On-demand GPU groups keep stopped, pre-initialized instances (engine image pulled) in an
    # Auto Scaling warm pool; false launches every instance cold. Their volumes cost while
    # stopped (see `modelfleet cost`).
    warm_pool: bool = True


class PricingConfig(_Model):
    instances: dict[InstanceTypeName, Annotated[float, Field(ge=0)]] = {}
    # Spot savings vary by pool and hour; 0.6 off on-demand is an assumption for g/p families,
    # overridable here per stack (https://aws.amazon.com/ec2/spot/instance-advisor/).
    spot_discount: float = Field(0.6, ge=0, lt=1)


class GuardrailsConfig(_Model):
    """Cost guardrails the policy pack enforces (see policies/)."""

    allowed_instance_families: list[str] | None = None
    max_hourly_usd: float | None = Field(None, gt=0)
    require_spot: bool | None = None


# System nodes carry the controllers (Karpenter, the load balancer controller, KEDA, CoreDNS,
# the CloudWatch agent), never a model; on-demand us-east-1 Linux prices per hour, from
# https://aws.amazon.com/ec2/pricing/on-demand/ (read 2026-12-01).
SYSTEM_INSTANCE_PRICES: dict[str, float] = {
    "m7i.large": 0.1008,
    "m7i.xlarge": 0.2016,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m7g.large": 0.0816,
    "m7g.xlarge": 0.1632,
}


def _system_instance(value: str) -> str:
    if value not in SYSTEM_INSTANCE_PRICES:
        known = ", ".join(SYSTEM_INSTANCE_PRICES)
        raise ValueError(f"unknown system node type {value!r}; one of: {known}")
    return value


def _kubernetes_version(value: str) -> str:
    row = eks_versions.KUBERNETES_VERSIONS.get(value)
    allowed = ", ".join(eks_versions.allowed_versions())
    if row is None:
        newest = max(eks_versions.KUBERNETES_VERSIONS, key=lambda v: tuple(map(int, v.split("."))))
        newer = tuple(map(int, value.split("."))) > tuple(map(int, newest.split(".")))
        why = eks_versions.NEWER_REFUSED if newer else "EKS no longer offers it"
        raise ValueError(f"Kubernetes {value} is not offered here ({why}); use one of: {allowed}")
    if row.refused is not None:
        raise ValueError(
            f"Kubernetes {value} is not offered here ({row.refused}); use one of: {allowed}"
        )
    return value


def _public_cidr(value: str) -> str:
    if ipaddress.ip_network(value).prefixlen == 0:
        raise ValueError(
            "the cluster API must not be open to the world; give the CIDRs of the hosts that run "
            "`pulumi up` and kubectl, or leave publicAccessCidrs empty for a private endpoint"
        )
    return value


IamRoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]


class SystemNodesConfig(_Model):
    instance_type: Annotated[str, AfterValidator(_system_instance)] = "m7i.large"
    # Two nodes in two AZs: the controllers keep running through a node or AZ loss.
    count: int = Field(2, ge=2, le=10)


class ImageCacheConfig(_Model):
    """`eks.imageCache`: GPU nodes start from a prepared snapshot of Bottlerocket's data volume
    that already holds the engine, sidecar and fetcher images (built at `pulumi up`, rebuilt
    when an image digest changes). A volume made from a snapshot loads its blocks from S3
    lazily unless it is initialized: `fast-snapshot-restore` enables FSR on the snapshot in
    every AZ of the stack (volumes fully initialized at creation; billed per AZ-hour, all
    month), `rate` provisions EBS's initialization rate on every node volume (billed per GiB
    initialized; the whole snapshot at 300 MiB/s at most puts the Llama-3.1-8B warm start at
    ~200 s instead of ~138 s). Unset, a prod stack takes fast-snapshot-restore (its wake-ups
    meet the 180 s target) and a dev or staging stack takes rate (no hourly charge); giving
    `initializationRate` alone means rate. The plan prints the trade either way."""

    enabled: bool = True
    initialization: Literal["rate", "fast-snapshot-restore"] | None = None
    # MiB/s; EBS accepts 100-300 (CreateVolume VolumeInitializationRate, "Valid range").
    initialization_rate: int | None = Field(None, ge=100, le=300)

    @model_validator(mode="after")
    def _rate_only_with_rate(self) -> Self:
        if self.initialization_rate is not None and self.initialization == "fast-snapshot-restore":
            raise ValueError(
                "initializationRate: only with initialization: rate (a fast-snapshot-restore "
                "volume is fully initialized at creation; EBS would use the rate instead of FSR)"
            )
        if not self.enabled and (
            self.initialization is not None or self.initialization_rate is not None
        ):
            raise ValueError("initialization: only with enabled: true (there is no snapshot)")
        return self

    def mode(self, environment: Environment) -> Literal["rate", "fast-snapshot-restore"]:
        """The initialization this stack builds: as given, else by the stack's environment."""
        if self.initialization is not None:
            return self.initialization
        if self.initialization_rate is not None or environment is not Environment.PROD:
            return "rate"
        return "fast-snapshot-restore"

    def rate_mibps(self, environment: Environment) -> int | None:
        """The provisioned initialization rate when the mode is rate: as given, else EBS's
        maximum; None with fast snapshot restore."""
        if self.mode(environment) != "rate":
            return None
        return self.initialization_rate or coldstart.MAX_INITIALIZATION_RATE_MIBPS


class EksConfig(_Model):
    """`eks:` on a `platform: eks` stack: the cluster around the GPU capacity."""

    kubernetes_version: Annotated[str, AfterValidator(_kubernetes_version)] = (
        eks_versions.DEFAULT_KUBERNETES_VERSION
    )
    # None: STANDARD while the version is in standard support (the cluster is upgraded at its
    # end instead of paying the extended rate), EXTENDED once it is not. AWS's own default is
    # EXTENDED, so the plan always sets it.
    support_type: eks_versions.Support | None = None
    # IAM roles given cluster-admin through access entries (never aws-auth).
    admin_role_arns: list[IamRoleArn] = []
    # The private endpoint is always on; a public one only for these CIDRs (empty: private only,
    # so `pulumi up` and kubectl must run inside the VPC).
    public_access_cidrs: list[Annotated[Cidr, AfterValidator(_public_cidr)]] = []
    system_nodes: SystemNodesConfig = SystemNodesConfig()
    # GPU nodes boot with the images on their data volume (see ImageCacheConfig).
    image_cache: ImageCacheConfig = ImageCacheConfig()
    # Hold an add-on at a build (`aws eks describe-addon-versions`); unlisted ones use the
    # plan's table, or EKS's default build for the Kubernetes version where the table has none.
    addon_versions: dict[
        Literal[eks_versions.ADDON_NAMES],  # type: ignore[valid-type]
        Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")],
    ] = {}

    @field_validator("admin_role_arns")
    @classmethod
    def _unique_admins(cls, arns: list[str]) -> list[str]:
        dupes = sorted({a for a in arns if arns.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate role ARN(s) {dupes}")
        return arns


# What every AWS and Kubernetes name built from the prefix accepts.
_NAME_SAFE = re.compile(r"[a-z0-9-]+")

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)


class StackConfig(_Model):
    stack: str = Field("dev", exclude=True)
    # from aws:region (us-east-1, eu-central-1, us-gov-west-1, ...)
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] = "us-east-1"
    environment: Environment = Environment.DEV
    team: Name
    platform: Platform = Platform.ECS
    ephemeral: bool = False
    network: NetworkConfig = NetworkConfig()
    models: list[ModelConfig] = Field(min_length=1, max_length=20)
    gateway: GatewayConfig = GatewayConfig()
    schedule: ScheduleConfig | None = None
    alarms: AlarmsConfig = AlarmsConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    images: ImagesConfig = ImagesConfig()
    cold_start: ColdStartConfig = ColdStartConfig()
    # Capacity groups (by key) that no model uses any more but whose capacity provider stays
    # attached to the cluster for one more `pulumi up`, while the services' strategies move
    # to the new groups: ECS refuses to detach a provider that tasks still use. The upgrade
    # from `capacity: mixed` groups names `<type>-mixed` here for one run and removes it for
    # the next (README, "Upgrading from a mixed capacity group").
    keep_capacity_providers: list[CapacityGroupKey] = []
    pricing: PricingConfig = PricingConfig()
    guardrails: GuardrailsConfig = GuardrailsConfig()
    eks: EksConfig | None = None
    log_retention_days: int | None = None
    hf_token: Secret | None = None
    tags: dict[str, str] = {}

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int | None) -> int | None:
        if v is not None and v not in RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts one of {RETENTION_DAYS}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _eks_defaults(cls, data: Any) -> Any:
        # Every key of `eks:` has a default, so `platform: eks` alone is a whole EKS stack.
        if isinstance(data, dict) and data.get("platform") == "eks" and data.get("eks") is None:
            return {**data, "eks": {}}
        return data

    @model_validator(mode="after")
    def _rules(self) -> Self:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: duplicate name(s) {dupes}")
        if self.platform is Platform.ECS and self.eks is not None:
            raise ValueError("eks: only allowed with platform: eks (this stack is platform: ecs)")
        if self.platform is Platform.EKS and "cold_start" in self.model_fields_set:
            raise ValueError(
                "coldStart: ECS only (Auto Scaling warm pools); on platform: eks the GPU node "
                "class prepares the engine image (parallel pull), there is nothing to set"
            )
        if self.platform is Platform.EKS and self.keep_capacity_providers:
            raise ValueError(
                "keepCapacityProviders: ECS only (capacity providers are ECS's); an EKS stack "
                "has none to keep"
            )
        kept = self.keep_capacity_providers
        twice = sorted({k for k in kept if kept.count(k) > 1})
        if twice:
            raise ValueError(f"keepCapacityProviders: {twice} listed more than once")
        if self.environment is Environment.PROD and self.ephemeral:
            raise ValueError("ephemeral: a prod stack cannot be ephemeral")
        if not self.ephemeral and self.network.certificate_arn is None:
            raise ValueError(
                "network.certificateArn: required, the ALB serves HTTPS; plain HTTP is only "
                "allowed when ephemeral: true"
            )
        self._arns_of_this_region()
        if self.gateway.api_keys is None and not self.gateway.allow_no_auth:
            raise ValueError(
                "gateway.apiKeys: required (pulumi config set --secret --path "
                "'modelfleet:gateway.apiKeys' 'team:key,...'), or gateway.allowNoAuth: true"
            )
        if self.gateway.allow_no_auth and not self.ephemeral:
            raise ValueError("gateway.allowNoAuth: only allowed when ephemeral: true")
        if not self.ephemeral:
            for key, source in self.hf_sources():
                revision = parse_source(source)
                assert isinstance(revision, HfSource)
                if not is_commit_sha(revision.revision):
                    raise ValueError(
                        f"{key}: {source} follows {revision.revision!r}, which can move "
                        "between two deploys; pin the 40-hex commit "
                        f"(hf://{revision.repo_id}@<commit-sha>) outside ephemeral stacks"
                    )
        if (
            self.network.nat_gateways == "single"
            and self.environment is Environment.PROD
            and self.network.vpc_id is None
        ):
            raise ValueError("network.natGateways: a prod VPC keeps one NAT gateway per AZ")
        return self

    def _arns_of_this_region(self) -> None:
        """The ARNs a stack names must be usable where it deploys. ACM certificates are
        regional: a load balancer takes one from its own Region only (ACM User Guide,
        "Supported Regions": "Certificates in ACM are regional resources ... you must request
        or import a certificate for each region"), in its own partition; an EKS access entry
        takes a principal of the cluster's partition."""
        expected = partitions.partition_of(self.region)[0]
        arn = self.network.certificate_arn
        if arn is not None:
            _, partition, _, region, _ = arn.split(":", 4)
            if region != self.region or partition != expected:
                raise ValueError(
                    f"network.certificateArn: the certificate is in {region} ({partition}), "
                    f"the stack in {self.region} ({expected}); the ALB can only use an ACM "
                    f"certificate from its own Region: request or import one in {self.region}"
                )
        for i, role in enumerate(self.eks.admin_role_arns if self.eks is not None else []):
            partition = role.split(":", 2)[1]
            if partition != expected:
                raise ValueError(
                    f"eks.adminRoleArns[{i}]: {role} is a role of partition {partition}, the "
                    f"stack's Region {self.region} is in {expected}; an access entry takes a "
                    "principal of the cluster's partition"
                )

    def hf_sources(self) -> list[tuple[str, str]]:
        """(stack key, source) of every Hugging Face source: models and LoRA adapters."""
        out = []
        for i, m in enumerate(self.models):
            if isinstance(parse_source(m.source), HfSource):
                out.append((f"models[{i}].source", m.source))
            for j, a in enumerate(m.lora_adapters):
                if isinstance(parse_source(a.source), HfSource):
                    out.append((f"models[{i}].loraAdapters[{j}].source", a.source))
        return out

    def moving_revisions(self) -> list[tuple[str, str]]:
        """Hugging Face sources that name a branch or tag instead of a commit."""
        out = []
        for key, source in self.hf_sources():
            src = parse_source(source)
            assert isinstance(src, HfSource)
            if not is_commit_sha(src.revision):
                out.append((key, source))
        return out

    @property
    def retention_days(self) -> int:
        if self.log_retention_days is not None:
            return self.log_retention_days
        return 7 if self.ephemeral else (90 if self.environment is Environment.PROD else 30)

    @property
    def nat_gateway_count(self) -> int:
        if self.network.vpc_id is not None:
            return 0
        mode = self.network.nat_gateways or (
            "per-az" if self.environment is Environment.PROD else "single"
        )
        return self.network.availability_zones if mode == "per-az" else 1

    @property
    def prefix(self) -> str:
        """Resource name prefix: short, unique per team and stack, and made only of lowercase
        letters, digits and hyphens."""
        # 20 characters leave room for a role and Pulumi's 8-character suffix within the
        # 32 characters AWS allows for load balancer names.
        full = f"mf-{self.team}-{self.stack}"
        if len(full) <= 20 and _NAME_SAFE.fullmatch(full):
            return full
        # Pulumi's stack names may also hold capitals, "_" and "." ("dev_alice", "prod.eu";
        # pulumi/pulumi validateStackName: ^[A-Za-z0-9_.-]{1,100}$), which S3 bucket, ECR
        # repository, load balancer and EKS cluster names and Kubernetes namespaces refuse:
        # each becomes "-". Cut or changed alone, "mf-platform-staging-eu" and
        # "mf-platform-staging-us" (or "a.b" and "a-b") would share a prefix, and explicitly
        # named resources (dashboard, task families) would collide, so the digest of the
        # name as written follows. A safe name longer than 20 keeps the prefix it always had.
        digest = hashlib.sha256(full.encode()).hexdigest()[:4]
        safe = re.sub(r"[^a-z0-9-]", "-", full.lower())
        return f"{safe[:15].rstrip('-')}-{digest}"


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------

# Top-level keys whose whole value is a secret when it arrives from the engine.
SECRET_PATHS = {
    ("gateway", "apiKeys"),
    ("images", "dockerHubCredentials"),
    ("gateway", "fallback", "apiKey"),
    ("hfToken",),
}


def _loc(loc: tuple[int | str, ...]) -> str:
    if loc == ("region",):
        return "aws:region"  # the one field that comes from another namespace
    out = f"{NAMESPACE}:"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for a bad dict key; the key itself is named
            out += ("." if i else "") + part
    return out


def _describe(err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # Tagged unions and Annotated validators add their own loc parts; keep the user's path.
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
        value = err["input"]
        if isinstance(value, str | int | float | bool) and not _secretish(loc):
            msg += f" (got {value!r})"
    if not loc:
        # Stack-wide rules start their message with the key path they are about.
        return f"{NAMESPACE}:{msg}"
    return f"{_loc(loc)}: {msg}"


def _secretish(loc: tuple[int | str, ...]) -> bool:
    return any(str(p) in {"apiKeys", "apiKey", "hfToken", "dockerHubCredentials"} for p in loc)


def _unwrap_secure(value: Any, path: tuple[str, ...], problems: list[str]) -> Any:
    """Turn `{secure: ciphertext}` into an opaque placeholder, and reject plain secrets."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return ENCRYPTED
        return {k: _unwrap_secure(v, (*path, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secure(v, path, problems) for v in value]
    if path in SECRET_PATHS and isinstance(value, str):
        key = ".".join(path)
        problems.append(
            f"{_loc(path)}: a secret in plain text; set it with "
            f"`pulumi config set --secret --path '{NAMESPACE}:{key}' ...`"
        )
    return value


def _build(raw: dict[str, Any], origin: str, stack: str, region: str | None) -> StackConfig:
    # `stack` and `region` are fields the loaders fill (file name, aws:region), not stack keys:
    # `modelfleet:stack` would be silently overwritten, `modelfleet:region` half-honoured.
    filled = [k for k in ("stack", "region") if k in raw]
    if filled:
        raise ConfigError(
            origin,
            [
                f"{NAMESPACE}:{k}: unknown key (the {k} comes from "
                + ("the stack's name)" if k == "stack" else "aws:region)")
                for k in filled
            ],
        )
    data = dict(raw)
    data["stack"] = stack
    if region:
        data["region"] = region
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(origin, [_describe(e) for e in exc.errors()]) from None


def load_stack_file(path: str | Path) -> StackConfig:
    """Load `stacks/Pulumi.<stack>.yaml`; secrets stay encrypted placeholders."""
    p = Path(path)
    origin = str(p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(origin, ["no such stack file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        # A directory, an unreadable file or a binary one: still one line, no traceback.
        raise ConfigError(origin, [f"cannot read the stack file: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(origin, [f"not valid YAML: {exc}"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise ConfigError(origin, ["expected a mapping with a `config:` section"])
    stack = p.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
    raw: dict[str, Any] = {}
    region = None
    problems: list[str] = []
    for key, value in doc["config"].items():
        ns, _, name = str(key).partition(":")
        if ns == "aws" and name == "region":
            region = str(value)
        elif ns == NAMESPACE:
            raw[name] = _unwrap_secure(value, (name,), problems)
    if problems:
        # A list of plain keys would repeat the same message once per item.
        raise ConfigError(origin, list(dict.fromkeys(problems)))
    return _build(raw, origin, stack, region)


def load_config_mapping(
    values: Mapping[str, Any],
    stack: str,
    secret_keys: set[str] | frozenset[str] = frozenset(),
    origin: str | None = None,
) -> StackConfig:
    """Load from the engine's config: `{"modelfleet:models": "<json>", "aws:region": ...}`.

    Structured values arrive JSON-encoded; keys holding a secret are listed in `secret_keys`.
    """
    origin = origin or f"stacks/Pulumi.{stack}.yaml"
    raw: dict[str, Any] = {}
    region = None
    problems: list[str] = []
    for key, value in values.items():
        ns, _, name = key.partition(":")
        if key == "aws:region":
            region = str(value)
        if ns != NAMESPACE:
            continue
        decoded = value
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                decoded = json.loads(value)
            except json.JSONDecodeError:
                problems.append(f"{key}: not valid JSON")
                continue
        elif isinstance(value, str) and value in ("true", "false"):
            decoded = value == "true"
        raw[name] = decoded
        _check_secret_origin(name, decoded, key in secret_keys, problems)
    if problems:
        raise ConfigError(origin, problems)
    return _build(raw, origin, stack, region)


def _check_secret_origin(name: str, value: Any, is_secret: bool, problems: list[str]) -> None:
    """A secret path present in a key that the engine did not mark secret was typed in plain."""
    if is_secret:
        return
    for path in SECRET_PATHS:
        if path[0] != name:
            continue
        node: Any = value
        for part in path[1:]:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and (len(path) > 1 or isinstance(node, str)):
            _unwrap_secure(node, path, problems)


def resolve_stack(stack: str, stacks_dir: str | Path = "stacks") -> Path:
    """A stack name (`dev`) or a path to a stack file."""
    p = Path(stack)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return Path(stacks_dir) / f"Pulumi.{stack}.yaml"

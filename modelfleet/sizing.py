"""Does a model fit its GPUs, with which tensor parallel, how fast, and how long to start.

Pure arithmetic over the catalogs. Every constant below is an assumption with its reason and
source; `ASSUMPTIONS` lists them for `modelfleet plan`. Figures are estimates meant to catch
a plan that cannot work and to compare plans, not benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from modelfleet.catalog import INSTANCE_TYPES, InstanceType, ModelArch

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Assumption:
    name: str
    value: str
    why: str


# Bytes per weight of the transformer body. 4-bit AWQ/GPTQ with group size 128 stores one
# fp16 scale and one packed 4-bit zero point per 128 weights: 4 + 20/128 bits = 0.52 bytes.
# Embedding and LM head stay 16-bit in every scheme vLLM loads (they are not quantized).
BODY_BYTES = {"bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "awq": 0.52, "gptq": 0.52}

# Per-GPU memory outside weights and KV cache inside vLLM's budget: CUDA context, cuBLAS and
# (with TP) NCCL workspaces, CUDA graphs and the activation peak of a prefill chunk. vLLM's
# profiler reports 1-2 GiB of "non-torch memory" plus activation peak for 7-70B models
# (https://docs.vllm.ai/en/latest/configuration/conserving_memory.html, read 2026-11-23).
RUNTIME_OVERHEAD_GIB = 1.5
TP_OVERHEAD_GIB = 0.5

# Decode kernels reach 60-80 % of peak HBM/GDDR bandwidth; compute-bound batched decode
# reaches ~40 % of dense tensor peak (MFU) on serving workloads.
BANDWIDTH_EFFICIENCY = 0.7
COMPUTE_EFFICIENCY = 0.4

# The "typical request" the throughput and batch size figures assume.
TYPICAL_PROMPT_TOKENS = 1024
TYPICAL_OUTPUT_TOKENS = 256
VLLM_DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default --max-num-seqs for GPU serving

# Cold start. ECS GPU-optimized AL2023 boots and registers its agent in ~2 minutes; the vLLM
# image is ~10 GB compressed (docker hub vllm/vllm-openai tags, 2026-11-23), pulled and
# extracted at ~60 MB/s on a g/p instance (extraction, not network, is the limit); engine
# start (torch.compile, CUDA graph capture) ~90 s. EFS Elastic serves up to 1,500 MiB/s
# per client (https://docs.aws.amazon.com/efs/latest/ug/performance.html, 2026-11-23); one
# NFS connection is counted at 300 MiB/s: the figure at which amazon-efs-utils' efs-proxy
# (what the ECS agent's EFS mounts go through) opens more connections, up to 5 = 1,500 MiB/s
# (github.com/aws/efs-utils v3.2.0 src/proxy/src/controller.rs:33-38, read 2026-12-02;
# modelfleet/coldstart.py uses both).
# LoRA: vLLM preallocates, per LoRA slot (max_loras, default 1: vllm/config/lora.py), an A
# (rank x in) and a B (out x rank) matrix for every projection of every layer, sized by
# --max-lora-rank whatever the adapter's own rank (vllm/lora/layers: lora_a_stacked,
# lora_b_stacked), in the serving activation dtype (2 bytes). The profiler counts them as
# model memory, so they come out of the KV cache.
LORA_SLOTS = 1
INSTANCE_BOOT_SECONDS = 120
VLLM_IMAGE_GB = 10.0
IMAGE_PULL_MBPS = 60.0
ENGINE_INIT_SECONDS = 90
EFS_READ_MIBPS = 300.0

ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "gpu memory",
        "as torch reports it (mem_get_info total)",
        "vLLM budgets gpu_memory_utilization x that, below nvidia-smi's figure",
    ),
    Assumption(
        "bytes per weight",
        ", ".join(f"{k} {v:g}" for k, v in BODY_BYTES.items()),
        "embedding and LM head stay 16-bit",
    ),
    Assumption(
        "checkpoint vs serving",
        "bytes fetched, stored and loaded from the checkpoint; GPU memory from the dtype",
        "online fp8 reads the 16-bit checkpoint and quantizes after loading",
    ),
    Assumption(
        "fp8 below Ada",
        "weight-only (Marlin): 16-bit compute",
        "FP8 tensor cores exist on Ada and Hopper only",
    ),
    Assumption(
        "LoRA",
        f"{LORA_SLOTS} slot x max-lora-rank x (in + out) x 2 bytes per projection",
        "vLLM preallocates adapter buffers by --max-lora-rank",
    ),
    Assumption(
        "runtime overhead",
        f"{RUNTIME_OVERHEAD_GIB} GiB/GPU (+{TP_OVERHEAD_GIB} with TP)",
        "CUDA context, workspaces, CUDA graphs, activation peak",
    ),
    Assumption("bandwidth efficiency", f"{BANDWIDTH_EFFICIENCY:.0%}", "decode reaches 60-80 %"),
    Assumption("compute efficiency", f"{COMPUTE_EFFICIENCY:.0%}", "batched decode MFU"),
    Assumption(
        "typical request",
        f"{TYPICAL_PROMPT_TOKENS} in / {TYPICAL_OUTPUT_TOKENS} out",
        "sets batch size and KV read per token",
    ),
    Assumption("instance boot", f"{INSTANCE_BOOT_SECONDS} s", "ECS GPU AMI boot + agent"),
    Assumption("image pull", f"{VLLM_IMAGE_GB} GB at {IMAGE_PULL_MBPS} MB/s", "pull + extract"),
    Assumption("weight load", f"{EFS_READ_MIBPS} MiB/s", "one NFS connection to EFS Elastic"),
    Assumption("engine init", f"{ENGINE_INIT_SECONDS} s", "torch.compile + CUDA graphs"),
)


class SizingError(ValueError):
    """A plan that cannot run; the message shows the arithmetic and what would work."""


@dataclass(frozen=True)
class Fit:
    tensor_parallel: int
    budget_gib: float  # per GPU: memory x gpu-memory-utilization
    weights_gib: float  # whole model, as served (GPU memory)
    weights_per_gpu_gib: float
    overhead_per_gpu_gib: float  # runtime + LoRA buffers
    kv_bytes_per_token: int  # whole model, all layers
    kv_per_sequence_gib: float  # one maxModelLen sequence, whole model
    kv_per_gpu_for_sequence_gib: float
    kv_pool_gib: float  # what vLLM allocates for KV per replica (all its GPUs)
    kv_pool_tokens: int
    fits: bool

    @property
    def need_per_gpu_gib(self) -> float:
        return (
            self.weights_per_gpu_gib + self.overhead_per_gpu_gib + self.kv_per_gpu_for_sequence_gib
        )


@dataclass(frozen=True)
class Throughput:
    single_stream_tokens_per_s: float
    batch: int
    batched_tokens_per_s: float
    bound: str  # "memory" or "compute"


@dataclass(frozen=True)
class RequestRate:
    requests_per_s: float
    bound: str  # what limits it: "memory (decode)", "compute (decode)" or prefill + decode


@dataclass(frozen=True)
class ColdStart:
    instance_boot_s: float
    image_pull_s: float
    weight_load_s: float
    engine_init_s: float

    @property
    def task_start_s(self) -> float:
        """From task placement on a running instance to vLLM healthy."""
        return self.image_pull_s + self.weight_load_s + self.engine_init_s

    @property
    def container_start_s(self) -> float:
        """From vLLM's container start (image already pulled) to healthy.

        ECS starts a container's health-check clock and a service's grace period once the
        task runs, after the pull, so these are what those windows must cover.
        """
        return self.weight_load_s + self.engine_init_s

    @property
    def total_s(self) -> float:
        """From zero instances to serving."""
        return self.instance_boot_s + self.task_start_s


@dataclass(frozen=True)
class Sizing:
    fit: Fit
    throughput: Throughput
    cold_start: ColdStart
    max_num_seqs: int
    tasks_per_instance: int
    checkpoint_gib: float  # bytes fetched, stored on EFS and read at every start
    lora_gib: float  # per GPU, preallocated adapter buffers
    notes: list[str] = field(default_factory=list)


def weights_bytes(arch: ModelArch, dtype: str) -> float:
    """Bytes of the weights in `dtype`: a checkpoint format or a serving dtype."""
    embed = arch.embedding_parameters_b * 1e9
    body = max(arch.parameters_b * 1e9 - embed, 0.0)
    return body * BODY_BYTES[dtype] + embed * 2


def checkpoint_bytes(arch: ModelArch, checkpoint: str) -> float:
    """What the repository holds: the weights as stored, whatever they are served as."""
    return weights_bytes(arch, checkpoint)


def intermediate_size(arch: ModelArch) -> float:
    """MLP width, from the per-layer parameter count (no catalog field needed).

    A layer holds attention (q, o: h x h; k, v: h x kv_heads x head_dim) and a gated MLP
    (gate, up, down: 3 x h x I); for a mixture of experts this is all experts' width together.
    """
    h = arch.hidden_size
    per_layer = (arch.parameters_b * 1e9 - arch.embedding_parameters_b * 1e9) / arch.layers
    attention = 2 * h * h + 2 * h * arch.kv_heads * arch.head_dim
    return max((per_layer - attention) / (3 * h), 0.0)


def lora_bytes(arch: ModelArch, max_lora_rank: int | None) -> float:
    """Adapter buffers vLLM preallocates: rank x (in + out) x 2 bytes per projection slice."""
    if not max_lora_rank:
        return 0.0
    h, kv = arch.hidden_size, arch.kv_heads * arch.head_dim
    width = intermediate_size(arch)
    # q (h->h), k (h->kv), v (h->kv), o (h->h), gate (h->I), up (h->I), down (I->h)
    in_plus_out = (h + h) + 2 * (h + kv) + (h + h) + 2 * (h + width) + (width + h)
    return LORA_SLOTS * max_lora_rank * in_plus_out * arch.layers * 2


def kv_bytes_per_token(arch: ModelArch, kv_cache_dtype: str) -> int:
    # K and V, every layer, every KV head: 2 x layers x kv_heads x head_dim x bytes.
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * (1 if kv_cache_dtype == "fp8" else 2)


def _kv_share_per_gpu(arch: ModelArch, tp: int) -> float:
    # vLLM shards KV heads over TP ranks and replicates them when TP exceeds the KV heads.
    return max(arch.kv_heads, tp) / arch.kv_heads / tp


def evaluate_fit(
    arch: ModelArch,
    instance: InstanceType,
    dtype: str,
    kv_cache_dtype: str,
    max_model_len: int,
    tp: int,
    gpu_memory_utilization: float,
    lora_gib: float = 0.0,
) -> Fit:
    budget = instance.gpu.memory_gib * gpu_memory_utilization
    w = weights_bytes(arch, dtype) / GIB
    # LoRA buffers are not all sharded by TP (vLLM shards only half of the LoRA computation
    # unless fully_sharded_loras): count them whole on every GPU.
    overhead = RUNTIME_OVERHEAD_GIB + (TP_OVERHEAD_GIB if tp > 1 else 0.0) + lora_gib
    kv_tok = kv_bytes_per_token(arch, kv_cache_dtype)
    kv_seq = kv_tok * max_model_len / GIB
    share = _kv_share_per_gpu(arch, tp)
    kv_seq_gpu = kv_seq * share
    free_per_gpu = budget - w / tp - overhead
    pool_tokens = int(max(free_per_gpu, 0.0) * GIB / (kv_tok * share)) if free_per_gpu > 0 else 0
    return Fit(
        tensor_parallel=tp,
        budget_gib=budget,
        weights_gib=w,
        weights_per_gpu_gib=w / tp,
        overhead_per_gpu_gib=overhead,
        kv_bytes_per_token=kv_tok,
        kv_per_sequence_gib=kv_seq,
        kv_per_gpu_for_sequence_gib=kv_seq_gpu,
        kv_pool_gib=max(free_per_gpu, 0.0) * tp,
        kv_pool_tokens=pool_tokens,
        fits=free_per_gpu >= kv_seq_gpu,
    )


def valid_tensor_parallel(arch: ModelArch, instance: InstanceType) -> list[int]:
    """TP degrees vLLM accepts here: powers of two dividing the GPU count and the heads.

    vLLM also splits the KV heads (QKVParallelLinear): TP must divide them, or be a multiple
    of them when it replicates them.
    """
    return [
        tp
        for tp in (1, 2, 4, 8)
        if tp <= instance.gpus
        and instance.gpus % tp == 0
        and arch.attention_heads % tp == 0
        and (arch.kv_heads % tp == 0 or tp % arch.kv_heads == 0)
    ]


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _explain(fit: Fit, max_model_len: int, instance: InstanceType) -> str:
    tp = fit.tensor_parallel
    return (
        f"per GPU: weights {_fmt(fit.weights_gib)} GiB / TP {tp} = {_fmt(fit.weights_per_gpu_gib)} "
        f"+ runtime {_fmt(fit.overhead_per_gpu_gib)} + KV for one {max_model_len}-token "
        f"sequence {_fmt(fit.kv_per_gpu_for_sequence_gib)} = {_fmt(fit.need_per_gpu_gib)} GiB "
        f"> budget {_fmt(instance.gpu.memory_gib)} GiB (as torch sees it) x utilization "
        f"{round(fit.budget_gib / instance.gpu.memory_gib, 3):g} = {_fmt(fit.budget_gib)} GiB"
    )


def _alternatives(
    arch: ModelArch,
    dtype: str,
    kv_cache_dtype: str,
    max_model_len: int,
    util: float,
    lora_gib: float = 0.0,
) -> list[str]:
    out: list[tuple[float, str]] = []
    for it in INSTANCE_TYPES.values():
        if dtype not in it.gpu.dtypes:
            continue
        for tp in valid_tensor_parallel(arch, it):
            f = evaluate_fit(arch, it, dtype, kv_cache_dtype, max_model_len, tp, util, lora_gib)
            if f.fits:
                out.append((it.on_demand_usd_per_hour, f"{it.name} (TP {tp})"))
                break
    out.sort()
    return [name for _, name in out[:4]]


def _max_len_that_fits(fit: Fit, arch: ModelArch) -> int:
    free = fit.budget_gib - fit.weights_per_gpu_gib - fit.overhead_per_gpu_gib
    if free <= 0:
        return 0
    share = _kv_share_per_gpu(arch, fit.tensor_parallel)
    tokens = int(free * GIB / (fit.kv_bytes_per_token * share))
    return tokens // 256 * 256


def choose_fit(
    arch: ModelArch,
    instance: InstanceType,
    dtype: str,
    kv_cache_dtype: str,
    max_model_len: int,
    tensor_parallel: int | None,
    gpu_memory_utilization: float,
    lora_gib: float = 0.0,
    checkpoint: str | None = None,
) -> Fit:
    """The smallest valid TP that fits, or the given one checked. Raises SizingError."""
    util, lg = gpu_memory_utilization, lora_gib
    if dtype not in instance.gpu.dtypes:
        ok = ", ".join(sorted(instance.gpu.dtypes))
        alts = _alternatives(arch, dtype, kv_cache_dtype, max_model_len, util, lg)
        raise SizingError(
            f"{instance.name} has {instance.gpu.name} ({instance.gpu.arch.value}), which cannot "
            f"run dtype {dtype}; it runs: {ok} (bfloat16 needs Ampere or newer)"
            + (f"; would fit: instanceType: {' or '.join(alts)}" if alts else "")
        )
    if max_model_len > arch.max_context:
        raise SizingError(
            f"maxModelLen {max_model_len} exceeds the model's context of {arch.max_context} tokens"
        )
    valid = valid_tensor_parallel(arch, instance)
    if tensor_parallel is not None:
        if tensor_parallel not in valid:
            raise SizingError(
                f"tensorParallel {tensor_parallel} cannot work on {instance.name}: it must divide "
                f"the instance's {instance.gpus} GPU(s) and the model's {arch.attention_heads} "
                f"attention heads (and divide or be a multiple of its {arch.kv_heads} KV heads); "
                f"valid here: {valid}"
            )
        candidates = [tensor_parallel]
    else:
        candidates = valid
    last: Fit | None = None
    for tp in candidates:
        last = evaluate_fit(arch, instance, dtype, kv_cache_dtype, max_model_len, tp, util, lg)
        if last.fits:
            return last
    assert last is not None  # valid always holds TP 1
    hints = []
    longest = _max_len_that_fits(last, arch)
    if longest >= 256:
        hints.append(f"maxModelLen <= {longest} at TP {last.tensor_parallel}")
    if kv_cache_dtype != "fp8" and "fp8" in instance.gpu.dtypes:
        # Suggest it only when it is enough on its own: halving the KV cache may not be.
        kf = evaluate_fit(
            arch, instance, dtype, "fp8", max_model_len, last.tensor_parallel, util, lg
        )
        if kf.fits:
            hints.append("kvCacheDtype: fp8")
    if dtype in ("bfloat16", "float16"):
        for q in ("fp8", "awq"):
            if q in instance.gpu.dtypes:
                qf = evaluate_fit(
                    arch, instance, q, kv_cache_dtype, max_model_len, last.tensor_parallel, util, lg
                )
                if qf.fits:
                    # fp8 is quantized online from the 16-bit checkpoint; AWQ needs its own.
                    how = (
                        "online from this checkpoint"
                        if q == "fp8" and checkpoint in (None, "bfloat16", "float16")
                        else f"from a {q.upper()} checkpoint"
                    )
                    hints.append(f"dtype: {q} ({how})")
                    break
    alts = _alternatives(arch, dtype, kv_cache_dtype, max_model_len, util, lg)
    if alts:
        hints.append("instanceType: " + " or ".join(alts))
    return_hint = ("; would fit: " + "; ".join(hints)) if hints else ""
    raise SizingError(
        f"does not fit {instance.name} ({instance.gpus} x {instance.gpu.name}): "
        + _explain(last, max_model_len, instance)
        + return_hint
    )


def throughput(
    arch: ModelArch,
    instance: InstanceType,
    fit: Fit,
    dtype: str,
    max_num_seqs: int,
    max_model_len: int,
    *,
    prompt_tokens: int = TYPICAL_PROMPT_TOKENS,
    output_tokens: int = TYPICAL_OUTPUT_TOKENS,
) -> Throughput:
    """Decode tokens/s for one replica: memory-bandwidth bound until compute-bound.

    A decoding sequence holds its prompt and, on average, half its output in the KV cache;
    that context sets the KV read per token and how many sequences the pool holds at once.
    """
    tp = fit.tensor_parallel
    bandwidth = tp * instance.gpu.bandwidth_gbps * 1e9 * BANDWIDTH_EFFICIENCY
    context = min(prompt_tokens + output_tokens // 2, max_model_len)
    kv_read = context * fit.kv_bytes_per_token
    total_w = weights_bytes(arch, dtype)
    active_w = total_w * arch.parameters_read_per_token_b / arch.parameters_b
    single = bandwidth / (active_w + kv_read)
    batch = max(1, min(max_num_seqs, fit.kv_pool_tokens // max(context, 1)))
    # A batch of MoE tokens touches more experts; beyond ~8 tokens all are read per step.
    weights_per_step = min(total_w, active_w * batch)
    t_mem = (weights_per_step + batch * kv_read) / bandwidth
    flops = sustained_flops(instance, dtype, tp)
    t_compute = batch * 2 * arch.parameters_read_per_token_b * 1e9 / flops
    step = max(t_mem, t_compute)
    return Throughput(
        single_stream_tokens_per_s=single,
        batch=batch,
        batched_tokens_per_s=batch / step,
        bound="memory" if t_mem >= t_compute else "compute",
    )


def sustained_flops(instance: InstanceType, dtype: str, tp: int) -> float:
    """FLOP/s one replica's TP GPUs sustain: dense tensor peak x COMPUTE_EFFICIENCY."""
    tflops = (
        instance.gpu.dense_tflops_fp8
        # FP8 math only where the tensor cores have it; below Ada FP8 is weight-only (Marlin)
        if dtype == "fp8" and instance.gpu.fp8_compute and instance.gpu.dense_tflops_fp8
        else instance.gpu.dense_tflops_16bit
    )
    return tp * tflops * 1e12 * COMPUTE_EFFICIENCY


def requests_per_second(
    arch: ModelArch,
    instance: InstanceType,
    sized: Sizing,
    dtype: str,
    max_model_len: int,
    prompt_tokens: int,
    output_tokens: int,
) -> RequestRate:
    """Requests of a given shape one replica completes per second, prefill included.

    vLLM's V1 scheduler puts prompt tokens and decode tokens in the same step (chunked
    prefill: `enable_chunked_prefill: bool = True` in vllm/config/scheduler.py, vllm-project/
    vllm at 01230b40, read 2026-12-01), so a step costs max(memory time, compute time) and
    the prompt's 2 x parameters FLOPs per token share the compute roof with decode. Decode
    alone gives `throughput` (memory- or compute-bound); the compute roof over the whole
    request (prompt + output tokens) caps it. Prefill's own memory traffic (its KV writes)
    is small next to the weights read every step and is left out.
    """
    decode = throughput(
        arch,
        instance,
        sized.fit,
        dtype,
        sized.max_num_seqs,
        max_model_len,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
    )
    flops_per_token = 2 * arch.parameters_read_per_token_b * 1e9
    compute_roof = sustained_flops(instance, dtype, sized.fit.tensor_parallel) / flops_per_token
    decode_rate = decode.batched_tokens_per_s / output_tokens
    compute_rate = compute_roof / (prompt_tokens + output_tokens)
    if compute_rate < decode_rate:
        return RequestRate(compute_rate, "compute (prefill + decode)")
    return RequestRate(decode_rate, f"{decode.bound} (decode)")


def cold_start(checkpoint_gib: float, efs_mibps: float = EFS_READ_MIBPS) -> ColdStart:
    """vLLM reads the checkpoint as stored: a bf16 repository served as fp8 reads 2 bytes a
    weight from EFS and quantizes after loading."""
    return ColdStart(
        instance_boot_s=INSTANCE_BOOT_SECONDS,
        image_pull_s=VLLM_IMAGE_GB * 1000 / IMAGE_PULL_MBPS,
        weight_load_s=checkpoint_gib * 1024 / efs_mibps,
        engine_init_s=ENGINE_INIT_SECONDS,
    )


def derive_max_num_seqs(fit: Fit, max_model_len: int, given: int | None) -> int:
    if given is not None:
        return given
    context = min(TYPICAL_PROMPT_TOKENS + TYPICAL_OUTPUT_TOKENS, max_model_len)
    return max(1, min(VLLM_DEFAULT_MAX_NUM_SEQS, fit.kv_pool_tokens // context))


def size(
    arch: ModelArch,
    instance: InstanceType,
    *,
    dtype: str,
    kv_cache_dtype: str,
    max_model_len: int,
    tensor_parallel: int | None,
    gpu_memory_utilization: float,
    max_num_seqs: int | None,
    checkpoint: str | None = None,
    max_lora_rank: int | None = None,
) -> Sizing:
    """Size `arch` served as `dtype` from a `checkpoint` (default: stored as served)."""
    ckpt = checkpoint or dtype
    lora_gib = lora_bytes(arch, max_lora_rank) / GIB
    fit = choose_fit(
        arch,
        instance,
        dtype,
        kv_cache_dtype,
        max_model_len,
        tensor_parallel,
        gpu_memory_utilization,
        lora_gib,
        ckpt,
    )
    seqs = derive_max_num_seqs(fit, max_model_len, max_num_seqs)
    ckpt_gib = checkpoint_bytes(arch, ckpt) / GIB
    notes = []
    if ckpt != dtype:
        notes.append(
            f"{ckpt} checkpoint served as {dtype}: {ckpt_gib:.1f} GiB fetched, stored and read "
            f"at every start; {fit.weights_gib:.1f} GiB on the GPU after quantizing at load"
        )
    if dtype == "fp8" and not instance.gpu.fp8_compute:
        notes.append(
            f"fp8 on {instance.gpu.name} ({instance.gpu.arch.value}) is weight-only (Marlin): "
            "it saves memory, not compute; throughput assumes 16-bit math"
        )
    tasks = instance.gpus // fit.tensor_parallel
    if tasks > 1:
        notes.append(
            f"{tasks} replicas share one {instance.name} (TP {fit.tensor_parallel} of "
            f"{instance.gpus} GPUs each)"
        )
    return Sizing(
        fit=fit,
        throughput=throughput(arch, instance, fit, dtype, seqs, max_model_len),
        cold_start=cold_start(ckpt_gib),
        max_num_seqs=seqs,
        tasks_per_instance=tasks,
        checkpoint_gib=ckpt_gib,
        lora_gib=lora_gib,
        notes=notes,
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round_up(x: float, step: int) -> int:
    return int(math.ceil(x / step) * step)

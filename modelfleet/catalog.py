"""GPU instance and model catalogs.

Every figure carries the document it came from and the date that document was read, so a
reviewer can check it and a maintainer knows when it went stale. Figures that AWS or NVIDIA
publish in decimal units (GB, GB/s) stay decimal. GPU memory is kept twice: what `nvidia-smi`
reports (MiB) and what torch reports as the device's total (`torch.cuda.mem_get_info()[1]`),
which is what vLLM multiplies by `gpu_memory_utilization` (vllm/v1/worker/utils.py
`request_memory`: `init_snapshot.total_memory * cache_config.gpu_memory_utilization`, the
snapshot's total being torch's); sizing uses the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Source:
    url: str
    date: str  # ISO date the figure was read from the source

    def __str__(self) -> str:
        return f"{self.url} ({self.date})"


class Arch(StrEnum):
    """NVIDIA architecture: decides which dtypes the tensor cores run natively."""

    TURING = "turing"  # sm_75
    AMPERE = "ampere"  # sm_80 / sm_86
    ADA = "ada"  # sm_89
    HOPPER = "hopper"  # sm_90


# vLLM's own support matrix: bf16 needs compute capability >= 8.0; AWQ and GPTQ kernels run
# from Turing (7.5) up. FP8 runs everywhere from 7.5, but only Ada and Hopper (>= 8.9) compute
# in FP8 (W8A8, CUTLASS scaled_mm); below that vLLM falls back to the FP8 Marlin kernel, which is
# weight-only (W8A16): FP8 weights, 16-bit math. It saves memory, not compute.
# vllm/model_executor/layers/quantization/utils/marlin_utils_fp8.py: `is_fp8_marlin_supported()`
# is `current_platform.has_device_capability(75)`; vllm/model_executor/kernels/linear/scaled_mm/
# marlin.py: "FP8 Marlin requires compute capability 7.5 or higher"; docs/features/quantization/
# fp8.md: "Ampere GPUs are supported for W8A16 (weight-only FP8) utilizing Marlin kernels".
# https://docs.vllm.ai/en/latest/features/quantization/supported_hardware.html (2026-11-23)
DTYPE_SUPPORT_SOURCE = Source(
    "https://docs.vllm.ai/en/latest/features/quantization/supported_hardware.html", "2026-11-23"
)
ARCH_DTYPES: dict[Arch, frozenset[str]] = {
    Arch.TURING: frozenset({"float16", "fp8", "awq", "gptq"}),
    Arch.AMPERE: frozenset({"bfloat16", "float16", "fp8", "awq", "gptq"}),
    Arch.ADA: frozenset({"bfloat16", "float16", "fp8", "awq", "gptq"}),
    Arch.HOPPER: frozenset({"bfloat16", "float16", "fp8", "awq", "gptq"}),
}
# Architectures whose tensor cores compute in FP8; elsewhere FP8 is weight-only (Marlin).
FP8_COMPUTE: frozenset[Arch] = frozenset({Arch.ADA, Arch.HOPPER})


@dataclass(frozen=True)
class Gpu:
    name: str
    arch: Arch
    memory_mib: int  # total as nvidia-smi reports it
    bandwidth_gbps: float  # peak memory bandwidth, GB/s (decimal)
    dense_tflops_16bit: float  # dense (no sparsity) FP16/BF16 tensor TFLOPS
    dense_tflops_fp8: float | None
    source: Source
    # Total as torch (and so vLLM) sees it, GiB: below nvidia-smi's figure by what the driver
    # keeps for itself. Published figures where one exists, else derived (see its source).
    torch_total_gib: float
    torch_source: Source
    torch_derived: str = ""  # how the figure was derived when no log of it was found

    @property
    def memory_gib(self) -> float:
        """What vLLM budgets from: torch's total, not nvidia-smi's."""
        return self.torch_total_gib

    @property
    def nvidia_smi_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def dtypes(self) -> frozenset[str]:
        return ARCH_DTYPES[self.arch]

    @property
    def fp8_compute(self) -> bool:
        """False where FP8 runs weight-only (Marlin): memory saved, 16-bit math."""
        return self.arch in FP8_COMPUTE


_NV = "2026-11-23"
_TORCH = "2026-12-01"
# nvidia-smi totals: https://github.com/modal-labs/modal-client/pull/2797 (read 2026-11-23).
# torch totals: torch's OOM message quotes them ("GPU 0 has a total capacity of X GiB"); the
# issues below are public logs of that message on each GPU. No such log was found for the A10G
# and the L4 (both 23028/23034 MiB = 22.49 GiB of GDDR6 by nvidia-smi): their figure is
# nvidia-smi's less 0.44 GiB, the gap measured on the T4, the nearest GDDR6 part
# (15.00 -> 14.56 GiB); the L40S's measured gap (0.57 GiB) says it can be up to 0.13 GiB less.
_T4_GAP = Source("https://github.com/Zheng-Chong/CatVTON/issues/133", _TORCH)
_DERIVED_24G = "nvidia-smi 22.49 GiB less the T4's measured 0.44 GiB nvidia-smi/torch gap"
GPUS: dict[str, Gpu] = {
    "T4": Gpu(
        "NVIDIA T4",
        Arch.TURING,
        15360,
        320,
        65,
        None,
        Source("https://www.nvidia.com/en-us/data-center/tesla-t4/", _NV),
        14.56,
        _T4_GAP,
    ),
    "A10G": Gpu(
        # NVIDIA publishes no A10G tensor figure (the A10's 125 does not apply: lower clocks);
        # ~70 dense BF16 is Baseten's figure and matches a measured 69.5 TFLOPS BF16 GEMM.
        "NVIDIA A10G",
        Arch.AMPERE,
        23028,
        600,
        70,
        None,
        Source("https://www.baseten.co/blog/nvidia-a10-vs-a10g-for-ml-model-inference/", _NV),
        22.05,
        _T4_GAP,
        _DERIVED_24G,
    ),
    "L4": Gpu(
        "NVIDIA L4",
        Arch.ADA,
        23034,
        300,
        121,
        242,
        Source("https://www.nvidia.com/en-us/data-center/l4/", _NV),
        22.05,
        _T4_GAP,
        _DERIVED_24G,
    ),
    "L40S": Gpu(
        "NVIDIA L40S",
        Arch.ADA,
        46068,
        864,
        362,
        733,
        Source("https://www.nvidia.com/en-us/data-center/l40s/", _NV),
        44.42,
        Source("https://github.com/stepfun-ai/Step-Video-T2V/issues/8", _TORCH),
    ),
    "A100-40GB": Gpu(
        # 40960 MiB on current drivers (older drivers report 40536).
        "NVIDIA A100-SXM4-40GB",
        Arch.AMPERE,
        40960,
        1555,
        312,
        None,
        Source("https://www.nvidia.com/en-us/data-center/a100/", _NV),
        39.50,
        Source("https://github.com/TianheWu/CoSeR/issues/10", _TORCH),
    ),
    "A100-80GB": Gpu(
        "NVIDIA A100-SXM4-80GB",
        Arch.AMPERE,
        81920,
        2039,
        312,
        None,
        Source("https://www.nvidia.com/en-us/data-center/a100/", _NV),
        79.14,
        Source("https://github.com/lianqi1008/Control-GIC/issues/6", _TORCH),
    ),
    "H100": Gpu(
        "NVIDIA H100 80GB HBM3",
        Arch.HOPPER,
        81559,
        3350,
        989,
        1979,
        Source("https://www.nvidia.com/en-us/data-center/h100/", _NV),
        79.11,
        Source("https://github.com/vllm-project/vllm/issues/27508", _TORCH),
    ),
}


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu: Gpu
    gpus: int
    vcpus: int
    memory_gib: int
    on_demand_usd_per_hour: float  # us-east-1, Linux
    source: Source
    price_source: Source

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def gpu_memory_gib_total(self) -> float:
        return self.gpu.memory_gib * self.gpus


_SPECS = "2026-11-23"
_PRICE = Source("https://aws.amazon.com/ec2/pricing/on-demand/ (us-east-1, Linux)", "2026-11-23")
# AWS cut on-demand P5 by 44 % and P4d/P4de by 33 % on 2025-06-01; these are the prices after
# it, as in AWS's us-east-1 price list (unchanged through the July 2026 list).
_PRICE_P = Source(
    "https://aws.amazon.com/blogs/aws/announcing-up-to-45-price-reduction-for-amazon-ec2-nvidia-gpu-accelerated-instances/",
    "2026-11-23",
)


def _specs(family: str) -> Source:
    return Source(f"https://aws.amazon.com/ec2/instance-types/{family}/", _SPECS)


INSTANCE_TYPES: dict[str, InstanceType] = {
    i.name: i
    for i in (
        InstanceType("g4dn.xlarge", GPUS["T4"], 1, 4, 16, 0.526, _specs("g4"), _PRICE),
        InstanceType("g5.xlarge", GPUS["A10G"], 1, 4, 16, 1.006, _specs("g5"), _PRICE),
        InstanceType("g5.2xlarge", GPUS["A10G"], 1, 8, 32, 1.212, _specs("g5"), _PRICE),
        InstanceType("g5.12xlarge", GPUS["A10G"], 4, 48, 192, 5.672, _specs("g5"), _PRICE),
        InstanceType("g5.48xlarge", GPUS["A10G"], 8, 192, 768, 16.288, _specs("g5"), _PRICE),
        InstanceType("g6.xlarge", GPUS["L4"], 1, 4, 16, 0.8048, _specs("g6"), _PRICE),
        InstanceType("g6.12xlarge", GPUS["L4"], 4, 48, 192, 4.6016, _specs("g6"), _PRICE),
        InstanceType("g6e.xlarge", GPUS["L40S"], 1, 4, 32, 1.861, _specs("g6e"), _PRICE),
        InstanceType("g6e.12xlarge", GPUS["L40S"], 4, 48, 384, 10.49264, _specs("g6e"), _PRICE),
        InstanceType(
            "p4d.24xlarge", GPUS["A100-40GB"], 8, 96, 1152, 21.957642, _specs("p4"), _PRICE_P
        ),
        InstanceType(
            "p4de.24xlarge", GPUS["A100-80GB"], 8, 96, 1152, 27.44705, _specs("p4"), _PRICE_P
        ),
        InstanceType("p5.48xlarge", GPUS["H100"], 8, 192, 2048, 55.04, _specs("p5"), _PRICE_P),
    )
}


@dataclass(frozen=True)
class ModelArch:
    """What sizing needs to know about a transformer; all from the model's config.json."""

    parameters_b: float  # total parameters, billions
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    vocab_size: int = 128256
    tied_embeddings: bool = False
    active_parameters_b: float | None = None  # mixture-of-experts: parameters read per token
    source: Source | None = None
    # How the repository stores its weights (config.json: `torch_dtype`, and
    # `quantization_config.quant_method` for a quantized one). Decides the bytes fetched,
    # stored and read at start; the serving dtype decides GPU memory.
    checkpoint: str = "bfloat16"  # bfloat16 | float16 | fp8 | awq | gptq
    quant_method: str | None = None  # config.json quantization_config.quant_method

    @property
    def hidden_size(self) -> int:
        return self.attention_heads * self.head_dim

    @property
    def embedding_parameters_b(self) -> float:
        """Embedding and LM head: vLLM keeps them 16-bit even in quantized checkpoints."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2) / 1e9

    @property
    def parameters_read_per_token_b(self) -> float:
        return self.active_parameters_b or self.parameters_b


def _hf(repo: str, date: str = "2026-11-23") -> Source:
    return Source(f"https://huggingface.co/{repo}/blob/main/config.json", date)


_LLAMA_70B: dict[str, Any] = {
    "parameters_b": 70.55,
    "layers": 80,
    "attention_heads": 64,
    "kv_heads": 8,
    "head_dim": 128,
    "max_context": 131072,
}

MODELS: dict[str, ModelArch] = {
    "meta-llama/Llama-3.1-8B-Instruct": ModelArch(
        8.03, 32, 32, 8, 128, 131072, source=_hf("meta-llama/Llama-3.1-8B-Instruct")
    ),
    "meta-llama/Llama-3.1-70B-Instruct": ModelArch(
        **_LLAMA_70B, source=_hf("meta-llama/Llama-3.1-70B-Instruct")
    ),
    "meta-llama/Llama-3.3-70B-Instruct": ModelArch(
        **_LLAMA_70B, source=_hf("meta-llama/Llama-3.3-70B-Instruct")
    ),
    "meta-llama/Llama-3.2-3B-Instruct": ModelArch(
        3.21,
        28,
        24,
        8,
        128,
        131072,
        tied_embeddings=True,
        source=_hf("meta-llama/Llama-3.2-3B-Instruct"),
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": ModelArch(
        7.25,
        32,
        32,
        8,
        128,
        32768,
        vocab_size=32768,
        source=_hf("mistralai/Mistral-7B-Instruct-v0.3"),
    ),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": ModelArch(
        46.7,
        32,
        32,
        8,
        128,
        32768,
        vocab_size=32000,
        active_parameters_b=12.9,
        source=_hf("mistralai/Mixtral-8x7B-Instruct-v0.1"),
    ),
    "Qwen/Qwen2.5-7B-Instruct": ModelArch(
        # 32768 native; 131072 only with YaRN rope scaling, which vLLM does not enable by default.
        7.62,
        28,
        28,
        4,
        128,
        32768,
        vocab_size=152064,
        source=_hf("Qwen/Qwen2.5-7B-Instruct"),
    ),
    "Qwen/Qwen2.5-72B-Instruct": ModelArch(
        72.7, 80, 64, 8, 128, 32768, vocab_size=152064, source=_hf("Qwen/Qwen2.5-72B-Instruct")
    ),
}


def _quantized(base: str, repo: str, checkpoint: str, quant_method: str) -> ModelArch:
    """A published quantized checkpoint of a catalog model: same architecture, other bytes."""
    return replace(
        MODELS[base], checkpoint=checkpoint, quant_method=quant_method, source=_hf(repo, _TORCH)
    )


# Quantized checkpoints that change what a model costs to fetch and hold. Each repository's
# config.json names its quant_method (AWQ: "awq", 4-bit, group 128; RedHatAI's FP8-dynamic:
# "compressed-tensors", FP8 weights with per-channel scales), which vLLM reads on its own.
QUANTIZED: dict[str, tuple[str, str, str]] = {
    # repo: (base model, checkpoint, quant_method)
    "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4": (
        "meta-llama/Llama-3.1-8B-Instruct",
        "awq",
        "awq",
    ),
    "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4": (
        "meta-llama/Llama-3.1-70B-Instruct",
        "awq",
        "awq",
    ),
    "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic": (
        "meta-llama/Llama-3.3-70B-Instruct",
        "fp8",
        "compressed-tensors",
    ),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8": (
        "meta-llama/Llama-3.1-8B-Instruct",
        "fp8",
        "compressed-tensors",
    ),
    "Qwen/Qwen2.5-7B-Instruct-AWQ": ("Qwen/Qwen2.5-7B-Instruct", "awq", "awq"),
    "Qwen/Qwen2.5-72B-Instruct-AWQ": ("Qwen/Qwen2.5-72B-Instruct", "awq", "awq"),
}
MODELS.update({repo: _quantized(*spec[:1], repo, *spec[1:]) for repo, spec in QUANTIZED.items()})

# Short names a stack file may use for `model:`; the catalog key is the Hugging Face repo id.
MODEL_ALIASES: dict[str, str] = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
    "llama-3.1-8b-awq": "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    "llama-3.1-70b-awq": "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
    "llama-3.3-70b-fp8": "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic",
    "llama-3.1-8b-fp8": "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8",
    "qwen2.5-7b-awq": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "qwen2.5-72b-awq": "Qwen/Qwen2.5-72B-Instruct-AWQ",
}


def lookup_model(key: str) -> ModelArch | None:
    return MODELS.get(MODEL_ALIASES.get(key, key))


def canonical_model(key: str) -> str:
    return MODEL_ALIASES.get(key, key)


@dataclass(frozen=True)
class ApiPrice:
    """A hosted API's list price for a model, USD per 1M tokens, for break-even comparisons."""

    provider: str
    model: str  # the provider's model id
    input_usd_per_million: float
    output_usd_per_million: float
    # The provider's own price page and the date the figure was read; None for a price given
    # on the command line.
    source: Source | None
    read_via: str = ""  # the page the figure was read from, where it quotes the provider's


_API_READ = "2026-12-01"
# Named with `modelfleet recommend --api NAME`. The provider pages are the authority; the
# figures were read from pages quoting them (given in read_via, each with its own date).
API_PRICES: dict[str, ApiPrice] = {
    "groq-llama-3.3-70b": ApiPrice(
        "Groq",
        "llama-3.3-70b-versatile",
        0.59,
        0.79,
        Source("https://groq.com/pricing", _API_READ),
        "https://theneuralbase.com/groq/learn/intermediate/cost-per-user-for-voice-applications/"
        " (Groq pricing 'as of April 2026')",
    ),
    "groq-llama-3.1-8b": ApiPrice(
        "Groq",
        "llama-3.1-8b-instant",
        0.05,
        0.08,
        Source("https://groq.com/pricing", _API_READ),
        "https://smithery.ai/skills/jeremylongshore/groq-cost-tuning (quoting groq.com/pricing)",
    ),
    "openai-gpt-4o-mini": ApiPrice(
        "OpenAI",
        "gpt-4o-mini",
        0.15,
        0.60,
        Source("https://platform.openai.com/docs/pricing", _API_READ),
        "https://aimodelcalc.pages.dev/guides/openai-api-pricing.html (source: "
        "platform.openai.com/docs/pricing, May 2026)",
    ),
}

"""The catalogs hold what issue 2 asks for, every figure with its source and the date read."""

from __future__ import annotations

import re

import pytest

from modelfleet.catalog import (
    GPUS,
    INSTANCE_TYPES,
    MODEL_ALIASES,
    MODELS,
    QUANTIZED,
    Arch,
    Source,
    canonical_model,
    lookup_model,
)

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

REQUIRED_INSTANCES = {
    "g4dn.xlarge", "g5.xlarge", "g5.2xlarge", "g5.12xlarge", "g5.48xlarge", "g6.xlarge",
    "g6.12xlarge", "g6e.xlarge", "g6e.12xlarge", "p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge",
}  # fmt: skip
REQUIRED_MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.2-3B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct",
}  # fmt: skip


def test_required_entries_present() -> None:
    assert REQUIRED_INSTANCES - set(INSTANCE_TYPES) == set()
    assert REQUIRED_MODELS - set(MODELS) == set()


def test_every_figure_has_a_source_and_a_date() -> None:
    sources: list[Source | None] = [g.source for g in GPUS.values()]
    sources += [s for i in INSTANCE_TYPES.values() for s in (i.source, i.price_source)]
    sources += [m.source for m in MODELS.values()]
    sources += [g.torch_source for g in GPUS.values()]
    for source in sources:
        assert source is not None
        assert source.url.startswith("https://"), source
        assert ISO_DATE.match(source.date), source


@pytest.mark.parametrize(
    ("arch", "bf16", "fp8_compute"),
    [(Arch.TURING, False, False), (Arch.AMPERE, True, False), (Arch.ADA, True, True),
     (Arch.HOPPER, True, True)],
)  # fmt: skip
def test_dtype_support_by_architecture(arch: Arch, bf16: bool, fp8_compute: bool) -> None:
    # FP8 runs from compute capability 7.5 (Marlin, weight-only below Ada), FP8 math only on
    # Ada and Hopper (vLLM marlin_utils_fp8.is_fp8_marlin_supported: capability >= 75).
    gpu = next(g for g in GPUS.values() if g.arch is arch)
    assert ("bfloat16" in gpu.dtypes, gpu.fp8_compute) == (bf16, fp8_compute)
    assert {"float16", "fp8", "awq", "gptq"} <= gpu.dtypes


def test_instances_are_consistent() -> None:
    for name, it in INSTANCE_TYPES.items():
        assert it.name == name
        assert it.gpus in (1, 4, 8)
        assert it.on_demand_usd_per_hour > 0
    # nvidia-smi's figure is kept (L4 23034 MiB = 22.49 GiB, not "24 GB"), but sizing uses
    # torch's total, what vLLM multiplies by gpu_memory_utilization.
    assert INSTANCE_TYPES["g6.xlarge"].gpu.nvidia_smi_gib == 23034 / 1024
    assert INSTANCE_TYPES["g6.xlarge"].gpu.memory_gib == 22.05
    assert INSTANCE_TYPES["p5.48xlarge"].gpu_memory_gib_total == pytest.approx(8 * 79.11)


@pytest.mark.parametrize(
    ("gpu", "torch_gib"),
    [("T4", 14.56), ("A10G", 22.05), ("L4", 22.05), ("L40S", 44.42), ("A100-40GB", 39.50),
     ("A100-80GB", 79.14), ("H100", 79.11)],
)  # fmt: skip
def test_gpu_memory_as_vllm_sees_it(gpu: str, torch_gib: float) -> None:
    g = GPUS[gpu]
    assert g.memory_gib == torch_gib
    # The driver keeps 0.4-0.9 GiB: torch's total is below nvidia-smi's, never above.
    assert 0.3 < g.nvidia_smi_gib - g.memory_gib < 1.0
    # A published OOM log ("total capacity of X GiB") or a stated derivation.
    assert g.torch_source.url.startswith("https://github.com/")
    assert bool(g.torch_derived) == (gpu in ("A10G", "L4"))


def test_checkpoint_formats() -> None:
    # Every base model is published in bfloat16 (config.json torch_dtype).
    for repo in REQUIRED_MODELS:
        assert (MODELS[repo].checkpoint, MODELS[repo].quant_method) == ("bfloat16", None)
    # Quantized repositories: same architecture as their base, their own format and method.
    for repo, (base, fmt, method) in QUANTIZED.items():
        q, b = MODELS[repo], MODELS[base]
        assert (q.checkpoint, q.quant_method) == (fmt, method)
        assert (q.parameters_b, q.layers, q.kv_heads) == (b.parameters_b, b.layers, b.kv_heads)
        assert q.source is not None and repo in q.source.url
    assert MODELS["RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"].quant_method == (
        "compressed-tensors"
    )


def test_models_are_consistent() -> None:
    for arch in MODELS.values():
        assert arch.attention_heads % arch.kv_heads == 0
        assert arch.parameters_read_per_token_b <= arch.parameters_b
    # hidden size = heads x head dim: Llama-3.1-8B 32 x 128 = 4096, Qwen2.5-7B 28 x 128 = 3584
    assert MODELS["meta-llama/Llama-3.1-8B-Instruct"].hidden_size == 4096
    assert MODELS["Qwen/Qwen2.5-7B-Instruct"].hidden_size == 3584


def test_aliases_resolve() -> None:
    for alias, repo in MODEL_ALIASES.items():
        assert canonical_model(alias) == repo
        assert lookup_model(alias) is MODELS[repo]
    assert lookup_model("Qwen/Qwen2.5-7B-Instruct") is MODELS["Qwen/Qwen2.5-7B-Instruct"]
    assert lookup_model("llama-9b") is None

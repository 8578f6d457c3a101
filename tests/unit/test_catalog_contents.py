"""The catalogs hold what issue 2 asks for, every figure with its source and the date read."""

from __future__ import annotations

import re

import pytest

from modelfleet.catalog import (
    GPUS,
    INSTANCE_TYPES,
    MODEL_ALIASES,
    MODELS,
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
    for source in sources:
        assert source is not None
        assert source.url.startswith("https://"), source
        assert ISO_DATE.match(source.date), source


@pytest.mark.parametrize(
    ("arch", "bf16", "fp8"),
    [(Arch.TURING, False, False), (Arch.AMPERE, True, False), (Arch.ADA, True, True),
     (Arch.HOPPER, True, True)],
)  # fmt: skip
def test_dtype_support_by_architecture(arch: Arch, bf16: bool, fp8: bool) -> None:
    gpu = next(g for g in GPUS.values() if g.arch is arch)
    assert ("bfloat16" in gpu.dtypes, "fp8" in gpu.dtypes) == (bf16, fp8)
    assert {"float16", "awq", "gptq"} <= gpu.dtypes


def test_instances_are_consistent() -> None:
    for name, it in INSTANCE_TYPES.items():
        assert it.name == name
        assert it.gpus in (1, 4, 8)
        assert it.on_demand_usd_per_hour > 0
    # GPU memory as nvidia-smi reports it: e.g. L4 23034 MiB = 22.49 GiB, not "24 GB".
    assert INSTANCE_TYPES["g6.xlarge"].gpu.memory_gib == 23034 / 1024
    assert INSTANCE_TYPES["p5.48xlarge"].gpu_memory_gib_total == pytest.approx(8 * 81559 / 1024)


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

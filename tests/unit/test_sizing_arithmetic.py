"""Sizing against hand-computed cases; the arithmetic is written next to each figure.

GiB = 2**30 bytes. GPU memory is what torch reports as the device total (what vLLM multiplies by
gpu_memory_utilization), e.g. L4 22.05 GiB, not nvidia-smi's 23034 MiB = 22.49 GiB.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelfleet import sizing
from modelfleet.catalog import INSTANCE_TYPES, MODELS, Arch, ModelArch
from modelfleet.sizing import GIB, SizingError, choose_fit, evaluate_fit, size, weights_bytes

LLAMA_8B = MODELS["meta-llama/Llama-3.1-8B-Instruct"]
LLAMA_70B = MODELS["meta-llama/Llama-3.1-70B-Instruct"]
LLAMA_3B = MODELS["meta-llama/Llama-3.2-3B-Instruct"]
QWEN_7B = MODELS["Qwen/Qwen2.5-7B-Instruct"]
MIXTRAL = MODELS["mistralai/Mixtral-8x7B-Instruct-v0.1"]
G6 = INSTANCE_TYPES["g6.xlarge"]  # 1 x L4, 22.05 GiB as torch sees it, 300 GB/s
UTIL = 0.9

# Llama-3.1-8B: embedding + LM head (untied) = 128256 vocab x 4096 hidden x 2 = 1,050,673,152
# parameters, always 16-bit; the body is 8.03e9 - 1,050,673,152 = 6,979,326,848 parameters.
EMBED_8B = 128256 * 4096 * 2
BODY_8B = 8.03e9 - EMBED_8B


def test_catalog_embedding_parameters() -> None:
    assert EMBED_8B == 1_050_673_152
    assert LLAMA_8B.embedding_parameters_b * 1e9 == pytest.approx(EMBED_8B)
    # Llama-3.2-3B ties the LM head to the embedding: 128256 x 3072 once = 394,002,432.
    assert LLAMA_3B.embedding_parameters_b * 1e9 == pytest.approx(128256 * 3072)


@pytest.mark.parametrize(
    ("arch", "dtype", "expected_bytes"),
    [
        # bf16: every parameter at 2 bytes: 8.03e9 x 2 = 16.06e9 bytes = 14.957 GiB
        (LLAMA_8B, "bfloat16", BODY_8B * 2 + EMBED_8B * 2),
        (LLAMA_8B, "float16", 16.06e9),
        # fp8: body at 1 byte, embedding 2: 6.979e9 + 2.101e9 = 9.081e9 bytes = 8.457 GiB
        (LLAMA_8B, "fp8", BODY_8B * 1 + EMBED_8B * 2),
        # AWQ/GPTQ 4-bit, group 128: 4 bits + 16-bit scale and 4-bit zero per 128 weights
        # = 4 + 20/128 bits = 0.52 bytes; 6.979e9 x 0.52 + 2.101e9 = 5.731e9 bytes = 5.337 GiB
        (LLAMA_8B, "awq", BODY_8B * 0.52 + EMBED_8B * 2),
        (LLAMA_8B, "gptq", BODY_8B * 0.52 + EMBED_8B * 2),
        # Llama-3.2-3B awq, tied: (3.21e9 - 394,002,432) x 0.52 + 394,002,432 x 2 = 2.252e9
        (LLAMA_3B, "awq", (3.21e9 - 394_002_432) * 0.52 + 394_002_432 * 2),
        # Llama-70B fp8: embed 128256 x 8192 x 2 = 2,101,346,304; (70.55e9 - 2.101e9) x 1
        # + 2.101e9 x 2 = 72.651e9 bytes = 67.66 GiB
        (LLAMA_70B, "fp8", (70.55e9 - 128256 * 8192 * 2) + 128256 * 8192 * 2 * 2),
    ],
)
def test_weight_bytes(arch: ModelArch, dtype: str, expected_bytes: float) -> None:
    assert weights_bytes(arch, dtype) == pytest.approx(expected_bytes, rel=1e-9)


def test_weight_sizes_in_gib() -> None:
    assert weights_bytes(LLAMA_8B, "bfloat16") / GIB == pytest.approx(14.957, abs=1e-3)
    assert weights_bytes(LLAMA_8B, "awq") / GIB == pytest.approx(5.337, abs=1e-3)
    # 70.55e9 x 2 = 141.1e9 bytes = 131.41 GiB
    assert weights_bytes(LLAMA_70B, "bfloat16") / GIB == pytest.approx(131.41, abs=1e-2)


def test_kv_cache_per_token() -> None:
    # 2 (K and V) x 32 layers x 8 KV heads x 128 head dim x 2 bytes = 131,072 bytes per token,
    # so 8192 tokens = 8192 x 131072 = 2**30 bytes = exactly 1 GiB.
    assert sizing.kv_bytes_per_token(LLAMA_8B, "auto") == 2 * 32 * 8 * 128 * 2 == 131072
    assert sizing.kv_bytes_per_token(LLAMA_8B, "fp8") == 65536  # 1 byte per element
    # Qwen2.5-7B: 2 x 28 layers x 4 KV heads x 128 x 2 = 57,344 bytes
    assert sizing.kv_bytes_per_token(QWEN_7B, "auto") == 57344
    # Llama-70B: 2 x 80 x 8 x 128 x 2 = 327,680 bytes; 8192 tokens = 2.5 GiB
    assert sizing.kv_bytes_per_token(LLAMA_70B, "auto") * 8192 / GIB == 2.5


def test_llama_8b_fits_an_l4_with_the_arithmetic() -> None:
    fit = evaluate_fit(LLAMA_8B, G6, "bfloat16", "auto", 8192, 1, UTIL)
    # budget: 22.05 GiB (torch's total) x 0.9 = 19.845 GiB; nvidia-smi's 22.494 GiB would
    # promise 0.4 GiB vLLM never gets.
    assert fit.budget_gib == pytest.approx(22.05 * 0.9)
    # need: weights 14.957 + runtime 1.5 + one 8192-token sequence 1.0 = 17.457 GiB
    assert fit.kv_per_sequence_gib == 1.0
    assert fit.overhead_per_gpu_gib == 1.5
    assert fit.need_per_gpu_gib == pytest.approx(14.957 + 1.5 + 1.0, abs=1e-3)
    assert fit.fits
    # KV pool: 19.845 - 14.957 - 1.5 = 3.3880 GiB; / 131072 bytes = 3.3880 x 8192 = 27,754
    assert fit.kv_pool_gib == pytest.approx(3.3880, abs=1e-3)
    assert fit.kv_pool_tokens == 27754


def test_does_not_fit_shows_the_arithmetic_and_what_would_fit() -> None:
    # 65536 tokens of KV: 65536 x 131072 = 8 GiB; 14.96 + 1.5 + 8 = 24.46 > 19.85
    with pytest.raises(SizingError) as info:
        choose_fit(LLAMA_8B, G6, "bfloat16", "auto", 65536, None, UTIL)
    msg = str(info.value)
    assert msg.startswith("does not fit g6.xlarge (1 x NVIDIA L4): ")
    assert (
        "weights 15.0 GiB / TP 1 = 15.0 + runtime 1.5 + KV for one 65536-token sequence 8.0 "
        "= 24.5 GiB > budget 22.1 GiB (as torch sees it) x utilization 0.9 = 19.8 GiB"
    ) in msg
    # The longest context that fits: 3.3880 GiB / 131072 B = 27,754 tokens, down to 256s.
    assert "would fit: maxModelLen <= 27648 at TP 1" in msg
    # fp8 weights: 8.46 + 1.5 + 8 = 17.96 <= 19.85, quantized online from the bf16
    # checkpoint; fp8 KV alone: 14.96 + 1.5 + 4 = 20.46 no.
    assert "dtype: fp8 (online from this checkpoint)" in msg
    assert "kvCacheDtype: fp8" not in msg
    # Cheapest instances where it fits: g6e.xlarge (L40S 46068 MiB, $1.861/h) first.
    assert "instanceType: g6e.xlarge (TP 1) or g6.12xlarge (TP 2)" in msg


def test_fp8_kv_is_suggested_when_it_is_enough() -> None:
    # 40960 tokens: KV 5 GiB -> 21.46 > 19.85; fp8 KV 2.5 GiB -> 18.96 fits.
    with pytest.raises(SizingError, match=r"kvCacheDtype: fp8"):
        choose_fit(LLAMA_8B, G6, "bfloat16", "auto", 40960, None, UTIL)


def test_model_too_big_for_every_instance_says_so() -> None:
    huge = ModelArch(1900.0, 120, 128, 8, 128, 32768)  # 1.9T bf16 = 3.5 TiB
    with pytest.raises(SizingError) as info:
        choose_fit(huge, INSTANCE_TYPES["p5.48xlarge"], "bfloat16", "auto", 4096, None, UTIL)
    assert "does not fit p5.48xlarge" in str(info.value)
    assert "instanceType:" not in str(info.value)


@pytest.mark.parametrize(
    ("instance", "tp", "need"),
    [
        # A10G: 22.05 x 0.9 = 19.845 GiB. TP 4: 131.41/4 = 32.85 > 19.85 already;
        # TP 8: 16.43 + 1.5 + 0.5 (TP) + 2.5/8 KV = 18.74 <= 19.85.
        ("g5.48xlarge", 8, 131.41 / 8 + 2.0 + 2.5 / 8),
        # A100-40GB: 39.50 x 0.9 = 35.55. TP 2: 65.7 > 35.55; TP 4: 32.85 + 2 + 0.625 = 35.48.
        ("p4d.24xlarge", 4, 131.41 / 4 + 2.0 + 2.5 / 4),
        # A100-80GB: 79.14 x 0.9 = 71.23. TP 2: 65.70 + 2 + 1.25 = 68.95 <= 71.23.
        ("p4de.24xlarge", 2, 131.41 / 2 + 2.0 + 2.5 / 2),
    ],
)
def test_tensor_parallel_is_the_smallest_that_fits(instance: str, tp: int, need: float) -> None:
    fit = choose_fit(LLAMA_70B, INSTANCE_TYPES[instance], "bfloat16", "auto", 8192, None, UTIL)
    assert fit.tensor_parallel == tp
    assert fit.need_per_gpu_gib == pytest.approx(need, abs=0.01)
    smaller = evaluate_fit(LLAMA_70B, INSTANCE_TYPES[instance], "bfloat16", "auto", 8192,
                           tp // 2, UTIL)  # fmt: skip
    assert not smaller.fits


def test_replicas_per_instance_follow_tensor_parallel() -> None:
    # 70B on p4d: TP 4 of 8 GPUs -> 2 replicas per instance; 8B on g6.12xlarge: 4 x TP 1.
    s = size(LLAMA_70B, INSTANCE_TYPES["p4d.24xlarge"], dtype="bfloat16", kv_cache_dtype="auto",
             max_model_len=8192, tensor_parallel=None, gpu_memory_utilization=UTIL,
             max_num_seqs=None)  # fmt: skip
    assert (s.fit.tensor_parallel, s.tasks_per_instance) == (4, 2)
    s = size(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], dtype="bfloat16", kv_cache_dtype="auto",
             max_model_len=8192, tensor_parallel=None, gpu_memory_utilization=UTIL,
             max_num_seqs=None)  # fmt: skip
    assert (s.fit.tensor_parallel, s.tasks_per_instance) == (1, 4)
    assert s.notes == ["4 replicas share one g6.12xlarge (TP 1 of 4 GPUs each)"]


def test_given_tensor_parallel_is_checked_not_replaced() -> None:
    # TP 4 given where TP 2 would fit (8B on g6.12xlarge): kept, weights 14.96/4 per GPU.
    fit = choose_fit(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], "bfloat16", "auto", 8192, 4, UTIL)
    assert fit.tensor_parallel == 4
    assert fit.weights_per_gpu_gib == pytest.approx(14.957 / 4, abs=1e-3)
    assert fit.overhead_per_gpu_gib == 2.0  # 1.5 + 0.5 NCCL/TP workspaces


def test_given_tensor_parallel_that_does_not_fit() -> None:
    # 70B bf16 at TP 4 on g5.48xlarge: 32.85 + 2 + 0.625 = 35.48 > 19.85
    with pytest.raises(SizingError) as info:
        choose_fit(LLAMA_70B, INSTANCE_TYPES["g5.48xlarge"], "bfloat16", "auto", 8192, 4, UTIL)
    assert "weights 131.4 GiB / TP 4 = 32.9" in str(info.value)


@pytest.mark.parametrize(
    ("arch", "instance", "tp", "valid"),
    [
        # Qwen2.5-7B has 28 attention heads: 28 % 8 = 4, so TP 8 cannot split them.
        (QWEN_7B, "g5.48xlarge", 8, "[1, 2, 4]"),
        # TP must divide the instance's GPUs: 3 does not divide 4; 2 > 1 GPU.
        (LLAMA_8B, "g5.12xlarge", 3, "[1, 2, 4]"),
        (LLAMA_8B, "g6.xlarge", 2, "[1]"),
    ],
)
def test_tensor_parallel_that_cannot_work(
    arch: ModelArch, instance: str, tp: int, valid: str
) -> None:
    with pytest.raises(SizingError) as info:
        choose_fit(arch, INSTANCE_TYPES[instance], "bfloat16", "auto", 4096, tp, UTIL)
    msg = str(info.value)
    assert msg.startswith(f"tensorParallel {tp} cannot work on {instance}")
    assert f"{arch.attention_heads} attention heads" in msg
    assert msg.endswith(f"valid here: {valid}")


def test_tensor_parallel_must_split_or_replicate_kv_heads_evenly() -> None:
    # 24 heads and 6 KV heads: TP 4 divides the heads but neither divides nor is a multiple
    # of the 6 KV heads, which vLLM's QKV projection rejects. TP 2 works.
    odd = ModelArch(7.0, 32, 24, 6, 128, 32768)
    assert sizing.valid_tensor_parallel(odd, INSTANCE_TYPES["g6.12xlarge"]) == [1, 2]


def test_kv_heads_replicate_when_tp_exceeds_them() -> None:
    # Qwen2.5-7B has 4 KV heads; at TP 8 each GPU still holds one whole KV head (each is
    # held twice), so a GPU stores 1/4 of the KV cache, not 1/8:
    # 32768 tokens x 57,344 B = 1.75 GiB per sequence -> 1.75 / 4 = 0.4375 GiB per GPU.
    fit = evaluate_fit(QWEN_7B, INSTANCE_TYPES["g5.48xlarge"], "bfloat16", "auto", 32768, 8, UTIL)
    assert fit.kv_per_sequence_gib == pytest.approx(1.75)
    assert fit.kv_per_gpu_for_sequence_gib == pytest.approx(1.75 / 4)
    # At TP 4 = KV heads, no replication: 1.75 / 4 too; at TP 2, 1.75 / 2.
    fit4 = evaluate_fit(QWEN_7B, INSTANCE_TYPES["g5.48xlarge"], "bfloat16", "auto", 32768, 4, UTIL)
    fit2 = evaluate_fit(QWEN_7B, INSTANCE_TYPES["g5.48xlarge"], "bfloat16", "auto", 32768, 2, UTIL)
    assert fit4.kv_per_gpu_for_sequence_gib == pytest.approx(1.75 / 4)
    assert fit2.kv_per_gpu_for_sequence_gib == pytest.approx(1.75 / 2)


def test_kv_replication_with_valid_tensor_parallel() -> None:
    # A model with 2 KV heads (32 heads) at TP 4: each KV head on 2 GPUs, share 1/2 per GPU.
    # KV per token: 2 x 32 x 2 x 128 x 2 = 32,768 B; 32768 tokens = 1 GiB -> 0.5 GiB per GPU.
    mqa = ModelArch(7.0, 32, 32, 2, 128, 32768)
    fit = choose_fit(mqa, INSTANCE_TYPES["g6.12xlarge"], "bfloat16", "auto", 32768, 4, UTIL)
    assert fit.kv_per_sequence_gib == 1.0
    assert fit.kv_per_gpu_for_sequence_gib == 0.5
    # Pool: per GPU 19.845 - 7e9 x 2 / 4 / GiB (3.2596) - 2.0 = 14.585 GiB, each token
    # costs 32768 x 1/2 B per GPU -> 14.585 GiB / 16384 B = 955,866 tokens
    free = 22.05 * 0.9 - 14e9 / 4 / GIB - 2.0
    assert fit.kv_pool_tokens == int(free * GIB / 16384)


def test_dtype_the_gpu_cannot_run() -> None:
    # T4 (sm_75) has no bf16; fp8 it runs (weight-only Marlin from 7.5).
    with pytest.raises(SizingError) as info:
        choose_fit(LLAMA_8B, INSTANCE_TYPES["g4dn.xlarge"], "bfloat16", "auto", 4096, None, UTIL)
    msg = str(info.value)
    assert "(turing), which cannot run dtype bfloat16" in msg
    assert "it runs: awq, float16, fp8, gptq (bfloat16 needs Ampere or newer)" in msg
    # ... and where it would run: the cheapest is the L4, $0.8048/h.
    assert "would fit: instanceType: g6.xlarge (TP 1)" in msg


def test_dtypes_the_gpus_can_run() -> None:
    # T4 runs fp16 and 4-bit: Llama-3.2-3B fp16 = 5.98 GiB + 1.5 + 4096 x 114,688 B (0.4375)
    # fits 14.56 (torch's total) x 0.9 = 13.104 GiB.
    fit = choose_fit(LLAMA_3B, INSTANCE_TYPES["g4dn.xlarge"], "float16", "auto", 4096, None, UTIL)
    assert fit.fits and fit.budget_gib == pytest.approx(13.104)
    assert fit.need_per_gpu_gib == pytest.approx(5.979 + 1.5 + 0.4375, abs=1e-3)
    # fp8 everywhere from Turing: FP8 math on Ada (L4) and Hopper (H100), weight-only
    # (Marlin) on Turing (T4) and Ampere (A10G, A100): vLLM marlin_utils_fp8.py
    # is_fp8_marlin_supported() = has_device_capability(75).
    for it in ("g4dn.xlarge", "g5.xlarge", "p4d.24xlarge", "g6.xlarge", "p5.48xlarge"):
        assert choose_fit(LLAMA_8B, INSTANCE_TYPES[it], "fp8", "auto", 4096, None, UTIL).fits


def test_max_model_len_beyond_the_model_context() -> None:
    # Qwen2.5-7B: 32768 native context
    with pytest.raises(
        SizingError, match=r"maxModelLen 65536 exceeds the model's context of 32768"
    ):
        choose_fit(QWEN_7B, INSTANCE_TYPES["g6e.xlarge"], "bfloat16", "auto", 65536, None, UTIL)


def test_single_stream_and_batched_throughput() -> None:
    s = size(LLAMA_8B, G6, dtype="bfloat16", kv_cache_dtype="auto", max_model_len=8192,
             tensor_parallel=None, gpu_memory_utilization=UTIL, max_num_seqs=None)  # fmt: skip
    # Single stream: TP x bandwidth x 0.7 / bytes read per token; a token reads all weights
    # (16.06e9 B) and the KV of the typical context 1024 + 256/2 = 1152 tokens x 131072 B.
    # 1 x 300e9 x 0.7 / (16.06e9 + 150,994,944) = 210e9 / 16.211e9 = 12.95 tokens/s
    kv_read = 1152 * 131072
    assert s.throughput.single_stream_tokens_per_s == pytest.approx(
        300e9 * 0.7 / (16.06e9 + kv_read)
    )
    assert s.throughput.single_stream_tokens_per_s == pytest.approx(12.95, abs=0.01)
    # max-num-seqs: KV pool 27,754 tokens / (1024 + 256) per request = 21
    assert s.max_num_seqs == 27754 // 1280 == 21
    # Batch: min(21 seqs, 27754 // 1152 = 24) = 21. One step reads the weights once and 21
    # contexts: (16.06e9 + 21 x 150,994,944) / 210e9 = 0.09158 s; compute: 21 x 2 x 8.03e9
    # FLOP / (121e12 x 0.4) = 0.00697 s -> memory bound, 21 / 0.09158 = 229.3 tokens/s.
    assert s.throughput.batch == 21
    assert s.throughput.bound == "memory"
    assert s.throughput.batched_tokens_per_s == pytest.approx(
        21 / ((16.06e9 + 21 * kv_read) / 210e9)
    )
    assert s.throughput.batched_tokens_per_s == pytest.approx(229.32, abs=0.01)


def test_single_stream_scales_with_tensor_parallel() -> None:
    # Same model and context on TP 2 of g6.12xlarge: twice the bandwidth, same bytes.
    fit1 = choose_fit(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], "bfloat16", "auto", 8192, 1, UTIL)
    fit2 = choose_fit(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], "bfloat16", "auto", 8192, 2, UTIL)
    t1 = sizing.throughput(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], fit1, "bfloat16", 8, 8192)
    t2 = sizing.throughput(LLAMA_8B, INSTANCE_TYPES["g6.12xlarge"], fit2, "bfloat16", 8, 8192)
    assert t2.single_stream_tokens_per_s == pytest.approx(2 * t1.single_stream_tokens_per_s)


def test_mixture_of_experts_reads_only_active_weights_per_token() -> None:
    # Mixtral: 46.7e9 parameters, 12.9e9 active; bf16 weights 46.7e9 x 2 = 93.4e9 B, a token
    # reads 93.4e9 x 12.9 / 46.7 = 25.8e9 B. On g6e.12xlarge (TP 4 of L40S, 864 GB/s):
    # 4 x 864e9 x 0.7 / (25.8e9 + 1152 x 131072) = 2419.2e9 / 25.951e9 = 93.2 tokens/s
    s = size(MIXTRAL, INSTANCE_TYPES["g6e.12xlarge"], dtype="bfloat16", kv_cache_dtype="auto",
             max_model_len=8192, tensor_parallel=None, gpu_memory_utilization=UTIL,
             max_num_seqs=None)  # fmt: skip
    assert s.fit.tensor_parallel == 4
    assert s.throughput.single_stream_tokens_per_s == pytest.approx(
        4 * 864e9 * 0.7 / (93.4e9 * 12.9 / 46.7 + 1152 * 131072)
    )


def test_cold_start_components() -> None:
    # boot 120 s; image 10 GB x 1000 / 60 MB/s = 166.7 s; weights 14.957 GiB x 1024 / 300
    # MiB/s = 51.05 s; engine 90 s. On a running instance: 166.7 + 51.05 + 90 = 307.7 s;
    # from zero instances: + 120 = 427.7 s.
    c = sizing.cold_start(14.957040548324583)
    assert c.instance_boot_s == 120
    assert c.image_pull_s == pytest.approx(10 * 1000 / 60)
    assert c.weight_load_s == pytest.approx(14.957040548324583 * 1024 / 300)
    assert c.engine_init_s == 90
    assert c.task_start_s == pytest.approx(307.72, abs=0.01)
    assert c.total_s == pytest.approx(427.72, abs=0.01)


def test_max_num_seqs_given_is_kept() -> None:
    fit = choose_fit(LLAMA_8B, G6, "bfloat16", "auto", 8192, None, UTIL)
    assert sizing.derive_max_num_seqs(fit, 8192, 7) == 7
    # Derived: capped at vLLM's default 256 when the pool is large.
    big = choose_fit(LLAMA_8B, INSTANCE_TYPES["p5.48xlarge"], "bfloat16", "auto", 8192, 1, UTIL)
    assert sizing.derive_max_num_seqs(big, 8192, None) == 256


# --- issue 12: checkpoint vs serving precision, FP8 below Ada, LoRA buffers ------------------

LLAMA_33_70B = MODELS["meta-llama/Llama-3.3-70B-Instruct"]
G6E_12 = INSTANCE_TYPES["g6e.12xlarge"]  # 4 x L40S


def test_online_fp8_reads_the_bf16_checkpoint_and_holds_fp8() -> None:
    # The shipped prod 70B: bf16 repository served as fp8. vLLM reads the bf16 weights
    # (online/fp8.py quantizes after loading): 70.55e9 x 2 B = 141.1e9 B = 131.41 GiB are
    # fetched, stored and read from EFS; the GPU holds the fp8 size, 67.66 GiB.
    s = size(LLAMA_33_70B, G6E_12, dtype="fp8", kv_cache_dtype="auto", max_model_len=32768,
             tensor_parallel=None, gpu_memory_utilization=UTIL, max_num_seqs=None,
             checkpoint="bfloat16")  # fmt: skip
    assert s.checkpoint_gib == pytest.approx(70.55e9 * 2 / GIB)
    assert s.fit.weights_gib == pytest.approx(
        ((70.55e9 - 128256 * 8192 * 2) * 1 + 128256 * 8192 * 2 * 2) / GIB
    )
    # Load at 300 MiB/s from EFS: 131.41 x 1024 / 300 = 448.5 s, not the 231 s of 67.66 GiB.
    assert s.cold_start.weight_load_s == pytest.approx(70.55e9 * 2 / GIB * 1024 / 300)
    assert s.cold_start.container_start_s == pytest.approx(448.55 + 90, abs=0.1)
    assert any("bfloat16 checkpoint served as fp8: 131.4 GiB" in n for n in s.notes)
    # Without a checkpoint, the stored format is the served one (a real fp8 repository).
    fp8_repo = size(LLAMA_33_70B, G6E_12, dtype="fp8", kv_cache_dtype="auto",
                    max_model_len=32768, tensor_parallel=None, gpu_memory_utilization=UTIL,
                    max_num_seqs=None)  # fmt: skip
    assert fp8_repo.checkpoint_gib == pytest.approx(fp8_repo.fit.weights_gib)


def test_fp8_below_ada_is_weight_only_memory_not_compute() -> None:
    # An Ampere part given an FP8 tensor figure: the plan must still compute at 16-bit rate,
    # because vLLM runs FP8 there through Marlin (W8A16).
    # H100 bandwidth (3350 GB/s) and a 256-token context make a 256-sequence batch
    # compute-heavy: memory (9.08e9 + 256 x 256 x 131072) / (3350e9 x 0.7) = 7.5 ms; compute
    # 256 x 2 x 8.03e9 / (989e12 x 0.4) = 10.4 ms at 16-bit, 5.2 ms at FP8.
    p5 = INSTANCE_TYPES["p5.48xlarge"]
    ampere_like = replace(p5, gpu=replace(p5.gpu, arch=Arch.AMPERE))
    assert p5.gpu.fp8_compute and not ampere_like.gpu.fp8_compute
    fit = choose_fit(LLAMA_8B, p5, "fp8", "auto", 256, 1, UTIL)
    hopper = sizing.throughput(LLAMA_8B, p5, fit, "fp8", 256, 256)
    amp = sizing.throughput(LLAMA_8B, ampere_like, fit, "fp8", 256, 256)
    # Same bytes read (memory-bound single stream is unchanged) ...
    assert amp.single_stream_tokens_per_s == hopper.single_stream_tokens_per_s
    # ... but the compute ceiling is the 16-bit one: 989 TFLOPS, not 1979.
    assert (amp.batch, amp.bound, hopper.bound) == (256, "compute", "memory")
    t_compute_16 = 256 * 2 * 8.03e9 / (989e12 * 0.4)
    assert amp.batched_tokens_per_s == pytest.approx(256 / t_compute_16)
    assert amp.batched_tokens_per_s < hopper.batched_tokens_per_s
    # The plan says so.
    s = size(LLAMA_8B, INSTANCE_TYPES["g5.xlarge"], dtype="fp8", kv_cache_dtype="auto",
             max_model_len=4096, tensor_parallel=None, gpu_memory_utilization=UTIL,
             max_num_seqs=None, checkpoint="bfloat16")  # fmt: skip
    assert any("weight-only (Marlin): it saves memory, not compute" in n for n in s.notes)


def test_lora_buffers_by_max_rank_come_out_of_the_kv_cache() -> None:
    # Llama-3.1-8B: MLP width from the parameter count = (8.03e9 - 1.0507e9) / 32 layers
    # - attention (2 x 4096^2 + 2 x 4096 x 1024) over 3 x 4096 = 14,336 (config.json: 14336).
    assert sizing.intermediate_size(LLAMA_8B) == pytest.approx(14336, abs=1)
    # Per layer, rank x (in + out): q 8192 + k 5120 + v 5120 + o 8192 + gate 18432 + up 18432
    # + down 18432 = 81,920; x 32 layers x 2 bytes x rank 16 = 83.9 MB; rank 64: 0.3125 GiB.
    assert sizing.lora_bytes(LLAMA_8B, 16) == pytest.approx(16 * 81920 * 32 * 2, rel=1e-6)
    assert sizing.lora_bytes(LLAMA_8B, None) == 0.0
    plain = size(
        LLAMA_8B,
        G6,
        dtype="bfloat16",
        kv_cache_dtype="auto",
        max_model_len=8192,
        tensor_parallel=None,
        gpu_memory_utilization=UTIL,
        max_num_seqs=None,
    )
    lora = size(LLAMA_8B, G6, dtype="bfloat16", kv_cache_dtype="auto", max_model_len=8192,
                tensor_parallel=None, gpu_memory_utilization=UTIL, max_num_seqs=None,
                max_lora_rank=64)  # fmt: skip
    assert lora.lora_gib == pytest.approx(0.3125, abs=1e-6)
    assert lora.fit.overhead_per_gpu_gib == pytest.approx(1.5 + 0.3125, abs=1e-6)
    assert plain.fit.kv_pool_gib - lora.fit.kv_pool_gib == pytest.approx(0.3125, abs=1e-6)

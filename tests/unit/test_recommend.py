"""`modelfleet recommend` against hand-computed cases; the arithmetic is next to each figure.

GiB = 2**30 bytes; a month is 730 h; GPU memory is what torch reports (L4 and A10G 22.05 GiB,
T4 14.56, L40S 44.42) at gpuMemoryUtilization 0.9.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from unit_stacks import STACKS, config, write_stack

from modelfleet import cost, recommend
from modelfleet.catalog import INSTANCE_TYPES
from modelfleet.config import load_stack_file
from modelfleet.plan import FleetPlan, build_plan
from modelfleet.recommend import Option, Recommendation, RecommendError, parse_request

MONTH = 730
DAYS = 730 / 24


def rec(**values: Any) -> Recommendation:
    return recommend.recommend(parse_request(values))


def winner(**values: Any) -> Option:
    return rec(**values).options[0]


# --- Hand-computed replica capacity ------------------------------------------------------------
#
# Llama-3.1-8B bf16 on g6.xlarge (1 x L4), request 1024 in / 256 out, maxModelLen 8192:
#   weights 8.03e9 x 2 B = 16.06e9 B = 14.957 GiB; budget 22.05 x 0.9 = 19.845 GiB;
#   free for KV 19.845 - 14.957 - 1.5 runtime = 3.388 GiB; KV per token 2 x 32 layers x 8 KV
#   heads x 128 x 2 B = 131,072 B, so the pool holds 3.388 GiB / 131,072 B = 27,754 tokens.
#   max-num-seqs = 27,754 // (1024 + 256) = 21; a decoding sequence holds 1024 + 256/2 = 1152
#   tokens, so the batch is min(21, 27,754 // 1152 = 24) = 21.
#   One decode step reads the weights once and 21 x 1152 x 131,072 B = 3.171e9 B of KV at
#   300 GB/s x 70 % = 210e9 B/s: (16.06e9 + 3.171e9) / 210e9 = 91.58 ms -> 21 / 0.09158 =
#   229.3 output tokens/s = 0.8958 requests/s.
#   Compute roof: 121 TFLOPS x 40 % = 48.4e12 FLOP/s over 2 x 8.03e9 FLOP per token = 3,013.7
#   tokens/s = 2.354 requests/s of 1280 tokens: not the limit.
#   One replica: 0.8958 x 1280 = 1,146.6 tokens/s, memory-bound.
L4_8B_BF16 = 21 / ((16.06e9 + 21 * 1152 * 131072) / 210e9) / 256 * 1280
# The same on g5.xlarge (1 x A10G, also 22.05 GiB, 600 GB/s, 70 TFLOPS): batch 21 again;
# decode (16.06e9 + 3.171e9) / 420e9 = 45.79 ms -> 458.6 tokens/s = 1.79 requests/s, but the
# compute roof 70e12 x 0.4 / 16.06e9 = 1,743.5 tokens/s = 1.362 requests/s of 1280 tokens is
# lower: 1,743.5 tokens/s, compute-bound (prefill + decode).
A10G_8B_BF16 = 70e12 * 0.4 / 16.06e9


def test_replica_capacity_by_hand() -> None:
    g6 = winner(model="llama-3.1-8b", instance_type=["g6.xlarge"], dtype=["bfloat16"])
    assert round(L4_8B_BF16, 1) == 1146.6
    assert g6.replica_tokens_per_s == pytest.approx(L4_8B_BF16, rel=1e-3)
    assert g6.bound == "memory (decode)"
    g5 = winner(model="llama-3.1-8b", instance_type=["g5.xlarge"], dtype=["bfloat16"])
    assert g5.replica_tokens_per_s == pytest.approx(A10G_8B_BF16, rel=1e-6)
    assert g5.bound == "compute (prefill + decode)"


# --- A small model: the cheapest GPU is obvious -----------------------------------------------


def test_small_model_takes_the_cheapest_instance() -> None:
    # Llama-3.2-3B: 3.21e9 parameters, the 128256 x 3072 embedding tied: 6.42e9 B = 5.98 GiB in
    # 16 bits. The T4 (g4dn.xlarge, the catalog's cheapest at $0.526/h) runs float16, not
    # bfloat16: 5.98 + 1.5 + one 8192-token sequence (2 x 28 x 8 x 128 x 2 B x 8192 = 0.875
    # GiB) = 8.36 GiB <= 15360/1024 x 0.9 = 13.5 GiB. One replica, always on:
    # $0.526 x 730 = $383.98 a month.
    r = rec(model="llama-3.2-3b")
    w = r.options[0]
    assert (w.instance_type, w.dtype, w.tensor_parallel, w.replicas) == (
        "g4dn.xlarge",
        "float16",
        1,
        1,
    )
    assert w.monthly_usd == pytest.approx(0.526 * MONTH)
    assert round(w.monthly_usd, 2) == 383.98
    assert w.model_entry["dtype"] == "float16"
    assert r.max_model_len == 8192  # the model's 131072 context, capped at 8192
    # Cheapest first, and every other instance is either an option or says why not.
    monthly = [o.monthly_usd for o in r.options]
    assert monthly == sorted(monthly)
    named = {o.instance_type for o in r.options} | {x.instance_type for x in r.rejected}
    assert named == set(INSTANCE_TYPES)


def test_same_price_keeps_the_checkpoint_precision() -> None:
    # On g6.xlarge fp8 serves more tokens/s than bf16 for the same $587.50 (0.8048 x 730):
    # quantization is only recommended when it buys something.
    r = rec(model="llama-3.1-8b", instance_type=["g6.xlarge"])
    first, second = r.options[0], r.options[1]
    assert (first.instance_type, first.dtype) == ("g6.xlarge", "bfloat16")
    assert (second.instance_type, second.dtype) == ("g6.xlarge", "fp8")
    assert first.monthly_usd == second.monthly_usd == pytest.approx(0.8048 * MONTH)
    assert second.capacity_tokens_per_s > first.capacity_tokens_per_s


# --- A 70B: quantization changes the winner ---------------------------------------------------


def test_70b_quantization_changes_the_winner() -> None:
    # bf16: 70.55e9 parameters = 131.4 GiB of weights; four L40S (g6e.12xlarge, $10.49264/h)
    # hold 4 x 45.0 x 0.9 = 162 GiB: the cheapest fit, $7,659.63 a month.
    bf16 = winner(model="llama-3.3-70b", dtype=["bfloat16"])
    assert (bf16.instance_type, bf16.tensor_parallel) == ("g6e.12xlarge", 4)
    assert bf16.monthly_usd == pytest.approx(10.49264 * MONTH)
    # fp8: body 68.45e9 x 1 B + embedding 2.10e9 x 2 B = 72.65e9 B = 67.66 GiB; on four L4
    # (g6.12xlarge, $4.6016/h) each GPU holds 67.66/4 = 16.92 + 2.0 runtime + 8192 x 327,680 B
    # / 4 = 0.625 GiB of one sequence = 19.54 <= 20.24 GiB: $3,359.17 a month.
    fp8 = winner(model="llama-3.3-70b")
    assert (fp8.instance_type, fp8.dtype, fp8.tensor_parallel) == ("g6.12xlarge", "fp8", 4)
    assert fp8.monthly_usd == pytest.approx(4.6016 * MONTH)
    assert round(fp8.monthly_usd, 2) == 3359.17


def test_70b_at_load_quantization_cuts_the_instances() -> None:
    # 100,000 requests/day x (2000 + 500) tokens = 2.5e8 tokens/day = 2,893.5 tokens/s;
    # x 2 at the peak = 5,787.0; at 70 % utilization 8,267.2 tokens/s of capacity.
    r = rec(model="llama-3.3-70b", requests_per_day=100_000, input_tokens=2000, output_tokens=500)
    assert r.load.average_tokens_per_s == pytest.approx(2.5e8 / 86400)
    assert r.load.needed_tokens_per_s == pytest.approx(2.5e8 / 86400 * 2 / 0.7)
    assert r.load.needed_tokens_per_s == pytest.approx(8267.2, abs=0.1)
    # fp8 on g6e.12xlarge at TP 4: prefill dominates a 2000-in/500-out request, so the compute
    # roof decides: 4 x 733 TFLOPS x 40 % / (2 x 70.55e9) = 8,311.8 tokens/s >= 8,267.2: one
    # instance, $10.49264 x 730 = $7,659.63.
    w = r.options[0]
    assert (w.instance_type, w.dtype, w.tensor_parallel, w.replicas) == (
        "g6e.12xlarge",
        "fp8",
        4,
        1,
    )
    assert w.replica_tokens_per_s == pytest.approx(4 * 733e12 * 0.4 / (2 * 70.55e9))
    assert w.bound == "compute (prefill + decode)"
    assert w.monthly_usd == pytest.approx(10.49264 * MONTH)
    # In bf16 the same load takes several g6e.12xlarge: at least 2 instances, each priced whole.
    bf16 = next(o for o in r.options if o.dtype == "bfloat16")
    assert bf16.instances >= 2
    assert bf16.monthly_usd == pytest.approx(
        cost.blended_hourly(
            cost.hourly_price(bf16.instance_type), "on-demand", bf16.instances, 0, 0.6
        )
        * MONTH
    )
    assert bf16.monthly_usd > 2 * w.monthly_usd
    # $ per 1M tokens of this load: $7,659.63 / (2.5e8 x 30.4167 days / 1e6) = $1.0073.
    assert w.usd_per_million_tokens == pytest.approx(10.49264 * MONTH / (2.5e8 * DAYS / 1e6))


# --- A load that needs several replicas -------------------------------------------------------


def test_load_that_needs_several_replicas() -> None:
    # 200,000 requests/day x 1280 tokens = 2.56e8 tokens/day = 2,963.0 tokens/s; peak 5,925.9;
    # needed 8,465.6 tokens/s. One g6.xlarge bf16 replica serves 1,146.6 (above):
    # ceil(8,465.6 / 1,146.6) = ceil(7.38) = 8 replicas at peak; the average 2,963.0 over
    # 1,146.6 x 0.7 = 802.6 per replica needs ceil(3.69) = 4. 8 x $0.8048 x 730 = $4,700.03.
    w = winner(
        model="llama-3.1-8b",
        requests_per_day=200_000,
        instance_type=["g6.xlarge"],
        dtype=["bfloat16"],
    )
    needed = 2.56e8 / 86400 * 2 / 0.7
    assert (w.replicas, w.replicas_min, w.instances) == (8, 4, 8)
    assert w.replicas == math.ceil(needed / L4_8B_BF16)
    assert w.capacity_tokens_per_s == pytest.approx(8 * L4_8B_BF16, rel=1e-3)
    assert w.monthly_usd == pytest.approx(8 * 0.8048 * MONTH)
    assert round(w.monthly_usd, 2) == 4700.03
    assert w.model_entry["replicas"] == {"min": 4, "max": 8}


def test_one_big_gpu_beats_several_small_ones() -> None:
    # The same load in bf16 on any instance. One L40S (g6e.xlarge, 46068 MiB = 40.49 GiB
    # budget) holds 196,860 KV tokens: batch 153, decode (16.06e9 + 153 x 1152 x 131,072) /
    # (864e9 x 0.7) = 64.75 ms -> 2,363 output tokens/s = 9.23 requests/s; the compute roof
    # 362 TFLOPS x 40 % / 16.06e9 = 9,016.2 tokens/s = 7.04 requests/s is lower. 9,016.2 >=
    # 8,465.6: one g6e.xlarge, $1.861 x 730 = $1,358.53, under 7 g6.xlarge ($4,112.53) or
    # ceil(8,465.6 / 1,743.5) = 5 g5.xlarge ($3,671.90).
    w = winner(model="llama-3.1-8b", requests_per_day=200_000, dtype=["bfloat16"])
    assert (w.instance_type, w.replicas) == ("g6e.xlarge", 1)
    assert w.replica_tokens_per_s == pytest.approx(362e12 * 0.4 / 16.06e9)
    assert w.monthly_usd == pytest.approx(1.861 * MONTH)
    r = rec(model="llama-3.1-8b", requests_per_day=200_000, dtype=["bfloat16"], top=12)
    g5 = next(o for o in r.options if o.instance_type == "g5.xlarge")
    assert g5.replicas == 5
    assert g5.monthly_usd == pytest.approx(5 * 1.006 * MONTH)


def test_tensor_parallel_is_chosen_by_cost() -> None:
    # On g6.12xlarge (4 x L4) the load needs 7 TP-1 replicas (2 instances); at TP 2 a replica
    # has two GPUs' bandwidth and compute (2 x 121 TFLOPS x 40 % / 16.06e9 = 6,027 tokens/s
    # roof), and two of them, on one instance, carry the 8,465.6 tokens/s.
    w = winner(
        model="llama-3.1-8b",
        requests_per_day=200_000,
        instance_type=["g6.12xlarge"],
        dtype=["bfloat16"],
    )
    assert (w.tensor_parallel, w.instances, w.replicas) == (2, 1, 2)
    assert 2 * w.replica_tokens_per_s >= 2.56e8 / 86400 * 2 / 0.7
    assert w.monthly_usd == pytest.approx(4.6016 * MONTH)


def test_replicas_fill_the_instances_paid_for() -> None:
    # At least 5 replicas on g6.12xlarge: TP 1 packs 4 per instance, so ceil(5/4) = 2
    # instances (2 x $4.6016 x 730 = $6,718.34) and all 8 replicas serve; TP 2
    # would need 3 instances, TP 4 five.
    w = winner(
        model="llama-3.1-8b", min_replicas=5, instance_type=["g6.12xlarge"], dtype=["bfloat16"]
    )
    assert (w.tensor_parallel, w.instances, w.replicas) == (1, 2, 8)
    assert w.monthly_usd == pytest.approx(2 * 4.6016 * MONTH)


def test_schedule_spot_and_min_replicas() -> None:
    # 07:00-20:00 Mon-Fri = 65/168 of the week. The day's 10,000 x 1280 tokens arrive while it
    # runs: 1.28e7 / (86400 x 65/168) = 382.9 tokens/s on average. Spot at 0.6 off, at least 2
    # replicas: 2 x $0.8048 x 0.4 x 730 x 65/168 = $181.846.
    r = rec(
        model="llama-3.1-8b",
        requests_per_day=10_000,
        hours="0 7 * * MON-FRI; 0 20 * * MON-FRI",
        capacity="spot",
        min_replicas=2,
        instance_type=["g6.xlarge"],
    )
    assert r.load.running_fraction == pytest.approx(65 / 168)
    assert r.load.average_tokens_per_s == pytest.approx(1.28e7 / (86400 * 65 / 168))
    w = r.options[0]
    assert w.replicas == 2
    assert w.monthly_usd == pytest.approx(2 * 0.8048 * 0.4 * MONTH * 65 / 168)
    assert round(w.monthly_usd, 2) == 181.85


def test_tokens_per_second_load() -> None:
    # 1,000 tokens/s on average; the shape splits it 1024:256 per day.
    r = rec(model="llama-3.1-8b", tokens_per_second=1000)
    assert r.load.tokens_per_day == pytest.approx(86.4e6)
    assert r.load.input_tokens_per_day == pytest.approx(86.4e6 * 0.8)
    assert r.load.needed_tokens_per_s == pytest.approx(1000 * 2 / 0.7)
    assert r.options[0].capacity_tokens_per_s >= r.load.needed_tokens_per_s


def test_assumptions_are_stated_with_reasons() -> None:
    a = rec(model="llama-3.1-8b").assumptions
    assert a["peak_to_average"].value == "2"
    assert "robustperception" in a["peak_to_average"].why
    assert a["target_utilization"].value == "70%"
    assert "gigagpu" in a["target_utilization"].why
    given = rec(model="llama-3.1-8b", peak_to_average=3, target_utilization=0.5).assumptions
    assert given["peak_to_average"].value == "3"
    assert given["peak_to_average"].why.endswith("given")


# --- Impossible requests ----------------------------------------------------------------------


def test_too_large_for_the_chosen_instances_names_the_nearest() -> None:
    with pytest.raises(RecommendError) as e:
        rec(model="llama-3.3-70b", instance_type=["g6.xlarge", "g5.xlarge"])
    msg = str(e.value)
    assert "\n" not in msg
    assert "tried 2 instance type(s)" in msg
    assert "too large for the GPU memory" in msg
    # the cheapest fit anywhere: fp8 on g6.12xlarge (above)
    assert msg.endswith("nearest: --instance-type g6.12xlarge (TP 4, fp8)")


def test_context_too_long_for_an_instance_names_the_longest_that_fits() -> None:
    # fp8 70B on four L4: 19.845 - 16.915 - 2.0 = 0.93 GiB per GPU for KV; a token takes
    # 327,680 / 4 B per GPU: 0.93 GiB / 81,920 B = 12,1xx tokens, 12,032 in steps of 256.
    with pytest.raises(RecommendError) as e:
        rec(model="llama-3.3-70b", max_model_len=131072, instance_type=["g6.12xlarge"])
    assert "--max-model-len 12032 on g6.12xlarge (TP 4, fp8 from llama-3.3-70b)" in str(e.value)
    assert "--instance-type g6e.12xlarge (TP 4, fp8)" in str(e.value)


def test_model_too_large_for_the_catalog(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:models"] = [
        {
            "name": "huge",
            "source": "s3://acme-models/huge/v1/",
            "parameters": {
                "parametersB": 1500,
                "layers": 120,
                "attentionHeads": 128,
                "kvHeads": 8,
                "headDim": 128,
                "maxContext": 32768,
            },
            "maxModelLen": 8192,
            "instanceType": "p5.48xlarge",
        }
    ]
    path = write_stack(tmp_path, cfg)
    with pytest.raises(RecommendError) as e:
        rec(model=f"{path}#huge")
    # fp8: (1500e9 - 128256 x 16384 x 2) x 1 B + 4.2e9 x 2 B = 1,504.2e9 B = 1,400.9 GiB;
    # p4de.24xlarge has 8 x 79.14 GiB = 633.1 GiB.
    assert "nearest: none: its weights alone take 1,400.9 GiB" in str(e.value)
    assert "p4de.24xlarge) has 633.1 GiB" in str(e.value)


def test_load_beyond_the_replica_limit() -> None:
    with pytest.raises(RecommendError) as e:
        rec(model="llama-3.1-8b", requests_per_day=1e9)
    msg = str(e.value)
    assert "not enough throughput" in msg
    assert "nearest: 100 replicas of" in msg


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"model": "llama-3.1-8b", "max_model_len": 200_000}, "nearest: --max-model-len 131072"),
        ({"model": "llama-3.2-3b", "dtype": ["awq"]}, "--dtype: awq needs a checkpoint"),
        ({"model": "gpt-5"}, "MODEL: 'gpt-5' is neither a catalog model"),
        (
            {"model": "llama-3.1-8b", "requests_per_day": 5, "tokens_per_second": 1},
            "--tokens-per-second: give the load either",
        ),
        ({"model": "llama-3.1-8b", "hours": "0 7 * * *"}, "--hours: expected 24x7"),
        ({"model": "llama-3.1-8b", "hours": "0 25 * * *; 0 1 * * *"}, "hour: 25 is outside"),
        ({"model": "llama-3.1-8b", "api": "nope"}, "--api: unknown API price 'nope'"),
        ({"model": "llama-3.1-8b", "api_input_price": 1.0}, "give both --api-input-price"),
        ({"model": "llama-3.1-8b", "requests_per_day": float("inf")}, "--requests-per-day"),
        ({"model": "llama-3.1-8b", "instance_type": ["x9.huge"]}, "--instance-type: unknown"),
        (
            {"model": "llama-3.1-8b", "max_model_len": 1024, "input_tokens": 1000},
            "--input-tokens: a 1000+256-token request does not fit maxModelLen 1024",
        ),
    ],
)
def test_bad_requests_name_the_option(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RecommendError) as e:
        rec(**values)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


# --- model_entry round-trips through `modelfleet plan` ----------------------------------------

SCENARIOS: list[dict[str, Any]] = [
    {"model": "llama-3.1-8b"},
    {"model": "llama-3.2-3b"},
    {
        "model": "llama-3.3-70b",
        "requests_per_day": 100_000,
        "input_tokens": 2000,
        "output_tokens": 500,
    },
    {"model": "llama-3.1-8b", "requests_per_day": 200_000, "capacity": "mixed"},
    {"model": "mixtral-8x7b", "hours": "0 7 * * MON-FRI; 0 20 * * MON-FRI", "capacity": "spot"},
    {"model": "qwen2.5-72b", "max_model_len": 32768},
]


def _plan_entry(tmp_path: Path, entry: dict[str, Any], hours: str) -> FleetPlan:
    cfg = config()
    cfg["modelfleet:models"] = [entry]
    if hours != recommend.ALWAYS:
        up, _, down = hours.partition(";")
        cfg["modelfleet:schedule"] = {"scaleUp": up.strip(), "scaleDown": down.strip()}
    # through YAML and the real loader, as a pasted entry would go
    return build_plan(load_stack_file(write_stack(tmp_path, cfg)))


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda v: v["model"])
def test_every_top_option_plans_as_a_fit(tmp_path: Path, values: dict[str, Any]) -> None:
    r = rec(**values)
    assert len(r.options) == recommend.DEFAULT_TOP
    for o in r.options:
        entry = yaml.safe_load(yaml.safe_dump(o.model_entry))
        m = _plan_entry(tmp_path, entry, r.load.hours).models[0]
        assert m.fits
        assert (m.instance_type, m.tensor_parallel, m.dtype, m.max_model_len) == (
            o.instance_type,
            o.tensor_parallel,
            o.dtype,
            r.max_model_len,
        )
        assert (m.replicas_min, m.replicas_max) == (o.replicas_min, o.replicas)
        assert m.cost.instances_max == o.instances
        # recommend's monthly cost is the plan's cost at replicas.max, to the cent
        assert o.monthly_usd == pytest.approx(m.cost.monthly_max_usd, abs=0.005)
        assert o.cold_start_s == pytest.approx(m.cold_start_s)


def test_a_stack_file_model_keeps_its_source_schedule_and_pricing(tmp_path: Path) -> None:
    # prod's llama-70b: fp8 at 8192 on g6e.12xlarge, mixed, 06:00-22:00 daily (16/24).
    r = rec(model=f"{STACKS / 'Pulumi.prod.yaml'}#llama-70b")
    prod = load_stack_file(STACKS / "Pulumi.prod.yaml")
    m70 = next(m for m in prod.models if m.name == "llama-70b")
    assert r.load.running_fraction == pytest.approx(16 / 24)
    assert r.capacity == "mixed"
    # its bf16 checkpoint, served as bf16 or quantized to fp8 at load
    assert {o.checkpoint for o in r.options} == {"bfloat16"}
    assert {o.dtype for o in r.options} <= {"bfloat16", "fp8"}
    w = r.options[0]
    assert w.model_entry["source"] == m70.source
    assert w.model_entry["name"] == "llama-70b"
    assert r.notes == []  # pinned to a commit: no note
    # pasted back into the prod stack, it plans, at the same price
    doc = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())
    doc["config"]["modelfleet:models"] = [w.model_entry]
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    p = build_plan(load_stack_file(path))
    assert p.models[0].fits
    assert p.models[0].cost.monthly_max_usd == pytest.approx(w.monthly_usd, abs=0.005)
    # the shared costs counted in the break-even are this stack's (prod: NAT per AZ, endpoints)
    assert r.shared_monthly_usd == pytest.approx(p.shared_cost.total)


def test_a_stack_file_with_several_models_needs_a_name() -> None:
    with pytest.raises(RecommendError) as e:
        rec(model=str(STACKS / "Pulumi.prod.yaml"))
    assert "has 3 models; name one" in str(e.value)
    with pytest.raises(RecommendError) as e:
        rec(model=f"{STACKS / 'Pulumi.prod.yaml'}#nope")
    assert "has no model 'nope'" in str(e.value)


# --- Break-even: the seed cases of `modelfleet breakeven`, re-derived -------------------------


def test_seed_breakeven_self_hosted_cheaper() -> None:
    # test_cost_arithmetic's first seed: 10M input + 2M output tokens/day at $3/$15 per 1M
    # against one g6.xlarge. As a load: 10,000 requests/day x 1000 in / 200 out.
    r = rec(
        model="llama-3.1-8b",
        requests_per_day=10_000,
        input_tokens=1000,
        output_tokens=200,
        instance_type=["g6.xlarge"],
        dtype=["bfloat16"],
        api_input_price=3,
        api_output_price=15,
    )
    seed = cost.breakeven(input_tokens_per_day=10e6, output_tokens_per_day=2e6,
                          api_input_price=3, api_output_price=15,
                          hourly_price_usd=0.8048)  # fmt: skip
    assert r.breakeven is not None
    b = r.breakeven.result
    # API: $60/day x 30.4167 = $1,825.00, as the seed
    assert b.api_monthly_usd == pytest.approx(seed.api_monthly_usd)
    assert round(b.api_monthly_usd, 2) == 1825.00
    # GPUs: one g6.xlarge all month = the seed's $587.50; recommend adds the stack's shared
    # infrastructure (ALB, NAT, EFS, CloudWatch, KMS, secrets)
    assert r.options[0].replicas == 1
    assert r.breakeven.gpu_monthly_usd == pytest.approx(seed.self_hosted_monthly_usd)
    assert r.shared_monthly_usd > 0
    assert b.self_hosted_monthly_usd == pytest.approx(
        seed.self_hosted_monthly_usd + r.shared_monthly_usd
    )
    assert b.cheaper == seed.cheaper == "self-hosted"
    # break-even keeps the $5/M mix: (587.50 + shared) / (30.4167 x 5e-6) tokens/day
    assert b.breakeven_tokens_per_day == pytest.approx(
        (0.8048 * MONTH + r.shared_monthly_usd) / (DAYS * 5e-6)
    )


def test_seed_breakeven_api_cheaper_with_engineering_time() -> None:
    # The second seed: 1M in + 0.1M out per day at $3/$15 against 2 x g5.xlarge plus 10 h x
    # $100 of engineering. As a load: 1,000 requests/day x 1000 in / 100 out, two replicas.
    r = rec(
        model="llama-3.1-8b",
        requests_per_day=1000,
        input_tokens=1000,
        output_tokens=100,
        instance_type=["g5.xlarge"],
        dtype=["bfloat16"],
        min_replicas=2,
        api_input_price=3,
        api_output_price=15,
        engineering_hours=10,
        engineering_rate=100,
    )
    seed = cost.breakeven(input_tokens_per_day=1e6, output_tokens_per_day=0.1e6,
                          api_input_price=3, api_output_price=15, hourly_price_usd=1.006,
                          instances=2, engineering_hours=10,
                          engineering_rate=100)  # fmt: skip
    assert r.breakeven is not None
    b = r.breakeven.result
    assert round(b.api_monthly_usd, 2) == round(seed.api_monthly_usd, 2) == 136.88
    # 2 x $1.006 x 730 = $1,468.76 + $1,000 = the seed's $2,468.76, + shared
    assert r.breakeven.gpu_monthly_usd == pytest.approx(2 * 1.006 * MONTH)
    assert b.self_hosted_monthly_usd == pytest.approx(
        seed.self_hosted_monthly_usd + r.shared_monthly_usd
    )
    assert b.cheaper == seed.cheaper == "api"


def test_named_api_price_carries_source_and_date() -> None:
    r = rec(model="llama-3.3-70b", requests_per_day=100_000, input_tokens=2000,
            output_tokens=500, api="groq-llama-3.3-70b")  # fmt: skip
    assert r.breakeven is not None
    d = r.breakeven.as_dict()
    assert d["api"]["source"] == "https://groq.com/pricing"
    assert d["api"]["date"] == "2026-12-01"
    # API: 2e8 x $0.59 + 5e7 x $0.79 per 1M = $157.50/day x 30.4167 = $4,790.63
    assert d["api_monthly_usd"] == pytest.approx(157.5 * DAYS, abs=0.01)
    assert d["cheaper"] == "api"


# --- `modelfleet plan` notes an instance costing over 1.5x the cheapest fit -------------------


def _plan(tmp_path: Path, **model: Any) -> FleetPlan:
    cfg = config()
    cfg["modelfleet:models"][0] |= model
    return build_plan(load_stack_file(write_stack(tmp_path, cfg)))


def test_plan_notes_a_costlier_instance(tmp_path: Path) -> None:
    # 8B bf16 at 8192 on g6e.xlarge ($1.861/h) fits g6.xlarge ($0.8048/h): 2.31x > 1.5x.
    m = _plan(tmp_path, instanceType="g6e.xlarge").models[0]
    note = next(n for n in m.notes if "cheapest instance that fits" in n)
    assert note.startswith("g6e.xlarge costs $1.86/h at replicas.max 1, 2.3x the $0.80/h of")
    assert "g6.xlarge (TP 1)" in note


def test_plan_compares_at_the_stacks_replicas_and_capacity(tmp_path: Path) -> None:
    # mixed, 2-6 replicas on p4d.24xlarge (8 x A100, TP 1: 8 replicas per instance): one
    # instance on-demand, $21.957642/h. g6.xlarge holds one replica each: 2 on-demand + 4 spot
    # = 2 x 0.8048 + 4 x 0.8048 x 0.4 = $2.8973/h; 21.96 / 2.90 = 7.6x.
    m = _plan(
        tmp_path,
        instanceType="p4d.24xlarge",
        replicas={"min": 2, "max": 6},
        capacity="mixed",
    ).models[0]
    note = next(n for n in m.notes if "cheapest instance" in n)
    assert "costs $21.96/h at replicas.max 6, 7.6x the $2.90/h of g6.xlarge" in note


def test_plan_does_not_note_the_cheapest_or_a_near_one(tmp_path: Path) -> None:
    assert not any("cheapest" in n for n in _plan(tmp_path).models[0].notes)  # g6.xlarge
    # g5.xlarge: $1.006 / $0.8048 = 1.25x, under 1.5x
    g5 = _plan(tmp_path, instanceType="g5.xlarge").models[0]
    assert not any("cheapest" in n for n in g5.notes)


def test_plan_note_on_the_shipped_prod_stack() -> None:
    # prod's llama-8b: g6e.xlarge mixed 2-6 = 2 x 1.861 + 4 x 1.861 x 0.4 = $6.70/h; on
    # g6.xlarge 2 x 0.8048 + 4 x 0.8048 x 0.4 = $2.90/h: 2.3x. Its 70B is already on the
    # cheapest fit.
    p = build_plan(load_stack_file(STACKS / "Pulumi.prod.yaml"))
    assert any(
        n.startswith("g6e.xlarge costs $6.70/h at replicas.max 6, 2.3x the $2.90/h of g6.xlarge")
        for n in p.model("llama-8b").notes
    )
    assert not any("cheapest" in n for n in p.model("llama-70b").notes)


def test_region_and_left_out_dtypes_are_noted() -> None:
    r = rec(model="llama-3.2-3b", region="eu-west-1", dtype=["awq", "float16"])
    assert "prices are us-east-1 list prices; eu-west-1 differs" in r.notes
    assert any(n.startswith("--dtype awq: no such checkpoint") for n in r.notes)
    assert {o.dtype for o in r.options} == {"float16"}


def test_a_stack_entrys_replica_floor_holds_unless_overridden() -> None:
    # prod's llama-8b asks for replicas.min 2 (an on-demand pair in mixed capacity)
    prod8 = f"{STACKS / 'Pulumi.prod.yaml'}#llama-8b"
    r = rec(model=prod8)
    assert all(o.replicas_min >= 2 and o.replicas >= 2 for o in r.options)
    one = rec(model=prod8, min_replicas=1, instance_type=["g6.xlarge"])
    assert one.options[0].replicas_min == 1

"""Settings the plan derives from sizing: health checks, grace, idle timeout, schedules, JSON."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from unit_stacks import STACKS, config, write_stack

from modelfleet.config import RESERVED_VLLM_FLAGS, ConfigError, load_stack_file
from modelfleet.limits import ECS_HEALTHCHECK, check_limits
from modelfleet.plan import FleetPlan, build_plan, vllm_health_check
from modelfleet.sizing import SizingError

# Catalog checkpoints other than the bf16 default; ephemeral test stacks may follow a branch.
AWQ_8B = "hf://hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4@main"
FP8_70B = "hf://RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic@main"


@pytest.fixture(scope="module")
def dev() -> FleetPlan:
    return build_plan(load_stack_file(STACKS / "Pulumi.dev.yaml"))


def _plan(tmp_path: Path, **model: object) -> FleetPlan:
    cfg = config()
    cfg["modelfleet:models"][0] |= model
    return build_plan(load_stack_file(write_stack(tmp_path, cfg)))


def test_short_start_fits_in_the_start_period() -> None:
    # 100 s x 1.5 margin = 150 s <= 300 s: all of it in startPeriod, quick checks after.
    hc = vllm_health_check(100)
    assert (hc.start_period, hc.interval, hc.timeout, hc.retries) == (150, 15, 5, 3)
    # never below a minute
    assert vllm_health_check(10).start_period == 60


def test_long_start_stretches_interval_times_retries() -> None:
    # dev: 307.72 s x 1.5 = 461.6 -> 462 s; startPeriod 300 (ECS max) covers 300, the other
    # 162 s come from 10 retries (ECS max) x ceil(162 / 10) = 17 s.
    hc = vllm_health_check(307.72)
    assert (hc.start_period, hc.retries, hc.interval, hc.timeout) == (300, 10, 17, 10)
    assert hc.budget_s == 300 + 10 * 17 >= 462


@pytest.mark.parametrize("start", [1.0, 150.0, 200.0, 201.0, 307.72, 1000.0, 2200.0])
def test_health_check_within_ecs_limits_and_covers_the_start(start: float) -> None:
    hc = vllm_health_check(start)
    for key, value in (("interval", hc.interval), ("timeout", hc.timeout),
                       ("retries", hc.retries), ("startPeriod", hc.start_period)):  # fmt: skip
        assert ECS_HEALTHCHECK[key].check(key, value) is None
    assert hc.timeout < hc.interval
    assert hc.budget_s >= math.ceil(start * 1.5)


def test_start_beyond_what_ecs_can_wait() -> None:
    # ECS waits at most startPeriod 300 + interval 300 x retries 10 = 3300 s. 2200 s x 1.5
    # = 3300 is the last start it covers; 2201 x 1.5 = 3301.5 -> 3302 s is beyond.
    assert vllm_health_check(2200).budget_s == 3300
    with pytest.raises(SizingError) as info:
        vllm_health_check(2201)
    assert "~3302 s" in str(info.value)
    assert "(300 + 300 x 10 s)" in str(info.value)


def test_dev_plan_derived_settings(dev: FleetPlan) -> None:
    m = dev.model("llama-8b")
    assert m.task_start_s == pytest.approx(307.72, abs=0.01)
    # The pull (10 GB at 60 MB/s = 166.67 s) comes before ECS starts counting; the container
    # start is the weight load (307.72 - 166.67 - 90 = 51.05 s) + engine init 90 = 141.05 s.
    assert m.container_start_s == pytest.approx(141.05, abs=0.01)
    # service grace: 141.05 x 1.5 = 211.6, rounded up to 30 s = 240
    assert m.grace_period_s == 240
    # health check: ceil(211.6) = 212 s fits ECS's 300 s start period, default cadence
    hc = m.vllm_health_check
    assert (hc.start_period, hc.interval, hc.retries) == (212, 15, 3)
    # ALB idle timeout: the longest blocking answer, min(8192, 4096) tokens at 12.95 tokens/s
    # = 316.3 s x 1.5 = 474.4 -> 480 s (rounded up to 30)
    assert dev.alb_idle_timeout_s == 480
    assert dev.https is False
    # task: g6.xlarge has 4 vCPU = 4096 units, 16 GiB x 0.9 registered = 14,745 MiB
    assert (m.task_cpu, m.task_memory_mib) == (4096, 14745)
    assert m.vllm_memory_mib == 14745 - 512 - 1024
    assert check_limits(dev) == []


def test_idle_timeout_given_is_kept(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:network"] = {"idleTimeoutSeconds": 1200}
    assert build_plan(load_stack_file(write_stack(tmp_path, cfg))).alb_idle_timeout_s == 1200


def test_scheduled_actions_in_aws_form(dev: FleetPlan) -> None:
    down, up = dev.scheduled_actions
    assert (down.name, down.schedule, down.timezone) == (
        "mf-platform-dev-llama-8b-scale-down",
        "cron(0 20 ? * MON,TUE,WED,THU,FRI *)",
        "America/New_York",
    )
    assert (down.min_capacity, down.max_capacity) == (0, 0)
    assert (up.name, up.schedule) == (
        "mf-platform-dev-llama-8b-scale-up", "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    )  # fmt: skip
    assert (down.action, up.action) == ("scale-down", "scale-up")
    assert (up.min_capacity, up.max_capacity) == (1, 2)


def test_no_schedule_runs_all_month(tmp_path: Path) -> None:
    p = _plan(tmp_path)
    assert (p.running_fraction, p.scheduled_actions) == (1.0, [])


def test_vllm_command_from_the_plan(dev: FleetPlan) -> None:
    cmd = dev.model("llama-8b").vllm_command
    args = dict(zip(cmd[::2], cmd[1::2], strict=False))
    assert args["--served-model-name"] == "llama-8b"
    assert args["--max-model-len"] == "8192"
    assert args["--tensor-parallel-size"] == "1"
    assert args["--gpu-memory-utilization"] == "0.9"
    assert args["--max-num-seqs"] == "21"  # 27,754 KV tokens / 1280 per typical request
    assert args["--dtype"] == "bfloat16"
    assert args["--model"] == dev.model("llama-8b").model_path
    assert args["--model"].startswith("/models/hf--meta-llama--llama-3.1-8b-instruct--")
    assert cmd[-1] == "--enable-prefix-caching"  # the stack's vllmArgs come last
    # every flag the plan sets appears once
    flags = [a for a in cmd if a.startswith("--")]
    assert len(flags) == len(set(flags))
    assert set(flags) - {"--enable-prefix-caching"} <= RESERVED_VLLM_FLAGS


def test_vllm_command_quantized_fp8_kv_and_lora(tmp_path: Path) -> None:
    lora = [{"name": "rerank", "source": "s3://acme-adapters/rerank/"}]
    p = _plan(tmp_path, source=AWQ_8B, dtype="awq", kvCacheDtype="fp8", maxNumSeqs=32,
              loraAdapters=lora)  # fmt: skip
    cmd = p.models[0].vllm_command
    # L4 (Ada) runs the Marlin kernel; a plain `awq` would force the slow one.
    assert cmd[cmd.index("--quantization") + 1] == "awq_marlin"
    assert "--dtype" not in cmd
    assert cmd[cmd.index("--kv-cache-dtype") + 1] == "fp8"
    assert cmd[cmd.index("--max-num-seqs") + 1] == "32"
    assert "--enable-lora" in cmd
    # vLLM's default max_lora_rank (vllm/config/lora.py) is passed explicitly.
    assert cmd[cmd.index("--max-lora-rank") + 1] == "16"
    assert cmd[cmd.index("--lora-modules") + 1].startswith("rerank=/models/s3--acme-adapters--")


def test_model_that_does_not_fit_names_the_model_key(tmp_path: Path) -> None:
    path = write_stack(tmp_path, config() | {"modelfleet:models": [
        config()["modelfleet:models"][0] | {"maxModelLen": 65536}]})  # fmt: skip
    with pytest.raises(ConfigError) as info:
        build_plan(load_stack_file(path), origin=str(path))
    assert len(info.value.problems) == 1
    assert str(info.value).startswith(
        f"{path}: modelfleet:models[0] (llama-8b): does not fit g6.xlarge (1 x NVIDIA L4): "
    )
    assert "24.5 GiB > budget 22.1 GiB" in str(info.value)


def test_every_model_problem_is_reported(tmp_path: Path) -> None:
    cfg = config()
    first = cfg["modelfleet:models"][0]
    cfg["modelfleet:models"] = [
        first | {"maxModelLen": 65536},
        first | {"name": "on-t4", "instanceType": "g4dn.xlarge"},
        first | {"name": "fine", "maxModelLen": 4096},
    ]
    with pytest.raises(ConfigError) as info:
        build_plan(load_stack_file(write_stack(tmp_path, cfg)))
    assert [p.split(":", 2)[1] for p in info.value.problems] == ["models[0] (llama-8b)",
                                                                  "models[1] (on-t4)"]  # fmt: skip
    assert "cannot run dtype bfloat16" in info.value.problems[1]


def test_to_dict_has_the_contract_keys(dev: FleetPlan) -> None:
    d = dev.to_dict()
    assert d["monthly_usd"] == round(dev.monthly_usd, 2)
    m = d["models"][0]
    for key in ("name", "instance_type", "gpus_per_instance", "tensor_parallel", "weights_gib",
                "kv_cache_gib", "fits", "monthly_usd"):  # fmt: skip
        assert key in m, key
    assert (m["name"], m["instance_type"], m["gpus_per_instance"], m["tensor_parallel"]) == (
        "llama-8b", "g6.xlarge", 1, 1,
    )  # fmt: skip
    assert (m["weights_gib"], m["kv_cache_gib"], m["fits"]) == (14.96, 3.39, True)
    # Added by issue 12 (fields only added, none renamed):
    assert (m["checkpoint"], m["checkpoint_gib"], m["quant_method"]) == ("bfloat16", 14.96, None)
    assert m["max_lora_rank"] is None and m["lora_gib"] == 0.0
    assert list(m["fetch_expect"]) == [m["source"]]
    assert m["monthly_usd"] == 90.92


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_shipped_stacks_plan_within_aws_limits(path: Path) -> None:
    p = build_plan(load_stack_file(path))
    assert check_limits(p) == []
    assert all(m.fits for m in p.models)
    assert p.monthly_usd > 0


@pytest.mark.parametrize(
    ("instance", "dtype", "checkpoint", "method"),
    [
        ("g4dn.xlarge", "awq", "awq", "awq"),  # T4 (Turing): no Marlin kernels
        ("g4dn.xlarge", "gptq", "gptq", "gptq"),
        ("g5.xlarge", "gptq", "gptq", "gptq_marlin"),  # A10G (Ampere)
        # Online FP8 from a 16-bit checkpoint: 0.31's spelling; `fp8` is a deprecated alias
        # there (weight_utils.get_quant_config warns and redirects to fp8_per_tensor).
        ("g6.xlarge", "fp8", "bfloat16", "fp8_per_tensor"),
        ("g5.xlarge", "fp8", "float16", "fp8_per_tensor"),  # weight-only on Ampere
        ("g4dn.xlarge", "fp8", "float16", "fp8_per_tensor"),  # and on Turing (sm_75)
    ],
)
def test_quantization_method_by_gpu(
    tmp_path: Path, instance: str, dtype: str, checkpoint: str, method: str
) -> None:
    m = _plan(tmp_path, instanceType=instance, dtype=dtype, checkpoint=checkpoint,
              maxModelLen=4096).models[0]  # fmt: skip
    cmd = m.vllm_command
    assert cmd[cmd.index("--quantization") + 1] == method
    assert "--dtype" not in cmd


def test_fp8_checkpoint_takes_its_quantization_from_config_json(tmp_path: Path) -> None:
    # A serialized FP8 checkpoint: vLLM reads quantization_config from config.json; RedHatAI's
    # says "compressed-tensors", so a forced `--quantization fp8` would be refused.
    p = _plan(tmp_path, source=FP8_70B, instanceType="g6e.12xlarge", dtype="fp8",
              maxModelLen=8192)  # fmt: skip
    m = p.models[0]
    assert "--quantization" not in m.vllm_command and "--dtype" not in m.vllm_command
    assert (m.checkpoint, m.quant_method) == ("fp8", "compressed-tensors")
    # Stored and served at the same size: no 16-bit read at start.
    assert m.checkpoint_gib == pytest.approx(m.weights_gib)


def test_lora_rank_reaches_the_engine_and_the_fetcher(tmp_path: Path) -> None:
    # Ranks 8 and 48: vLLM accepts max_lora_rank in {1, 8, 16, 32, 64, ...}; 64 covers both.
    lora = [{"name": "small", "source": "s3://acme-adapters/small/", "rank": 8},
            {"name": "big", "source": "s3://acme-adapters/big/", "rank": 48}]  # fmt: skip
    m = _plan(tmp_path, loraAdapters=lora, maxModelLen=4096).models[0]
    cmd = m.vllm_command
    assert cmd[cmd.index("--max-lora-rank") + 1] == "64"
    assert m.max_lora_rank == 64
    assert m.lora_gib == pytest.approx(0.3125, abs=1e-6)  # 64 x 81,920 x 32 layers x 2 B
    assert m.fetch_expect["s3://acme-adapters/big/"] == {
        "key": "modelfleet:models[llama-8b].loraAdapters[big]", "max_lora_rank": 64,
    }  # fmt: skip


def test_fetch_expectations_state_what_the_plan_assumed(tmp_path: Path) -> None:
    m = _plan(tmp_path, dtype="fp8", maxModelLen=4096).models[0]
    # The bf16 repository, served as fp8: the fetcher must find bf16 weights of 16.06e9 B.
    assert m.fetch_expect[m.source] == {
        "key": "modelfleet:models[llama-8b]",
        "quant_method": None,
        "torch_dtype": "bfloat16",
        "weight_bytes": 16_060_000_000,  # 8.03e9 parameters x 2 B
        "weight_bytes_tolerance": 0.1,
        "max_lora_rank": None,
    }
    q = _plan(tmp_path, source=AWQ_8B, dtype="awq", maxModelLen=4096).models[0]
    e = q.fetch_expect[AWQ_8B]
    # AWQ: body 6.979e9 x 0.52 B + embedding and LM head 1.0507e9 x 2 B = 5.731e9 B.
    assert (e["quant_method"], e["torch_dtype"]) == ("awq", None)
    assert e["weight_bytes"] == round((8.03e9 - 128256 * 4096 * 2) * 0.52 + 128256 * 4096 * 4)


def test_moving_revision_on_an_ephemeral_stack_is_a_plan_warning(tmp_path: Path) -> None:
    p = _plan(tmp_path, source="hf://meta-llama/Llama-3.1-8B-Instruct@main")
    assert any(
        "hf://meta-llama/Llama-3.1-8B-Instruct@main follows 'main': the weights can change"
        in n for n in p.models[0].notes
    )  # fmt: skip
    pinned = _plan(tmp_path)
    assert not any("follows" in n for n in pinned.models[0].notes)


def test_prod_70b_health_window_covers_reading_its_bf16_checkpoint() -> None:
    # Issue 12: prod serves the bf16 Llama-3.3-70B repository as fp8. vLLM reads 131.41 GiB
    # (70.55e9 x 2 B) from EFS at 300 MiB/s = 448.5 s, + 90 s engine init = 538.5 s; x 1.5
    # margin = 808 s. Sized at 1 byte a weight (67.66 GiB: 231 s + 90 = 321 s -> 482 s) the
    # task would be killed mid-load and restart in a loop.
    p = build_plan(load_stack_file(STACKS / "Pulumi.prod.yaml"))
    m = p.model("llama-70b")
    assert (m.dtype, m.checkpoint) == ("fp8", "bfloat16")
    assert m.checkpoint_gib == pytest.approx(131.41, abs=0.01)
    assert m.weights_gib == pytest.approx(67.66, abs=0.01)
    load_s = m.checkpoint_gib * 1024 / 300
    assert m.container_start_s == pytest.approx(load_s + 90)
    assert m.vllm_health_check.budget_s >= math.ceil((load_s + 90) * 1.5) == 808
    assert m.grace_period_s >= 808
    assert "--quantization" in m.vllm_command
    assert m.vllm_command[m.vllm_command.index("--quantization") + 1] == "fp8_per_tensor"


def test_efs_and_nat_cost_follow_the_checkpoint(tmp_path: Path) -> None:
    # Served as fp8 or as bf16, the bf16 repository stores and transfers the same 16.06e9 B;
    # only an FP8 repository halves them.
    bf16 = _plan(tmp_path, maxModelLen=4096).shared_cost
    online_fp8 = _plan(tmp_path, dtype="fp8", maxModelLen=4096).shared_cost
    assert (online_fp8.efs_usd, online_fp8.nat_usd) == (bf16.efs_usd, bf16.nat_usd)
    fp8_repo = _plan(tmp_path, source="hf://RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8@main",
                     dtype="fp8", maxModelLen=4096).shared_cost  # fmt: skip
    assert fp8_repo.efs_usd < bf16.efs_usd


def test_listener_priorities_depend_on_names_only() -> None:
    import hashlib
    import itertools

    from modelfleet.plan import listener_priorities

    def slot(name: str) -> int:
        return 1 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 50_000

    seen: dict[int, str] = {}
    for i in itertools.count():  # a birthday pair: about 300 names
        name = f"m{i}"
        if slot(name) in seen:
            a, b = sorted((seen[slot(name)], name))
            break
        seen[slot(name)] = name
    got = listener_priorities([b, "chat", a])
    assert got[a] == slot(a)  # the name that sorts first keeps the slot
    assert got[b] != got[a] and 1 <= got[b] <= 50_000
    assert got == listener_priorities([a, "chat", b])  # order of the list is irrelevant
    assert listener_priorities(["chat"])["chat"] == got["chat"]  # others do not move it


def test_subnet_layout_of_the_first_release_is_kept_up_to_four_azs() -> None:
    from modelfleet.plan import subnet_layout
    from modelfleet.plan_types import SubnetLayout

    for azs in (2, 3, 4):
        layout = subnet_layout("10.40.0.0/16", azs, 100)
        assert isinstance(layout, SubnetLayout)
        assert layout.public == tuple(f"10.40.{16 * i}.0/20" for i in range(azs))
        assert layout.private == tuple(f"10.40.{128 + 32 * i}.0/19" for i in range(azs))
    six = subnet_layout("10.40.0.0/16", 6, 100)
    assert isinstance(six, SubnetLayout) and len(set(six.public + six.private)) == 12

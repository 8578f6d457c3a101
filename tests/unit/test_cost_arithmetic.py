"""Cost against hand-computed cases: a month is 730 hours, as AWS prices it."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit_stacks import CERT, STACKS, config, write_stack

from modelfleet import cost
from modelfleet.config import load_stack_file
from modelfleet.plan import FleetPlan, build_plan

MONTH = 730
DAYS = 730 / 24  # 30.4167 days in a 730-hour month


def _plan(tmp_path: Path, **model: object) -> FleetPlan:
    cfg = config()
    cfg["modelfleet:models"][0] |= model
    return build_plan(load_stack_file(write_stack(tmp_path, cfg)))


def test_hourly_price_and_overrides() -> None:
    assert cost.hourly_price("g6.xlarge") == 0.8048
    assert cost.hourly_price("g6.xlarge", {"g6.xlarge": 0.5}) == 0.5
    assert cost.hourly_price("g5.xlarge", {"g6.xlarge": 0.5}) == 1.006


@pytest.mark.parametrize(
    ("capacity", "instances", "base", "expected"),
    [
        ("on-demand", 3, 0, 3 * 1.0),
        # spot at a 0.6 discount: 3 x 1.0 x (1 - 0.6) = 1.2
        ("spot", 3, 0, 3 * 0.4),
        # mixed: 2 on-demand + 3 spot = 2 x 1.0 + 3 x 0.4 = 3.2
        ("mixed", 5, 2, 2 * 1.0 + 3 * 0.4),
        # the on-demand base is capped by the instance count
        ("mixed", 1, 2, 1.0),
    ],
)
def test_blended_hourly(capacity: str, instances: int, base: int, expected: float) -> None:
    assert cost.blended_hourly(1.0, capacity, instances, base, 0.6) == pytest.approx(expected)


def test_usd_per_million_tokens() -> None:
    # $1/h at 100 tokens/s, busy half the time: 100 x 3600 x 0.5 = 180,000 tokens per dollar-
    # hour -> 1e6 / 180,000 = $5.556 per million
    assert cost.usd_per_million_tokens(1.0, 100, 0.5) == pytest.approx(1e6 / 180_000)
    assert cost.usd_per_million_tokens(1.0, 0, 0.5) == float("inf")


def test_breakeven_self_hosted_cheaper() -> None:
    # API: 10M input/day at $3/M + 2M output/day at $15/M = $30 + $30 = $60/day
    #      x 30.4167 days = $1,825.00/month.
    # Self-hosted: one g6.xlarge at $0.8048/h x 730 h = $587.50/month -> self-hosted cheaper.
    # Break-even keeps the mix: $60 per 12M tokens = $5/M; 587.504 / (30.4167 x 5e-6)
    # = 3,863,040 tokens/day.
    b = cost.breakeven(input_tokens_per_day=10e6, output_tokens_per_day=2e6, api_input_price=3,
                       api_output_price=15, hourly_price_usd=0.8048)  # fmt: skip
    assert b.api_monthly_usd == pytest.approx(60 * DAYS)
    assert b.api_monthly_usd == pytest.approx(1825.0)
    assert b.self_hosted_monthly_usd == pytest.approx(0.8048 * MONTH)
    assert b.breakeven_tokens_per_day == pytest.approx(0.8048 * MONTH / (DAYS * 5e-6))
    assert round(b.breakeven_tokens_per_day) == 3_863_040
    assert b.cheaper == "self-hosted"
    assert b.tokens_per_day == 12e6


def test_breakeven_api_cheaper_with_engineering_time() -> None:
    # API: 1M in x $3 + 0.1M out x $15 = $4.50/day x 30.4167 = $136.88/month.
    # Self-hosted: 2 x $1.006 x 730 = $1,468.76 + 10 h x $100 = $2,468.76 -> API cheaper.
    # Blended API price: $4.50 / 1.1M tokens = $4.0909/M; break-even 2468.76 / (30.4167 x
    # 4.0909e-6) = 19,840,000 tokens/day (about 18x today's volume).
    b = cost.breakeven(input_tokens_per_day=1e6, output_tokens_per_day=0.1e6, api_input_price=3,
                       api_output_price=15, hourly_price_usd=1.006, instances=2,
                       engineering_hours=10, engineering_rate=100)  # fmt: skip
    assert b.api_monthly_usd == pytest.approx(4.5 * DAYS)
    assert b.self_hosted_monthly_usd == pytest.approx(2 * 1.006 * MONTH + 1000)
    assert b.breakeven_tokens_per_day == pytest.approx(2468.76 / (DAYS * 4.5 / 1.1e6))
    assert b.cheaper == "api"
    d = b.as_dict()
    assert d["api_monthly_usd"] == 136.88
    assert d["self_hosted_monthly_usd"] == 2468.76
    assert d["cheaper"] == "api"


def test_breakeven_against_a_free_api_has_no_volume() -> None:
    b = cost.breakeven(input_tokens_per_day=1e6, output_tokens_per_day=0, api_input_price=0,
                       api_output_price=0, hourly_price_usd=1.0)  # fmt: skip
    assert b.cheaper == "api"
    assert b.as_dict()["breakeven_tokens_per_day"] is None  # never: not inf, not a crash


def test_monthly_cost_of_the_dev_stack() -> None:
    p = build_plan(load_stack_file(STACKS / "Pulumi.dev.yaml"))
    m = p.model("llama-8b")
    # 07:00-20:00 Mon-Fri = 65/168 of the week; one g6.xlarge on spot at 0.6 off:
    # 0.8048 x 0.4 = $0.32192/h x 1 instance x 730 h x 65/168 = $90.92
    assert p.running_fraction == pytest.approx(65 / 168)
    assert m.cost.hourly_min == pytest.approx(0.8048 * 0.4)
    assert m.cost.monthly_usd == pytest.approx(0.8048 * 0.4 * 1 * MONTH * 65 / 168)
    assert round(m.cost.monthly_usd, 2) == 90.92
    # max 2 replicas: twice that
    assert m.cost.monthly_max_usd == pytest.approx(2 * m.cost.monthly_usd)
    # Stack total = models + shared infrastructure (ALB, NAT, EFS, ...)
    assert p.monthly_usd == pytest.approx(m.cost.monthly_usd + p.shared_cost.total)


def test_monthly_cost_of_the_prod_stack_models() -> None:
    p = build_plan(load_stack_file(STACKS / "Pulumi.prod.yaml"))
    # Daily 06:00-22:00 = 16/24 of the time.
    assert p.running_fraction == pytest.approx(16 / 24)
    m = p.model("llama-8b")
    # mixed, min 2: the minimum stays on-demand: 2 x $1.861 x 730 x 16/24 = $1,811.37
    assert m.cost.monthly_usd == pytest.approx(2 * 1.861 * MONTH * 16 / 24)
    # at max 6: 2 on-demand + 4 spot = 2 x 1.861 + 4 x 1.861 x 0.4 = $6.6996/h
    assert m.cost.hourly_max == pytest.approx(2 * 1.861 + 4 * 1.861 * 0.4)


def test_tasks_per_instance_packing(tmp_path: Path) -> None:
    # 8B at TP 1 on g6.12xlarge (4 x L4): 4 replicas per instance. replicas 2-6 need
    # ceil(2/4) = 1 and ceil(6/4) = 2 instances: 1 x $4.6016 x 730 = $3,359.17 a month.
    p = _plan(tmp_path, instanceType="g6.12xlarge", replicas={"min": 2, "max": 6})
    m = p.models[0]
    assert (m.tensor_parallel, m.tasks_per_instance) == (1, 4)
    assert (m.cost.instances_min, m.cost.instances_max) == (1, 2)
    assert m.cost.monthly_usd == pytest.approx(4.6016 * MONTH)
    assert m.cost.monthly_max_usd == pytest.approx(2 * 4.6016 * MONTH)
    # $ per 1M tokens uses one replica's share of the instance: $4.6016 / 4 per hour.
    assert m.cost.usd_per_million_tokens == pytest.approx(
        cost.usd_per_million_tokens(4.6016 / 4, m.batched_tokens_per_s, 0.5)
    )


def test_zero_min_replicas_cost_nothing_at_rest(tmp_path: Path) -> None:
    p = _plan(tmp_path, replicas={"min": 0, "max": 2})
    m = p.models[0]
    assert (m.cost.instances_min, m.cost.monthly_usd) == (0, 0.0)
    assert m.cost.monthly_max_usd == pytest.approx(2 * 0.8048 * MONTH)
    assert "replicas.min 0: the first request after idle waits a cold start" in m.notes


def test_pricing_overrides(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:models"][0] |= {"capacity": "spot", "replicas": {"min": 2, "max": 2}}
    cfg["modelfleet:pricing"] = {"instances": {"g6.xlarge": 0.5}, "spotDiscount": 0.3}
    p = build_plan(load_stack_file(write_stack(tmp_path, cfg)))
    # 2 x $0.50 x (1 - 0.3) x 730 h = $511.00
    assert p.models[0].cost.on_demand_hourly == 0.5
    assert p.models[0].cost.monthly_usd == pytest.approx(2 * 0.5 * 0.7 * MONTH)


def test_shared_costs(tmp_path: Path) -> None:
    p = _plan(tmp_path)
    s = p.shared_cost
    # ALB: 730 x ($0.0225/h + 1 LCU x $0.008) = $22.27
    assert s.alb_usd == pytest.approx(MONTH * (0.0225 + 0.008))
    # dev: one NAT gateway, $0.045/h x 730 = $32.85, plus traffic
    assert s.nat_usd > 32.85
    # no interface endpoints outside prod
    assert (p.interface_endpoints, s.endpoints_usd) == ([], 0.0)
    # KMS: 2 keys x $1; Secrets Manager: only the secrets the stack creates (this ephemeral
    # stack serves without API keys, so none; the first release priced one anyway).
    assert p.secrets == ()
    assert s.keys_and_secrets_usd == pytest.approx(2 * 1.0)


def test_existing_vpc_pays_no_nat(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:ephemeral"] = False
    cfg["modelfleet:gateway"] = {"apiKeys": {"secure": "v1:x"}}
    cfg["modelfleet:network"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "publicSubnetIds": ["subnet-0a1b2c3d4e5f60101", "subnet-0a1b2c3d4e5f60102"],
        "certificateArn": CERT,
    }
    p = build_plan(load_stack_file(write_stack(tmp_path, cfg)))
    assert p.shared_cost.nat_usd == 0.0


def test_prod_interface_endpoints_priced_per_az() -> None:
    p = build_plan(load_stack_file(STACKS / "Pulumi.prod.yaml"))
    # 5 endpoints x 3 AZs x $0.01/h x 730 h = $109.50; 3 NAT gateways x $0.045 x 730 = $98.55
    assert len(p.interface_endpoints) == 5
    assert p.shared_cost.endpoints_usd == pytest.approx(5 * 3 * 0.01 * MONTH)
    assert p.shared_cost.nat_usd > 3 * 0.045 * MONTH

"""What a stack costs a month, what a million tokens cost, and when self-hosting pays off.

A month is 730 hours, as AWS prices it (https://aws.amazon.com/ec2/pricing/on-demand/).
Prices are us-east-1 list prices read on the date given; `pricing:` in a stack overrides the
instance figures and the spot discount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelfleet.catalog import INSTANCE_TYPES, Source

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: Source


_READ = "2026-11-23"
PRICES: dict[str, Price] = {
    "efs_storage_gb_month": Price(
        0.30, "GB-month, EFS Standard", Source("https://aws.amazon.com/efs/pricing/", _READ)
    ),
    "efs_elastic_read_gb": Price(
        0.03, "GB read, Elastic throughput", Source("https://aws.amazon.com/efs/pricing/", _READ)
    ),
    "alb_hour": Price(
        0.0225, "ALB-hour", Source("https://aws.amazon.com/elasticloadbalancing/pricing/", _READ)
    ),
    "alb_lcu_hour": Price(
        0.008, "LCU-hour", Source("https://aws.amazon.com/elasticloadbalancing/pricing/", _READ)
    ),
    "nat_hour": Price(
        0.045, "NAT gateway-hour", Source("https://aws.amazon.com/vpc/pricing/", _READ)
    ),
    "nat_gb": Price(
        0.045, "GB processed by NAT", Source("https://aws.amazon.com/vpc/pricing/", _READ)
    ),
    "endpoint_az_hour": Price(
        0.01,
        "interface endpoint-hour per AZ",
        Source("https://aws.amazon.com/privatelink/pricing/", _READ),
    ),
    "alarm_month": Price(
        0.10, "standard alarm-month", Source("https://aws.amazon.com/cloudwatch/pricing/", _READ)
    ),
    "dashboard_month": Price(
        3.00, "dashboard-month", Source("https://aws.amazon.com/cloudwatch/pricing/", _READ)
    ),
    "metric_month": Price(
        0.30, "custom metric-month", Source("https://aws.amazon.com/cloudwatch/pricing/", _READ)
    ),
    "kms_key_month": Price(
        1.00, "KMS key-month", Source("https://aws.amazon.com/kms/pricing/", _READ)
    ),
    "secret_month": Price(
        0.40, "secret-month", Source("https://aws.amazon.com/secrets-manager/pricing/", _READ)
    ),
    # A warm pool's stopped instances pay for their root volumes only.
    "ebs_gp3_gb_month": Price(
        0.08, "GB-month, gp3", Source("https://aws.amazon.com/ebs/pricing/", "2026-12-01")
    ),
    # The pull-through cache's copy of the engine image.
    "ecr_storage_gb_month": Price(
        0.10, "GB-month, ECR storage", Source("https://aws.amazon.com/ecr/pricing/", "2026-12-01")
    ),
}

# One LCU on average: a serving ALB carries few, long requests; LCUs are billed on the largest
# of new connections, active connections, bytes and rule evaluations.
ASSUMED_LCUS = 1.0
# Without a schedule a replica restarts on deploys and scale-outs: assume weekly.
STARTS_PER_MONTH_UNSCHEDULED = 4.0


def hourly_price(instance_type: str, overrides: dict[str, float] | None = None) -> float:
    if overrides and instance_type in overrides:
        return overrides[instance_type]
    return INSTANCE_TYPES[instance_type].on_demand_usd_per_hour


def blended_hourly(
    on_demand: float, capacity: str, instances: int, base_on_demand: int, spot_discount: float
) -> float:
    """Hourly price of `instances` GPU hosts under a capacity mode, all together."""
    spot = on_demand * (1 - spot_discount)
    if capacity == "on-demand":
        return on_demand * instances
    if capacity == "spot":
        return spot * instances
    base = min(base_on_demand, instances)
    return on_demand * base + spot * (instances - base)


def usd_per_million_tokens(hourly_usd: float, tokens_per_s: float, utilization: float) -> float:
    """Cost of a million output tokens when the replica is busy `utilization` of the time."""
    if tokens_per_s <= 0 or utilization <= 0:
        return float("inf")
    return hourly_usd / (tokens_per_s * 3600 * utilization) * 1e6


@dataclass(frozen=True)
class Breakeven:
    api_monthly_usd: float
    self_hosted_monthly_usd: float
    breakeven_tokens_per_day: float
    cheaper: str  # "api" or "self-hosted"
    tokens_per_day: float

    def as_dict(self) -> dict[str, float | str | None]:
        even = self.breakeven_tokens_per_day
        return {
            "api_monthly_usd": round(self.api_monthly_usd, 2),
            "self_hosted_monthly_usd": round(self.self_hosted_monthly_usd, 2),
            # A free API never breaks even: null, not a JSON-invalid Infinity (or a crash).
            "breakeven_tokens_per_day": round(even) if math.isfinite(even) else None,
            "cheaper": self.cheaper,
            "tokens_per_day": self.tokens_per_day,
        }


def breakeven(
    *,
    input_tokens_per_day: float,
    output_tokens_per_day: float,
    api_input_price: float,
    api_output_price: float,
    hourly_price_usd: float,
    instances: int = 1,
    engineering_hours: float = 0.0,
    engineering_rate: float = 0.0,
) -> Breakeven:
    """API bill vs. always-on instances plus the engineering time they take each month.

    The break-even volume keeps the given input/output mix: it is the daily token count at
    which the API bill equals the self-hosted one.
    """
    api_monthly = (
        DAYS_PER_MONTH
        * (input_tokens_per_day * api_input_price + output_tokens_per_day * api_output_price)
        / 1e6
    )
    self_monthly = (
        hourly_price_usd * instances * HOURS_PER_MONTH + engineering_hours * engineering_rate
    )
    tokens = input_tokens_per_day + output_tokens_per_day
    if tokens > 0:
        blended = (
            (input_tokens_per_day * api_input_price + output_tokens_per_day * api_output_price)
            / tokens
            / 1e6
        )
    else:
        blended = (api_input_price + api_output_price) / 2 / 1e6
    even = self_monthly / (DAYS_PER_MONTH * blended) if blended > 0 else float("inf")
    return Breakeven(
        api_monthly_usd=api_monthly,
        self_hosted_monthly_usd=self_monthly,
        breakeven_tokens_per_day=even,
        cheaper="api" if api_monthly < self_monthly else "self-hosted",
        tokens_per_day=tokens,
    )

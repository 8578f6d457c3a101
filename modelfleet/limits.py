"""AWS limits that botocore's service models do not encode, each with its documentation page.

botocore knows types and required fields; it does not know that an ECS health check waits at
most 300 s before counting failures, or that an ALB keeps an idle connection at most 4000 s.
A payload that breaks one of these passes `pulumi preview` and fails at `pulumi up`, after
GPU instances are already paid for. The plan and the infra tests check them.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfleet.naming import load_balancer_name, target_group_name
from modelfleet.plan_types import FleetPlan

READ = "2026-11-23"


@dataclass(frozen=True)
class Limit:
    minimum: float
    maximum: float
    source: str
    date: str = READ

    def check(self, what: str, value: float) -> str | None:
        if self.minimum <= value <= self.maximum:
            return None
        return (
            f"{what} = {value} is outside AWS's range {self.minimum:g}-{self.maximum:g} "
            f"({self.source})"
        )


_ECS_HC = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html"
ECS_HEALTHCHECK: dict[str, Limit] = {
    "interval": Limit(5, 300, _ECS_HC),
    "timeout": Limit(2, 60, _ECS_HC),
    "retries": Limit(1, 10, _ECS_HC),
    "startPeriod": Limit(0, 300, _ECS_HC),
}

_TG = "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html"
TARGET_GROUP_HEALTHCHECK: dict[str, Limit] = {
    "interval": Limit(5, 300, _TG),
    "timeout": Limit(2, 120, _TG),
    "healthyThreshold": Limit(2, 10, _TG),
    "unhealthyThreshold": Limit(2, 10, _TG),
}
TARGET_GROUP_DEREGISTRATION_DELAY = Limit(
    0,
    3600,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html#deregistration-delay",
)
ALB_IDLE_TIMEOUT = Limit(
    1,
    4000,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#connection-idle-timeout",
)
ECS_GRACE_PERIOD = Limit(
    0,
    2_147_483_647,
    "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html",
)
# Names that AWS caps at 32 characters; Pulumi's auto-naming appends 8 ("-" + 7 random).
NAME_32 = Limit(
    1,
    32,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html",
)
PULUMI_AUTONAME_SUFFIX = 8
ALB_RULES_PER_LISTENER = Limit(
    0,
    100,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html",
)
# Listener rule priorities: 1-50000, unique per listener.
LISTENER_RULE_PRIORITY = Limit(
    1,
    50_000,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateRule.html",
)
# A VPC subnet's netmask: /16 (largest) to /28 (smallest); AWS reserves five addresses in each.
_SUBNETS = "https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html"
SUBNET_PREFIX = Limit(16, 28, _SUBNETS)
SUBNET_RESERVED_ADDRESSES = 5
# An ALB's subnets need at least a /27 and eight free addresses each.
ALB_MIN_SUBNET_PREFIX = Limit(
    16,
    27,
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#subnets-load-balancer",
)
# Alarm period: 10, 20, 30 (high resolution) or a multiple of 60; period x evaluation periods
# at most one day for periods under an hour.
_ALARM = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"
ALARM_EVALUATION_SECONDS = Limit(10, 86_400, _ALARM)
ALARM_SHORT_PERIODS = (10, 20, 30)
# Shared memory of an EC2-hosted ECS container, MiB (not supported on Fargate).
ECS_SHARED_MEMORY = Limit(
    0,
    1_048_576,
    "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinuxParameters.html",
)
# Fargate task sizes for the one-shot pre-warm fetcher: 1 vCPU allows 2-8 GiB.
FARGATE_1VCPU_MEMORY = Limit(
    2048,
    8192,
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size",
)
# Fargate ephemeral storage, GiB: the pre-warm task writes to EFS, not to it.
FARGATE_EPHEMERAL_GIB = Limit(
    21,
    200,
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-storage.html",
)


def alarm_period_ok(period: int, evaluation_periods: int) -> str | None:
    if period not in ALARM_SHORT_PERIODS and period % 60:
        return f"alarm period {period} s must be 10, 20, 30 or a multiple of 60 ({_ALARM})"
    if period < 3600:
        return ALARM_EVALUATION_SECONDS.check(
            "alarm period x evaluation periods", period * evaluation_periods
        )
    return None


def check_limits(plan: FleetPlan) -> list[str]:
    """Every limit the plan's derived values must respect; empty when all hold."""
    problems: list[str] = []

    def add(p: str | None) -> None:
        if p:
            problems.append(p)

    add(ALB_IDLE_TIMEOUT.check("ALB idle timeout", plan.alb_idle_timeout_s))
    add(ALB_RULES_PER_LISTENER.check("listener rules (one per model)", len(plan.models)))
    for m in plan.models:
        hc = m.vllm_health_check
        for key, value in (
            ("interval", hc.interval),
            ("timeout", hc.timeout),
            ("retries", hc.retries),
            ("startPeriod", hc.start_period),
        ):
            add(ECS_HEALTHCHECK[key].check(f"models {m.name}: vLLM healthCheck.{key}", value))
        if hc.timeout >= hc.interval:
            problems.append(f"models {m.name}: vLLM health-check timeout must be below interval")
        add(
            ECS_GRACE_PERIOD.check(
                f"models {m.name}: healthCheckGracePeriodSeconds", m.grace_period_s
            )
        )
        add(ECS_SHARED_MEMORY.check(f"models {m.name}: sharedMemorySize", m.shared_memory_mib))
        add(
            NAME_32.check(
                f"models {m.name}: target group name length",
                len(target_group_name(m.short)) + PULUMI_AUTONAME_SUFFIX,
            )
        )
    add(
        NAME_32.check(
            "load balancer name length",
            len(load_balancer_name(plan.config.prefix)) + PULUMI_AUTONAME_SUFFIX,
        )
    )
    return problems

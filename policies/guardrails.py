"""Cost guardrails: organisation defaults per environment, and how a stack may narrow them.

The components tag every `aws:ecs/service:Service` with the facts the guardrails need (see
`TAG_*` below), so the rules run on resource inputs at preview time, before anything exists.
An org admin overrides the defaults through the policy pack's config (CrossGuard policy config,
`pulumi policy enable --config` or `policyPackConfigs` in CI); a stack can only tighten them:
its allowed families are intersected with the default, its hourly ceiling is the lower of the two,
and it can turn the spot requirement on for prod, never off elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Tags the components put on every ECS service (see components/).
TAG_ENVIRONMENT = "modelfleet:environment"
TAG_TEAM = "modelfleet:team"
TAG_STACK = "modelfleet:stack"
TAG_EPHEMERAL = "modelfleet:ephemeral"
TAG_MODEL = "modelfleet:model"
TAG_INSTANCE_TYPE = "modelfleet:instance-type"
TAG_CAPACITY = "modelfleet:capacity"
TAG_MAX_REPLICAS = "modelfleet:max-replicas"
TAG_TASKS_PER_INSTANCE = "modelfleet:tasks-per-instance"
TAG_INSTANCE_HOURLY_USD = "modelfleet:instance-hourly-usd"
TAG_GUARDRAIL_FAMILIES = "modelfleet:guardrail-allowed-families"
TAG_GUARDRAIL_MAX_HOURLY = "modelfleet:guardrail-max-hourly-usd"
TAG_GUARDRAIL_REQUIRE_SPOT = "modelfleet:guardrail-require-spot"

# A Kubernetes object (a NodePool) carries the same facts as annotations
# `modelfleet.io/<key>`, since an annotation key cannot hold a colon.
ANNOTATION_PREFIX = "modelfleet.io/"

ENVIRONMENTS = ("dev", "staging", "prod")

# GPU families a team may run per environment. The p-families (A100/H100, $30-100/h per
# instance) are reserved to prod; dev and staging get the g-families (T4, A10G, L4, L40S).
DEFAULT_ALLOWED_FAMILIES: dict[str, tuple[str, ...]] = {
    "dev": ("g4dn", "g5", "g6", "g6e"),
    "staging": ("g4dn", "g5", "g6", "g6e"),
    "prod": ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5"),
}

# Ceiling on the on-demand $/h of a team's fleet at max replicas, per environment.
DEFAULT_MAX_HOURLY_USD: dict[str, float] = {"dev": 20.0, "staging": 60.0, "prod": 400.0}

# Environments where GPU capacity must be spot or mixed (interruptions are acceptable there).
DEFAULT_SPOT_REQUIRED_ENVIRONMENTS: tuple[str, ...] = ("dev", "staging")

SPOT_CAPACITIES = ("spot", "mixed")

# Policy-config keys (camelCase like the rest of the Pulumi config surface).
CONFIG_ALLOWED_FAMILIES = "allowedFamilies"
CONFIG_MAX_HOURLY_USD = "maxHourlyUsd"
CONFIG_SPOT_REQUIRED_ENVIRONMENTS = "spotRequiredEnvironments"


class GuardrailError(ValueError):
    """A tag the guardrails need is missing or malformed; the message says which and where."""


def instance_family(instance_type: str) -> str:
    """`g6e.12xlarge` -> `g6e`."""
    return instance_type.split(".", 1)[0].strip().lower()


def _csv(value: str) -> list[str]:
    # Tags join with "/" (ECS tag values refuse commas); policy config may use commas.
    return [part.lower() for part in re.split(r"[/,\s]+", value) if part]


def allowed_families(
    environment: str, stack_tag: str | None, config: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """The families a service may use: the org default, narrowed by the stack's own list."""
    base = _config_families(config).get(environment)
    if base is None:
        base = DEFAULT_ALLOWED_FAMILIES.get(environment, ())
    if stack_tag is None or not stack_tag.strip():
        return tuple(base)
    narrowed = set(_csv(stack_tag))
    return tuple(f for f in base if f in narrowed)


def _config_families(config: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    raw = (config or {}).get(CONFIG_ALLOWED_FAMILIES)
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for env, families in raw.items():
        if isinstance(families, str):
            out[str(env)] = tuple(_csv(families))
        elif isinstance(families, Iterable):
            out[str(env)] = tuple(str(f).strip().lower() for f in families)
    return out


def max_hourly_usd(
    environment: str, stack_tag: str | None, config: Mapping[str, Any] | None = None
) -> float | None:
    """The team ceiling: the org default (or config) for the environment, lowered by the stack."""
    raw = (config or {}).get(CONFIG_MAX_HOURLY_USD)
    base: float | None = None
    if isinstance(raw, Mapping) and environment in raw:
        base = float(raw[environment])
    else:
        base = DEFAULT_MAX_HOURLY_USD.get(environment)
    if stack_tag is None or not str(stack_tag).strip():
        return base
    stack_value = parse_float(stack_tag, TAG_GUARDRAIL_MAX_HOURLY)
    return stack_value if base is None else min(base, stack_value)


def spot_required(
    environment: str, stack_tag: str | None, config: Mapping[str, Any] | None = None
) -> bool:
    """Spot is required in the configured environments; a stack may require it anywhere."""
    raw = (config or {}).get(CONFIG_SPOT_REQUIRED_ENVIRONMENTS)
    envs: Sequence[str]
    if isinstance(raw, str):
        envs = _csv(raw)
    elif isinstance(raw, Iterable):
        envs = [str(e).strip().lower() for e in raw]
    else:
        envs = DEFAULT_SPOT_REQUIRED_ENVIRONMENTS
    if environment in envs:
        return True
    return str(stack_tag or "").strip().lower() == "true"


def parse_float(value: Any, tag: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise GuardrailError(f"tag {tag}={value!r} is not a number") from None
    if math.isnan(result) or result < 0:
        raise GuardrailError(f"tag {tag}={value!r} must be a non-negative number")
    return result


def parse_int(value: Any, tag: str) -> int:
    try:
        result = int(str(value).strip())
    except (TypeError, ValueError):
        raise GuardrailError(f"tag {tag}={value!r} is not an integer") from None
    if result < 0:
        raise GuardrailError(f"tag {tag}={value!r} must be >= 0")
    return result


@dataclass(frozen=True)
class ServiceCost:
    """One ECS service's worst-case hourly bill, from its tags."""

    name: str
    team: str
    environment: str
    instance_type: str
    max_replicas: int
    tasks_per_instance: int
    instance_hourly_usd: float

    @property
    def max_instances(self) -> int:
        return math.ceil(self.max_replicas / max(self.tasks_per_instance, 1))

    @property
    def max_hourly_usd(self) -> float:
        return self.max_instances * self.instance_hourly_usd

    def describe(self) -> str:
        return (
            f"{self.name}: ceil({self.max_replicas} max replicas / {self.tasks_per_instance} per "
            f"instance) = {self.max_instances} x {self.instance_type} at "
            f"${self.instance_hourly_usd:,.2f}/h = ${self.max_hourly_usd:,.2f}/h"
        )


REQUIRED_COST_TAGS = (
    TAG_ENVIRONMENT,
    TAG_TEAM,
    TAG_INSTANCE_TYPE,
    TAG_MAX_REPLICAS,
    TAG_TASKS_PER_INSTANCE,
    TAG_INSTANCE_HOURLY_USD,
)


def service_cost(name: str, tags: Mapping[str, Any]) -> ServiceCost:
    missing = [t for t in REQUIRED_COST_TAGS if not str(tags.get(t) or "").strip()]
    if missing:
        raise GuardrailError("missing tag(s) " + ", ".join(missing))
    return ServiceCost(
        name=name,
        team=str(tags[TAG_TEAM]),
        environment=str(tags[TAG_ENVIRONMENT]).strip().lower(),
        instance_type=str(tags[TAG_INSTANCE_TYPE]).strip(),
        max_replicas=parse_int(tags[TAG_MAX_REPLICAS], TAG_MAX_REPLICAS),
        tasks_per_instance=max(1, parse_int(tags[TAG_TASKS_PER_INSTANCE], TAG_TASKS_PER_INSTANCE)),
        instance_hourly_usd=parse_float(tags[TAG_INSTANCE_HOURLY_USD], TAG_INSTANCE_HOURLY_USD),
    )

"""Cost guardrails on ECS services (tags written by components/, see policies/guardrails.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies import guardrails as g
from policies.rules._common import _short, _tags, _who
from policies.rules._registry import RuleContext, StackResource, resource_rule, stack_rule
from policies.rules.tokens import GPU_CAPACITY_TYPES

_FAMILIES_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_ALLOWED_FAMILIES: {
        "type": "object",
        "description": "Allowed instance families per environment (overrides the org defaults).",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "default": {k: list(v) for k, v in g.DEFAULT_ALLOWED_FAMILIES.items()},
    }
}
_SPOT_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_SPOT_REQUIRED_ENVIRONMENTS: {
        "type": "array",
        "items": {"type": "string"},
        "description": "Environments whose GPU capacity must be spot or mixed.",
        "default": list(g.DEFAULT_SPOT_REQUIRED_ENVIRONMENTS),
    }
}
_CEILING_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_MAX_HOURLY_USD: {
        "type": "object",
        "description": "Per-team ceiling in on-demand $/h at max replicas, per environment.",
        "additionalProperties": {"type": "number", "minimum": 0},
        "default": dict(g.DEFAULT_MAX_HOURLY_USD),
    }
}


def _service_env(props: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(environment, problem)."""
    env = str(_tags(props).get(g.TAG_ENVIRONMENT) or "").strip().lower()
    if not env:
        return None, f"has no {g.TAG_ENVIRONMENT} tag"
    if env not in g.ENVIRONMENTS:
        return None, f"has {g.TAG_ENVIRONMENT}={env!r}, not one of {', '.join(g.ENVIRONMENTS)}"
    return env, None


_TAG_FIX = (
    "Fix: the Fleet component must tag every ECS service and annotate every NodePool "
    "(see policies/guardrails.py)."
)


@resource_rule(
    "guardrail-instance-families",
    "GPU instance families are allowed for the environment (a stack can only narrow).",
    GPU_CAPACITY_TYPES,
    config_schema=_FAMILIES_SCHEMA,
)
def guardrail_instance_families(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    env, problem = _service_env(props)
    if env is None:
        return [
            f"{_who(resource_type, ctx)} {problem}; instance families cannot be checked. {_TAG_FIX}"
        ]
    instance_type = str(_tags(props).get(g.TAG_INSTANCE_TYPE) or "").strip()
    if not instance_type:
        return [
            f"{_who(resource_type, ctx)} has no {g.TAG_INSTANCE_TYPE} tag; instance families "
            f"cannot be checked. {_TAG_FIX}"
        ]
    stack_tag = _tags(props).get(g.TAG_GUARDRAIL_FAMILIES)
    allowed = g.allowed_families(env, None if stack_tag is None else str(stack_tag), ctx.config)
    family = g.instance_family(instance_type)
    if family in allowed:
        return []
    default = g.allowed_families(env, None, ctx.config)
    narrowed = (
        f" (the stack's guardrails.allowedInstanceFamilies narrows the {env} default "
        f"{', '.join(default)})"
        if stack_tag
        else ""
    )
    return [
        f"{_who(resource_type, ctx)}: instance type {instance_type} (family {family}) is not "
        f"allowed in {env}; allowed: {', '.join(allowed) or 'none'}{narrowed}. Fix: pick an "
        f"instanceType from an allowed family in the stack file, or ask the platform team to "
        "extend the org allow-list (policy config allowedFamilies); a stack cannot widen it."
    ]


@resource_rule(
    "guardrail-spot-outside-prod",
    "GPU capacity is spot or mixed outside prod (and in prod when the stack asks).",
    GPU_CAPACITY_TYPES,
    config_schema=_SPOT_SCHEMA,
)
def guardrail_spot_outside_prod(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    env, problem = _service_env(props)
    if env is None:
        return [f"{_who(resource_type, ctx)} {problem}; capacity cannot be checked. {_TAG_FIX}"]
    tags = _tags(props)
    stack_tag = tags.get(g.TAG_GUARDRAIL_REQUIRE_SPOT)
    if not g.spot_required(env, None if stack_tag is None else str(stack_tag), ctx.config):
        return []
    capacity = str(tags.get(g.TAG_CAPACITY) or "").strip().lower()
    if capacity in g.SPOT_CAPACITIES:
        return []
    why = "the stack sets guardrails.requireSpot" if env == "prod" else f"{env} is not prod"
    shown = repr(capacity) if capacity else f"unknown (no {g.TAG_CAPACITY} tag)"
    return [
        f"{_who(resource_type, ctx)}: capacity is {shown} but spot is required ({why}); "
        f"allowed: {', '.join(g.SPOT_CAPACITIES)}. Fix: set capacity: spot (or mixed for an "
        "on-demand floor) for the model in the stack file."
    ]


@stack_rule(
    "guardrail-team-hourly-ceiling",
    "A team's GPU fleet at max replicas stays under its $/h ceiling for the environment.",
    config_schema=_CEILING_SCHEMA,
)
def guardrail_team_hourly_ceiling(
    resources: Sequence[StackResource], ctx: RuleContext
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    by_team: dict[tuple[str, str], list[g.ServiceCost]] = {}
    limits: dict[tuple[str, str], float | None] = {}
    for r in resources:
        if r.type not in GPU_CAPACITY_TYPES:
            continue
        tags = _tags(r.props)
        try:
            cost = g.service_cost(r.name, tags)
            key = (cost.team, cost.environment)
            stack_tag = tags.get(g.TAG_GUARDRAIL_MAX_HOURLY)
            limit = g.max_hourly_usd(
                cost.environment, None if stack_tag is None else str(stack_tag), ctx.config
            )
        except g.GuardrailError as exc:
            out.append(
                (
                    r.name,
                    f"{_short(r.type)} '{r.name}': {exc}; the team's hourly ceiling cannot be "
                    "checked. "
                    f"{_TAG_FIX}",
                )
            )
            continue
        by_team.setdefault(key, []).append(cost)
        previous = limits.get(key)
        limits[key] = (
            limit if previous is None else (previous if limit is None else min(previous, limit))
        )
    for (team, env), costs in sorted(by_team.items()):
        limit = limits.get((team, env))
        total = sum(c.max_hourly_usd for c in costs)
        if limit is None or total <= limit + 1e-9:
            continue
        detail = "; ".join(c.describe() for c in costs)
        out.append(
            (
                costs[0].name,
                f"team '{team}' ({env}) can reach ${total:,.2f}/h at max replicas, above the "
                f"${limit:,.2f}/h ceiling ({detail}). Fix: lower replicas.max, use a smaller "
                "instance type, or have the platform team raise the ceiling (policy config "
                "maxHourlyUsd; a stack's guardrails.maxHourlyUsd can only lower it).",
            )
        )
    return out

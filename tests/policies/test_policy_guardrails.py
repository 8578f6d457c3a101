"""Cost guardrails: defaults per environment, narrowing by the stack, overrides by the org."""

from __future__ import annotations

from typing import Any

import pytest
from policy_fixtures import base_tags, service_tags

from policies import guardrails as g
from policies import rules as r

FAMILIES = next(x for x in r.RESOURCE_RULES if x.name == "guardrail-instance-families")
SPOT = next(x for x in r.RESOURCE_RULES if x.name == "guardrail-spot-outside-prod")
CEILING = next(x for x in r.STACK_RULES if x.name == "guardrail-team-hourly-ceiling")


def families(tags: dict[str, str], config: dict[str, Any] | None = None) -> list[str]:
    cfg = r.default_config(FAMILIES) | (config or {})
    return r.guardrail_instance_families(r.ECS_SERVICE, {"tags": tags}, r.RuleContext("svc", cfg))


def spot(tags: dict[str, str], config: dict[str, Any] | None = None) -> list[str]:
    cfg = r.default_config(SPOT) | (config or {})
    return r.guardrail_spot_outside_prod(r.ECS_SERVICE, {"tags": tags}, r.RuleContext("svc", cfg))


def ceiling(
    services: list[tuple[str, dict[str, str]]], config: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    cfg = r.default_config(CEILING) | (config or {})
    resources = [r.StackResource(r.ECS_SERVICE, n, {"tags": t}) for n, t in services]
    return r.guardrail_team_hourly_ceiling(resources, r.RuleContext("stack", cfg))


def test_instance_family() -> None:
    assert g.instance_family("g6e.12xlarge") == "g6e"
    assert g.instance_family("P4DE.24xlarge") == "p4de"


@pytest.mark.parametrize(
    ("env", "instance", "ok"),
    [
        ("dev", "g6.xlarge", True),
        ("dev", "g4dn.xlarge", True),
        ("dev", "p4d.24xlarge", False),
        ("staging", "p5.48xlarge", False),
        ("prod", "p5.48xlarge", True),
        ("prod", "p4de.24xlarge", True),
        ("prod", "m7i.large", False),
    ],
)
def test_default_families(env: str, instance: str, ok: bool) -> None:
    tags = service_tags(environment=env, instance_type=instance, capacity="spot")
    assert (families(tags) == []) is ok


def test_stack_tag_narrows_but_cannot_widen() -> None:
    narrowed = service_tags(environment="prod", instance_type="g5.xlarge", families="g6/g6e")
    msg = families(narrowed)[0]
    assert "g5" in msg and "allowed: g6, g6e" in msg and "narrows" in msg
    widened = service_tags(environment="dev", instance_type="p5.48xlarge", families="g6,p5")
    msg = families(widened)[0]
    assert "allowed: g6" in msg and "cannot widen" in msg


def test_org_config_overrides_families() -> None:
    tags = service_tags(environment="dev", instance_type="p4d.24xlarge", capacity="spot")
    assert families(tags, {"allowedFamilies": {"dev": ["g6", "p4d"]}}) == []


def test_unknown_environment_fails_closed() -> None:
    assert "not one of" in families(service_tags(environment="qa"))[0]


@pytest.mark.parametrize(
    ("env", "capacity", "extra", "ok"),
    [
        ("dev", "spot", {}, True),
        ("dev", "mixed", {}, True),
        ("dev", "on-demand", {}, False),
        ("staging", "on-demand", {}, False),
        ("prod", "on-demand", {}, True),
        ("prod", "on-demand", {"require_spot": "true"}, False),
        ("prod", "mixed", {"require_spot": "true"}, True),
        ("dev", "on-demand", {"require_spot": "false"}, False),  # a stack cannot turn it off
    ],
)
def test_spot_outside_prod(env: str, capacity: str, extra: dict[str, Any], ok: bool) -> None:
    assert (spot(service_tags(environment=env, capacity=capacity, **extra)) == []) is ok


def test_org_config_spot_environments() -> None:
    tags = service_tags(environment="staging", capacity="on-demand")
    assert spot(tags, {"spotRequiredEnvironments": ["dev"]}) == []


def test_ceiling_sums_per_team_with_rounding_up() -> None:
    # 5 replicas, 4 per instance -> 2 instances x $5 = $10; plus 3 x $3 = $9 -> $19 <= $20 (dev).
    a = service_tags(environment="dev", max_replicas=5, tasks_per_instance=4, hourly=5.0)
    b = service_tags(environment="dev", max_replicas=3, hourly=3.0)
    assert ceiling([("a", a), ("b", b)]) == []
    c = service_tags(environment="dev", max_replicas=1, hourly=1.5)
    out = ceiling([("a", a), ("b", b), ("c", c)])
    assert len(out) == 1
    name, msg = out[0]
    assert name == "a"
    assert "$20.50/h" in msg and "$20.00/h ceiling" in msg and "Fix:" in msg
    assert "ceil(5 max replicas / 4 per instance) = 2" in msg


def test_ceiling_is_per_team() -> None:
    a = service_tags(environment="dev", team="search", max_replicas=3, hourly=5.0)
    b = service_tags(environment="dev", team="ads", max_replicas=3, hourly=5.0)
    assert ceiling([("a", a), ("b", b)]) == []


def test_stack_tag_lowers_ceiling_but_cannot_raise_it() -> None:
    svc = service_tags(environment="prod", max_replicas=10, hourly=10.0)  # $100/h
    assert ceiling([("s", svc)]) == []
    assert (
        "$80.00/h ceiling"
        in ceiling(
            [("s", service_tags(environment="prod", max_replicas=10, hourly=10.0, max_hourly="80"))]
        )[0][1]
    )
    huge = service_tags(environment="prod", max_replicas=50, hourly=10.0, max_hourly="1000")
    assert "$400.00/h ceiling" in ceiling([("s", huge)])[0][1]


def test_org_config_raises_ceiling() -> None:
    huge = service_tags(environment="prod", max_replicas=50, hourly=10.0)
    assert ceiling([("s", huge)], {"maxHourlyUsd": {"prod": 1000}}) == []


def test_ceiling_missing_and_bad_tags() -> None:
    out = ceiling([("s", base_tags("dev"))])
    assert "missing tag(s)" in out[0][1] and "modelfleet:instance-hourly-usd" in out[0][1]
    bad = service_tags(environment="dev") | {"modelfleet:max-replicas": "lots"}
    assert "is not an integer" in ceiling([("s", bad)])[0][1]


def test_s3_bucket_needs_public_access_block() -> None:
    bucket = r.StackResource("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs"})
    pab = r.StackResource(r.S3_PUBLIC_ACCESS_BLOCK, "pab", {"bucket": "acme-logs"})
    by_dep = r.StackResource(r.S3_PUBLIC_ACCESS_BLOCK, "x", {}, deps=("logs",))
    account = r.StackResource(r.S3_ACCOUNT_PUBLIC_ACCESS_BLOCK, "acct", {})
    ctx = r.RuleContext()
    assert r.s3_bucket_has_public_access_block([bucket, pab], ctx) == []
    assert r.s3_bucket_has_public_access_block([bucket, by_dep], ctx) == []
    assert r.s3_bucket_has_public_access_block([bucket, account], ctx) == []
    ((name, msg),) = r.s3_bucket_has_public_access_block([bucket], ctx)
    assert name == "logs" and "BucketPublicAccessBlock" in msg and "Fix:" in msg

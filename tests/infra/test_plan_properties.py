"""Property (issue 9): for stacks outside the shipped examples, what `validate` accepts the
program builds, what it refuses the program refuses, and the resources `modelfleet plan` lists
are exactly the ones the program creates.

Generated stacks use model names that are prefixes of each other, 1-6 models, VPC ranges from
/16 to /28 with 2-6 AZs, drains, schedules, emails, ingress CIDRs, any team name the schema
takes and any stack name Pulumi takes (capitals, "_" and "." included); the names AWS is
strictest about must come out valid. Each example runs the real program under Pulumi mocks
(about a second), so the example count is bounded; examples are derandomized so CI sees the
same stacks every run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stack_properties import (
    PROPERTY_SETTINGS,
    built_as_planned,
    free_names,
    models,
    network_of,
    regions,
    stack_file,
    stack_names,
)

pytestmark = pytest.mark.xdist_group("properties")

_cidrs = st.builds(
    lambda a, p: f"10.{a}.0.0/{p}" if p <= 16 else network_of(a, p),
    st.integers(0, 255),
    st.integers(16, 28),
)


_emails = st.lists(
    st.from_regex(r"\A[a-z]{1,8}@example\.com\Z"), min_size=0, max_size=3, unique=True
)
_ingress = st.lists(
    st.builds(lambda a, p: network_of(a, p), st.integers(1, 250), st.sampled_from([8, 16, 24])),
    min_size=1,
    max_size=3,
    unique=True,
)


@st.composite
def stacks(draw: st.DrawFn) -> dict[str, Any]:
    ephemeral = draw(st.booleans())
    env = "dev" if ephemeral else draw(st.sampled_from(["dev", "staging", "prod"]))
    network: dict[str, Any] = {
        "vpcCidr": draw(_cidrs),
        "availabilityZones": draw(st.integers(2, 6)),
        "ingressCidrs": draw(_ingress),
    }
    config: dict[str, Any] = {
        "aws:region": draw(regions),
        "modelfleet:environment": env,
        "modelfleet:team": draw(st.one_of(st.just("props"), free_names)),
        "modelfleet:platform": "ecs",
        "modelfleet:ephemeral": ephemeral,
        "modelfleet:network": network,
        "modelfleet:models": draw(models(max_models=6)),
        "modelfleet:gateway": {"drainSeconds": draw(st.integers(5, 600))},
        "modelfleet:alarms": {"emails": draw(_emails)},
    }
    return stack_file(draw, config)


_STRICT_NAMES = {
    "aws:s3/bucket:Bucket",
    "aws:ecr/repository:Repository",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
}
_SAFE = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")


@PROPERTY_SETTINGS
@given(doc=stacks(), stack=stack_names)
def test_validate_accepts_exactly_what_the_program_builds(
    tmp_path: Path, doc: dict[str, Any], stack: str
) -> None:
    built = built_as_planned(tmp_path, doc, stack)
    if built is None:
        return
    run, _ = built
    # Pulumi names these after their logical names (plus a random suffix); AWS takes only
    # lowercase letters, digits and hyphens in S3 bucket and ECR repository names, and no
    # "_" or "." in load balancer and target group names (CreateBucket, CreateRepository,
    # CreateLoadBalancer, CreateTargetGroup), whatever the stack is called.
    unsafe = [
        (r.type, r.name)
        for r in run.resources
        if r.type in _STRICT_NAMES and not _SAFE.fullmatch(r.name)
    ]
    assert unsafe == []

"""Property (issue 9): for stacks outside the shipped examples, what `validate` accepts the
program builds, what it refuses the program refuses, and the resources `modelfleet plan` lists
are exactly the ones the program creates.

Generated stacks use model names that are prefixes of each other, 1-6 models, VPC ranges from
/16 to /28 with 2-6 AZs, drains, schedules, emails and ingress CIDRs. Each example runs the
real program under Pulumi mocks (about a second), so the example count is bounded; examples
are derandomized so CI sees the same stacks every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.harness import run_stack
from modelfleet.config import ConfigError, load_stack_file
from modelfleet.plan import build_plan

pytestmark = pytest.mark.xdist_group("properties")

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
# (catalog model, instance type, maxModelLen) that fit, so sizing is not what is exercised.
FITS = [
    ("qwen2.5-7b", "g6e.xlarge", 4096),
    ("llama-3.1-8b", "g6.xlarge", 8192),
    ("llama-3.2-3b", "g5.xlarge", 8192),
]

_bases = st.sampled_from(["chat", "code", "mo", "llm-a", "qwen"])
_suffixes = st.sampled_from(["", "-large", "-l", "-2", "-large-v2", "-b"])
_prefix_names = st.builds(lambda b, s: b + s, _bases, _suffixes)
_free_names = st.from_regex(r"\A[a-z][a-z0-9-]{0,22}[a-z0-9]\Z")
_names = st.lists(st.one_of(_prefix_names, _free_names), min_size=1, max_size=6, unique=True)


@st.composite
def _models(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(_names):
        model, instance, length = draw(st.sampled_from(FITS))
        lo = draw(st.integers(0, 2))
        out.append(
            {
                "name": name,
                "source": f"s3://weights-bucket/{name}/",
                "model": model,
                "dtype": "bfloat16",
                "maxModelLen": length,
                "instanceType": instance,
                "replicas": {"min": lo, "max": draw(st.integers(max(lo, 1), 4))},
                "capacity": draw(st.sampled_from(["on-demand", "spot", "mixed"])),
            }
        )
    return out


_cidrs = st.builds(
    lambda a, p: f"10.{a}.0.0/{p}" if p <= 16 else _network(a, p),
    st.integers(0, 255),
    st.integers(16, 28),
)


def _network(a: int, p: int) -> str:
    import ipaddress

    return str(ipaddress.IPv4Network((f"10.{a}.0.0", p), strict=False))


_emails = st.lists(
    st.from_regex(r"\A[a-z]{1,8}@example\.com\Z"), min_size=0, max_size=3, unique=True
)
_ingress = st.lists(
    st.builds(lambda a, p: _network(a, p), st.integers(1, 250), st.sampled_from([8, 16, 24])),
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
        "aws:region": "us-east-1",
        "modelfleet:environment": env,
        "modelfleet:team": "props",
        "modelfleet:platform": "ecs",
        "modelfleet:ephemeral": ephemeral,
        "modelfleet:network": network,
        "modelfleet:models": draw(_models()),
        "modelfleet:gateway": {"drainSeconds": draw(st.integers(5, 600))},
        "modelfleet:alarms": {"emails": draw(_emails)},
    }
    if ephemeral:
        config["modelfleet:gateway"]["allowNoAuth"] = True
    else:
        network["certificateArn"] = CERT
        config["modelfleet:gateway"]["apiKeys"] = {"secure": "v1:abc"}
    if draw(st.booleans()):
        config["modelfleet:schedule"] = {
            "timezone": "Europe/Berlin",
            "scaleDown": "0 19 * * MON-FRI",
            "scaleUp": "30 6 * * MON-FRI",
        }
    return {"config": config}


def _accepted(path: Path) -> bool:
    try:
        build_plan(load_stack_file(path))
    except ConfigError:
        return False
    return True


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=stacks())
def test_validate_accepts_exactly_what_the_program_builds(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    path = tmp_path / "Pulumi.props.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    accepted = _accepted(path)
    event("accepted" if accepted else "refused")
    if not accepted:
        with pytest.raises(Exception, match="modelfleet:"):
            run_stack(path)
        return
    run = run_stack(path)
    created = sorted(
        (r.type, r.name) for r in run.resources if not r.type.startswith("modelfleet:")
    )
    listed = sorted((r.type, r.name) for r in build_plan(load_stack_file(path)).resources)
    assert created == listed

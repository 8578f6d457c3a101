"""Stack files outside the shipped ones, for the ECS and EKS property tests
(tests/infra/test_plan_properties.py, tests/eks/test_eks_properties.py): Hypothesis strategies,
the settings both run under, and the check both make first."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from components.harness import Run, run_stack
from modelfleet.config import ConfigError, load_stack_file
from modelfleet.partitions import partition_of
from modelfleet.plan import FleetPlan, build_plan

# Each example runs the real program under Pulumi mocks (one to a few seconds), so the count is
# bounded; derandomized, so CI sees the same stacks every run.
PROPERTY_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Regions of every partition a stack may name: the commercial one, GovCloud and China (the
# ECR host, ARNs and the certificate's partition differ there).
regions = st.sampled_from(["us-east-1", "us-east-1", "eu-west-1", "us-gov-west-1", "cn-north-1"])
# (catalog model, instance type, maxModelLen) that fit, so sizing is not what is exercised.
FITS = [
    ("qwen2.5-7b", "g6e.xlarge", 4096),
    ("llama-3.1-8b", "g6.xlarge", 8192),
    ("llama-3.2-3b", "g5.xlarge", 8192),
]

_bases = st.sampled_from(["chat", "code", "mo", "llm-a", "qwen"])
_suffixes = st.sampled_from(["", "-large", "-l", "-2", "-large-v2", "-b"])
# Model names that are prefixes of each other ("chat", "chat-large"), and any other the schema
# takes (its Name pattern, up to 24 characters).
prefix_names = st.builds(lambda b, s: b + s, _bases, _suffixes)
free_names = st.from_regex(r"\A[a-z][a-z0-9-]{0,22}[a-z0-9]\Z")

# Stack names as Pulumi takes them (pulumi/pulumi validateStackName: ^[A-Za-z0-9_.-]{1,100}$):
# capitals, "_" and "." included, which no AWS or Kubernetes name built from them may keep.
stack_names = st.one_of(
    st.just("props"),
    st.sampled_from(["dev_alice", "Prod", "team-a.staging", "prod-eu-central-1-gpu"]),
    st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z"),
)


def network_of(a: int, prefix_len: int) -> str:
    """The /prefix_len network holding 10.a.0.0."""
    return str(ipaddress.IPv4Network((f"10.{a}.0.0", prefix_len), strict=False))


@st.composite
def models(draw: st.DrawFn, max_models: int) -> list[dict[str, Any]]:
    """1..max_models models that fit their instance, with any replica range and capacity."""
    names = draw(
        st.lists(st.one_of(prefix_names, free_names), min_size=1, max_size=max_models, unique=True)
    )
    out = []
    for name in names:
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


def stack_file(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    """A stack file around `config`: HTTPS (a certificate of the stack's Region) and an API key
    unless the stack is ephemeral (then plain HTTP with no key, as its schema allows), and a
    weekday schedule or none."""
    gateway = config.setdefault("modelfleet:gateway", {})
    if config["modelfleet:ephemeral"]:
        gateway["allowNoAuth"] = True
    else:
        region = config["aws:region"]
        config["modelfleet:network"]["certificateArn"] = (
            f"arn:{partition_of(region)[0]}:acm:{region}:123456789012:certificate/0a1b2c3d"
        )
        gateway["apiKeys"] = {"secure": "v1:abc"}
    if draw(st.booleans()):
        config["modelfleet:schedule"] = {
            "timezone": "Europe/Berlin",
            "scaleDown": "0 19 * * MON-FRI",
            "scaleUp": "30 6 * * MON-FRI",
        }
    return {"config": config}


def built_as_planned(
    tmp_path: Path, doc: dict[str, Any], stack: str
) -> tuple[Run, FleetPlan] | None:
    """Write `doc` as stack `stack`. If `validate` refuses it, assert the program refuses it too,
    with a message naming the key, and return None. If it accepts it, assert the program
    creates exactly the resources `modelfleet plan` lists, and return the run and the plan."""
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        plan = build_plan(load_stack_file(path))
    except ConfigError:
        event("refused")
        with pytest.raises(Exception, match="modelfleet:"):
            run_stack(path)
        return None
    event("accepted")
    run = run_stack(path)
    created = sorted(
        (r.type, r.name) for r in run.resources if not r.type.startswith("modelfleet:")
    )
    assert created == sorted((r.type, r.name) for r in plan.resources)
    return run, plan

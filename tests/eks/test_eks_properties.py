"""Property (issue 9's rule, on the EKS platform): for EKS stacks outside the shipped ones, what
`validate` accepts the program builds, what it refuses the program refuses with a message that
names the key, the resources `modelfleet plan` lists are exactly the ones the program creates,
and what it creates would be accepted: every Kubernetes object valid at the stack's version
(strict; custom resources against their vendored CRDs), every name one the API server takes,
and every EKS API payload valid against botocore's model.

Generated stacks vary the models (1-4, names that are prefixes of each other, capacity types,
scale-to-zero), the network (a new VPC from /16 to /24 in 2-6 AZs, or an existing one), the
Kubernetes version (including one that is refused), admins, public endpoint CIDRs, system
nodes, the image cache and a schedule. Each example runs the real program under Pulumi mocks
(a few seconds), so the example count is bounded; examples are derandomized so CI sees the same
stacks every run.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from eks_support import K8S_TYPE_PREFIX, PAYLOADS, crd_schema, ec2_shaped, k8s_object
from hypothesis import given
from hypothesis import strategies as st
from serving_support import plain
from serving_support import validate as validate_object

from components.harness import Recorded, Run
from modelfleet.partitions import partition_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from infra_support import validate as validate_aws
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

pytestmark = pytest.mark.xdist_group("eks-properties")

_hex = st.from_regex(r"\A[0-9a-f]{17}\Z")


@st.composite
def _network(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {
            # /23 and /24 are refused for some AZ counts (too small): both sides are exercised.
            "vpcCidr": network_of(
                draw(st.integers(0, 255)), draw(st.sampled_from([16, 16, 18, 20, 21, 22, 23, 24]))
            ),
            "availabilityZones": draw(st.integers(2, 6)),
        }
    subnets = st.lists(_hex.map(lambda h: f"subnet-{h}"), min_size=2, max_size=4, unique=True)
    return {
        "vpcId": f"vpc-{draw(_hex)}",
        "privateSubnetIds": draw(subnets),
        "publicSubnetIds": draw(subnets),
    }


_public_cidrs = st.lists(
    st.builds(
        lambda a, b, p: str(ipaddress.IPv4Network((f"{a}.{b}.0.0", p), strict=False)),
        st.sampled_from([198, 203, 52, 3]),
        st.integers(0, 255),
        st.sampled_from([16, 24, 28, 32]),
    ),
    max_size=3,
    unique=True,
)
_admins = st.lists(
    st.builds(
        lambda path, name: f"iam::123456789012:role/{path}{name}",
        st.sampled_from(["", "path/", "a/b/"]),
        st.from_regex(r"\A[A-Za-z][A-Za-z0-9+=,.@_-]{0,40}\Z"),
    ),
    max_size=3,
    unique=True,
)
_image_cache = st.sampled_from(
    [
        {},
        {"enabled": False},
        {"initialization": "fast-snapshot-restore"},
        {"initialization": "rate"},
        {"initializationRate": 100},
        {"initialization": "rate", "initializationRate": 250},
        # Refused: a rate with fast snapshot restore.
        {"initialization": "fast-snapshot-restore", "initializationRate": 200},
    ]
)


@st.composite
def stacks(draw: st.DrawFn) -> dict[str, Any]:
    ephemeral = draw(st.booleans())
    env = "dev" if ephemeral else draw(st.sampled_from(["dev", "staging", "prod"]))
    network = draw(_network())
    region = draw(regions)
    partition = partition_of(region)[0]
    eks: dict[str, Any] = {
        # 1.32 is in the table but out of standard and extended support: refused.
        "kubernetesVersion": draw(st.sampled_from(["1.33", "1.34", "1.35", "1.35", "1.32"])),
        "adminRoleArns": [f"arn:{partition}:{role}" for role in draw(_admins)],
        "publicAccessCidrs": draw(_public_cidrs),
        "systemNodes": {"count": draw(st.integers(2, 5))},
        "imageCache": draw(_image_cache),
    }
    config: dict[str, Any] = {
        "aws:region": region,
        "modelfleet:environment": env,
        "modelfleet:team": draw(st.one_of(st.just("props"), free_names)),
        "modelfleet:platform": "eks",
        "modelfleet:ephemeral": ephemeral,
        "modelfleet:network": network,
        "modelfleet:eks": eks,
        "modelfleet:models": draw(models(max_models=4)),
        "modelfleet:gateway": {"drainSeconds": draw(st.integers(5, 600))},
    }
    return stack_file(draw, config)


# What the API server takes as a name (k8s.io/apimachinery pkg/util/validation): Services and
# Namespaces are DNS labels (63), everything else here a DNS subdomain (253); label values 63.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KINDS = {"Namespace", "Service"}
# Helm keeps a release's state in a Secret named sh.helm.release.v1.<name>.v<revision>; it
# refuses names over 53 characters (helm/pkg/chartutil/validate_name.go, maxReleaseNameLen).
_HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def _names_problems(run: Run) -> list[str]:
    problems = []
    for r in run.resources:
        if r.type == _HELM_RELEASE:
            name = r.inputs.get("name", "")
            if len(name) > 53 or not _DNS_LABEL.match(name):
                problems.append(f"helm release {name!r}")
            continue
        if not r.type.startswith(K8S_TYPE_PREFIX):
            continue
        obj = k8s_object(r)
        meta = obj.get("metadata") or {}
        name, kind = meta.get("name", ""), obj["kind"]
        if kind in _LABEL_KINDS:
            if len(name) > 63 or not _DNS_LABEL.match(name):
                problems.append(f"{kind} name {name!r}")
        elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            problems.append(f"{kind} name {name!r}")
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                problems.append(f"{kind} {name}: label {key}={value!r}")
    return problems


_SCHEMA_ERRORS = (AssertionError, jsonschema.ValidationError, kubernetes_validate.ValidationError)


def _objects_problems(run: Run, version: str) -> list[str]:
    problems = []
    for r in run.resources:
        if not r.type.startswith(K8S_TYPE_PREFIX) or r.type == _HELM_RELEASE:
            continue
        obj = plain(ec2_shaped(k8s_object(r)))
        try:
            if obj["apiVersion"].startswith("karpenter."):
                jsonschema.validate(obj, crd_schema(obj["apiVersion"], obj["kind"]))
            else:
                validate_object(obj, version)
        except (
            AssertionError,
            jsonschema.ValidationError,
            kubernetes_validate.ValidationError,
        ) as exc:
            problems.append(f"{obj['kind']} {obj['metadata'].get('name')}: {exc}")
    return problems


def _payload_problems(run: Run) -> list[str]:
    problems = []
    for operation, (type_token, convert) in PAYLOADS.items():
        for r in run.by_type(type_token):
            problems += [
                f"{operation} {r.name}: {p}" for p in validate_aws("eks", operation, convert(r))
            ]
    return problems


@PROPERTY_SETTINGS
@given(doc=stacks(), stack=stack_names)
def test_eks_validate_accepts_exactly_what_the_program_builds(
    tmp_path: Path, doc: dict[str, Any], stack: str
) -> None:
    built = built_as_planned(tmp_path, doc, stack)
    if built is None:
        return
    run, plan = built
    assert plan.eks is not None
    assert _names_problems(run) == []
    assert _objects_problems(run, plan.eks.kubernetes_version) == []
    assert _payload_problems(run) == []


def test_name_checks_can_fail() -> None:
    """The name rules above reject what the API server and Helm reject."""
    service = Recorded(
        "kubernetes:core/v1:Service",
        "svc",
        {"metadata": {"name": "a" * 64, "labels": {"app": "x" * 64}}},
    )
    deployment = Recorded("kubernetes:apps/v1:Deployment", "dep", {"metadata": {"name": "Chat"}})
    release = Recorded(_HELM_RELEASE, "rel", {"name": "r" * 54})
    fine = Recorded("kubernetes:apps/v1:Deployment", "ok", {"metadata": {"name": "chat.v2-a"}})
    problems = _names_problems(Run([service, deployment, release, fine], {}))
    assert problems == [
        f"Service name {'a' * 64!r}",
        f"Service {'a' * 64}: label app={'x' * 64!r}",
        "Deployment name 'Chat'",
        f"helm release {'r' * 54!r}",
    ]

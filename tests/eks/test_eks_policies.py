"""The policy pack's EKS rules: each passes on what the program builds and fails on the
mistake it names; the GPU cost guardrails see NodePools as they see ECS services."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from eks_runs import PROD_EKS, run_of

from policies import offline
from policies import rules as r

pytestmark = pytest.mark.xdist_group("eks")


def _resources(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    return [(x.type, x.name, dict(x.inputs)) for x in run_of(path).resources]


def _one(path: Path, type_token: str) -> dict[str, Any]:
    found = [p for t, _, p in _resources(path) if t == type_token]
    assert found, type_token
    return copy.deepcopy(found[0])


def _check(rule: str, type_token: str, props: dict[str, Any]) -> list[str]:
    found = next(x for x in r.RESOURCE_RULES if x.name == rule)
    assert type_token in found.resource_types
    return found.check(type_token, props, r.RuleContext(name="x", config=r.default_config(found)))


def test_shipped_and_variant_eks_stacks_pass_the_pack(eks_small_path: Path) -> None:
    for path in (PROD_EKS, eks_small_path):
        verdict = offline.run_rules(_resources(path))
        assert verdict.passed, [v.message for v in verdict.violations]
        assert verdict.unchecked == []


def test_cluster_without_secrets_encryption_fails() -> None:
    props = _one(PROD_EKS, r.EKS_CLUSTER)
    assert _check("eks-secrets-encrypted", r.EKS_CLUSTER, props) == []
    props.pop("encryptionConfig")
    assert "envelope-encrypt" in _check("eks-secrets-encrypted", r.EKS_CLUSTER, props)[0]


@pytest.mark.parametrize(
    ("vpc", "fails"),
    [
        ({"endpointPublicAccess": False}, False),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]}, False),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}, True),
        ({"endpointPublicAccess": True}, True),  # EKS then opens it to 0.0.0.0/0
        ({}, True),  # and endpointPublicAccess defaults to true
    ],
)
def test_public_endpoint_must_be_limited(vpc: dict[str, Any], fails: bool) -> None:
    props = _one(PROD_EKS, r.EKS_CLUSTER)
    props["vpcConfig"] = {"subnetIds": ["subnet-1"], **vpc}
    assert bool(_check("eks-public-endpoint-restricted", r.EKS_CLUSTER, props)) is fails


@pytest.mark.parametrize("version", ["", "2.*", "~2.20", ">=1.0.0", "latest"])
def test_unpinned_charts_fail(version: str) -> None:
    release = r.HELM_RELEASES[0]
    props = _one(PROD_EKS, release)
    assert _check("helm-chart-pinned", release, props) == []
    props["version"] = version
    assert "pin an exact chart version" in _check("helm-chart-pinned", release, props)[0]


def test_nodepool_without_gpu_limit_fails() -> None:
    props = _one(PROD_EKS, r.NODE_POOL)
    assert _check("nodepool-gpu-limit", r.NODE_POOL, props) == []
    props["spec"]["limits"] = {"cpu": "1000"}
    assert "no nvidia.com/gpu limit" in _check("nodepool-gpu-limit", r.NODE_POOL, props)[0]


@pytest.mark.parametrize(("tokens", "hops"), [("optional", 1), ("required", 2)])
def test_node_class_without_imdsv2_hop_1_fails(tokens: str, hops: int) -> None:
    props = _one(PROD_EKS, r.EC2_NODE_CLASS)
    assert _check("node-imdsv2", r.EC2_NODE_CLASS, props) == []
    props["spec"]["metadataOptions"].update(httpTokens=tokens, httpPutResponseHopLimit=hops)
    assert _check("node-imdsv2", r.EC2_NODE_CLASS, props)


def test_nodepool_guardrails_read_the_pools_annotations() -> None:
    props = _one(PROD_EKS, r.NODE_POOL)
    tags = r._tags(props)
    assert tags["modelfleet:environment"] == "prod"
    assert tags["modelfleet:instance-type"] in {"g6e.xlarge", "g5.xlarge"}
    assert _check("guardrail-instance-families", r.NODE_POOL, props) == []
    # A family outside the stack's own narrowed list fails, as for an ECS service.
    props["metadata"]["annotations"]["modelfleet.io/guardrail-allowed-families"] = "g5"
    props["metadata"]["annotations"]["modelfleet.io/instance-type"] = "g6e.xlarge"
    assert "is not allowed in prod" in _check("guardrail-instance-families", r.NODE_POOL, props)[0]


def test_hourly_ceiling_counts_every_pool_at_its_gpu_limit() -> None:
    resources = _resources(PROD_EKS)
    pools = [(t, n, p) for t, n, p in resources if t == r.NODE_POOL]
    worst = sum(
        int(p["metadata"]["annotations"]["modelfleet.io/max-replicas"])
        * float(p["metadata"]["annotations"]["modelfleet.io/instance-hourly-usd"])
        for _, _, p in pools
    )
    # Below the stack's own ceiling (40 $/h) as shipped...
    assert worst < 40
    verdict = offline.run_rules(resources)
    assert verdict.passed
    # ... and over a ceiling just under it.
    lowered = []
    for t, n, p in resources:
        p = copy.deepcopy(p)
        if t == r.NODE_POOL:
            p["metadata"]["annotations"]["modelfleet.io/guardrail-max-hourly-usd"] = (
                f"{worst - 1:g}"
            )
        lowered.append((t, n, p))
    verdict = offline.run_rules(lowered)
    assert [v.policy for v in verdict.violations] == ["guardrail-team-hourly-ceiling"]
    assert "team 'search' (prod)" in verdict.violations[0].message


def test_dev_eks_pool_must_be_spot(eks_small_path: Path) -> None:
    resources = _resources(eks_small_path)
    assert offline.run_rules(resources).passed
    changed = []
    for t, n, p in resources:
        p = copy.deepcopy(p)
        if t == r.NODE_POOL:
            p["metadata"]["annotations"]["modelfleet.io/capacity"] = "on-demand"
        changed.append((t, n, p))
    verdict = offline.run_rules(changed)
    assert {v.policy for v in verdict.violations} == {"guardrail-spot-outside-prod"}

"""EKS: the cluster, its charts and its GPU capacity (Karpenter)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.rules._common import _int, _list, _mapping, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.security_groups import WORLD_CIDRS
from policies.rules.tokens import EC2_NODE_CLASS, EKS_CLUSTER, HELM_RELEASES, NODE_POOL


@resource_rule(
    "eks-secrets-encrypted",
    "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
    (EKS_CLUSTER,),
)
def eks_secrets_encrypted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    configs = props.get("encryptionConfig")
    cfg = _mapping(configs[0] if isinstance(configs, list) and configs else configs)
    key = _mapping(cfg.get("provider")).get("keyArn")
    if "secrets" in _list(cfg.get("resources")) and key:
        return []
    return [
        f"{_who(resource_type, ctx)} does not envelope-encrypt Kubernetes Secrets with a KMS key. "
        "Fix: set encryptionConfig {resources: [secrets], provider.keyArn: the stack's key}; "
        "it cannot be turned off later."
    ]


@resource_rule(
    "eks-public-endpoint-restricted",
    "An EKS public API endpoint is limited to given CIDRs, never the world.",
    (EKS_CLUSTER,),
)
def eks_public_endpoint_restricted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    vpc = _mapping(props.get("vpcConfig"))
    # EKS's default for endpointPublicAccess is true, and for publicAccessCidrs 0.0.0.0/0.
    if vpc.get("endpointPublicAccess") is False:
        return []
    cidrs = [str(c) for c in _list(vpc.get("publicAccessCidrs"))]
    world = sorted(set(cidrs) & WORLD_CIDRS)
    if cidrs and not world:
        return []
    shown = ", ".join(world) if world else "0.0.0.0/0 (the default when none are given)"
    return [
        f"{_who(resource_type, ctx)}: the public API endpoint is open to {shown}. Fix: list the "
        "CIDRs that run `pulumi up` and kubectl in eks.publicAccessCidrs, or leave it empty for "
        "a private-only endpoint."
    ]


EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


@resource_rule("helm-chart-pinned", "Helm charts are pinned to an exact version.", HELM_RELEASES)
def helm_chart_pinned(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    version = str(props.get("version") or "").strip()
    if EXACT_VERSION.match(version):
        return []
    shown = repr(version) if version else "no version (the newest at each deploy)"
    return [
        f"{_who(resource_type, ctx)}: chart {props.get('chart')!r} has {shown}. Fix: pin an "
        "exact chart version (x.y.z) in modelfleet/eks_versions.py."
    ]


@resource_rule("nodepool-gpu-limit", "Karpenter NodePools cap nvidia.com/gpu.", (NODE_POOL,))
def nodepool_gpu_limit(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    limits = _mapping(_mapping(props.get("spec")).get("limits"))
    limit = _int(limits.get("nvidia.com/gpu"))
    if limit is not None and limit >= 0:
        return []
    return [
        f"{_who(resource_type, ctx)} sets no nvidia.com/gpu limit: Karpenter could launch GPU "
        "nodes without bound. Fix: the plan sizes each pool's limit from replicas.max."
    ]


@resource_rule(
    "node-imdsv2",
    "Karpenter nodes require IMDSv2 with a hop limit of 1.",
    (EC2_NODE_CLASS,),
)
def node_class_imdsv2(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    opts = _mapping(_mapping(props.get("spec")).get("metadataOptions"))
    if opts.get("httpTokens") == "required" and _int(opts.get("httpPutResponseHopLimit")) == 1:
        return []
    return [
        f"{_who(resource_type, ctx)}: nodes must require IMDSv2 with a hop limit of 1 "
        f"(got httpTokens={opts.get('httpTokens')!r}, hop limit "
        f"{opts.get('httpPutResponseHopLimit')!r}), or pods can read the node role's "
        "credentials. Fix: metadataOptions {httpTokens: required, httpPutResponseHopLimit: 1}."
    ]

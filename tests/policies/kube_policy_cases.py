"""Compliant / violating / absent fixtures for the Kubernetes rules (policies/rules/kubernetes.py).

Shaped as pulumi-kubernetes registers a Deployment's inputs: the manifest's fields, camelCase.
"""

from __future__ import annotations

import copy
from typing import Any

from policies import rules as r
from policies.rules import kubernetes as k

SAFE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def deployment(
    *containers: dict[str, Any], annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": "m"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "m"}},
            "template": {"metadata": meta, "spec": {"containers": list(containers)}},
            **spec,
        },
    }


def container(**kw: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.31.0-cu129",
        "securityContext": dict(SAFE),
        "resources": {"limits": {"memory": "8Gi"}},
    }
    c.update(kw)
    return c


def gpu_container(n: str = "1", limit: str | None = "1") -> dict[str, Any]:
    limits: dict[str, str] = {"memory": "8Gi"}
    if limit is not None:
        limits[k.GPU] = limit
    return container(resources={"requests": {k.GPU: n}, "limits": limits})


DND = {k.DO_NOT_DISRUPT: "true"}

# (rule, type, compliant, violating, absent, absent violates, expected message fragment)
KUBE_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any], bool, str]] = [
    (
        "k8s-images-pinned",
        k.DEPLOYMENT,
        deployment(container(image="repo/sidecar@sha256:" + "0" * 64)),
        deployment(container(image="vllm/vllm-openai:latest")),
        deployment(container(image="vllm/vllm-openai")),
        True,
        "latest",
    ),
    (
        "k8s-no-privileged",
        k.JOB,
        deployment(container()),
        deployment(container(securityContext={"privileged": True})),
        deployment({k2: v for k2, v in container().items() if k2 != "securityContext"}),
        True,
        "privileged",
    ),
    (
        "k8s-resource-limits",
        k.DEPLOYMENT,
        deployment(gpu_container()),
        deployment(gpu_container(n="2", limit="1")),
        deployment(container(resources={})),
        True,
        "limit",
    ),
    (
        "k8s-gpu-pods-not-disruptible",
        k.DEPLOYMENT,
        deployment(gpu_container(), annotations=DND),
        deployment(gpu_container(), annotations={k.DO_NOT_DISRUPT: "false"}),
        deployment(gpu_container()),
        True,
        "do-not-disrupt",
    ),
]


def scaled_object(target: str = "m") -> r.StackResource:
    return r.StackResource(
        k.SCALED_OBJECT,
        "so",
        {
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"name": target}},
        },
    )


def deployment_resource(**spec: Any) -> r.StackResource:
    return r.StackResource(k.DEPLOYMENT, "dep", copy.deepcopy(deployment(container(), **spec)))


KUBE_STACK_CASES: list[
    tuple[str, list[r.StackResource], list[r.StackResource], list[r.StackResource], str]
] = [
    (
        "k8s-no-replicas-under-autoscaler",
        [scaled_object(), deployment_resource()],
        [scaled_object(), deployment_resource(replicas=2)],
        # replicas: 0 is still a value Pulumi would reset at every `up`.
        [scaled_object(), deployment_resource(replicas=0)],
        "replicas",
    ),
]


def kube_good_resources() -> list[tuple[str, str, dict[str, Any]]]:
    """A compliant GPU Deployment and the ScaledObject that owns its replicas."""
    so = scaled_object()
    return [
        (k.DEPLOYMENT, "good-dep", deployment(gpu_container(), annotations=DND)),
        (so.type, "good-so", dict(so.props)),
    ]


def kube_broken_resources() -> list[tuple[str, str, dict[str, Any]]]:
    """A GPU Deployment breaking every Kubernetes rule, under an autoscaler."""
    bad = container(
        image="vllm/vllm-openai:latest",
        securityContext={"privileged": True},
        resources={"requests": {k.GPU: "1"}},
    )
    so = scaled_object()
    return [
        (k.DEPLOYMENT, "bad-dep", deployment(bad, replicas=1)),
        (so.type, "bad-so", dict(so.props)),
    ]

"""Manifests of the serving slice: plain dicts built from the plan and the serving plan.

References to other resources (images, IDs, ARNs, CIDRs) are passed in `SliceRefs`: strings
in tests and `modelfleet render`, Pulumi Outputs in the component. Nothing is looked up here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.containers import (
    fetcher_command,
    http_probe_argv,
    sidecar_env,
    vllm_env,
)
from modelfleet.contract import (
    COMPILE_CACHE_MOUNT,
    COMPILE_CACHE_VOLUME,
    FETCHER_MEMORY_MIB,
    HEALTH_PATH,
    MODELS_MOUNT,
    READY_PATH,
    SIDECAR_MEMORY_MIB,
    SIDECAR_PORT,
    VLLM_PORT,
)
from modelfleet.kube.serving import (
    DO_NOT_DISRUPT,
    LIVENESS_FAILURES,
    LIVENESS_PERIOD_S,
    PREWARM_BACKOFF_LIMIT,
    PROBE_TIMEOUT_S,
    PULUMI_REPLACE_UNREADY,
    PULUMI_TIMEOUT,
    READINESS_FAILURES,
    READINESS_GATE_LABEL,
    READINESS_PERIOD_S,
    SIDECAR_CPU_M,
    STARTUP_PERIOD_S,
    ServingModel,
    ServingPlan,
)
from modelfleet.plan_types import FleetPlan, ModelPlan

GPU_RESOURCE = "nvidia.com/gpu"
ZONE_LABEL = "topology.kubernetes.io/zone"
EFS_CSI_DRIVER = "efs.csi.aws.com"
# The CloudWatch agent's EMF listener (UDP and TCP 25888 by default:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_CloudWatch_Agent.html);
# the add-on runs the agent on the host network of every node.
CLOUDWATCH_AGENT_EMF_PORT = 25888
MODELS_VOLUME = "models"
SHM_VOLUME = "dshm"
SIDECAR_PORT_NAME = "http"
# Users of our images (docker/sidecar/Dockerfile `USER 10001`, docker/fetcher/Dockerfile
# `USER 1000:1000`). vLLM's image runs as root and writes its caches under /root, so the
# engine keeps its user but loses every capability and privilege escalation.
SIDECAR_UID = 10001
FETCHER_UID = 1000
# Pre-warm pods run on the system nodes (GPU nodes are tainted; no GPU is needed to download),
# beside the controllers on two m7i.large by default: a small request per source, no CPU
# limit so hashing uses whatever is idle, and the ECS Fargate pre-warm task's 8 GiB ceiling.
PREWARM_CPU = "500m"
PREWARM_MEMORY_REQUEST = "1Gi"
PREWARM_MEMORY_LIMIT = "8Gi"
# The compile cache volume's nominal size: EFS ignores it (it grows with what is written);
# Kubernetes requires one on a PersistentVolume and its claim.
COMPILE_CACHE_GIB = 1


@dataclass(frozen=True)
class SliceRefs:
    """What the manifests need from resources made elsewhere, keyed by model name."""

    region: str
    vpc_id: Any
    # Per model: the EFS CSI handle of its access point (see `efs_volume_handle`).
    cache_volume_handles: Mapping[str, Any]
    # Per model: the handle of its compile-cache access point (`ModelPlan.compile_cache_path`).
    compile_volume_handles: Mapping[str, Any]
    target_group_arns: Mapping[str, Any]
    vllm_image: Any
    sidecar_image: Any
    fetcher_image: Any
    alb_cidrs: Sequence[Any]


def _meta(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _env(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def _secret_env(plan: FleetPlan, sp: ServingPlan, container: str) -> list[dict[str, Any]]:
    """Secrets reach containers only through secretKeyRef, never as plain values: the plan's
    secrets table (`plan.secrets`), keyed in the Secret as the table keys them."""
    return [
        {
            "name": s.env,
            "valueFrom": {"secretKeyRef": {"name": sp.secret_name, "key": s.key}},
        }
        for s in plan.secrets
        if s.container == container
    ]


def _restricted(uid: int | None, read_only_root: bool) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
    }
    if uid is not None:
        ctx.update(runAsNonRoot=True, runAsUser=uid, runAsGroup=uid)
    return ctx


def namespace(sp: ServingPlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        # Labelled before any pod exists, or the controller injects no readiness gates.
        "metadata": _meta(
            sp.namespace,
            None,
            {READINESS_GATE_LABEL: "enabled", "pod-security.kubernetes.io/warn": "restricted"},
        ),
    }


def secret(sp: ServingPlan, values: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's secrets (from Pulumi secret config), keyed by role; the cluster encrypts
    Secrets at rest with the stack's KMS key (envelope encryption on the cluster)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(sp.secret_name, sp.namespace),
        "type": "Opaque",
        "stringData": dict(values),
    }


def network_policies(sp: ServingPlan, refs: SliceRefs) -> list[dict[str, Any]]:
    """Deny all ingress in the namespace, then admit the ALB's subnets to the sidecar port.

    The kubelet's probes come from the node and are always allowed
    (https://kubernetes.io/docs/concepts/services-networking/network-policies/, "traffic to
    and from the node where a Pod is running is always allowed"); vLLM listens on 127.0.0.1.
    """
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(sp.default_deny_policy, sp.namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(sp.alb_ingress_policy, sp.namespace),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "serving"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": cidr}} for cidr in refs.alb_cidrs],
                    "ports": [{"protocol": "TCP", "port": SIDECAR_PORT}],
                }
            ],
        },
    }
    return [deny, allow]


def _efs_volume(
    sp: ServingPlan, sm: ServingModel, name: str, claim: str, gib: int, handle: Any
) -> dict[str, Any]:
    """A static volume on one of the model's EFS access points, bound to one claim.

    `fs-…::fsap-…` selects the access point, `tls` encrypts in transit and `iam` authorizes
    with the EFS CSI node's identity (aws-efs-csi-driver docs: examples/kubernetes/access_points).
    """
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": _meta(name, None, sm.labels),
        "spec": {
            # EFS ignores the size; Kubernetes requires one.
            "capacity": {"storage": f"{gib}Gi"},
            "volumeMode": "Filesystem",
            "accessModes": ["ReadWriteMany"],
            # What it holds outlives the claim: deleting the stack's claim must not delete it.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": ["tls", "iam"],
            # Bound to this claim only: no other claim in the cluster can take the volume.
            "claimRef": {"namespace": sp.namespace, "name": claim},
            "csi": {"driver": EFS_CSI_DRIVER, "volumeHandle": handle},
        },
    }


def _efs_claim(
    sp: ServingPlan, sm: ServingModel, name: str, volume: str, gib: int
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, sp.namespace, sm.labels),
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": volume,
            "resources": {"requests": {"storage": f"{gib}Gi"}},
        },
    }


def persistent_volume(sp: ServingPlan, sm: ServingModel, refs: SliceRefs) -> dict[str, Any]:
    """The model's weights, on its existing EFS access point: same cache as ECS."""
    handle = refs.cache_volume_handles[sm.model]
    return _efs_volume(sp, sm, sm.volume, sm.claim, sm.cache_gib, handle)


def persistent_volume_claim(sp: ServingPlan, sm: ServingModel) -> dict[str, Any]:
    return _efs_claim(sp, sm, sm.claim, sm.volume, sm.cache_gib)


def compile_cache_volume(sp: ServingPlan, sm: ServingModel, refs: SliceRefs) -> dict[str, Any]:
    """vLLM's compile cache, on the model's second access point (per engine version), as the
    ECS task mounts it: only the vLLM container mounts it, read-write."""
    handle = refs.compile_volume_handles[sm.model]
    return _efs_volume(sp, sm, sm.compile_volume, sm.compile_claim, COMPILE_CACHE_GIB, handle)


def compile_cache_claim(sp: ServingPlan, sm: ServingModel) -> dict[str, Any]:
    return _efs_claim(sp, sm, sm.compile_claim, sm.compile_volume, COMPILE_CACHE_GIB)


def efs_volume_handle(file_system_id: str, access_point_id: str) -> str:
    """The EFS CSI driver's handle for an access point (`fs-…::fsap-…`)."""
    return f"{file_system_id}::{access_point_id}"


def _cache_volume(sm: ServingModel) -> dict[str, Any]:
    return {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": sm.claim}}


def _compile_cache_volume(sm: ServingModel) -> dict[str, Any]:
    return {"name": COMPILE_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": sm.compile_claim}}


def _fetcher(
    plan: FleetPlan,
    m: ModelPlan,
    sp: ServingPlan,
    name: str,
    source: str,
    refs: SliceRefs,
    resources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "image": refs.fetcher_image,
        # The ECS fetcher's arguments: the fetch, and what the plan assumed of the weights.
        "args": fetcher_command(m, source),
        "env": _env({"AWS_DEFAULT_REGION": refs.region}) + _secret_env(plan, sp, "fetcher"),
        # The fetcher writes the cache; only it mounts it writable.
        "volumeMounts": [{"name": MODELS_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": False}],
        "resources": resources,
        "securityContext": _restricted(FETCHER_UID, read_only_root=False),
    }


def _pod_security() -> dict[str, Any]:
    return {"seccompProfile": {"type": "RuntimeDefault"}}


def prewarm_job(
    plan: FleetPlan, m: ModelPlan, sp: ServingPlan, sm: ServingModel, refs: SliceRefs
) -> dict[str, Any]:
    """Fetch the model (and its adapters, in parallel) into the cache before any pod loads it.

    Named by a hash of the sources, so a new revision is a new Job; no TTL, since Pulumi
    would see a finished Job vanish and recreate it. Pulumi awaits `Complete` and fails
    `pulumi up` on `Failed` (pulumi-kubernetes await logic for batch/v1 Job).
    """
    resources = {
        "requests": {"cpu": PREWARM_CPU, "memory": PREWARM_MEMORY_REQUEST},
        "limits": {"memory": PREWARM_MEMORY_LIMIT},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            sm.prewarm_job,
            sp.namespace,
            {**sm.labels, "app.kubernetes.io/component": "prewarm"},
            {
                PULUMI_TIMEOUT: str(sm.prewarm_await_s),
                # A Job that failed is replaced on the next `pulumi up`, not left failed.
                PULUMI_REPLACE_UNREADY: "true",
            },
        ),
        "spec": {
            "backoffLimit": PREWARM_BACKOFF_LIMIT,
            "activeDeadlineSeconds": sm.prewarm_deadline_s,
            "template": {
                "metadata": {"labels": {**sm.labels, "app.kubernetes.io/component": "prewarm"}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": sm.service_account,
                    "securityContext": _pod_security(),
                    "containers": [
                        _fetcher(plan, m, sp, name, source, refs, resources)
                        for name, source in sm.sources
                    ],
                    "volumes": [_cache_volume(sm)],
                },
            },
        },
    }


def deployment(
    plan: FleetPlan, m: ModelPlan, sp: ServingPlan, sm: ServingModel, refs: SliceRefs
) -> dict[str, Any]:
    """vLLM and the gateway sidecar on the model's GPU NodePool, as the ECS task runs them.

    No `replicas`: KEDA owns it, and a Pulumi-set value would fight it at every `up`
    (pulumi-kubernetes #2491).
    """
    fetch_resources = {
        "requests": {"cpu": "250m", "memory": f"{FETCHER_MEMORY_MIB}Mi"},
        "limits": {"memory": f"{FETCHER_MEMORY_MIB}Mi"},
    }
    pre_stop = {"sleep": {"seconds": sm.pre_stop_s}}
    vllm = {
        "name": "vllm",
        "image": refs.vllm_image,
        "args": list(m.vllm_command),
        "env": _env(vllm_env(m)),
        "resources": {
            "requests": {
                "cpu": f"{sm.vllm_cpu_m}m",
                "memory": f"{m.vllm_memory_mib}Mi",
                GPU_RESOURCE: str(sm.gpus),
            },
            "limits": {"memory": f"{m.vllm_memory_mib}Mi", GPU_RESOURCE: str(sm.gpus)},
        },
        "volumeMounts": [
            # Read-only: serving never writes weights; only the fetcher does.
            {"name": MODELS_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": True},
            # The one place vLLM writes (VLLM_CACHE_ROOT, see vllm_env).
            {"name": COMPILE_CACHE_VOLUME, "mountPath": COMPILE_CACHE_MOUNT, "readOnly": False},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},  # noqa: S108 - NCCL's shared memory
        ],
        # Exec probes: the engine listens on 127.0.0.1 only, out of the kubelet's reach.
        "startupProbe": {
            "exec": {"command": http_probe_argv(VLLM_PORT, HEALTH_PATH)},
            "periodSeconds": STARTUP_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": sm.startup_failures,
        },
        "livenessProbe": {
            "exec": {"command": http_probe_argv(VLLM_PORT, HEALTH_PATH)},
            "periodSeconds": LIVENESS_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": LIVENESS_FAILURES,
        },
        # Stays up while the ALB drains the pod, or the sidecar's in-flight streams break.
        "lifecycle": {"preStop": pre_stop},
        "securityContext": _restricted(None, read_only_root=False),
    }
    sidecar = {
        "name": "sidecar",
        "image": refs.sidecar_image,
        "ports": [{"name": SIDECAR_PORT_NAME, "containerPort": SIDECAR_PORT, "protocol": "TCP"}],
        # EMF to the node's CloudWatch agent (see modelfleet/kube/scaling.py); $(HOST_IP) is
        # expanded by the kubelet from the variable defined before it.
        "env": [
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            *_env(
                {
                    **sidecar_env(plan, m, sm.drain_s),
                    "SIDECAR_EMF_ENDPOINT": f"udp://$(HOST_IP):{CLOUDWATCH_AGENT_EMF_PORT}",
                }
            ),
            *_secret_env(plan, sp, "sidecar"),
        ],
        "resources": {
            "requests": {"cpu": f"{SIDECAR_CPU_M}m", "memory": f"{SIDECAR_MEMORY_MIB}Mi"},
            "limits": {"memory": f"{SIDECAR_MEMORY_MIB}Mi"},
        },
        # The ALB health check and the readiness gate both follow /ready.
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": SIDECAR_PORT_NAME},
            "periodSeconds": READINESS_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": READINESS_FAILURES,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH_PATH, "port": SIDECAR_PORT_NAME},
            "periodSeconds": LIVENESS_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": LIVENESS_FAILURES,
        },
        "lifecycle": {"preStop": pre_stop},
        "securityContext": _restricted(SIDECAR_UID, read_only_root=True),
    }
    pod_labels = dict(sm.labels)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            sm.deployment,
            sp.namespace,
            sm.labels,
            # A new GPU node, the image and the weights per wave; on the first deploy the API
            # starts one pod even for replicas.min 0 (KEDA scales it away after its cooldown).
            {PULUMI_TIMEOUT: str(sm.rollout_await_s)},
        ),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": sm.model}},
            "strategy": {
                "type": "RollingUpdate",
                # Never below the serving count during a rollout: new pods first.
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": sm.rollout_surge},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # Karpenter never consolidates or expires a node voluntarily while a
                    # serving pod runs on it (kubernetes-sigs/karpenter #3185).
                    "annotations": {DO_NOT_DISRUPT: "true"},
                },
                "spec": {
                    "serviceAccountName": sm.service_account,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": sm.termination_grace_s,
                    "securityContext": _pod_security(),
                    # The model's GPU class: its NodePool(s), two for `capacity: mixed`, where
                    # Karpenter prefers the on-demand pool's higher weight.
                    "nodeSelector": dict(sm.node_selector),
                    "tolerations": [dict(t) for t in sm.tolerations],
                    # Spread across zones when capacity allows; a zone without GPUs must not
                    # block a scale-out (ScheduleAnyway).
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": ZONE_LABEL,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": sm.model}},
                        }
                    ],
                    # The guard: each source verified (and completed) on the cache before the
                    # engine starts, as the ECS task's non-essential fetcher containers do.
                    "initContainers": [
                        _fetcher(plan, m, sp, name, source, refs, fetch_resources)
                        for name, source in sm.sources
                    ],
                    "containers": [vllm, sidecar],
                    "volumes": [
                        _cache_volume(sm),
                        _compile_cache_volume(sm),
                        {
                            "name": SHM_VOLUME,
                            # NCCL moves tensors between TP ranks through /dev/shm.
                            "emptyDir": {"medium": "Memory", "sizeLimit": f"{sm.shm_mib}Mi"},
                        },
                    ],
                },
            },
        },
    }


def service(sp: ServingPlan, sm: ServingModel) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(sm.service, sp.namespace, sm.labels),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": sm.model},
            "ports": [
                {
                    "name": SIDECAR_PORT_NAME,
                    "port": SIDECAR_PORT,
                    "targetPort": SIDECAR_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def target_group_binding(sp: ServingPlan, sm: ServingModel, refs: SliceRefs) -> dict[str, Any]:
    """Register the pods in the model's existing target group, as ECS registers its tasks.

    targetType and vpcID are set explicitly: the controller's webhook fills them otherwise,
    and server-side apply would show that as a diff at every preview.
    """
    return {
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": _meta(sm.target_group_binding, sp.namespace, sm.labels),
        "spec": {
            "serviceRef": {"name": sm.service, "port": SIDECAR_PORT},
            "targetGroupARN": refs.target_group_arns[sm.model],
            "targetType": "ip",
            "vpcID": refs.vpc_id,
        },
    }


def disruption_budget(sp: ServingPlan, sm: ServingModel) -> dict[str, Any] | None:
    """For replicas.min >= 2 only: a budget on one replica blocks node drains for ever."""
    if sm.disruption_budget is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(sm.disruption_budget, sp.namespace, sm.labels),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": sm.model}},
            # A pod that never turned ready protects nothing; let drains evict it.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }

"""The Karpenter custom resources and Helm values of the EKS platform, as plain data.

Pure, so the tests validate them against the vendored CRD schemas and chart values without
Pulumi; the components fill in the IDs and ARNs known only at deploy time.
"""

from __future__ import annotations

from typing import Any

from modelfleet import coldstart, eks
from modelfleet.config import StackConfig
from modelfleet.eks import EksPlan, NodePoolPlan

# The policy pack reads a NodePool's cost facts from these annotations (policies/guardrails.py
# ANNOTATION_PREFIX), as it reads an ECS service's from its tags.
ANNOTATION_PREFIX = "modelfleet.io/"

KARPENTER_API = "karpenter.sh/v1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"


def node_class_spec(
    plan: EksPlan,
    role_name: str,
    subnet_ids: list[str],
    security_group_ids: list[str],
    tags: dict[str, str],
    snapshot_id: str | None = None,
) -> dict[str, Any]:
    """The GPU EC2NodeClass (karpenter.k8s.aws_ec2nodeclasses.yaml, v1). `snapshot_id`: the
    prepared data-volume snapshot (plan.image_cache), encrypted with the stack's key."""
    ic = plan.image_cache
    data: dict[str, Any] = {
        "volumeSize": f"{ic.volume_gib if ic else eks.DATA_VOLUME_GIB}Gi",
        "volumeType": "gp3",
        "iops": eks.DATA_VOLUME_IOPS,
        "throughput": eks.DATA_VOLUME_THROUGHPUT_MIBPS,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if ic is not None:
        assert snapshot_id is not None, "the image cache's snapshot"
        # The volume is created from the snapshot with the instance; the CRD allows
        # volumeInitializationRate "only if SnapshotID is set" (100-300 MiB/s). With FSR it is
        # left out: EBS would use the rate instead of FSR.
        data["snapshotID"] = snapshot_id
        if ic.rate_mibps is not None:
            data["volumeInitializationRate"] = ic.rate_mibps
        # "If you are creating a volume from a snapshot, you can't specify an encryption
        # value" (the CRD's `encrypted`): the volume is encrypted as the snapshot is, with
        # the stack's key (components/eks/image_cache.py encrypts the builder's volume).
        del data["encrypted"]
    return {
        "role": role_name,
        # Pinned; Karpenter resolves the NVIDIA variant for GPU instance types.
        "amiSelectorTerms": [{"alias": eks.GPU_AMI_ALIAS}],
        # By ID: known for a new VPC and for an existing one alike, and nothing else in the
        # account can match by carrying the same tag.
        "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
        "securityGroupSelectorTerms": [{"id": g} for g in security_group_ids],
        # IMDSv2 only, hop limit 1: pods cannot reach the node role's credentials.
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": f"{eks.OS_VOLUME_GIB}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            },
            # Bottlerocket's data volume holds the container images.
            {"deviceName": "/dev/xvdb", "ebs": data},
        ],
        # SOCI parallel pull for whatever is not on the snapshot (modelfleet/coldstart.py has
        # the settings' source); the image cache's builder boots with the same settings, so
        # the snapshotter state on the snapshot is the one the nodes use.
        "userData": coldstart.bottlerocket_user_data(),
        "tags": tags,
    }


def node_pool_annotations(config: StackConfig, pool: NodePoolPlan) -> dict[str, str]:
    """What the cost guardrails need, at the pool's GPU limit (Karpenter's worst case)."""
    g = config.guardrails
    out = {
        "environment": config.environment.value,
        "team": config.team,
        "stack": config.stack,
        "ephemeral": "true" if config.ephemeral else "false",
        "instance-type": pool.instance_type,
        "capacity": pool.capacity,
        # The pool can hold gpu_limit / GPUs-per-instance nodes, one "replica" per node.
        "max-replicas": str(pool.max_instances),
        "tasks-per-instance": "1",
        "instance-hourly-usd": f"{pool.instance_hourly_usd:g}",
        "models": ",".join(pool.models),
    }
    if g.allowed_instance_families is not None:
        out["guardrail-allowed-families"] = "/".join(g.allowed_instance_families)
    if g.max_hourly_usd is not None:
        out["guardrail-max-hourly-usd"] = f"{g.max_hourly_usd:g}"
    if g.require_spot is not None:
        out["guardrail-require-spot"] = "true" if g.require_spot else "false"
    return {ANNOTATION_PREFIX + k: v for k, v in out.items()}


def node_pool_spec(pool: NodePoolPlan, node_class_name: str) -> dict[str, Any]:
    """One GPU NodePool (karpenter.sh_nodepools.yaml, v1)."""
    return {
        "weight": pool.weight,
        "limits": {eks.GPU_RESOURCE: str(pool.gpu_limit)},
        "disruption": {
            # Never move a busy GPU node: only empty nodes are consolidated.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": eks.CONSOLIDATE_AFTER,
            "budgets": [
                {"nodes": "100%", "reasons": ["Empty"]},
                # Drift (a new AMI, a changed pool) replaces one node at a time; serving pods
                # carry karpenter.sh/do-not-disrupt, which drift respects.
                {"nodes": "1", "reasons": ["Drifted"]},
            ],
        },
        "template": {
            "metadata": {"labels": dict(pool.labels)},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": node_class_name,
                },
                "requirements": [
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": [pool.instance_type],
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": [pool.capacity_type],
                    },
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                ],
                "taints": [
                    {
                        "key": eks.GPU_TAINT_KEY,
                        "value": eks.GPU_TAINT_VALUE,
                        "effect": eks.GPU_TAINT_EFFECT,
                    }
                ],
                "expireAfter": eks.EXPIRE_AFTER,
                "terminationGracePeriod": pool.termination_grace_period,
            },
        },
    }


def chart_values(
    plan: EksPlan, key: str, region: str, vpc_id: str, queue_name: str
) -> dict[str, Any]:
    """Values for each pinned chart; every key exists in that chart's values.yaml (tested)."""
    ident = plan.identities
    if key == "karpenter":
        return {
            "serviceAccount": {"name": ident["karpenter"].service_account},
            "settings": {"clusterName": plan.cluster_name, "interruptionQueue": queue_name},
            "replicas": 2,
            "controller": {
                # Set, not discovered from IMDS (the chart's values.yaml suggests it).
                "env": [{"name": "AWS_REGION", "value": region}],
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"memory": "1Gi"},
                },
            },
        }
    if key == "aws-load-balancer-controller":
        return {
            "clusterName": plan.cluster_name,
            # Set, not discovered: the controller would otherwise ask IMDS, which the hop
            # limit keeps from pods.
            "region": region,
            "vpcId": vpc_id,
            "serviceAccount": {"name": ident["aws-load-balancer-controller"].service_account},
            "replicaCount": 2,
            # It only binds pods to Pulumi's target groups: no Service mutation, no IngressClass.
            "enableServiceMutatorWebhook": False,
            "createIngressClassResource": False,
        }
    if key == "keda":
        return {
            # The chart ships its CRDs as templates; skip_crds alone does not stop them.
            "crds": {"install": False},
            "serviceAccount": {"operator": {"name": ident["keda-operator"].service_account}},
        }
    raise KeyError(key)

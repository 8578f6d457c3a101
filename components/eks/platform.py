"""The EKS platform of a stack, wired in the plan's creation order (EksPlan.resources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.eks.addons import Addons, AddonsArgs
from components.eks.cluster import Cluster, ClusterArgs
from components.eks.controllers import Controllers, ControllersArgs
from components.eks.identities import Identities, IdentitiesArgs
from components.eks.image_cache import ImageCache, ImageCacheArgs
from components.eks.karpenter import GpuNodePools, GpuNodePoolsArgs, InterruptionQueue
from components.eks.nodes import Nodes, NodesArgs
from modelfleet.eks import NETWORK_ADDONS
from modelfleet.plan import FleetPlan


@dataclass(frozen=True)
class EksPlatformArgs:
    plan: FleetPlan
    partition: str
    region: str
    account_id: str
    deployer_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Output[str]]
    # Shared security groups GPU nodes join besides the cluster's: on vpc-cni pods use the
    # node's, so these carry the ALB -> sidecar and node -> EFS paths of the ECS slice.
    node_security_group_ids: list[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    file_system_arn: pulumi.Input[str]
    access_point_arns: dict[str, pulumi.Input[str]]
    target_group_arns: dict[str, pulumi.Input[str]]
    # vLLM's compile cache per model: the second access point the EFS CSI node mounts.
    compile_access_point_arns: dict[str, pulumi.Input[str]]
    # What the GPU nodes' pods run (engine, sidecar, fetcher), pinned by digest: the image
    # cache's snapshot holds them.
    images: list[pulumi.Input[str]] = field(default_factory=list)
    # The `aws` provider's profile and roles (components.stack_config.aws_session_settings).
    session: Mapping[str, Any] = field(default_factory=dict)


class EksPlatform(pulumi.ComponentResource):
    """What the serving slice builds on: `provider`, `cluster_name`, the security groups, and
    per model (from `plan.eks`) its namespace, service account and NodePool scheduling."""

    provider: k8s.Provider
    cluster_name: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    node_security_group_ids: list[pulumi.Input[str]]
    node_pools: dict[str, k8s.apiextensions.CustomResource]
    # Objects the serving slice's workloads need to exist first (controllers, add-ons).
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: EksPlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:EksPlatform", name, None, opts)
        plan = args.plan
        e = plan.eks
        assert e is not None, "EksPlatform needs a platform: eks plan"
        mine = pulumi.ResourceOptions(parent=self)
        cluster = Cluster(
            f"{name}-cluster",
            ClusterArgs(
                plan,
                args.partition,
                args.region,
                args.private_subnet_ids,
                args.kms_key_arn,
                args.deployer_arn,
            ),
            mine,
        )
        cluster_name = cluster.cluster.name
        # With bootstrap_self_managed_addons off, nodes become Ready only once the CNI and
        # kube-proxy exist: those come before the nodes, the rest after.
        network = Addons(
            f"{name}-network-addons",
            AddonsArgs(
                plan, cluster_name, [e.addons[n] for n in NETWORK_ADDONS], [cluster.cluster]
            ),
            mine,
        )
        nodes = Nodes(
            f"{name}-nodes",
            NodesArgs(
                plan,
                args.partition,
                cluster_name,
                args.private_subnet_ids,
                list(network.addons.values()),
                account_id=args.account_id,
                kms_key_arn=args.kms_key_arn,
            ),
            mine,
        )
        queue = InterruptionQueue(f"{name}-interruptions", plan, mine)
        identities = Identities(
            f"{name}-identities",
            IdentitiesArgs(
                plan=plan,
                partition=args.partition,
                region=args.region,
                account_id=args.account_id,
                cluster_name=cluster_name,
                gpu_node_role_arn=nodes.gpu_node_role.arn,
                interruption_queue_arn=queue.queue.arn,
                file_system_arn=args.file_system_arn,
                access_point_arns=args.access_point_arns,
                compile_access_point_arns=args.compile_access_point_arns,
                target_group_arns=args.target_group_arns,
            ),
            mine,
        )
        rest = Addons(
            f"{name}-addons",
            AddonsArgs(
                plan,
                cluster_name,
                [a for n, a in e.addons.items() if n not in NETWORK_ADDONS],
                [nodes.system_node_group, *identities.associations.values()],
            ),
            mine,
        )
        system = [nodes.system_node_group, rest.addons["coredns"]]
        controllers = Controllers(
            f"{name}-controllers",
            ControllersArgs(
                plan=plan,
                provider=cluster.provider,
                region=args.region,
                vpc_id=args.vpc_id,
                queue_name=queue.queue.name,
                depends_on={
                    "karpenter": [*system, identities.associations["karpenter"]],
                    "aws-load-balancer-controller": [
                        *system,
                        identities.associations["aws-load-balancer-controller"],
                    ],
                    "keda": [*system, identities.associations["keda-operator"]],
                },
            ),
            mine,
        )
        security_groups = [cluster.cluster_security_group_id, *args.node_security_group_ids]
        snapshot_id: pulumi.Output[str] | None = None
        if e.image_cache is not None:
            cache = ImageCache(
                f"{name}-image-cache",
                ImageCacheArgs(
                    plan=plan,
                    partition=args.partition,
                    region=args.region,
                    account_id=args.account_id,
                    vpc_id=args.vpc_id,
                    private_subnet_ids=args.private_subnet_ids,
                    kms_key_arn=args.kms_key_arn,
                    images=args.images,
                    session=args.session,
                ),
                mine,
            )
            snapshot_id = cache.snapshot_id
        pools = GpuNodePools(
            f"{name}-gpu",
            GpuNodePoolsArgs(
                plan=plan,
                provider=cluster.provider,
                gpu_node_role_name=nodes.gpu_node_role.name,
                subnet_ids=args.private_subnet_ids,
                security_group_ids=security_groups,
                depends_on=[
                    controllers.releases["karpenter"],
                    nodes.gpu_node_access,
                    *(
                        controllers.crds[c]
                        for c in ("ec2nodeclasses.karpenter.k8s.aws", "nodepools.karpenter.sh")
                    ),
                ],
                snapshot_id=snapshot_id,
            ),
            mine,
        )
        self.provider = cluster.provider
        self.cluster_name = cluster_name
        self.cluster_security_group_id = cluster.cluster_security_group_id
        self.node_security_group_ids = security_groups
        self.node_pools = pools.node_pools
        self.ready = [
            *controllers.releases.values(),
            *rest.addons.values(),
            *identities.associations.values(),
            *pools.node_pools.values(),
        ]
        self.register_outputs({"cluster_name": cluster_name})

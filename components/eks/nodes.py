"""Node roles, the small system node group that carries the controllers, and the access entry
that lets Karpenter's GPU nodes join."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import (
    assume_role_policy,
    child,
    engine_cache_statements,  # the same grant as the ECS hosts' and execution roles'
    policy_json,
    stack_tags,
)
from modelfleet import eks_versions
from modelfleet.eks import SYSTEM_NODE_LABEL, SYSTEM_ROOT_VOLUME_GIB
from modelfleet.plan import FleetPlan


@dataclass(frozen=True)
class NodesArgs:
    plan: FleetPlan
    partition: str
    cluster_name: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    depends_on: list[pulumi.Resource]
    account_id: str
    kms_key_arn: pulumi.Input[str]


class Nodes(pulumi.ComponentResource):
    gpu_node_role: aws.iam.Role
    system_node_group: aws.eks.NodeGroup
    gpu_node_access: aws.eks.AccessEntry

    def __init__(
        self, name: str, args: NodesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Nodes", name, None, opts)
        e = args.plan.eks
        assert e is not None
        lg = e.logical
        tags = stack_tags(args.plan.config)
        roles: dict[str, aws.iam.Role] = {}
        attachments: list[pulumi.Resource] = []
        for key in ("system_node_role", "gpu_node_role"):
            roles[key] = aws.iam.Role(
                lg[key].name,
                assume_role_policy=assume_role_policy(args.plan.ec2_service_principal),
                tags=tags,
                opts=child(self),
            )
            for policy in eks_versions.NODE_MANAGED_POLICIES:
                attachments.append(
                    aws.iam.RolePolicyAttachment(
                        lg[f"{key}:{policy}"].name,
                        role=roles[key].name,
                        policy_arn=f"arn:{args.partition}:iam::aws:policy/{policy}",
                        opts=child(self),
                    )
                )
        self.gpu_node_role = roles["gpu_node_role"]
        if "gpu_node_engine_image" in lg:
            # The kubelet pulls the engine image through the stack's ECR pull-through cache
            # with this role: ECR's pull actions come with AmazonEC2ContainerRegistryPullOnly
            # (eks_versions.NODE_MANAGED_POLICIES); the first pull also imports the image and
            # creates its repository, allowed under the cache prefix only.
            attachments.append(
                aws.iam.RolePolicy(
                    lg["gpu_node_engine_image"].name,
                    role=self.gpu_node_role.id,
                    policy=policy_json(
                        engine_cache_statements(
                            args.plan, args.partition, args.account_id, args.kms_key_arn
                        )
                    ),
                    opts=child(self),
                )
            )
        # AL2023 (EKS's default managed-node AMI), on-demand, spread over the private subnets:
        # the controllers survive a node or AZ loss. No taint, so CoreDNS and the controllers
        # land here; GPU nodes carry the nvidia.com/gpu taint instead.
        # IMDSv2 with hop limit 1, as on the GPU nodes: no pod reaches the node role. The
        # controllers are told their region and VPC; the CloudWatch agent runs on the host
        # network (aws-observability/helm-charts #82), so it still reads IMDS.
        template = aws.ec2.LaunchTemplate(
            lg["system_launch_template"].name,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": SYSTEM_ROOT_VOLUME_GIB,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            tags=tags,
            opts=child(self),
        )
        self.system_node_group = aws.eks.NodeGroup(
            lg["system_node_group"].name,
            cluster_name=args.cluster_name,
            node_role_arn=roles["system_node_role"].arn,
            subnet_ids=args.subnet_ids,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            instance_types=[e.system_instance_type],
            capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD"
            if not e.system_instance_type.startswith("m7g")
            else "AL2023_ARM_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=e.system_node_count,
                min_size=e.system_node_count,
                max_size=e.system_node_count + 1,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels={SYSTEM_NODE_LABEL: "true"},
            tags=tags,
            opts=child(self, depends_on=[*attachments, *args.depends_on]),
        )
        # Karpenter launches GPU nodes with this role; in API authentication mode they join
        # through an EC2_LINUX access entry (no aws-auth ConfigMap).
        self.gpu_node_access = aws.eks.AccessEntry(
            lg["gpu_node_access"].name,
            cluster_name=args.cluster_name,
            principal_arn=self.gpu_node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=child(self, depends_on=attachments),
        )
        self.register_outputs({"gpu_node_role_arn": self.gpu_node_role.arn})

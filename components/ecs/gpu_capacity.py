"""GPU capacity: the ECS cluster and, per (instance type, purchase option), a launch template,
an Auto Scaling group and a capacity provider with managed scaling.

Managed scaling sizes each group to the tasks that need it, so zero tasks means zero GPU
instances; managed termination protection keeps scale-in from killing a host with a task.
On-demand groups keep a warm pool of stopped instances whose user data pulled the task images
(by digest) before Auto Scaling stopped them, so a start from zero running instances skips the
boot and the ~10 GB image pull (modelfleet/coldstart.py has the figures).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import (
    assume_role_policy,
    child,
    engine_cache_statements,
    invoke,
    policy_json,
    stack_tags,
)
from modelfleet import sizing
from modelfleet.coldstart import ROOT_VOLUME_GIB
from modelfleet.identities import CapacityGroupIds
from modelfleet.plan_types import CapacityGroupPlan, FleetPlan, KeptCapacityPlan

# The ECS GPU-optimized AL2023 AMI, resolved at deploy time so a new AMI shows in preview.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html
GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
USER_DATA = SCRIPTS / "gpu-host-userdata.sh"
WARM_POOL_BOOT = SCRIPTS / "warm-pool-boot.sh"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"

# IMDSv2 only. Hop limit 1: containers (one hop further) cannot reach the host's credentials
# even in bridge mode.
HOST_METADATA_OPTIONS: aws.ec2.LaunchTemplateMetadataOptionsArgsDict = {
    "http_endpoint": "enabled",
    "http_tokens": "required",
    "http_put_response_hop_limit": 1,
    "instance_metadata_tags": "disabled",
}
HOST_ROOT_VOLUME: list[aws.ec2.LaunchTemplateBlockDeviceMappingArgsDict] = [
    {
        "device_name": "/dev/xvda",
        "ebs": {
            "volume_size": ROOT_VOLUME_GIB,
            "volume_type": "gp3",
            "encrypted": "true",
            "delete_on_termination": "true",
        },
    }
]

# What a kept group (keepCapacityProviders) leaves as it is: every setting any release gave
# these resources, so none is updated or replaced; the ASG's forceDelete is the exception.
KEPT_LT_SETTINGS = [
    "name",
    "imageId",
    "instanceType",
    "iamInstanceProfile",
    "userData",
    "updateDefaultVersion",
    "ebsOptimized",
    "metadataOptions",
    "blockDeviceMappings",
    "networkInterfaces",
    "tagSpecifications",
    "tags",
]
KEPT_ASG_SETTINGS = [
    "name",
    "minSize",
    "maxSize",
    "desiredCapacity",
    "vpcZoneIdentifiers",
    "protectFromScaleIn",
    "capacityRebalance",
    "healthCheckType",
    "metricsGranularity",
    "enabledMetrics",
    "defaultInstanceWarmup",
    "launchTemplate",
    "mixedInstancesPolicy",
    "warmPool",
    "initialLifecycleHooks",
    "tags",
]
KEPT_CP_SETTINGS = ["name", "autoScalingGroupProvider", "tags"]


def user_data_script(
    cluster_name: str, region: str, group: CapacityGroupPlan, images: Sequence[str]
) -> str:
    """The launch template's user data, as a script: the ECS agent's config and, on a group
    with a warm pool, the per-boot script that pulls `images` and completes the hook."""
    wp = group.warm_pool
    script = USER_DATA.read_text().replace("__ECS_CLUSTER__", cluster_name)
    script = script.replace("__WARM_POOL__", "true" if wp else "false")
    env = ""
    if wp is not None:
        env = f'REGION={region}\nHOOK={wp.hook_name}\nIMAGES="{" ".join(images)}"'
    script = script.replace("__WARM_POOL_ENV__", env)
    return script.replace("__WARM_POOL_BOOT__", WARM_POOL_BOOT.read_text().rstrip("\n"))


def user_data(
    cluster_name: str, region: str, group: CapacityGroupPlan, images: Sequence[str]
) -> str:
    return base64.b64encode(user_data_script(cluster_name, region, group, images).encode()).decode()


def _rendered_user_data(region: str, group: CapacityGroupPlan, values: list[Any]) -> str:
    """`values`: the cluster name, then the images (resolved Outputs)."""
    return user_data(str(values[0]), region, group, [str(i) for i in values[1:]])


@dataclass(frozen=True)
class GpuCapacityArgs:
    plan: FleetPlan
    private_subnet_ids: Sequence[pulumi.Input[str]]
    hosts_sg_id: pulumi.Input[str]
    partition: str
    account_id: str = ""
    kms_key_arn: pulumi.Input[str] = ""
    # What the tasks run (engine, sidecar, fetcher), pulled into warm-pool instances.
    images: Sequence[pulumi.Input[str]] = ()


class GpuCapacity(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    # capacity provider name and ASG name for each capacity group key
    capacity_provider: dict[str, pulumi.Output[str]]
    asg_names: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: GpuCapacityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:gpu-capacity:GpuCapacity", name, None, opts)
        plan = args.plan
        c = plan.config
        ids = plan.ids.gpu
        assert ids is not None, "ECS GPU capacity needs a platform: ecs plan"
        tags = stack_tags(c)
        cluster = aws.ecs.Cluster(
            ids.cluster.name,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=tags,
            opts=child(self),
        )
        role = aws.iam.Role(
            ids.host_role.name,
            assume_role_policy=assume_role_policy(plan.ec2_service_principal),
            tags=tags,
            opts=child(self),
        )
        # What the ECS agent needs to register and pull images; Session Manager instead of SSH
        # (no key pairs, no port 22). Keyed by policy, as the plan names them.
        for managed, attachment in ids.host_policies.items():
            aws.iam.RolePolicyAttachment(
                attachment.name,
                role=role.name,
                policy_arn=f"arn:{args.partition}:iam::aws:policy/{managed}",
                opts=child(self, attachment),
            )
        profile = aws.iam.InstanceProfile(
            ids.host_profile.name, role=role.name, tags=tags, opts=child(self)
        )
        ami = aws.ssm.get_parameter(name=GPU_AMI_PARAMETER, opts=invoke(self))

        self.capacity_provider = {}
        self.asg_names = {}
        providers: list[pulumi.Output[str]] = []
        warm_asgs: list[pulumi.Output[str]] = []
        for key, group in plan.capacity.items():
            group_ids = ids.groups[key]
            itype, capacity = group.instance_type, group.capacity
            wp = group.warm_pool
            lt = aws.ec2.LaunchTemplate(
                group_ids.launch_template.name,
                image_id=ami.value,
                instance_type=itype,
                iam_instance_profile={"arn": profile.arn},
                user_data=pulumi.Output.all(cluster.name, *args.images).apply(
                    partial(_rendered_user_data, c.region, group)
                ),
                update_default_version=True,
                ebs_optimized="true",
                metadata_options=HOST_METADATA_OPTIONS,
                block_device_mappings=HOST_ROOT_VOLUME,
                network_interfaces=[
                    {
                        "associate_public_ip_address": "false",
                        "security_groups": [args.hosts_sg_id],
                        "delete_on_termination": "true",
                    }
                ],
                tag_specifications=[
                    {"resource_type": "instance", "tags": {**tags, "Name": f"{c.prefix}-{key}"}},
                    {"resource_type": "volume", "tags": tags},
                ],
                tags=tags,
                opts=child(self),
            )
            lt_spec: aws.autoscaling.GroupLaunchTemplateArgsDict = {
                "id": lt.id,
                "version": lt.latest_version.apply(str),
            }
            spot = capacity == "spot"
            asg = aws.autoscaling.Group(
                group_ids.asg.name,
                min_size=0,
                max_size=group.max_size,  # room for a rolling deployment (the plan)
                vpc_zone_identifiers=args.private_subnet_ids,
                protect_from_scale_in=True,  # managed termination protection requires it
                capacity_rebalance=spot,
                health_check_type="EC2",
                # Group metrics feed the gpu-waste alarm (GroupInServiceInstances); without
                # them the alarm never sees data and stays quiet.
                metrics_granularity="1Minute",
                enabled_metrics=[
                    aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
                    aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY,
                ],
                default_instance_warmup=sizing.INSTANCE_BOOT_SECONDS,
                launch_template=None if spot else lt_spec,
                # Auto Scaling refuses warm pools on spot and mixed-instances groups: on-demand
                # groups only (the plan decides which).
                warm_pool=(
                    {
                        "pool_state": wp.pool_state,
                        "min_size": wp.min_size,
                        "max_group_prepared_capacity": wp.max_group_prepared_capacity,
                        # ECS does not allow returning instances to the pool on scale-in.
                        "instance_reuse_policy": {"reuse_on_scale_in": wp.reuse_on_scale_in},
                    }
                    if wp
                    else None
                ),
                # Created with the group, so the first instance already waits for its user data.
                initial_lifecycle_hooks=(
                    [
                        {
                            "name": wp.hook_name,
                            "lifecycle_transition": LAUNCHING,
                            "heartbeat_timeout": wp.heartbeat_s,
                            # A host whose pull failed still serves; its task pulls the image.
                            "default_result": "CONTINUE",
                        }
                    ]
                    if wp
                    else None
                ),
                mixed_instances_policy=(
                    {
                        "instances_distribution": {
                            "on_demand_base_capacity": group.on_demand_base,
                            "on_demand_percentage_above_base_capacity": 0,
                            # Fewer interruptions than lowest-price, at nearly its price.
                            "spot_allocation_strategy": "price-capacity-optimized",
                        },
                        "launch_template": {
                            "launch_template_specification": {
                                "launch_template_id": lt.id,
                                "version": lt.latest_version.apply(str),
                            },
                            "overrides": [{"instance_type": itype}],
                        },
                    }
                    if spot
                    else None
                ),
                tags=[
                    {"key": k, "value": v, "propagate_at_launch": True}
                    for k, v in {**tags, "AmazonECSManaged": "true"}.items()
                ],
                # ECS managed scaling owns desired capacity from here on.
                opts=child(self, ignore_changes=["desiredCapacity"]),
            )
            cp = aws.ecs.CapacityProvider(
                group_ids.capacity_provider.name,
                auto_scaling_group_provider={
                    "auto_scaling_group_arn": asg.arn,
                    "managed_termination_protection": "ENABLED",
                    "managed_draining": "ENABLED",
                    "managed_scaling": {
                        "status": "ENABLED",
                        "target_capacity": 100,
                        "minimum_scaling_step_size": 1,
                        "maximum_scaling_step_size": group.max_scaling_step,
                        "instance_warmup_period": sizing.INSTANCE_BOOT_SECONDS,
                    },
                },
                tags=tags,
                opts=child(self),
            )
            providers.append(cp.name)
            self.capacity_provider[key] = cp.name
            self.asg_names[key] = asg.name
            if wp is not None:
                warm_asgs.append(asg.arn)

        # Groups no model uses any more, kept for one more `pulumi up` (keepCapacityProviders):
        # their provider stays attached while the services' strategies move.
        kept = [
            self._kept_group(k, ids.kept[key], ami.value, args)
            for key, k in plan.kept_capacity.items()
        ]

        if ids.host_policy is not None:
            aws.iam.RolePolicy(
                ids.host_policy.name,
                role=role.id,
                policy=policy_json(self._host_statements(args, warm_asgs)),
                opts=child(self),
            )

        attached = aws.ecs.ClusterCapacityProviders(
            ids.providers.name,
            cluster_name=cluster.name,
            # FARGATE runs the one-shot pre-warm fetcher: no GPU host needed for a download.
            # A kept provider stays in the list: PutClusterCapacityProviders replaces the whole
            # list and disassociates what it omits, which ECS refuses while tasks use it
            # ("You can only disassociate an existing capacity provider from a cluster if it's
            # not being used by any existing tasks", ECS API reference, botocore 1.44.8
            # data/ecs/2014-11-13/service-2.json; ResourceInUseException).
            capacity_providers=[*providers, *kept, "FARGATE"],
            opts=child(self),
        )

        # ECS refuses a service or RunTask whose strategy names a capacity provider not yet
        # associated with the cluster: whoever uses the cluster or a provider waits for it.
        def after_attach(value: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(value, attached.id).apply(lambda v: str(v[0]))

        self.capacity_provider = {n: after_attach(v) for n, v in self.capacity_provider.items()}
        self.cluster_name = cluster.name
        self.cluster_arn = after_attach(cluster.arn)
        self.register_outputs({"cluster_name": cluster.name})

    def _kept_group(
        self, kept: KeptCapacityPlan, ids: CapacityGroupIds, ami: str, args: GpuCapacityArgs
    ) -> pulumi.Output[str]:
        """A group kept for one more `pulumi up`: its launch template, Auto Scaling group and
        capacity provider under the names they had when a model used them, every setting left
        as it is (ignore_changes: Pulumi neither updates nor replaces them, whatever an earlier
        release set), so the provider can stay attached while the services move. A key that
        names no existing group would create an empty one (maximum size 0), which the next run
        removes.

        forceDelete is the one setting applied: the next run deletes the group, and the
        provider's detachment, which runs first, succeeds only once no task uses the group, so
        no instance left in it serves; without it the delete would wait for instances that
        scale-in protection keeps (terraform-provider-aws autoscaling group delete: drainGroup
        unless force_delete)."""
        tags = stack_tags(args.plan.config)
        lt = aws.ec2.LaunchTemplate(
            ids.launch_template.name,
            image_id=ami,
            instance_type=kept.instance_type,
            # Only a mistyped key creates this template; it is then as locked down as any.
            metadata_options=HOST_METADATA_OPTIONS,
            block_device_mappings=HOST_ROOT_VOLUME,
            tags=tags,
            opts=child(self, ignore_changes=KEPT_LT_SETTINGS),
        )
        asg = aws.autoscaling.Group(
            ids.asg.name,
            min_size=0,
            max_size=0,
            vpc_zone_identifiers=args.private_subnet_ids,
            protect_from_scale_in=True,
            launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
            force_delete=True,
            tags=[
                {"key": k, "value": v, "propagate_at_launch": True}
                for k, v in {**tags, "AmazonECSManaged": "true"}.items()
            ],
            opts=child(self, ignore_changes=KEPT_ASG_SETTINGS),
        )
        cp = aws.ecs.CapacityProvider(
            ids.capacity_provider.name,
            auto_scaling_group_provider={
                "auto_scaling_group_arn": asg.arn,
                "managed_termination_protection": "ENABLED",
                "managed_draining": "ENABLED",
                "managed_scaling": {"status": "ENABLED", "target_capacity": 100},
            },
            tags=tags,
            opts=child(self, ignore_changes=KEPT_CP_SETTINGS),
        )
        return cp.name

    @staticmethod
    def _host_statements(
        args: GpuCapacityArgs, warm_asgs: list[pulumi.Output[str]]
    ) -> list[dict[str, object]]:
        """The GPU host's own permissions beyond the ECS managed policy."""
        plan = args.plan
        out: list[dict[str, object]] = []
        if warm_asgs:
            out += [
                {
                    # The per-boot script completes its own group's launching hook.
                    "Effect": "Allow",
                    "Action": ["autoscaling:CompleteLifecycleAction"],
                    "Resource": warm_asgs,
                },
                {
                    # It finds its group's name (no resource-level permissions exist).
                    "Effect": "Allow",
                    "Action": ["autoscaling:DescribeAutoScalingInstances"],
                    "Resource": "*",
                },
            ]
        out += engine_cache_statements(plan, args.partition, args.account_id, args.kms_key_arn)
        return out

"""Karpenter's interruption queue, and the GPU capacity it launches: one EC2NodeClass and the
NodePools of the plan (one per GPU class, two for a mixed one)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._common import child, stack_tags
from modelfleet import eks_iam, eks_objects
from modelfleet.eks import INTERRUPTION_EVENTS, INTERRUPTION_RETENTION_S
from modelfleet.plan import FleetPlan


class InterruptionQueue(pulumi.ComponentResource):
    """SQS plus the EventBridge rules that feed it spot, rebalance, health and state events."""

    queue: aws.sqs.Queue

    def __init__(
        self, name: str, plan: FleetPlan, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:InterruptionQueue", name, None, opts)
        e = plan.eks
        assert e is not None
        lg = e.logical
        tags = stack_tags(plan.config)
        self.queue = aws.sqs.Queue(
            lg["interruption_queue"].name,
            name=e.interruption_queue_name,
            message_retention_seconds=INTERRUPTION_RETENTION_S,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child(self),
        )
        aws.sqs.QueuePolicy(
            lg["interruption_queue_policy"].name,
            queue_url=self.queue.url,
            policy=self.queue.arn.apply(
                lambda arn: json.dumps(eks_iam.interruption_queue_policy(arn))
            ),
            opts=child(self),
        )
        for key, (source, detail_type) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                lg[f"rule:{key}"].name,
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
                tags=tags,
                opts=child(self),
            )
            aws.cloudwatch.EventTarget(
                lg[f"target:{key}"].name,
                rule=rule.name,
                target_id="KarpenterInterruptionQueueTarget",
                arn=self.queue.arn,
                opts=child(self),
            )
        self.register_outputs({"queue_arn": self.queue.arn})


@dataclass(frozen=True)
class GpuNodePoolsArgs:
    plan: FleetPlan
    provider: k8s.Provider
    gpu_node_role_name: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_ids: list[pulumi.Input[str]]
    # The Karpenter release and its CRDs.
    depends_on: list[pulumi.Resource]
    # The image cache's snapshot (plan.eks.image_cache), None without one.
    snapshot_id: pulumi.Input[str] | None = None


class GpuNodePools(pulumi.ComponentResource):
    node_pools: dict[str, k8s.apiextensions.CustomResource]

    def __init__(
        self, name: str, args: GpuNodePoolsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:GpuNodePools", name, None, opts)
        e = args.plan.eks
        assert e is not None
        tags = stack_tags(args.plan.config)
        k8s_opts = child(self, provider=args.provider, depends_on=args.depends_on)
        spec = pulumi.Output.all(
            args.gpu_node_role_name,
            pulumi.Output.from_input(args.subnet_ids),
            args.snapshot_id,
            *args.security_group_ids,
        ).apply(
            lambda a: eks_objects.node_class_spec(
                e, a[0], list(a[1]), list(a[3:]), tags, snapshot_id=a[2]
            )
        )
        node_class = k8s.apiextensions.CustomResource(
            e.logical["node_class"].name,
            api_version=eks_objects.NODE_CLASS_API,
            kind="EC2NodeClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=e.node_class_name),
            spec=spec,
            opts=k8s_opts,
        )
        self.node_pools = {}
        for pool in e.node_pools.values():
            self.node_pools[pool.name] = k8s.apiextensions.CustomResource(
                pool.logical.name,
                api_version=eks_objects.KARPENTER_API,
                kind="NodePool",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=pool.name,
                    annotations=eks_objects.node_pool_annotations(args.plan.config, pool),
                ),
                spec=eks_objects.node_pool_spec(pool, e.node_class_name),
                opts=child(self, provider=args.provider, depends_on=[*args.depends_on, node_class]),
            )
        self.register_outputs({})

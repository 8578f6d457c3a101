"""Replicas follow demand: target tracking on queue depth per task, a step from zero when
requests arrive at a scaled-to-zero model, and the stack's schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, stack_tags
from components.monitoring import alarm_args
from modelfleet.contract import EMF_NAMESPACE, QUEUE_DEPTH, SERVICE_DIMENSION
from modelfleet.identities import ServingIds
from modelfleet.monitoring import ModelDims, wake_alarm
from modelfleet.plan_types import FleetPlan, ModelPlan


@dataclass(frozen=True)
class AutoscalingArgs:
    plan: FleetPlan
    model: ModelPlan
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    load_balancer: pulumi.Input[str]  # ALB arn suffix
    target_group: pulumi.Input[str]  # target group arn suffix


class Autoscaling(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:autoscaling:Autoscaling", name, None, opts)
        plan, m = args.plan, args.model
        c = plan.config
        auto = c.autoscaling
        ids = plan.ids.serving[m.name]
        target = aws.appautoscaling.Target(
            ids.scaling_target.name,
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", args.service_name),
            min_capacity=m.replicas_min,
            max_capacity=m.replicas_max,
            tags=stack_tags(c, **{"modelfleet:model": m.name}),
            opts=child(self),
        )
        scaling: dict[str, Any] = {
            "resource_id": target.resource_id,
            "scalable_dimension": target.scalable_dimension,
            "service_namespace": target.service_namespace,
        }
        # vLLM batches up to max-num-seqs; requests beyond wait in its queue. A steady queue
        # per replica is the one signal that more GPUs would serve faster.
        aws.appautoscaling.Policy(
            ids.queue_depth_policy.name,
            policy_type="TargetTrackingScaling",
            target_tracking_scaling_policy_configuration={
                "target_value": auto.queue_depth_target,
                "scale_in_cooldown": auto.scale_in_cooldown,
                "scale_out_cooldown": auto.scale_out_cooldown,
                "customized_metric_specification": {
                    "namespace": EMF_NAMESPACE,
                    "metric_name": QUEUE_DEPTH,
                    "dimensions": [{"name": SERVICE_DIMENSION, "value": args.service_name}],
                    "statistic": "Average",
                },
            },
            opts=child(self),
            **scaling,
        )
        if m.replicas_min == 0:
            self._scale_from_zero(ids, m, args, scaling)
        # This model's own actions, from its plan: never another model's.
        for action in m.scheduled_actions:
            aws.appautoscaling.ScheduledAction(
                ids.scheduled[action.action].name,
                name=action.name,
                schedule=action.schedule,
                timezone=action.timezone,
                scalable_target_action={
                    "min_capacity": action.min_capacity,
                    "max_capacity": action.max_capacity,
                },
                # Named explicitly: a replacement must delete the old action first.
                opts=child(self, delete_before_replace=True),
                **scaling,
            )
        self.register_outputs({"resource_id": target.resource_id})

    def _scale_from_zero(
        self, ids: ServingIds, m: ModelPlan, args: AutoscalingArgs, scaling: dict[str, Any]
    ) -> None:
        """With no task there is no queue metric; a request at the ALB is the signal."""
        assert ids.from_zero_policy and ids.from_zero_alarm  # planned for replicas.min 0
        step = aws.appautoscaling.Policy(
            ids.from_zero_policy.name,
            policy_type="StepScaling",
            step_scaling_policy_configuration={
                "adjustment_type": "ChangeInCapacity",
                "cooldown": args.plan.config.autoscaling.scale_out_cooldown,
                "metric_aggregation_type": "Maximum",
                "step_adjustments": [{"metric_interval_lower_bound": "0", "scaling_adjustment": 1}],
            },
            opts=child(self),
            **scaling,
        )
        dims = ModelDims(
            load_balancer=args.load_balancer,
            target_group=args.target_group,
            cluster=args.cluster_name,
            service=m.service_name,
        )
        aws.cloudwatch.MetricAlarm(
            ids.from_zero_alarm.name,
            **alarm_args(wake_alarm(args.plan.config, m, dims)),
            alarm_actions=[step.arn],
            tags=stack_tags(args.plan.config, **{"modelfleet:model": m.name}),
            opts=child(self, delete_before_replace=True),  # the alarm's name is explicit
        )

"""Replicas follow demand: target tracking on queue depth per task, a step from zero when
requests arrive at a scaled-to-zero model, and the stack's schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, stack_tags
from components.inference_service import service_name
from components.monitoring import alarm_args
from modelfleet.containers import EMF_NAMESPACE
from modelfleet.monitoring import QUEUE_DEPTH, SERVICE_DIMENSION, ModelDims, wake_alarm
from modelfleet.plan import FleetPlan, ModelPlan


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
        target = aws.appautoscaling.Target(
            f"{name}-target",
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
            f"{name}-queue-depth",
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
            self._scale_from_zero(name, m, args, scaling)
        for action in plan.scheduled_actions:
            if not action.name.startswith(f"{m.short}-"):
                continue
            aws.appautoscaling.ScheduledAction(
                f"{name}-{action.name.removeprefix(m.short + '-')}",
                name=f"{c.prefix}-{action.name}",
                schedule=action.schedule,
                timezone=action.timezone,
                scalable_target_action={
                    "min_capacity": action.min_capacity,
                    "max_capacity": action.max_capacity,
                },
                opts=child(self),
                **scaling,
            )
        self.register_outputs({"resource_id": target.resource_id})

    def _scale_from_zero(
        self, name: str, m: ModelPlan, args: AutoscalingArgs, scaling: dict[str, Any]
    ) -> None:
        """With no task there is no queue metric; a request at the ALB is the signal."""
        step = aws.appautoscaling.Policy(
            f"{name}-from-zero",
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
            service=service_name(args.plan, m),
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-from-zero-alarm",
            **alarm_args(wake_alarm(args.plan.config, m, dims)),
            alarm_actions=[step.arn],
            tags=stack_tags(args.plan.config, **{"modelfleet:model": m.name}),
            opts=child(self),
        )

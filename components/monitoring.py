"""Alarms to an encrypted SNS topic (email subscriptions) and one dashboard per stack."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, policy_json, stack_tags
from modelfleet.kube.serving import serving_plan
from modelfleet.monitoring import (
    EksModelDims,
    ModelDims,
    dashboard_body,
    eks_dashboard_body,
    eks_model_alarms,
    eks_stack_alarms,
    model_alarms,
    stack_alarms,
)
from modelfleet.plan_types import FleetPlan


def _dimensions(dims: list[dict[str, Any]]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in dims}


def alarm_args(spec: dict[str, Any]) -> dict[str, Any]:
    """A PutMetricAlarm payload as aws.cloudwatch.MetricAlarm arguments."""
    args: dict[str, Any] = {
        "name": spec["AlarmName"],
        "alarm_description": spec["AlarmDescription"],
        "comparison_operator": spec["ComparisonOperator"],
        "evaluation_periods": spec["EvaluationPeriods"],
        "threshold": spec["Threshold"],
        "treat_missing_data": spec["TreatMissingData"],
    }
    if "DatapointsToAlarm" in spec:
        args["datapoints_to_alarm"] = spec["DatapointsToAlarm"]
    if "Metrics" in spec:
        queries = []
        for q in spec["Metrics"]:
            query: dict[str, Any] = {"id": q["Id"], "return_data": q["ReturnData"]}
            if "Expression" in q:
                query["expression"] = q["Expression"]
                query["label"] = q["Label"]
            else:
                ms = q["MetricStat"]
                query["metric"] = {
                    "namespace": ms["Metric"]["Namespace"],
                    "metric_name": ms["Metric"]["MetricName"],
                    "dimensions": _dimensions(ms["Metric"]["Dimensions"]),
                    "period": ms["Period"],
                    "stat": ms["Stat"],
                }
            queries.append(query)
        args["metric_queries"] = queries
    else:
        args.update(
            namespace=spec["Namespace"],
            metric_name=spec["MetricName"],
            dimensions=_dimensions(spec["Dimensions"]),
            period=spec["Period"],
        )
        if "ExtendedStatistic" in spec:
            args["extended_statistic"] = spec["ExtendedStatistic"]
        else:
            args["statistic"] = spec["Statistic"]
    return args


def _eks_dims(plan: FleetPlan, model: str, d: ModelDims) -> EksModelDims:
    sp = serving_plan(plan)
    sm = sp.models[model]
    return EksModelDims(
        load_balancer=d.load_balancer,
        target_group=d.target_group,
        cluster=d.cluster,
        namespace=sp.namespace,
        deployment=sm.deployment,
        service=sm.metric_service,
    )


@dataclass(frozen=True)
class MonitoringArgs:
    plan: FleetPlan
    region: str
    account_id: str
    kms_key_arn: pulumi.Input[str]
    load_balancer: pulumi.Input[str]
    file_system_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    target_groups: Mapping[str, pulumi.Input[str]]
    asg_names: Mapping[str, pulumi.Input[str]]


class Monitoring(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:monitoring:Monitoring", name, None, opts)
        plan = args.plan
        c = plan.config
        ids = plan.ids.monitoring
        tags = stack_tags(c)
        topic = aws.sns.Topic(
            ids.topic.name, kms_master_key_id=args.kms_key_arn, tags=tags, opts=child(self)
        )
        aws.sns.TopicPolicy(
            ids.topic_policy.name,
            arn=topic.arn,
            policy=policy_json(
                [
                    {
                        "Sid": "CloudWatchAlarmsOfThisAccount",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": topic.arn,
                        "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                    }
                ]
            ),
            opts=child(self),
        )
        # Keyed by address: removing one leaves the others' confirmed subscriptions alone.
        for email, sub in ids.subscriptions.items():
            aws.sns.TopicSubscription(
                sub.name,
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=child(self, sub),
            )

        dims = {
            m.name: ModelDims(
                load_balancer=args.load_balancer,
                target_group=args.target_groups[m.name],
                cluster=args.cluster_name,
                service=m.service_name,
            )
            for m in plan.models
        }
        specs: list[dict[str, Any]] = []
        if plan.eks is not None:
            # EKS: the same ALB and sidecar alarms; replicas, GPUs and restarts from
            # Container Insights instead of ECS's.
            for m in plan.models:
                specs += eks_model_alarms(c, m, _eks_dims(plan, m.name, dims[m.name]))
            specs += eks_stack_alarms(c, args.load_balancer, args.file_system_id, args.cluster_name)
        else:
            for m in plan.models:
                specs += model_alarms(c, m, dims[m.name])
            specs += stack_alarms(
                c, args.load_balancer, args.file_system_id, args.cluster_name, args.asg_names
            )
        for spec in specs:
            aws.cloudwatch.MetricAlarm(
                ids.alarms[spec["AlarmName"]].name,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=tags,
                opts=child(self, delete_before_replace=True),  # the alarm's name is explicit
                **alarm_args(spec),
            )

        dim_values = [
            args.load_balancer,
            args.file_system_id,
            args.cluster_name,
            *[args.target_groups[m.name] for m in plan.models],
        ]

        def body(values: list[Any]) -> str:
            lb, fs, cluster, *tgs = values
            resolved = {
                m.name: ModelDims(lb, tg, cluster, m.service_name)
                for m, tg in zip(plan.models, tgs, strict=True)
            }
            doc = (
                eks_dashboard_body(
                    plan,
                    args.region,
                    {n: _eks_dims(plan, n, d) for n, d in resolved.items()},
                    lb,
                    fs,
                    cluster,
                )
                if plan.eks is not None
                else dashboard_body(plan, args.region, resolved, lb, fs, cluster)
            )
            return json.dumps(doc)

        dashboard = aws.cloudwatch.Dashboard(
            ids.dashboard.name,
            dashboard_name=c.prefix,
            dashboard_body=pulumi.Output.all(*dim_values).apply(body),
            opts=child(self, delete_before_replace=True),  # the dashboard's name is explicit
        )
        self.topic_arn = topic.arn
        self.dashboard_url = dashboard.dashboard_name.apply(
            lambda n: (
                f"https://{args.region}.console.aws.amazon.com/cloudwatch/home"
                f"?region={args.region}#dashboards/dashboard/{n}"
            )
        )
        self.register_outputs({"topic_arn": topic.arn, "dashboard_url": self.dashboard_url})

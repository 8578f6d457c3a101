"""Alarms and the dashboard of a stack, as CloudWatch API payloads.

Specs are PutMetricAlarm-shaped dicts so a test can validate them against botocore's model;
dimension values are whatever the caller passes (strings in tests, Pulumi Outputs in the
component). Thresholds and windows come from the stack and the plan's cold-start estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.config import Platform, StackConfig
from modelfleet.contract import (
    EMF_NAMESPACE,
    QUEUE_DEPTH,
    SERVICE_DIMENSION,
    STARTUP_MARGIN,
    TIME_TO_FIRST_TOKEN,
)
from modelfleet.plan_types import FleetPlan, ModelPlan

__all__ = [
    "QUEUE_DEPTH",
    "SERVICE_DIMENSION",
    "TIME_TO_FIRST_TOKEN",
    "EksModelDims",
    "ModelDims",
    "alarm_names",
    "dashboard_body",
    "eks_dashboard_body",
    "eks_model_alarms",
    "eks_stack_alarms",
    "model_alarms",
    "stack_alarms",
    "wake_alarm",
]

ALB = "AWS/ApplicationELB"
INSIGHTS = "ECS/ContainerInsights"


@dataclass(frozen=True)
class ModelDims:
    load_balancer: Any  # ALB arn suffix: app/<name>/<id>
    target_group: Any  # target group arn suffix: targetgroup/<name>/<id>
    cluster: Any
    service: str


def _dims(**kw: Any) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": v} for k, v in kw.items()]


def _stat(
    qid: str, namespace: str, metric: str, dims: list[dict[str, Any]], stat: str, period: int = 60
) -> dict[str, Any]:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _expr(qid: str, expression: str, label: str) -> dict[str, Any]:
    return {"Id": qid, "Expression": expression, "Label": label, "ReturnData": True}


def alarm_name(config: StackConfig, scope: str, kind: str) -> str:
    return f"{config.prefix}-{scope}-{kind}"


def below_desired_periods(m: ModelPlan) -> int:
    """Running below desired is normal for one cold start; longer is an outage. The window
    covers the slowest start the fleet makes on purpose: the first one (new instance, image
    pull, compile), not the warm start it usually gets."""
    return max(5, math.ceil(max(m.cold_start_s, m.first_start_s) * STARTUP_MARGIN / 60))


def traffic_alarms(
    config: StackConfig, m: ModelPlan, target_group: Any, load_balancer: Any, service: str
) -> list[dict[str, Any]]:
    """What the ALB and the sidecar see: the same alarms on every platform."""
    a = config.alarms
    tg = _dims(TargetGroup=target_group, LoadBalancer=load_balancer)
    name = m.name
    return [
        {
            "AlarmName": alarm_name(config, name, "5xx-rate"),
            "AlarmDescription": f"{name}: more than {a.error_rate_percent:g} % of requests "
            "answered 5xx by the sidecar or vLLM",
            "Metrics": [
                _stat("errors", ALB, "HTTPCode_Target_5XX_Count", tg, "Sum"),
                _stat("requests", ALB, "RequestCount", tg, "Sum"),
                _expr("rate", "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)", "5xx %"),
            ],
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 3,
            "Threshold": a.error_rate_percent,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            "AlarmName": alarm_name(config, name, "unhealthy-targets"),
            "AlarmDescription": f"{name}: a registered replica fails /ready (vLLM down or stuck)",
            "Namespace": ALB,
            "MetricName": "UnHealthyHostCount",
            "Dimensions": tg,
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 5,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            "AlarmName": alarm_name(config, name, "p99-latency"),
            "AlarmDescription": f"{name}: p99 time to response headers above "
            f"{a.p99_latency_seconds:g} s (queueing or prefill backlog)",
            "Namespace": ALB,
            "MetricName": "TargetResponseTime",
            "Dimensions": tg,
            "ExtendedStatistic": "p99",
            "Period": 60,
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 3,
            "Threshold": a.p99_latency_seconds,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            "AlarmName": alarm_name(config, name, "queue-depth"),
            "AlarmDescription": f"{name}: more than {a.queue_depth} requests waiting per "
            "replica; autoscaling is at max or cannot get GPUs",
            "Namespace": EMF_NAMESPACE,
            "MetricName": QUEUE_DEPTH,
            "Dimensions": _dims(**{SERVICE_DIMENSION: service}),
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 10,
            "DatapointsToAlarm": 8,
            "Threshold": a.queue_depth,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    ]


def model_alarms(config: StackConfig, m: ModelPlan, d: ModelDims) -> list[dict[str, Any]]:
    tg = _dims(TargetGroup=d.target_group, LoadBalancer=d.load_balancer)
    svc = _dims(ClusterName=d.cluster, ServiceName=d.service)
    name = m.name
    return [
        *traffic_alarms(config, m, d.target_group, d.load_balancer, d.service),
        # Running below desired, not below replicas.min: desired is 0 inside the scheduled
        # scale-down window, so the alarm stays quiet there by construction.
        _below_desired(
            config,
            m,
            "tasks-below-desired",
            f"{name}: fewer replicas running than desired for longer than a cold start "
            f"({below_desired_periods(m)} min)",
            [
                _stat("running", INSIGHTS, "RunningTaskCount", svc, "Average"),
                _stat("desired", INSIGHTS, "DesiredTaskCount", svc, "Average"),
                _expr("missing", "desired - running", "replicas missing"),
            ],
        ),
        _idle_gpus(
            config, name, _stat("running", INSIGHTS, "RunningTaskCount", svc, "Average", 3600), tg
        ),
    ]


def _below_desired(
    config: StackConfig, m: ModelPlan, kind: str, description: str, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """Replicas missing (a `missing` expression in `metrics`) for longer than a cold start."""
    return {
        "AlarmName": alarm_name(config, m.name, kind),
        "AlarmDescription": description,
        "Metrics": metrics,
        "EvaluationPeriods": below_desired_periods(m),
        "DatapointsToAlarm": below_desired_periods(m),
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def _idle_gpus(
    config: StackConfig, name: str, running: dict[str, Any], tg: list[dict[str, Any]]
) -> dict[str, Any]:
    """Replicas running (the hourly `running` stat) for two hours with no request."""
    return {
        "AlarmName": alarm_name(config, name, "idle-gpus"),
        "AlarmDescription": f"{name}: replicas running for two hours with no requests "
        "(paid GPUs idle: lower replicas.min or add a schedule)",
        "Metrics": [
            running,
            _stat("requests", ALB, "RequestCount", tg, "Sum", 3600),
            _expr("idle", "IF(running > 0 AND FILL(requests, 0) == 0, 1, 0)", "idle"),
        ],
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def stack_alarms(
    config: StackConfig,
    load_balancer: Any,
    file_system: Any,
    cluster: Any,
    asgs: Mapping[str, Any],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "AlarmName": alarm_name(config, "alb", "5xx"),
            "AlarmDescription": "ALB answered 5xx itself (no healthy target, timeouts)",
            "Namespace": ALB,
            "MetricName": "HTTPCode_ELB_5XX_Count",
            "Dimensions": _dims(LoadBalancer=load_balancer),
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 10,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            "AlarmName": alarm_name(config, "efs", "io-limit"),
            "AlarmDescription": "Model cache at its I/O limit: cold starts will slow down",
            "Namespace": "AWS/EFS",
            "MetricName": "PercentIOLimit",
            "Dimensions": _dims(FileSystemId=file_system),
            "Statistic": "Maximum",
            "Period": 300,
            "EvaluationPeriods": 3,
            "Threshold": 90,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    ]
    for key, asg in sorted(asgs.items()):
        out.append(
            {
                # GPU hosts in service while tasks reserve under half their GPUs for an hour:
                # instances that managed scaling failed to release, or stuck placements.
                "AlarmName": alarm_name(config, key, "gpu-waste"),
                "AlarmDescription": f"{key}: GPU instances running with under half their "
                "GPUs reserved by tasks for an hour",
                "Metrics": [
                    _stat(
                        "hosts",
                        "AWS/AutoScaling",
                        "GroupInServiceInstances",
                        _dims(AutoScalingGroupName=asg),
                        "Average",
                        300,
                    ),
                    _stat(
                        "reserved",
                        "AWS/ECS",
                        "GPUReservation",
                        _dims(ClusterName=cluster),
                        "Average",
                        300,
                    ),
                    _expr("waste", "IF(hosts > 0 AND FILL(reserved, 0) < 50, 1, 0)", "GPU waste"),
                ],
                "EvaluationPeriods": 12,
                "DatapointsToAlarm": 12,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            }
        )
    return out


# The wake alarm reads the ALB's per-minute RequestCount and fires on one period: the trigger
# a request-caused wake-up waits for before its capacity request (modelfleet/coldstart.py).
WAKE_PERIOD_S = 60
WAKE_EVALUATION_PERIODS = 1


def wake_alarm(config: StackConfig, m: ModelPlan, d: ModelDims) -> dict[str, Any]:
    """For `replicas.min: 0`: with no task there is no queue metric, so a request arriving at
    the ALB while nothing runs is the signal to start one replica."""
    return {
        "AlarmName": alarm_name(config, m.name, "wake"),
        "AlarmDescription": f"{m.name}: requests arrived while scaled to zero; start one replica",
        "Metrics": [
            _stat(
                "requests",
                ALB,
                "RequestCount",
                _dims(TargetGroup=d.target_group, LoadBalancer=d.load_balancer),
                "Sum",
                WAKE_PERIOD_S,
            ),
            _stat(
                "running",
                INSIGHTS,
                "RunningTaskCount",
                _dims(ClusterName=d.cluster, ServiceName=d.service),
                "Maximum",
                WAKE_PERIOD_S,
            ),
            # Only from zero: above it, queue-depth tracking decides.
            _expr("wake", "IF(FILL(requests, 0) > 0 AND FILL(running, 0) < 1, 1, 0)", "wake"),
        ],
        "EvaluationPeriods": WAKE_EVALUATION_PERIODS,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def alarm_names(config: StackConfig, models: list[ModelPlan], groups: list[str]) -> list[str]:
    """The AlarmNames of the monitoring component's alarms (the wake alarms of scaled-to-zero
    models belong to their autoscaling), in creation order; names depend on no resource id."""
    if config.platform is Platform.EKS:
        return eks_alarm_names(config, models)
    blank = ModelDims("", "", "", "")
    specs = [s for m in models for s in model_alarms(config, m, blank)]
    specs += stack_alarms(config, "", "", "", dict.fromkeys(groups, ""))
    return [s["AlarmName"] for s in specs]


def alarm_count(config: StackConfig, models: list[ModelPlan], groups: list[str]) -> int:
    """How many alarms the stack creates (for its CloudWatch bill), wake alarms included
    (ECS only: on EKS, KEDA wakes a scaled-to-zero model)."""
    wake = sum(1 for m in models if m.replicas_min == 0)
    if config.platform is Platform.EKS:
        wake = 0
    return len(alarm_names(config, models, groups)) + wake


def dashboard_body(
    plan: FleetPlan,
    region: str,
    dims: dict[str, ModelDims],
    load_balancer: str,
    file_system: str,
    cluster: str,
    replicas: Mapping[str, list[list[Any]]] | None = None,
    gpus: tuple[str, list[list[Any]]] | None = None,
) -> dict[str, Any]:
    """CloudWatch dashboard JSON: one row per model, one row for shared infrastructure.

    `replicas` (per model) and `gpus` (title, metrics) replace the ECS replica and GPU
    reservation metrics on other platforms.
    """
    widgets: list[dict[str, Any]] = []
    y = 0

    def widget(
        title: str, metrics: list[list[Any]], x: int, stat: str = "Sum", width: int = 6
    ) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": width,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "metrics": metrics,
                "stat": stat,
                "period": 60,
                "view": "timeSeries",
            },
        }

    for m in plan.models:
        d = dims[m.name]
        tg = ["TargetGroup", d.target_group, "LoadBalancer", d.load_balancer]
        svc = ["ClusterName", d.cluster, "ServiceName", d.service]
        widgets += [
            widget(
                f"{m.name}: requests and errors",
                [
                    [ALB, "RequestCount", *tg],
                    [ALB, "HTTPCode_Target_5XX_Count", *tg],
                    [ALB, "HTTPCode_Target_4XX_Count", *tg],
                ],
                0,
            ),
            widget(
                f"{m.name}: latency (s) and TTFT (ms)",
                [
                    [ALB, "TargetResponseTime", *tg, {"stat": "p50"}],
                    [ALB, "TargetResponseTime", *tg, {"stat": "p99"}],
                    [
                        EMF_NAMESPACE,
                        TIME_TO_FIRST_TOKEN,
                        SERVICE_DIMENSION,
                        d.service,
                        {"stat": "p90", "yAxis": "right"},
                    ],
                ],
                6,
                "Average",
            ),
            widget(
                f"{m.name}: queue depth per replica",
                [
                    [EMF_NAMESPACE, QUEUE_DEPTH, SERVICE_DIMENSION, d.service],
                ],
                12,
                "Average",
            ),
            widget(
                f"{m.name}: replicas",
                (replicas or {}).get(m.name)
                or [
                    [INSIGHTS, "RunningTaskCount", *svc],
                    [INSIGHTS, "DesiredTaskCount", *svc],
                    [ALB, "HealthyHostCount", *tg, {"stat": "Minimum"}],
                ],
                18,
                "Average",
            ),
        ]
        y += 6
    widgets += [
        widget(
            *(
                gpus
                or ("GPU reservation (%)", [["AWS/ECS", "GPUReservation", "ClusterName", cluster]])
            ),
            0,
            "Average",
        ),
        widget(
            "ALB 5xx and connections",
            [
                [ALB, "HTTPCode_ELB_5XX_Count", "LoadBalancer", load_balancer],
                [ALB, "ActiveConnectionCount", "LoadBalancer", load_balancer],
            ],
            6,
        ),
        widget(
            "Model cache reads (bytes)",
            [
                ["AWS/EFS", "DataReadIOBytes", "FileSystemId", file_system],
            ],
            12,
        ),
        widget(
            "Model cache I/O limit (%)",
            [
                ["AWS/EFS", "PercentIOLimit", "FileSystemId", file_system],
            ],
            18,
            "Maximum",
        ),
    ]
    return {"widgets": widgets}


# --- EKS --------------------------------------------------------------------------------------
# Container Insights with enhanced observability, from the amazon-cloudwatch-observability
# add-on; metric names and dimensions from
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-enhanced-EKS.html
# (read 2026-12-01). `PodName` is the workload's name (the Deployment's), not one pod's.
EKS_INSIGHTS = "ContainerInsights"


@dataclass(frozen=True)
class EksModelDims:
    load_balancer: Any  # ALB arn suffix
    target_group: Any  # target group arn suffix
    cluster: Any
    namespace: str
    deployment: str
    service: str  # the sidecar's EMF `Service` dimension


def eks_model_alarms(config: StackConfig, m: ModelPlan, d: EksModelDims) -> list[dict[str, Any]]:
    """The ALB and sidecar alarms unchanged, plus what Kubernetes adds: replicas below
    desired, idle GPUs and restart loops."""
    tg = _dims(TargetGroup=d.target_group, LoadBalancer=d.load_balancer)
    workload = _dims(ClusterName=d.cluster, Namespace=d.namespace, PodName=d.deployment)
    available = "kube_deployment_status_replicas_available"
    name = m.name
    return [
        *traffic_alarms(config, m, d.target_group, d.load_balancer, d.service),
        # Desired is what KEDA set (0 at night), so the alarm stays quiet by construction.
        _below_desired(
            config,
            m,
            "replicas-below-desired",
            f"{name}: fewer replicas available than desired for longer than a cold start "
            f"({below_desired_periods(m)} min): no GPU capacity, image pull or weight load "
            "failing",
            [
                _stat("available", EKS_INSIGHTS, available, workload, "Average"),
                _stat(
                    "desired", EKS_INSIGHTS, "kube_deployment_spec_replicas", workload, "Average"
                ),
                _expr("missing", "FILL(desired, 0) - FILL(available, 0)", "replicas missing"),
            ],
        ),
        _idle_gpus(
            config, name, _stat("running", EKS_INSIGHTS, available, workload, "Average", 3600), tg
        ),
        {
            # The restart count only grows; a container that restarts in three 5-minute
            # periods in a row is in a crash loop (CrashLoopBackOff caps its delay at 5 min).
            "AlarmName": alarm_name(config, name, "restart-loop"),
            "AlarmDescription": f"{name}: containers restarting for 15 minutes (crash loop: "
            "out of memory, a failing probe or a bad engine argument)",
            "Metrics": [
                _stat(
                    "restarts",
                    EKS_INSIGHTS,
                    "pod_number_of_container_restarts",
                    workload,
                    "Maximum",
                    300,
                ),
                _expr("new", "IF(DIFF(FILL(restarts, 0)) > 0, 1, 0)", "restarted"),
            ],
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 3,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    ]


def eks_stack_alarms(
    config: StackConfig, load_balancer: Any, file_system: Any, cluster: Any
) -> list[dict[str, Any]]:
    """The ALB and cache alarms of ECS stacks, and GPU waste from the cluster's GPU nodes."""
    out = stack_alarms(config, load_balancer, file_system, cluster, {})
    cluster_dims = _dims(ClusterName=cluster)
    out.append(
        {
            # Karpenter removes empty GPU nodes; GPUs paid for and not requested by pods for an
            # hour mean nodes it could not remove (do-not-disrupt, limits) or stuck pods.
            "AlarmName": alarm_name(config, "cluster", "gpu-waste"),
            "AlarmDescription": "GPU nodes running with under half their GPUs requested by "
            "pods for an hour",
            "Metrics": [
                _stat("gpus", EKS_INSIGHTS, "node_gpu_limit", cluster_dims, "Sum", 300),
                _stat("requested", EKS_INSIGHTS, "node_gpu_request", cluster_dims, "Sum", 300),
                _expr(
                    "waste",
                    "IF(FILL(gpus, 0) > 0 AND FILL(requested, 0) < 0.5 * gpus, 1, 0)",
                    "GPU waste",
                ),
            ],
            "EvaluationPeriods": 12,
            "DatapointsToAlarm": 12,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }
    )
    return out


def eks_dashboard_body(
    plan: FleetPlan,
    region: str,
    dims: dict[str, EksModelDims],
    load_balancer: str,
    file_system: str,
    cluster: str,
) -> dict[str, Any]:
    """The ECS dashboard's rows, with replicas and GPUs from Container Insights."""
    replicas: dict[str, list[list[Any]]] = {}
    for name, d in dims.items():
        workload = ["ClusterName", cluster, "Namespace", d.namespace, "PodName", d.deployment]
        tg = ["TargetGroup", d.target_group, "LoadBalancer", d.load_balancer]
        replicas[name] = [
            [EKS_INSIGHTS, "kube_deployment_status_replicas_available", *workload],
            [EKS_INSIGHTS, "kube_deployment_spec_replicas", *workload],
            [ALB, "HealthyHostCount", *tg, {"stat": "Minimum"}],
        ]
    gpus = (
        "GPUs on nodes and requested by pods",
        [
            [EKS_INSIGHTS, "node_gpu_limit", "ClusterName", cluster, {"stat": "Sum"}],
            [EKS_INSIGHTS, "node_gpu_request", "ClusterName", cluster, {"stat": "Sum"}],
        ],
    )
    ecs_dims = {
        n: ModelDims(d.load_balancer, d.target_group, cluster, d.service) for n, d in dims.items()
    }
    return dashboard_body(
        plan, region, ecs_dims, load_balancer, file_system, cluster, replicas, gpus
    )


def eks_alarm_names(config: StackConfig, models: list[ModelPlan]) -> list[str]:
    blank = EksModelDims("", "", "", "", "", "")
    specs = [s for m in models for s in eks_model_alarms(config, m, blank)]
    specs += eks_stack_alarms(config, "", "", "")
    return [s["AlarmName"] for s in specs]

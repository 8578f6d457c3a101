"""KEDA objects: one ScaledObject per model and the TriggerAuthentication they share.

How each signal reaches the scaler (KEDA 2.20, the pinned chart's version; sources cited from
kedacore/keda at tag v2.20.2):

- Queue depth: the sidecar publishes `QueueDepth` (namespace `modelfleet`, dimension
  `Service`) in CloudWatch embedded metric format, as on ECS. On EKS its EMF lines go to the
  CloudWatch agent of the amazon-cloudwatch-observability add-on (its `emf` listener on the
  node, `SIDECAR_EMF_ENDPOINT`; the add-on's agent config needs `logs.metrics_collected.emf`,
  which its default config leaves out), not through Fluent Bit: the add-on's Fluent Bit
  nests JSON log lines under `log_processed`, where CloudWatch does not find EMF. The
  `aws-cloudwatch` trigger reads the per-minute Sum over all pods; divided by the samples one
  pod sends per minute it is the total waiting, and desired = total / target, which is ECS's
  target tracking on the average per task.
- Wake from zero: the model's target group's `RequestCount` (ALB metrics arrive per minute:
  60 s period), used for activation only.
- Schedule: KEDA's cron trigger reports `desiredReplicas` inside its window and 0 outside
  (pkg/scalers/cron_scaler.go, GetMetricsAndActivity), but the HPA takes the maximum over
  triggers, so queue depth or requests would still scale up at night. A `scalingModifiers`
  formula gates the composite metric on the cron metric instead: 0 at night, so the object
  turns inactive (pkg/scaling/scale_handler.go: with modifiers, activity is composite >
  activationTarget) and KEDA scales to zero after `cooldownPeriod`; inside the window the
  formula holds the floor `replicas.min`. The composite is an AverageValue metric with target
  `queueDepthTarget` (controllers/keda/hpa.go), so desired = ceil(composite / target).
- Identity: `identityOwner: workload` reads only IRSA annotations, so the triggers use the
  KEDA operator's own Pod Identity (`podIdentity.provider: aws`, `identityOwner: keda`).
"""

from __future__ import annotations

from typing import Any

from modelfleet.containers import EMF_INTERVAL_S, EMF_NAMESPACE
from modelfleet.kube.serving import ServingModel, ServingPlan
from modelfleet.monitoring import ALB, QUEUE_DEPTH, SERVICE_DIMENSION
from modelfleet.plan import FleetPlan, ModelPlan

# Trigger names the formula refers to.
QUEUE_TRIGGER = "queue"
WAKE_TRIGGER = "requests"
SCHEDULE_TRIGGER = "schedule"
# CloudWatch: one-minute periods, the last complete minute (the current one is partial and a
# partial Sum would under-count), two periods fetched so one is always there.
METRIC_PERIOD_S = 60
METRIC_END_OFFSET_S = 60
METRIC_COLLECTION_S = 120
POLLING_INTERVAL_S = 15
SAMPLES_PER_PERIOD = METRIC_PERIOD_S // EMF_INTERVAL_S


def trigger_authentication(sp: ServingPlan) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": sp.trigger_authentication, "namespace": sp.namespace},
        "spec": {"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
    }


def _cloudwatch(
    name: str,
    sp: ServingPlan,
    region: str,
    namespace: str,
    metric: str,
    dimension_names: list[str],
    dimension_value: Any,
    stat: str,
) -> dict[str, Any]:
    return {
        "type": "aws-cloudwatch",
        "name": name,
        "authenticationRef": {"name": sp.trigger_authentication},
        "metadata": {
            "awsRegion": region,
            "namespace": namespace,
            "metricName": metric,
            "dimensionName": ";".join(dimension_names),
            "dimensionValue": dimension_value,
            "metricStat": stat,
            "metricStatPeriod": str(METRIC_PERIOD_S),
            "metricCollectionTime": str(METRIC_COLLECTION_S),
            "metricEndTimeOffset": str(METRIC_END_OFFSET_S),
            # No datapoint (no pod, no request) reads as 0 (minMetricValue is required).
            "minMetricValue": "0",
            # Unused under scalingModifiers (the composite has its own target); required.
            "targetMetricValue": "1",
        },
    }


WAKE_DIMENSIONS = ["TargetGroup", "LoadBalancer"]


def wake_dimension_value(target_group: str, load_balancer: str) -> str:
    """KEDA's `dimensionValue` for the target group's RequestCount: values joined by `;`
    (the component joins Outputs the same way)."""
    return f"{target_group};{load_balancer}"


def formula(plan: FleetPlan, m: ModelPlan) -> str:
    """The composite metric in units of `queueDepthTarget` per replica (expr-lang syntax)."""
    target = plan.config.autoscaling.queue_depth_target
    demand = f"{QUEUE_TRIGGER} / {SAMPLES_PER_PERIOD}"
    if m.replicas_min == 0:
        # One replica while requests arrive, however short the queue.
        demand = f"max({demand}, {WAKE_TRIGGER} > 0 ? {target:g} : 0)"
    if plan.config.schedule is None:
        return demand
    floor = m.replicas_min * target
    return f"{SCHEDULE_TRIGGER} > 0 ? max({demand}, {floor:g}) : 0"


def min_replicas(plan: FleetPlan, m: ModelPlan) -> int:
    """With a schedule the night stop needs 0 here; the formula holds the day's floor."""
    return 0 if plan.config.schedule is not None else m.replicas_min


def scaled_object(
    plan: FleetPlan,
    m: ModelPlan,
    sp: ServingPlan,
    sm: ServingModel,
    region: str,
    wake_dimensions: Any,
) -> dict[str, Any]:
    """`wake_dimensions`: `wake_dimension_value(target group, ALB)` (arn suffixes)."""
    c = plan.config
    auto = c.autoscaling
    triggers = [
        _cloudwatch(
            QUEUE_TRIGGER,
            sp,
            region,
            EMF_NAMESPACE,
            QUEUE_DEPTH,
            [SERVICE_DIMENSION],
            sm.metric_service,
            "Sum",
        )
    ]
    if m.replicas_min == 0:
        triggers.append(
            _cloudwatch(
                WAKE_TRIGGER,
                sp,
                region,
                ALB,
                "RequestCount",
                WAKE_DIMENSIONS,
                wake_dimensions,
                "Sum",
            )
        )
    if c.schedule is not None:
        triggers.append(
            {
                "type": "cron",
                "name": SCHEDULE_TRIGGER,
                "metadata": {
                    "timezone": c.schedule.timezone,
                    "start": c.schedule.scale_up,
                    "end": c.schedule.scale_down,
                    # Any value > 0 opens the gate; the floor is in the formula.
                    "desiredReplicas": str(max(1, m.replicas_min)),
                },
            }
        )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": sm.scaled_object, "namespace": sp.namespace, "labels": sm.labels},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": sm.deployment,
            },
            "pollingInterval": POLLING_INTERVAL_S,
            # Idle this long before scaling to zero (the ECS scale-in cooldown).
            "cooldownPeriod": auto.scale_in_cooldown,
            "minReplicaCount": min_replicas(plan, m),
            "maxReplicaCount": m.replicas_max,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": 0},
                        "scaleDown": {"stabilizationWindowSeconds": auto.scale_in_cooldown},
                    }
                },
                "scalingModifiers": {
                    "formula": formula(plan, m),
                    "target": f"{auto.queue_depth_target:g}",
                    "activationTarget": "0",
                    "metricType": "AverageValue",
                },
            },
            "triggers": triggers,
        },
    }

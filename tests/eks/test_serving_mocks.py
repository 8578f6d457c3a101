"""The serving slice as the Pulumi program registers it (`__main__.py` under mocks): every
Kubernetes object schema-valid on its recorded inputs, in the right order, secrets secret."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from serving_support import (
    SECRET_SIG,
    SLICE_KINDS,
    eks_plan_for,
    plain,
    two_model_config,
    unscheduled_config,
    validate,
)
from unit_stacks import write_stack

from components.harness import Recorded, Run, run_stack
from modelfleet.kube.manifest import REDACTED, planned_resources
from modelfleet.kube.serving import serving_plan
from modelfleet.monitoring import EksModelDims, alarm_count, eks_model_alarms, eks_stack_alarms
from modelfleet.plan import FleetPlan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from infra_support import assert_valid, plan_of

CONFIGS = {"scheduled": two_model_config, "unscheduled": unscheduled_config}
REPO = Path(__file__).resolve().parents[2]
# Every shipped EKS stack too, as `pulumi preview` would run it.
SHIPPED = sorted(
    p.name
    for p in (REPO / "stacks").glob("Pulumi.*.yaml")
    if yaml.safe_load(p.read_text())["config"].get("modelfleet:platform") == "eks"
)


@pytest.fixture(scope="module", params=sorted(CONFIGS) + SHIPPED)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FleetPlan, Run]:
    if request.param in SHIPPED:
        path = REPO / "stacks" / request.param
        return plan_of(path), run_stack(path)
    tmp = tmp_path_factory.mktemp(request.param)
    cfg = CONFIGS[request.param]()
    path = write_stack(tmp, cfg, "eks")
    (tmp / "plan").mkdir()
    return eks_plan_for(tmp / "plan", cfg), run_stack(path)


def _slice(plan: FleetPlan, run: Run) -> list[Recorded]:
    ns = serving_plan(plan).namespace
    out = []
    for r in run.resources:
        if not r.type.startswith("kubernetes:") or r.type.rsplit(":", 1)[-1] not in SLICE_KINDS:
            continue
        meta = r.inputs.get("metadata") or {}
        if (
            meta.get("namespace") == ns
            or meta.get("name") == ns
            or r.type.endswith("PersistentVolume")
        ):
            out.append(r)
    return out


def _of(plan: FleetPlan, run: Run, kind: str, name: str) -> Recorded:
    found = [
        r
        for r in _slice(plan, run)
        if r.type.endswith(f":{kind}") and r.inputs["metadata"]["name"] == name
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def _urn(run: Run, r: Recorded) -> str:
    return f"{r.type}::{r.name}"


def test_every_recorded_object_is_schema_valid(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    assert plan.eks is not None
    objs = _slice(plan, run)
    assert {r.type.rsplit(":", 1)[-1] for r in objs} == SLICE_KINDS
    for r in objs:
        validate(plain(r.inputs), plan.eks.kubernetes_version)


def test_deployment_waits_for_its_prewarm_job_service_and_binding(
    stack: tuple[FleetPlan, Run],
) -> None:
    plan, run = stack
    sp = serving_plan(plan)
    for m in plan.models:
        sm = sp.models[m.name]
        dep = _of(plan, run, "Deployment", sm.deployment)
        for kind, name in (
            ("Job", sm.prewarm_job),
            ("Service", sm.service),
            ("TargetGroupBinding", sm.target_group_binding),
            ("PersistentVolumeClaim", sm.claim),
        ):
            other = _of(plan, run, kind, name)
            assert any(d.endswith(f"::{other.name}") for d in dep.dependencies), (kind, name)
        so = _of(plan, run, "ScaledObject", sm.scaled_object)
        assert any(d.endswith(f"::{dep.name}") for d in so.dependencies)


def test_recorded_deployment_holds_the_plan(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    sp = serving_plan(plan)
    for m in plan.models:
        dep = plain(_of(plan, run, "Deployment", sp.models[m.name].deployment).inputs)
        assert "replicas" not in dep["spec"]
        containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
        vllm = containers["vllm"]
        assert vllm["args"] == m.vllm_command
        assert vllm["resources"]["limits"]["nvidia.com/gpu"] == str(m.tensor_parallel)
        assert {v["name"]: v.get("readOnly") for v in vllm["volumeMounts"]}["models"] is True
        start = vllm["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= m.container_start_s


def test_secrets_reach_the_cluster_only_as_secrets(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    sp = serving_plan(plan)
    secret = _of(plan, run, "Secret", sp.secret_name)
    raw = secret.inputs["stringData"]
    assert SECRET_SIG in raw  # marked secret: encrypted in state, hidden in previews
    assert set(plain(raw)) == {spec.key for spec in plan.secrets}
    for r in _slice(plan, run):
        if r is secret:
            continue
        text = repr(plain(r.inputs))
        for value in plain(raw).values():
            assert value not in text, r.name
    assert REDACTED not in repr(plain(raw))


def test_volume_is_the_models_access_point(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    sp = serving_plan(plan)
    aps = {
        r.name: r.outputs["id"]
        for r in run.resources
        if r.type == "aws:efs/accessPoint:AccessPoint"
    }
    fs = next(r for r in run.resources if r.type == "aws:efs/fileSystem:FileSystem")
    for m in plan.models:
        pv = plain(_of(plan, run, "PersistentVolume", sp.models[m.name].volume).inputs)
        handle = pv["spec"]["csi"]["volumeHandle"]
        fs_id, _, ap_id = handle.partition("::")
        assert fs_id == fs.outputs["id"]
        assert ap_id in aps.values()
        assert pv["spec"]["mountOptions"] == ["tls", "iam"]


def test_binding_targets_the_models_target_group(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    sp = serving_plan(plan)
    tgs = [r for r in run.resources if r.type == "aws:lb/targetGroup:TargetGroup"]
    assert {r.inputs["targetType"] for r in tgs} == {plan.target_type} == {"ip"}
    arns = {r.outputs["arn"] for r in tgs}
    created = [r.outputs["id"] for r in run.resources if r.type == "aws:ec2/vpc:Vpc"]
    vpc_id = plan.config.network.vpc_id or created[0]
    for m in plan.models:
        tgb = plain(
            _of(plan, run, "TargetGroupBinding", sp.models[m.name].target_group_binding).inputs
        )
        assert tgb["spec"]["targetGroupARN"] in arns
        assert tgb["spec"]["vpcID"] == vpc_id
        assert tgb["spec"]["targetType"] == "ip"


def test_eks_alarms_replace_the_ecs_ones(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    names = {r.inputs["name"] for r in run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    c = plan.config
    for m in plan.models:
        for kind in ("5xx-rate", "unhealthy-targets", "p99-latency", "queue-depth"):
            assert f"{c.prefix}-{m.name}-{kind}" in names  # the same as on ECS
        for kind in ("replicas-below-desired", "idle-gpus", "restart-loop"):
            assert f"{c.prefix}-{m.name}-{kind}" in names
        assert f"{c.prefix}-{m.name}-tasks-below-desired" not in names
        assert f"{c.prefix}-{m.name}-wake" not in names  # KEDA wakes on EKS
    assert f"{c.prefix}-cluster-gpu-waste" in names
    dashboards = run.by_type("aws:cloudwatch/dashboard:Dashboard")
    assert len(dashboards) == 1


def test_eks_alarm_specs_are_valid_put_metric_alarm_requests(
    stack: tuple[FleetPlan, Run],
) -> None:
    plan, _ = stack
    sp = serving_plan(plan)
    specs: list[dict[str, Any]] = []
    for m in plan.models:
        sm = sp.models[m.name]
        dims = EksModelDims(
            "app/mf-alb/0123456789abcdef",
            f"targetgroup/{m.short}-tg/0123456789abcdef",
            "mf-cluster",
            sp.namespace,
            sm.deployment,
            sm.metric_service,
        )
        specs += eks_model_alarms(plan.config, m, dims)
    specs += eks_stack_alarms(plan.config, "app/mf-alb/0123456789abcdef", "fs-0123", "mf-cluster")
    for spec in specs:
        request = {**spec, "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:alarms"]}
        assert_valid("cloudwatch", "PutMetricAlarm", request, spec["AlarmName"])


def test_planned_objects_are_the_created_ones(stack: tuple[FleetPlan, Run]) -> None:
    """`modelfleet plan` and `render` list exactly what the program creates."""
    plan, run = stack
    created = [(r.type, r.name) for r in _slice(plan, run)]
    assert sorted(created) == sorted(planned_resources(plan))


def test_priced_alarms_are_the_created_alarms(stack: tuple[FleetPlan, Run]) -> None:
    plan, run = stack
    created = len(run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    assert alarm_count(plan.config, plan.models, list(plan.capacity)) == created

"""ECS services, the ALB, autoscaling, monitoring and stack outputs, on recorded inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from infra_support import ALARM, SERVICE, container, expected_groups, serving_task, urn_name

from components.harness import Run
from components.load_balancer import SSL_POLICY
from modelfleet.plan import READY_PATH, SIDECAR_PORT, FleetPlan

pytestmark = pytest.mark.xdist_group("infra")

STACKS = ["dev", "prod", "staging"]
LB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
SCHEDULED = "aws:appautoscaling/scheduledAction:ScheduledAction"


def _run_plan(request: pytest.FixtureRequest, stack: str) -> tuple[Run, FleetPlan]:
    return request.getfixturevalue(stack), request.getfixturevalue(f"{stack}_plan")


# --- ECS service -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_service_per_model(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    assert len(run.by_type(SERVICE)) == len(plan.models)
    for m in plan.models:
        svc = run.one(SERVICE, f"-{m.short}-service").inputs
        assert svc["healthCheckGracePeriodSeconds"] == m.grace_period_s
        assert svc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        tg = run.one(TG, f"{m.short}-tg")
        assert svc["loadBalancers"] == [
            {
                "targetGroupArn": tg.outputs["arn"],
                "containerName": "sidecar",
                "containerPort": SIDECAR_PORT,
            }
        ]
        strategy = {
            s["capacityProvider"]: (s["base"], s["weight"])
            for s in svc["capacityProviderStrategies"]
        }
        assert strategy == {
            run.one("aws:ecs/capacityProvider:CapacityProvider", f"-{key}-cp").outputs["name"]: v
            for key, v in expected_groups(m).items()
        }
        assert svc["desiredCount"] == m.replicas_min
        assert svc["networkConfiguration"]["assignPublicIp"] is False
        tags = svc["tags"]
        assert tags["modelfleet:instance-type"] == m.instance_type
        assert tags["modelfleet:max-replicas"] == str(m.replicas_max)
        assert tags["modelfleet:capacity"] == m.capacity
        assert tags["modelfleet:tasks-per-instance"] == str(m.tasks_per_instance)
        assert float(tags["modelfleet:instance-hourly-usd"]) == pytest.approx(
            m.cost.on_demand_hourly, rel=1e-4
        )
        assert tags["modelfleet:ephemeral"] == str(plan.config.ephemeral).lower()
        # The target group is on a listener before the service registers with it.
        assert f"{plan.config.prefix}-lb-{m.short}-rule" in {
            urn_name(u) for u in run.one(SERVICE, f"-{m.short}-service").dependencies
        }


def test_grace_period_follows_model_size(prod: Run, prod_plan: FleetPlan) -> None:
    small, large = prod_plan.model("llama-8b"), prod_plan.model("llama-70b")
    graces = {
        m.name: prod.one(SERVICE, f"-{m.short}-service").inputs["healthCheckGracePeriodSeconds"]
        for m in (small, large)
    }
    assert graces["llama-70b"] > graces["llama-8b"], graces
    # Covers the slowest start on purpose: the first one, which compiles (the image is pulled
    # before ECS starts the grace period's clock).
    assert large.cold_start is not None
    assert graces["llama-70b"] >= large.cold_start.first.container_start_s


def test_guardrail_tags_for_the_policy_pack(prod: Run, prod_plan: FleetPlan) -> None:
    g = prod_plan.config.guardrails
    assert g.allowed_instance_families and g.max_hourly_usd
    for svc in prod.by_type(SERVICE):
        tags = svc.inputs["tags"]
        assert tags["modelfleet:guardrail-allowed-families"] == "/".join(
            g.allowed_instance_families
        )
        assert float(tags["modelfleet:guardrail-max-hourly-usd"]) == g.max_hourly_usd


# --- ALB ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_alb(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    alb = run.one(LB).inputs
    assert alb["internal"] is False
    public = [
        s.outputs["id"]
        for s in run.by_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["modelfleet:tier"] == "public"
    ] or plan.config.network.public_subnet_ids
    assert alb["subnets"] == public
    assert alb["idleTimeout"] == plan.alb_idle_timeout_s >= 120
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["enableDeletionProtection"] is (not plan.config.ephemeral)
    assert ("accessLogs" in alb) is (not plan.config.ephemeral)
    if "accessLogs" in alb:
        assert alb["accessLogs"]["enabled"] is True


def test_deletion_protection_dev_off_prod_on(dev: Run, prod: Run) -> None:
    assert dev.one(LB).inputs["enableDeletionProtection"] is False
    assert "accessLogs" not in dev.one(LB).inputs
    assert prod.one(LB).inputs["enableDeletionProtection"] is True
    assert prod.one(LB).inputs["accessLogs"]["enabled"] is True


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_https_listener_and_redirect(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    listeners = {int(x.inputs["port"]): x.inputs for x in run.by_type(LISTENER)}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["protocol"] == "HTTPS"
    assert https["sslPolicy"] == SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["certificateArn"] == plan.config.network.certificate_arn
    (default,) = https["defaultActions"]
    if len(plan.models) > 1:
        assert default["type"] == "fixed-response"
        assert default["fixedResponse"]["statusCode"] == "404"
        json.loads(default["fixedResponse"]["messageBody"])  # an OpenAI-shaped JSON error
    else:
        assert default == {"type": "forward", "targetGroupArn": run.one(TG).outputs["arn"]}
    (redirect,) = listeners[80]["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    https_arn = run.one(LISTENER, "-https").outputs["arn"]
    priorities = set()
    for m in plan.models:
        rule = run.one(RULE, f"-{m.short}-rule").inputs
        assert rule["listenerArn"] == https_arn
        assert rule["conditions"] == [{"pathPattern": {"values": [f"/{m.name}/*"]}}]
        assert rule["actions"] == [
            {"type": "forward", "targetGroupArn": run.one(TG, f"{m.short}-tg").outputs["arn"]}
        ]
        priorities.add(rule["priority"])
    assert len(priorities) == len(plan.models)


def test_prod_default_is_a_404(prod: Run) -> None:
    (default,) = prod.one(LISTENER, "-https").inputs["defaultActions"]
    assert default["type"] == "fixed-response"


def test_dev_http_only_forwards_to_its_one_target_group(dev: Run) -> None:
    (listener,) = dev.by_type(LISTENER)
    assert listener.inputs["port"] == 80 and listener.inputs["protocol"] == "HTTP"
    assert "sslPolicy" not in listener.inputs
    (default,) = listener.inputs["defaultActions"]
    assert default == {"type": "forward", "targetGroupArn": dev.one(TG).outputs["arn"]}
    (rule,) = dev.by_type(RULE)
    assert rule.inputs["conditions"] == [{"pathPattern": {"values": ["/llama-8b/*"]}}]


@pytest.mark.parametrize("stack", STACKS)
def test_target_groups_check_sidecar_readiness(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    assert len(run.by_type(TG)) == len(plan.models)
    for tg in run.by_type(TG):
        i = tg.inputs
        assert i["targetType"] == "ip"
        assert i["port"] == SIDECAR_PORT
        assert i["protocol"] == "HTTP"
        hc = i["healthCheck"]
        assert hc["path"] == READY_PATH == "/ready"
        assert hc["port"] == "traffic-port"
        assert hc["timeout"] < hc["interval"]


# --- autoscaling -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_scaling_target_and_queue_depth_policy(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    cluster = run.one("aws:ecs/cluster:Cluster").outputs["name"]
    for m in plan.models:
        target = run.one(TARGET, f"-{m.short}-scaling-target").inputs
        assert (target["minCapacity"], target["maxCapacity"]) == (m.replicas_min, m.replicas_max)
        svc_name = run.one(SERVICE, f"-{m.short}-service").inputs["name"]
        assert target["resourceId"] == f"service/{cluster}/{svc_name}"
        assert target["scalableDimension"] == "ecs:service:DesiredCount"
        policy = run.one(POLICY, f"-{m.short}-scaling-queue-depth").inputs
        assert policy["policyType"] == "TargetTrackingScaling"
        spec = policy["targetTrackingScalingPolicyConfiguration"]["customizedMetricSpecification"]
        assert (spec["namespace"], spec["metricName"]) == ("modelfleet", "QueueDepth")
        sidecar_env = {
            e["name"]: e["value"]
            for e in container(serving_task(run, m.short), "sidecar")["environment"]
        }
        # The sidecar publishes under the name the policy and the alarms read.
        assert sidecar_env["SIDECAR_EMF_NAMESPACE"] == spec["namespace"]
        assert spec["dimensions"] == [
            {"name": "Service", "value": sidecar_env["SIDECAR_SERVICE_NAME"]}
        ]
        assert sidecar_env["SIDECAR_SERVICE_NAME"] == svc_name
        # Replicas above zero: no step policy from zero.
        assert not [p for p in run.by_type(POLICY) if "-from-zero" in p.name]


AWS_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")


@pytest.mark.parametrize("stack", STACKS)
def test_scheduled_scale_down_and_up(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    sch = plan.config.schedule
    assert sch is not None
    for m in plan.models:
        down = run.one(SCHEDULED, f"-{m.short}-scaling-scale-down").inputs
        up = run.one(SCHEDULED, f"-{m.short}-scaling-scale-up").inputs
        assert down["scalableTargetAction"] == {"minCapacity": 0, "maxCapacity": 0}
        assert up["scalableTargetAction"] == {
            "minCapacity": m.replicas_min,
            "maxCapacity": m.replicas_max,
        }
        for action in (down, up):
            assert AWS_CRON.match(action["schedule"]), action["schedule"]
            fields = action["schedule"][5:-1].split()
            assert "?" in (fields[2], fields[4])  # one of the day fields must be "?"
            assert action["timezone"] == sch.timezone
            assert action["resourceId"] == run.one(TARGET, f"-{m.short}-").inputs["resourceId"]


def test_schedule_renders_the_stack_cron(dev: Run) -> None:
    # dev: scaleDown "0 20 * * MON-FRI", scaleUp "0 7 * * MON-FRI" (standard cron).
    down = dev.one(SCHEDULED, "-scale-down").inputs["schedule"]
    up = dev.one(SCHEDULED, "-scale-up").inputs["schedule"]
    assert down == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"
    assert up == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"


def test_min_zero_gets_the_from_zero_step_policy(zero_stack: tuple[Path, Run]) -> None:
    _, run = zero_stack
    step = run.one(POLICY, "-from-zero")
    cfg = step.inputs["stepScalingPolicyConfiguration"]
    assert step.inputs["policyType"] == "StepScaling"
    assert cfg["adjustmentType"] == "ChangeInCapacity"
    assert cfg["stepAdjustments"][0]["scalingAdjustment"] == 1
    alarm = run.one(ALARM, "-from-zero-alarm").inputs
    assert alarm["alarmActions"] == [step.outputs["arn"]]
    metrics = {q["id"]: q for q in alarm["metricQueries"]}
    assert metrics["requests"]["metric"]["metricName"] == "RequestCount"
    assert [q["id"] for q in alarm["metricQueries"] if q["returnData"]] == ["wake"]
    assert run.one(TARGET).inputs["minCapacity"] == 0
    assert run.one(SERVICE).inputs["desiredCount"] == 0


# --- monitoring --------------------------------------------------------------------------------

MODEL_ALARMS = (
    "5xx-rate",
    "unhealthy-targets",
    "p99-latency",
    "queue-depth",
    "tasks-below-desired",
    "idle-gpus",
)


@pytest.mark.parametrize("stack", STACKS)
def test_alarms_notify_the_encrypted_topic(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    topic = run.one("aws:sns/topic:Topic")
    key = run.one("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    subs = run.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s.inputs["endpoint"] for s in subs) == sorted(plan.config.alarms.emails)
    assert all(s.inputs["protocol"] == "email" for s in subs) and subs
    p = plan.config.prefix
    names = {a.inputs["name"] for a in run.by_type(ALARM)}
    expected = {f"{p}-{m.name}-{kind}" for m in plan.models for kind in MODEL_ALARMS}
    expected |= {f"{p}-alb-5xx", f"{p}-efs-io-limit"}
    groups = {g for m in plan.models for g in expected_groups(m)}
    expected |= {f"{p}-{g}-gpu-waste" for g in groups}
    assert names == expected
    for a in run.by_type(ALARM):
        assert a.inputs["alarmActions"] == [topic.outputs["arn"]], a.name


def test_gpu_waste_reads_the_groups_it_watches(prod: Run) -> None:
    for asg in prod.by_type("aws:autoscaling/group:Group"):
        key = asg.name.split("-gpu-", 1)[1].removesuffix("-asg")
        alarm = prod.one(ALARM, f"-{key}-gpu-waste").inputs
        hosts = next(q for q in alarm["metricQueries"] if q["id"] == "hosts")["metric"]
        assert hosts["dimensions"] == {"AutoScalingGroupName": asg.outputs["name"]}
        assert hosts["metricName"] in asg.inputs["enabledMetrics"]


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_has_widgets_for_every_model(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for m in plan.models:
        assert sum(t.startswith(f"{m.name}:") for t in titles) >= 4, titles
    for w in body["widgets"]:
        assert w["properties"]["region"] == plan.config.region
        assert w["properties"]["metrics"]


# --- outputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "scheme"), [("dev", "http"), ("prod", "https")])
def test_outputs(request: pytest.FixtureRequest, stack: str, scheme: str) -> None:
    run, plan = _run_plan(request, stack)
    out = run.stack_outputs
    dns = run.one(LB).outputs["dnsName"]
    assert out["endpoints"] == {m.name: f"{scheme}://{dns}/{m.name}/v1" for m in plan.models}
    assert out["alarm_topic_arn"] == run.one("aws:sns/topic:Topic").outputs["arn"]
    assert out["dashboard_url"].startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")
    assert out["dashboard_url"].endswith(f"#dashboards/dashboard/{plan.config.prefix}")
    assert out["fetcher_task_definitions"] == {
        m.name: run.one("aws:ecs/taskDefinition:TaskDefinition", f"-{m.short}-fetcher").outputs[
            "arn"
        ]
        for m in plan.models
    }

"""Recorded payloads as AWS would receive them: botocore's service models plus modelfleet.limits.

botocore's bundled models encode types, required members, enums and lengths; the limits table
holds what they do not (ECS health-check ranges, ALB idle timeout, alarm periods), each with
its documentation page.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from infra_support import (
    ALARM,
    DEV,
    SERVICE,
    TASK_DEFINITION,
    assert_valid,
    containers,
    create_service,
    ecs_tags,
    pascal,
    period_pairs,
    register_task_definition,
    validate,
)

from components.harness import Recorded, Run
from modelfleet import limits
from modelfleet.monitoring import ModelDims, model_alarms, stack_alarms
from modelfleet.plan import FleetPlan, HealthCheck

pytestmark = pytest.mark.xdist_group("infra")

STACKS = ["dev", "prod", "staging"]
VARIANTS = ["zero_stack", "given_stack"]


def _run(request: pytest.FixtureRequest, name: str) -> Run:
    value = request.getfixturevalue(name)
    run: Run = value[1] if isinstance(value, tuple) else value
    return run


def _plan(request: pytest.FixtureRequest, stack: str) -> FleetPlan:
    plan: FleetPlan = request.getfixturevalue(f"{stack}_plan")
    return plan


# --- the validator itself can fail ------------------------------------------------------------


def test_validator_catches_what_aws_rejects() -> None:
    good = {
        "family": "f",
        "containerDefinitions": [{"name": "a", "image": "i", "essential": True}],
    }
    assert validate("ecs", "RegisterTaskDefinition", good) == []
    missing = {"containerDefinitions": good["containerDefinitions"]}
    assert validate("ecs", "RegisterTaskDefinition", missing)  # family is required
    bad_enum = {
        "family": "f",
        "containerDefinitions": [
            {"name": "a", "image": "i", "dependsOn": [{"containerName": "b", "condition": "UP"}]}
        ],
    }
    assert any("'UP'" in p for p in validate("ecs", "RegisterTaskDefinition", bad_enum))
    too_long = {
        "AlarmName": "x" * 256,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "LessThanThreshold",
    }
    assert any("at most 255" in p for p in validate("cloudwatch", "PutMetricAlarm", too_long))
    wrong_type = {**good, "cpu": 1024}
    assert validate("ecs", "RegisterTaskDefinition", wrong_type)  # cpu is a string
    dotted = {"AliasName": "alias/modelfleet/team-dev.2", "TargetKeyId": "k"}
    assert any("does not match" in p for p in validate("kms", "CreateAlias", dotted))


# --- ECS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS + VARIANTS)
def test_task_definitions_register(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    tds = run.by_type(TASK_DEFINITION)
    assert tds
    for td in tds:
        assert_valid("ecs", "RegisterTaskDefinition", register_task_definition(td), td.name)


@pytest.mark.parametrize("stack", STACKS + VARIANTS)
def test_services_create(request: pytest.FixtureRequest, stack: str) -> None:
    for svc in _run(request, stack).by_type(SERVICE):
        assert_valid("ecs", "CreateService", create_service(svc), svc.name)


@pytest.mark.parametrize(
    "stack",
    [
        "dev",
        "prod",
        "staging",
    ],
)
def test_service_tags_are_valid_ecs_tags(request: pytest.FixtureRequest, stack: str) -> None:
    for svc in _run(request, stack).by_type(SERVICE):
        tags = ecs_tags(svc.inputs["tags"])
        assert 0 < len(tags) <= 50
        # The API's pattern, spelt without \p{...} so it holds without the `regex` package.
        for tag in tags:
            for text in (tag["key"], tag["value"]):
                bad = [ch for ch in text if not (ch.isalnum() or ch == " " or ch in "_.:/=+-@")]
                assert not bad, f"{svc.name}: {tag['key']}={tag['value']!r} has {bad}"
        params = {**create_service(svc), "tags": tags}
        assert_valid("ecs", "CreateService", params, svc.name)


@pytest.mark.parametrize("stack", STACKS + VARIANTS)
def test_container_health_checks_within_ecs_limits(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    checked = 0
    for td in run.by_type(TASK_DEFINITION):
        for c in containers(td):
            hc = c.get("healthCheck")
            if hc is None:
                continue
            for key, limit in limits.ECS_HEALTHCHECK.items():
                assert limit.check(f"{td.name}/{c['name']} {key}", hc[key]) is None
            assert hc["timeout"] < hc["interval"]
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("stack", STACKS)
def test_grace_and_shared_memory_within_limits(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    for svc in run.by_type(SERVICE):
        grace = svc.inputs["healthCheckGracePeriodSeconds"]
        assert limits.ECS_GRACE_PERIOD.check(svc.name, grace) is None
    for td in run.by_type(TASK_DEFINITION):
        for c in containers(td):
            shm = c.get("linuxParameters", {}).get("sharedMemorySize")
            if shm is not None:
                assert limits.ECS_SHARED_MEMORY.check(td.name, shm) is None
                assert "FARGATE" not in td.inputs["requiresCompatibilities"]


# --- EC2 launch templates ----------------------------------------------------------------------


def _launch_template_data(lt: Recorded) -> dict[str, Any]:
    i = lt.inputs
    return {
        "ImageId": i["imageId"],
        "InstanceType": i["instanceType"],
        "IamInstanceProfile": {"Arn": i["iamInstanceProfile"]["arn"]},
        "UserData": i["userData"],
        "EbsOptimized": i["ebsOptimized"],
        "MetadataOptions": pascal(i["metadataOptions"]),
        "BlockDeviceMappings": pascal(i["blockDeviceMappings"]),
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": n["associatePublicIpAddress"],
                "Groups": n["securityGroups"],
                "DeleteOnTermination": n["deleteOnTermination"],
            }
            for n in i["networkInterfaces"]
        ],
        "TagSpecifications": [
            {
                "ResourceType": t["resourceType"],
                "Tags": [{"Key": k, "Value": v} for k, v in t["tags"].items()],
            }
            for t in i["tagSpecifications"]
        ],
    }


@pytest.mark.parametrize("stack", STACKS)
def test_launch_templates_create(request: pytest.FixtureRequest, stack: str) -> None:
    for lt in _run(request, stack).by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        data = _launch_template_data(lt)
        assert_valid(
            "ec2",
            "CreateLaunchTemplate",
            {"LaunchTemplateName": lt.name, "LaunchTemplateData": data},
            lt.name,
        )


# --- load balancer -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_target_groups_create(request: pytest.FixtureRequest, stack: str) -> None:
    for tg in _run(request, stack).by_type("aws:lb/targetGroup:TargetGroup"):
        i = tg.inputs
        hc = i["healthCheck"]
        params = {
            "Name": tg.outputs["name"],
            "Protocol": i["protocol"],
            "Port": i["port"],
            "VpcId": i["vpcId"],
            "TargetType": i["targetType"],
            "HealthCheckEnabled": True,
            "HealthCheckProtocol": hc["protocol"],
            "HealthCheckPort": hc["port"],
            "HealthCheckPath": hc["path"],
            "HealthCheckIntervalSeconds": hc["interval"],
            "HealthCheckTimeoutSeconds": hc["timeout"],
            "HealthyThresholdCount": hc["healthyThreshold"],
            "UnhealthyThresholdCount": hc["unhealthyThreshold"],
            "Matcher": {"HttpCode": hc["matcher"]},
        }
        assert_valid("elbv2", "CreateTargetGroup", params, tg.name)
        names = {
            "interval": "interval",
            "timeout": "timeout",
            "healthyThreshold": "healthyThreshold",
            "unhealthyThreshold": "unhealthyThreshold",
        }
        for key, limit_key in names.items():
            assert limits.TARGET_GROUP_HEALTHCHECK[limit_key].check(tg.name, hc[key]) is None
        assert (
            limits.TARGET_GROUP_DEREGISTRATION_DELAY.check(tg.name, i["deregistrationDelay"])
            is None
        )
        assert limits.NAME_32.check(tg.name, len(tg.outputs["name"])) is None


@pytest.mark.parametrize("stack", [*STACKS, "given_stack"])
def test_alb_idle_timeout_and_name(request: pytest.FixtureRequest, stack: str) -> None:
    lb = _run(request, stack).one("aws:lb/loadBalancer:LoadBalancer")
    assert limits.ALB_IDLE_TIMEOUT.check("idle", lb.inputs["idleTimeout"]) is None
    assert lb.inputs["idleTimeout"] >= 120
    assert limits.NAME_32.check(lb.name, len(lb.outputs["name"])) is None


# --- CloudWatch alarms -------------------------------------------------------------------------


def _string_dims_alarms(plan: FleetPlan) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for m in plan.models:
        dims = ModelDims(
            load_balancer="app/mf-alb/0123456789abcdef",
            target_group=f"targetgroup/{m.short}-tg/0123456789abcdef",
            cluster="mf-cluster",
            service=m.service_name,
        )
        specs += model_alarms(plan.config, m, dims)
    groups = dict.fromkeys(plan.capacity_groups, "asg-1")
    specs += stack_alarms(plan.config, "app/mf-alb/0123456789abcdef", "fs-0123456789", "mf", groups)
    return specs


def _spec_periods(spec: dict[str, Any]) -> list[int]:
    if "Metrics" in spec:
        return [q["MetricStat"]["Period"] for q in spec["Metrics"] if "MetricStat" in q]
    return [spec["Period"]]


@pytest.mark.parametrize("stack", STACKS)
def test_alarm_specs_put(request: pytest.FixtureRequest, stack: str) -> None:
    specs = _string_dims_alarms(_plan(request, stack))
    assert specs
    for spec in specs:
        request_ = {**spec, "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:alarms"]}
        assert_valid("cloudwatch", "PutMetricAlarm", request_, spec["AlarmName"])
        if "Metrics" in spec:
            assert [q["Id"] for q in spec["Metrics"] if q["ReturnData"]], "one query returns"
            assert sum(q["ReturnData"] for q in spec["Metrics"]) == 1
        for period in _spec_periods(spec):
            assert limits.alarm_period_ok(period, spec["EvaluationPeriods"]) is None
        assert spec.get("DatapointsToAlarm", 1) <= spec["EvaluationPeriods"]


@pytest.mark.parametrize("stack", STACKS + VARIANTS)
def test_recorded_alarm_periods(request: pytest.FixtureRequest, stack: str) -> None:
    alarms = _run(request, stack).by_type(ALARM)
    assert alarms
    for alarm in alarms:
        for period, evaluations in period_pairs(alarm):
            assert limits.alarm_period_ok(period, evaluations) is None, alarm.name


def test_alarm_period_limit_rejects() -> None:
    assert limits.alarm_period_ok(45, 1) is not None
    assert limits.alarm_period_ok(60, 1441) is not None  # more than a day of 1-minute periods
    assert limits.alarm_period_ok(3600, 48) is None


# --- Application Auto Scaling ------------------------------------------------------------------

RESOURCE_ID = "service/mf-cluster/mf-service"


@pytest.mark.parametrize("stack", STACKS)
def test_scheduled_actions_put(request: pytest.FixtureRequest, stack: str) -> None:
    actions = _run(request, stack).by_type("aws:appautoscaling/scheduledAction:ScheduledAction")
    assert actions
    for a in actions:
        i = a.inputs
        params = {
            "ServiceNamespace": i["serviceNamespace"],
            "ScheduledActionName": i["name"],
            "ResourceId": RESOURCE_ID,
            "ScalableDimension": i["scalableDimension"],
            "Schedule": i["schedule"],
            "Timezone": i["timezone"],
            "ScalableTargetAction": pascal(i["scalableTargetAction"]),
        }
        assert_valid("application-autoscaling", "PutScheduledAction", params, a.name)
        # The API's name pattern excludes ':', '/' and '|'.
        assert not set(i["name"]) & set(":/|"), i["name"]


@pytest.mark.parametrize("stack", ["dev", "prod", "zero_stack"])
def test_scaling_policies_put(request: pytest.FixtureRequest, stack: str) -> None:
    policies = _run(request, stack).by_type("aws:appautoscaling/policy:Policy")
    assert policies
    for p in policies:
        i = p.inputs
        params: dict[str, Any] = {
            "PolicyName": p.name,
            "ServiceNamespace": i["serviceNamespace"],
            "ResourceId": RESOURCE_ID,
            "ScalableDimension": i["scalableDimension"],
            "PolicyType": i["policyType"],
        }
        for key in ("targetTrackingScalingPolicyConfiguration", "stepScalingPolicyConfiguration"):
            if key in i:
                params[key[:1].upper() + key[1:]] = pascal(i[key])
        assert_valid("application-autoscaling", "PutScalingPolicy", params, p.name)


def test_scaling_targets_register(prod: Run) -> None:
    for t in prod.by_type("aws:appautoscaling/target:Target"):
        i = t.inputs
        params = {
            "ServiceNamespace": i["serviceNamespace"],
            "ResourceId": i["resourceId"],
            "ScalableDimension": i["scalableDimension"],
            "MinCapacity": i["minCapacity"],
            "MaxCapacity": i["maxCapacity"],
        }
        assert_valid("application-autoscaling", "RegisterScalableTarget", params, t.name)


# --- check_limits ------------------------------------------------------------------------------


def test_shipped_plans_hold_every_limit(
    dev_plan: FleetPlan, prod_plan: FleetPlan, staging_plan: FleetPlan
) -> None:
    for plan in (dev_plan, prod_plan, staging_plan):
        assert limits.check_limits(plan) == []


def test_check_limits_reports_out_of_range_values(prod_plan: FleetPlan) -> None:
    m = prod_plan.models[0]
    slow = dataclasses.replace(
        m, vllm_health_check=HealthCheck(start_period=400, interval=3, timeout=5, retries=11)
    )
    plan = dataclasses.replace(prod_plan, models=[slow], alb_idle_timeout_s=5000)
    problems = limits.check_limits(plan)
    joined = "\n".join(problems)
    for what in ("startPeriod", "interval", "retries", "ALB idle timeout", "below interval"):
        assert what in joined, what
    assert limits.ECS_HEALTHCHECK["startPeriod"].source in joined
    assert limits.ALB_IDLE_TIMEOUT.source in joined


def test_every_limit_names_its_source() -> None:
    table = [
        *limits.ECS_HEALTHCHECK.values(),
        *limits.TARGET_GROUP_HEALTHCHECK.values(),
        limits.ALB_IDLE_TIMEOUT,
        limits.ECS_GRACE_PERIOD,
        limits.NAME_32,
        limits.ECS_SHARED_MEMORY,
    ]
    for limit in table:
        assert limit.source.startswith("https://docs.aws.amazon.com/"), limit
        assert limit.minimum <= limit.maximum


def test_sidecar_keepalive_outlasts_the_alb_idle_timeout(given_stack: tuple[Path, Run]) -> None:
    """The target must keep idle connections longer than the ALB, or the ALB reuses a socket
    the sidecar is closing and the client gets a 502."""
    from sidecar.settings import Settings

    _, run = given_stack
    idle = run.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"]
    assert idle == 1000
    td = run.one(TASK_DEFINITION, "-task")
    sidecar = next(c for c in containers(td) if c["name"] == "sidecar")
    env = {e["name"]: e["value"] for e in sidecar["environment"]}
    default = Settings.model_fields["http_keepalive_seconds"].default
    keepalive = float(env.get("SIDECAR_HTTP_KEEPALIVE_SECONDS", default))
    assert keepalive > idle


# --- recorded resources that no pure builder produces -------------------------------------------


def _put_metric_alarm(alarm: Recorded) -> dict[str, Any]:
    """A recorded aws.cloudwatch.MetricAlarm as the PutMetricAlarm request the provider sends."""
    i = alarm.inputs

    def dims(d: dict[str, str]) -> list[dict[str, str]]:
        return [{"Name": k, "Value": v} for k, v in d.items()]

    req: dict[str, Any] = {
        "AlarmName": i["name"],
        "AlarmDescription": i["alarmDescription"],
        "ComparisonOperator": i["comparisonOperator"],
        "EvaluationPeriods": i["evaluationPeriods"],
        "Threshold": i["threshold"],
        "TreatMissingData": i["treatMissingData"],
        "AlarmActions": i["alarmActions"],
        "OKActions": i.get("okActions", []),
        "Tags": [{"Key": k, "Value": v} for k, v in i.get("tags", {}).items()],
    }
    if "datapointsToAlarm" in i:
        req["DatapointsToAlarm"] = i["datapointsToAlarm"]
    if "metricQueries" in i:
        queries = []
        for q in i["metricQueries"]:
            query: dict[str, Any] = {"Id": q["id"], "ReturnData": q["returnData"]}
            if "expression" in q:
                query["Expression"] = q["expression"]
                query["Label"] = q.get("label", q["id"])
            else:
                m = q["metric"]
                query["MetricStat"] = {
                    "Metric": {
                        "Namespace": m["namespace"],
                        "MetricName": m["metricName"],
                        "Dimensions": dims(m.get("dimensions", {})),
                    },
                    "Period": m["period"],
                    "Stat": m["stat"],
                }
            queries.append(query)
        req["Metrics"] = queries
    else:
        req.update(
            Namespace=i["namespace"],
            MetricName=i["metricName"],
            Dimensions=dims(i["dimensions"]),
            Period=i["period"],
        )
        if "extendedStatistic" in i:
            req["ExtendedStatistic"] = i["extendedStatistic"]
        else:
            req["Statistic"] = i["statistic"]
    return req


@pytest.mark.parametrize("stack", [*STACKS, "zero_stack"])
def test_recorded_alarms_put(request: pytest.FixtureRequest, stack: str) -> None:
    alarms = _run(request, stack).by_type(ALARM)
    for alarm in alarms:
        assert_valid("cloudwatch", "PutMetricAlarm", _put_metric_alarm(alarm), alarm.name)
    if stack == "zero_stack":
        assert any(a.name.endswith("-from-zero-alarm") for a in alarms)


def _action(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": a["type"]}
    if "targetGroupArn" in a:
        out["TargetGroupArn"] = a["targetGroupArn"]
    if "fixedResponse" in a:
        out["FixedResponseConfig"] = pascal(a["fixedResponse"])
    if "redirect" in a:
        out["RedirectConfig"] = pascal(a["redirect"])
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_listeners_and_rules_create(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    lb = run.one("aws:lb/loadBalancer:LoadBalancer")
    assert_valid(
        "elbv2",
        "CreateLoadBalancer",
        {
            "Name": lb.outputs["name"],
            "Subnets": lb.inputs["subnets"],
            "SecurityGroups": lb.inputs["securityGroups"],
            "Scheme": "internal" if lb.inputs["internal"] else "internet-facing",
            "Type": lb.inputs["loadBalancerType"],
        },
        lb.name,
    )
    for listener in run.by_type("aws:lb/listener:Listener"):
        i = listener.inputs
        params: dict[str, Any] = {
            "LoadBalancerArn": i["loadBalancerArn"],
            "Protocol": i["protocol"],
            "Port": i["port"],
            "DefaultActions": [_action(a) for a in i["defaultActions"]],
        }
        if "sslPolicy" in i:
            params["SslPolicy"] = i["sslPolicy"]
            params["Certificates"] = [{"CertificateArn": i["certificateArn"]}]
        assert_valid("elbv2", "CreateListener", params, listener.name)
    for rule in run.by_type("aws:lb/listenerRule:ListenerRule"):
        i = rule.inputs
        conditions = [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": c["pathPattern"]["values"]}}
            for c in i["conditions"]
        ]
        params = {
            "ListenerArn": i["listenerArn"],
            "Conditions": conditions,
            "Priority": i["priority"],
            "Actions": [_action(a) for a in i["actions"]],
        }
        assert_valid("elbv2", "CreateRule", params, rule.name)
        assert 1 <= i["priority"] <= 50000


@pytest.mark.parametrize("stack", STACKS)
def test_capacity_providers_create(request: pytest.FixtureRequest, stack: str) -> None:
    for cp in _run(request, stack).by_type("aws:ecs/capacityProvider:CapacityProvider"):
        # ECS's JSON API spells members camelCase, like the recorded inputs.
        params = {
            "name": cp.outputs["name"],
            "autoScalingGroupProvider": cp.inputs["autoScalingGroupProvider"],
        }
        assert_valid("ecs", "CreateCapacityProvider", params, cp.name)
        assert not cp.outputs["name"].lower().startswith(("aws", "ecs", "fargate"))


@pytest.mark.parametrize("stack", STACKS)
def test_kms_alias_create(request: pytest.FixtureRequest, stack: str) -> None:
    alias = _run(request, stack).one("aws:kms/alias:Alias")
    params = {"AliasName": alias.inputs["name"], "TargetKeyId": alias.inputs["targetKeyId"]}
    assert_valid("kms", "CreateAlias", params, alias.name)


def test_kms_alias_of_a_dotted_stack_name(stack_variant: Any) -> None:
    """Pulumi stack names may hold '.', KMS alias names may not."""
    _, run = stack_variant("team.v2", DEV, lambda config: None)
    alias = run.one("aws:kms/alias:Alias").inputs["name"]
    assert alias.startswith("alias/modelfleet/")
    assert_valid("kms", "CreateAlias", {"AliasName": alias, "TargetKeyId": "k"}, alias)


# --- IAM, EFS, security groups, dashboard --------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_iam_roles_and_policies_create(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    for role in run.by_type("aws:iam/role:Role"):
        params = {
            "RoleName": role.outputs["name"],
            "AssumeRolePolicyDocument": role.inputs["assumeRolePolicy"],
            "Tags": [{"Key": k, "Value": v} for k, v in role.inputs.get("tags", {}).items()],
        }
        assert_valid("iam", "CreateRole", params, role.name)
        assert len(role.outputs["name"]) <= 64
    for policy in run.by_type("aws:iam/rolePolicy:RolePolicy"):
        params = {
            "RoleName": "role",
            "PolicyName": policy.outputs["name"],
            "PolicyDocument": policy.inputs["policy"],
        }
        assert_valid("iam", "PutRolePolicy", params, policy.name)
        # Inline policies of one role share 10,240 characters (IAM quotas page).
        assert len(policy.inputs["policy"]) < 10_240


@pytest.mark.parametrize("stack", STACKS)
def test_access_points_create(request: pytest.FixtureRequest, stack: str) -> None:
    for ap in _run(request, stack).by_type("aws:efs/accessPoint:AccessPoint"):
        i = ap.inputs
        params = {
            "ClientToken": ap.name[:64],
            "FileSystemId": "fs-0123456789abcdef0",
            "PosixUser": pascal(i["posixUser"]),
            "RootDirectory": pascal(i["rootDirectory"]),
        }
        assert_valid("efs", "CreateAccessPoint", params, ap.name)


# EC2 accepts these characters in security group and rule descriptions:
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html
SG_DESCRIPTION_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/()#,@[]+=&;{}!$*"
)


@pytest.mark.parametrize("stack", STACKS)
def test_security_group_descriptions(request: pytest.FixtureRequest, stack: str) -> None:
    run = _run(request, stack)
    described = [
        *run.by_type("aws:ec2/securityGroup:SecurityGroup"),
        *run.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
        *run.by_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"),
    ]
    assert described
    for r in described:
        text = r.inputs["description"]
        assert 0 < len(text) <= 255
        assert set(text) <= SG_DESCRIPTION_CHARS, f"{r.name}: {set(text) - SG_DESCRIPTION_CHARS}"


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_put(request: pytest.FixtureRequest, stack: str) -> None:
    d = _run(request, stack).one("aws:cloudwatch/dashboard:Dashboard").inputs
    params = {"DashboardName": d["dashboardName"], "DashboardBody": d["dashboardBody"]}
    assert_valid("cloudwatch", "PutDashboard", params, d["dashboardName"])
    # Names: letters, digits, '-' and '_' (PutDashboard API reference).
    assert all(ch.isalnum() or ch in "-_" for ch in d["dashboardName"])


@pytest.mark.parametrize("stack", STACKS)
def test_resource_tags_are_valid_for_elb_and_ecs(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run = _run(request, stack)
    for tg in run.by_type("aws:lb/targetGroup:TargetGroup"):
        params = {
            "Name": tg.outputs["name"],
            "Tags": [{"Key": k, "Value": v} for k, v in tg.inputs["tags"].items()],
        }
        assert_valid("elbv2", "CreateTargetGroup", params, tg.name)
    for td in run.by_type(TASK_DEFINITION):
        params = {**register_task_definition(td), "tags": ecs_tags(td.inputs["tags"])}
        assert_valid("ecs", "RegisterTaskDefinition", params, td.name)

"""Issue 9: the plan is the whole deployment. Each bug found by trying stacks outside the
shipped examples has a test here that failed on the first release's code."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra_support import DEV, PROD, plan_of

from components.harness import Run, run_stack
from components.stack_config import aws_session
from modelfleet.config import ConfigError, load_stack_file
from modelfleet.identities import content_key
from modelfleet.plan import build_plan

pytestmark = pytest.mark.xdist_group("infra")

Variant = Callable[[str, Path, Callable[[dict[str, Any]], None]], tuple[Path, Run]]


def _model(name: str, lo: int, hi: int) -> dict[str, Any]:
    return {
        "name": name,
        "source": "s3://models-bucket/qwen-7b/",
        "model": "qwen2.5-7b",
        "dtype": "bfloat16",
        "maxModelLen": 4096,
        "instanceType": "g6e.xlarge",
        "replicas": {"min": lo, "max": hi},
        "capacity": "on-demand",
    }


def _two_prefixed_models(config: dict[str, Any]) -> None:
    config["modelfleet:models"] = [_model("chat", 1, 4), _model("chat-large", 2, 6)]


def test_scheduled_actions_belong_to_their_own_model(stack_variant: Variant) -> None:
    """`chat` is a prefix of `chat-large`: the first release gave `chat`'s scalable target
    `chat-large`'s scale-up too (min 2 / max 6), starting GPUs nobody asked for."""
    path, run = stack_variant("prefixes", DEV, _two_prefixed_models)
    plan = plan_of(path)
    actions = run.by_type("aws:appautoscaling/scheduledAction:ScheduledAction")
    assert len(actions) == 4  # two per model, no more
    for m in plan.models:
        mine = [a for a in actions if a.inputs["resourceId"].endswith(f"/{m.service_name}")]
        bounds = sorted(
            (
                a.inputs["scalableTargetAction"]["minCapacity"],
                a.inputs["scalableTargetAction"]["maxCapacity"],
            )
            for a in mine
        )
        assert bounds == [(0, 0), (m.replicas_min, m.replicas_max)], m.name
        assert {a.inputs["name"] for a in mine} == {a.name for a in m.scheduled_actions}


@pytest.mark.parametrize(
    ("cidr", "azs"), [("10.40.0.0/26", 3), ("10.40.0.0/28", 3), ("10.40.0.0/24", 2)]
)
def test_a_vpc_too_small_is_a_config_error_naming_the_key(
    tmp_path: Path, cidr: str, azs: int
) -> None:
    """These passed `modelfleet validate`, then crashed `pulumi preview` with a traceback."""
    doc = json.loads(json.dumps(_load(DEV)))
    doc["config"]["modelfleet:network"] = {"vpcCidr": cidr, "availabilityZones": azs}
    path = _write(tmp_path, "small", doc)
    with pytest.raises(ConfigError) as err:
        build_plan(load_stack_file(path))
    message = str(err.value)
    assert "modelfleet:network.vpcCidr" in message and "too small" in message
    assert "use a /" in message  # and what would work
    # The program refuses with the same message, never a Python traceback.
    with pytest.raises(Exception, match=r"modelfleet:network\.vpcCidr"):
        run_stack(path)


def test_five_and_six_azs_build(stack_variant: Variant) -> None:
    """A /16 with 5+ AZs had four private slots for six subnets (zip() crash)."""

    def six(config: dict[str, Any]) -> None:
        config["modelfleet:network"] = {"vpcCidr": "10.40.0.0/16", "availabilityZones": 6}

    path, run = stack_variant("six", DEV, six)
    plan = plan_of(path)
    assert plan.subnets is not None
    subnets = {r.inputs["cidrBlock"] for r in run.by_type("aws:ec2/subnet:Subnet")}
    assert subnets == set(plan.subnets.public) | set(plan.subnets.private)
    assert len(subnets) == 12
    zones = {r.inputs["availabilityZone"] for r in run.by_type("aws:ec2/subnet:Subnet")}
    assert len(zones) == 6


def test_drain_is_decided_once_and_shown(stack_variant: Variant) -> None:
    """drainSeconds became three numbers with three caps in three places; now one plan."""

    def long_drain(config: dict[str, Any]) -> None:
        config.setdefault("modelfleet:gateway", {})["drainSeconds"] = 300

    path, run = stack_variant("drain", DEV, long_drain)
    d = plan_of(path).drain
    assert (d.requested_s, d.deregistration_delay_s, d.sidecar_drain_s, d.stop_timeout_s) == (
        300,
        305,
        115,
        120,
    )
    assert any("115 s" in n for n in plan_of(path).notes)  # the plan says which applies when
    tg = run.one("aws:lb/targetGroup:TargetGroup")
    assert tg.inputs["deregistrationDelay"] == d.deregistration_delay_s
    task = run.one("aws:ecs/taskDefinition:TaskDefinition", "-task")
    containers = {c["name"]: c for c in json.loads(task.inputs["containerDefinitions"])}
    env = {e["name"]: e["value"] for e in containers["sidecar"]["environment"]}
    assert env["SIDECAR_DRAIN_SECONDS"] == str(d.sidecar_drain_s)
    assert containers["sidecar"]["stopTimeout"] == containers["vllm"]["stopTimeout"] == 120


def _names(path: Path) -> dict[str, str]:
    return {r.name: r.type for r in plan_of(path).resources}


def test_removing_an_email_changes_only_its_subscription(tmp_path: Path) -> None:
    doc = _load(PROD)
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    doc["config"]["modelfleet:alarms"]["emails"] = emails
    before = _names(_write(tmp_path, "before", doc))
    doc["config"]["modelfleet:alarms"]["emails"] = emails[1:]
    after = _names(_write(tmp_path, "after", doc))
    assert set(before) - set(after) == {
        f"mf-platform-prod-monitoring-email-{content_key(emails[0])}"
    }
    assert set(after) <= set(before)


def test_removing_an_ingress_cidr_changes_only_its_rules(tmp_path: Path) -> None:
    doc = _load(PROD)
    doc["config"]["modelfleet:network"]["ingressCidrs"] = ["10.0.0.0/8", "192.168.0.0/16"]
    before = _names(_write(tmp_path, "before", doc))
    doc["config"]["modelfleet:network"]["ingressCidrs"] = ["192.168.0.0/16"]
    after = _names(_write(tmp_path, "after", doc))
    gone = set(before) - set(after)
    assert gone == {
        "mf-platform-prod-security-alb-in-443-10-0-0-0-8",
        "mf-platform-prod-security-alb-in-80-10-0-0-0-8",
    }
    assert set(after) <= set(before)


def test_reordering_models_renames_and_renumbers_nothing(tmp_path: Path) -> None:
    doc = _load(PROD)
    first = build_plan(load_stack_file(_write(tmp_path, "a", doc)))
    doc["config"]["modelfleet:models"].reverse()
    second = build_plan(load_stack_file(_write(tmp_path, "b", doc)))
    assert {(r.type, r.name) for r in first.resources} == {
        (r.type, r.name) for r in second.resources
    }
    assert {m.name: m.listener_priority for m in first.models} == {
        m.name: m.listener_priority for m in second.models
    }
    # Removing one model removes exactly its resources (and its alarms' names).
    doc["config"]["modelfleet:models"] = doc["config"]["modelfleet:models"][1:]
    third = build_plan(load_stack_file(_write(tmp_path, "c", doc)))
    assert {m.name: m.listener_priority for m in third.models} == {
        m.name: m.listener_priority
        for m in first.models
        if m.name in {x.name for x in third.models}
    }
    assert {r.name for r in third.resources} <= {r.name for r in first.resources}


def test_positional_names_of_the_first_release_are_adopted(prod: Run) -> None:
    """Renamed resources carry their old names as aliases: upgrading replaces nothing."""
    subs = prod.by_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(a for s in subs for a in s.options["aliases"]) == [
        f"mf-platform-prod-monitoring-email-{i}" for i in range(len(subs))
    ]
    policies = prod.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    host = [p for p in policies if "-gpu-host-policy-" in p.name]
    assert sorted(a for p in host for a in p.options["aliases"]) == [
        "mf-platform-prod-gpu-host-policy-0",
        "mf-platform-prod-gpu-host-policy-1",
    ]


@pytest.mark.parametrize(
    ("fixture", "protected"), [("prod", True), ("staging", True), ("dev", False)]
)
def test_stateful_resources_are_protected_unless_ephemeral(
    request: pytest.FixtureRequest, fixture: str, protected: bool
) -> None:
    run: Run = request.getfixturevalue(fixture)
    for type_token in ("aws:kms/key:Key", "aws:efs/fileSystem:FileSystem"):
        assert run.one(type_token).options["protect"] is protected


def test_explicitly_named_resources_are_deleted_before_replacement(prod: Run) -> None:
    for type_token in (
        "aws:ecs/service:Service",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:appautoscaling/scheduledAction:ScheduledAction",
        "aws:cloudwatch/dashboard:Dashboard",
        "aws:kms/alias:Alias",
    ):
        for r in prod.by_type(type_token):
            assert r.options["deleteBeforeReplace"], r.name


def test_prewarm_acts_as_the_aws_provider(stack_variant: Variant) -> None:
    """The pre-warm's boto3 session uses the provider's profile and roles, not ambient
    credentials of whoever runs `pulumi up`."""
    role = "arn:aws:iam::123456789012:role/deployer"

    def with_provider(config: dict[str, Any]) -> None:
        config["aws:profile"] = "ops"
        config["aws:assumeRoles"] = [{"roleArn": role, "externalId": "x-1"}]

    _, run = stack_variant("provider", DEV, with_provider)
    prewarm = run.one("pulumi-python:dynamic:Resource")
    assert prewarm.inputs["profile"] == "ops"
    assert prewarm.inputs["roles"] == [{"roleArn": role, "externalId": "x-1"}]


class _FakeBoto3:
    """boto3's Session and STS AssumeRole, recording what the session was built from."""

    def __init__(self) -> None:
        self.sessions: list[dict[str, Any]] = []
        self.assumed: list[dict[str, Any]] = []

    def Session(self, **kwargs: Any) -> Any:
        self.sessions.append(kwargs)
        fake = self

        class _Session:
            def client(self, service: str) -> Any:
                assert service == "sts"

                class _Sts:
                    def assume_role(self, **params: Any) -> dict[str, Any]:
                        fake.assumed.append(params)
                        n = len(fake.assumed)
                        return {
                            "Credentials": {
                                "AccessKeyId": f"AKIA{n}",
                                "SecretAccessKey": f"s{n}",
                                "SessionToken": f"t{n}",
                            }
                        }

                return _Sts()

        return _Session()


def test_aws_session_assumes_roles_in_order() -> None:
    boto = _FakeBoto3()
    props = {
        "region": "eu-west-1",
        "profile": "ops",
        "roles": [
            {"roleArn": "arn:aws:iam::1:role/a"},
            {"roleArn": "arn:aws:iam::2:role/b", "externalId": "e", "sessionName": "ci"},
        ],
    }
    aws_session(props, boto)
    assert boto.sessions[0] == {"profile_name": "ops", "region_name": "eu-west-1"}
    assert [a["RoleArn"] for a in boto.assumed] == [
        "arn:aws:iam::1:role/a",
        "arn:aws:iam::2:role/b",
    ]
    assert boto.assumed[1]["ExternalId"] == "e" and boto.assumed[1]["RoleSessionName"] == "ci"
    assert boto.sessions[-1]["aws_session_token"] == "t2"
    assert boto.sessions[-1]["region_name"] == "eu-west-1"


def _load(path: Path) -> dict[str, Any]:
    import yaml

    return copy.deepcopy(yaml.safe_load(path.read_text()))


def _write(directory: Path, variant: str, doc: dict[str, Any]) -> Path:
    """The stack file of stack `prod` in its own folder: same stack, so the same prefix."""
    import yaml

    (directory / variant).mkdir(exist_ok=True)
    path = directory / variant / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path

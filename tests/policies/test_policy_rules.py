"""Every rule: a compliant, a violating and a property-absent case (checkov/AWSGuard style)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from kube_policy_cases import KUBE_CASES, KUBE_STACK_CASES
from policy_fixtures import CERT_ARN, KEY_ARN, base_tags, containers, policy, service_tags
from pulumi_policy.proxy import unknown_checking_proxy

from policies import rules as r

T = base_tags()
EPHEMERAL = base_tags("dev", ephemeral=True)
HTTP_FORWARD = {"port": 80, "protocol": "HTTP", "defaultActions": [{"type": "forward"}]}
REDIRECT = {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443"}}
PAB_ON = dict.fromkeys(r.PUBLIC_ACCESS_FLAGS, True)


@dataclass(frozen=True)
class Case:
    rule: str
    rtype: str
    compliant: dict[str, Any]
    violating: dict[str, Any]
    absent: dict[str, Any]
    absent_violates: bool
    expect: str  # a fragment every violation message for `violating` contains

    @property
    def id(self) -> str:
        return self.rule


CASES = [
    Case(
        "efs-encrypted-cmk",
        r.EFS_FILE_SYSTEM,
        {"encrypted": True, "kmsKeyId": KEY_ARN},
        {"encrypted": True, "kmsKeyId": ""},
        {},
        True,
        "kmsKeyId",
    ),
    Case(
        "efs-not-bursting",
        r.EFS_FILE_SYSTEM,
        {"throughputMode": "elastic"},
        {"throughputMode": "bursting"},
        {},
        True,
        "throughputMode",
    ),
    Case(
        "efs-access-point-root-directory",
        r.EFS_ACCESS_POINT,
        {"rootDirectory": {"path": "/models/llama-8b"}},
        {"rootDirectory": {"path": "/"}},
        {},
        True,
        "rootDirectory.path",
    ),
    Case(
        "efs-access-point-posix-user",
        r.EFS_ACCESS_POINT,
        {"posixUser": {"uid": 1000, "gid": 1000}},
        {"posixUser": {"uid": 0, "gid": 0}},
        {},
        True,
        "posixUser",
    ),
    Case(
        "alb-http-redirects-to-https",
        r.LISTENERS[0],
        {"port": 80, "protocol": "HTTP", "defaultActions": [REDIRECT], "tags": T},
        HTTP_FORWARD | {"tags": T},
        {"port": 80, "protocol": "HTTP", "tags": T},
        True,
        "redirect to HTTPS",
    ),
    Case(
        "alb-tls-1-2",
        r.LISTENERS[0],
        {"protocol": "HTTPS", "certificateArn": CERT_ARN, "sslPolicy": r.RECOMMENDED_TLS_POLICY},
        {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS-1-1-2017-01"},
        {"protocol": "HTTPS", "certificateArn": CERT_ARN},
        True,
        "TLS 1.2",
    ),
    Case(
        "alb-drop-invalid-headers",
        r.LOAD_BALANCERS[0],
        {"dropInvalidHeaderFields": True},
        {"dropInvalidHeaderFields": False},
        {},
        True,
        "drop_invalid_header_fields=True",
    ),
    Case(
        "alb-deletion-protection",
        r.LOAD_BALANCERS[0],
        {"enableDeletionProtection": True, "tags": T},
        {"enableDeletionProtection": False, "tags": T},
        {"tags": T},
        True,
        "enable_deletion_protection=True",
    ),
    Case(
        "alb-access-logs",
        r.LOAD_BALANCERS[0],
        {"accessLogs": {"bucket": "logs", "enabled": True}, "tags": T},
        {"accessLogs": {"bucket": "logs", "enabled": False}, "tags": T},
        {"tags": T},
        True,
        "accessLogs",
    ),
    Case(
        "sg-only-web-ports-public",
        r.SG_INGRESS_RULE,
        {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"},
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
        False,
        "0.0.0.0/0",
    ),
    Case(
        "iam-no-wildcard-actions",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
        {"policy": policy({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "*"})},
        {},
        False,
        "wildcard",
    ),
    Case(
        "eks-secrets-encrypted",
        r.EKS_CLUSTER,
        {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:k"}}},
        {"encryptionConfig": {"resources": ["secrets"], "provider": {}}},
        {},
        True,
        "envelope-encrypt",
    ),
    Case(
        "eks-public-endpoint-restricted",
        r.EKS_CLUSTER,
        {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]}},
        {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
        {},
        True,
        "open to 0.0.0.0/0",
    ),
    Case(
        "helm-chart-pinned",
        "kubernetes:helm.sh/v3:Release",
        {"chart": "keda", "version": "2.20.2"},
        {"chart": "keda", "version": "^2.20"},
        {"chart": "keda"},
        True,
        "pin an exact chart version",
    ),
    Case(
        "nodepool-gpu-limit",
        r.NODE_POOL,
        {"spec": {"limits": {"nvidia.com/gpu": "4"}}},
        {"spec": {"limits": {"cpu": "64"}}},
        {},
        True,
        "no nvidia.com/gpu limit",
    ),
    Case(
        "node-imdsv2",
        r.EC2_NODE_CLASS,
        {"spec": {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}}},
        {"spec": {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}},
        {},
        True,
        "hop limit of 1",
    ),
    Case(
        "launch-template-imdsv2",
        r.LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
        {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}},
        {},
        True,
        "httpTokens",
    ),
    Case(
        "launch-template-ebs-encrypted",
        r.LAUNCH_TEMPLATE,
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}]},
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]},
        {},
        True,
        "encrypted",
    ),
    Case(
        "log-group-retention",
        r.LOG_GROUP,
        {"retentionInDays": 30},
        {"retentionInDays": 0},
        {},
        True,
        "retention_in_days",
    ),
    Case(
        "ecs-no-plain-secrets",
        r.TASK_DEFINITION,
        {
            "containerDefinitions": containers(
                {
                    "name": "sidecar",
                    "image": "x:1",
                    "environment": [{"name": "LOG_LEVEL", "value": "info"}],
                    "secrets": [{"name": "API_KEYS", "valueFrom": "arn:aws:secretsmanager:x"}],
                }
            )
        },
        {
            "containerDefinitions": containers(
                {
                    "name": "sidecar",
                    "image": "x:1",
                    "environment": [{"name": "MODELFLEET_API_KEYS", "value": "team:abc"}],
                }
            )
        },
        {},
        False,
        "'secrets'",
    ),
    Case(
        "ecs-images-pinned",
        r.TASK_DEFINITION,
        {"containerDefinitions": containers({"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"})},
        {"containerDefinitions": containers({"name": "vllm", "image": "vllm/vllm-openai:latest"})},
        {},
        False,
        "vllm/vllm-openai:latest",
    ),
    Case(
        "sns-encrypted",
        r.SNS_TOPIC,
        {"kmsMasterKeyId": KEY_ARN},
        {"kmsMasterKeyId": ""},
        {},
        True,
        "kmsMasterKeyId",
    ),
    Case(
        "secrets-manager-cmk",
        r.SECRETS_MANAGER_TYPE,
        {"kmsKeyId": KEY_ARN},
        {"kmsKeyId": "alias/aws/secretsmanager"},
        {},
        True,
        "customer-managed",
    ),
    Case(
        "s3-public-access-block-settings",
        r.S3_PUBLIC_ACCESS_BLOCK,
        {"bucket": "b"} | PAB_ON,
        {"bucket": "b"} | PAB_ON | {"restrictPublicBuckets": False},
        {"bucket": "b"},
        True,
        "restrictPublicBuckets",
    ),
    Case(
        "guardrail-instance-families",
        r.ECS_SERVICE,
        {"tags": service_tags(environment="dev", instance_type="g6.xlarge", capacity="spot")},
        {"tags": service_tags(environment="dev", instance_type="p5.48xlarge", capacity="spot")},
        {"tags": base_tags("dev")},
        True,
        "p5",
    ),
    Case(
        "guardrail-spot-outside-prod",
        r.ECS_SERVICE,
        {"tags": service_tags(environment="staging", capacity="spot")},
        {"tags": service_tags(environment="staging", capacity="on-demand")},
        {"tags": {}},
        True,
        "spot",
    ),
]

CASES += [Case(*c) for c in KUBE_CASES]
RULES = {rule.name: rule for rule in r.RESOURCE_RULES}


def run(case: Case, props: dict[str, Any]) -> list[str]:
    rule = RULES[case.rule]
    assert case.rtype in rule.resource_types
    ctx = r.RuleContext(name="res", config=r.default_config(rule))
    plain = rule.check(case.rtype, props, ctx)
    # CrossGuard hands the rules read-only proxies (lists are Sequences, not lists): same answer.
    proxied = rule.check(case.rtype, unknown_checking_proxy(copy.deepcopy(props)), ctx)
    assert proxied == plain
    return plain


def test_every_resource_rule_has_a_case() -> None:
    assert {c.rule for c in CASES} == set(RULES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compliant(case: Case) -> None:
    assert run(case, case.compliant) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_violating(case: Case) -> None:
    messages = run(case, case.violating)
    assert messages, f"{case.rule} accepted {case.violating}"
    for m in messages:
        assert "'res'" in m, m  # names the resource
        assert "Fix:" in m, m  # says how to fix it
    assert any(case.expect in m for m in messages), messages


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_property_absent(case: Case) -> None:
    messages = run(case, case.absent)
    assert bool(messages) is case.absent_violates, messages


# --- edges worth pinning down --------------------------------------------------------------


def test_ephemeral_exempts_redirect_deletion_protection_and_logs() -> None:
    assert (
        r.alb_http_redirects_to_https(
            r.LISTENERS[0], HTTP_FORWARD | {"tags": EPHEMERAL}, r.RuleContext()
        )
        == []
    )
    lb = {"dropInvalidHeaderFields": True, "tags": EPHEMERAL}
    assert r.alb_deletion_protection(r.LOAD_BALANCERS[0], lb, r.RuleContext()) == []
    assert r.alb_access_logs(r.LOAD_BALANCERS[0], lb, r.RuleContext()) == []
    # ...but not invalid headers: that one holds everywhere.
    assert r.alb_drop_invalid_headers(r.LOAD_BALANCERS[0], {"tags": EPHEMERAL}, r.RuleContext())


def test_untagged_listener_is_not_ephemeral() -> None:
    assert r.alb_http_redirects_to_https(r.LISTENERS[0], HTTP_FORWARD, r.RuleContext())


def test_http_listener_without_protocol_is_http() -> None:
    assert r.alb_http_redirects_to_https(r.LISTENERS[1], {"port": 80}, r.RuleContext())


@pytest.mark.parametrize(
    "policy_name",
    [
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ],
)
def test_tls12_policies_allowed(policy_name: str) -> None:
    assert r.tls_policy_allowed(policy_name)


@pytest.mark.parametrize(
    "policy_name",
    [
        "ELBSecurityPolicy-2016-08",
        "ELBSecurityPolicy-TLS-1-1-2017-01",
        "ELBSecurityPolicy-FS-2018-06",
    ],
)
def test_old_tls_policies_rejected(policy_name: str) -> None:
    assert not r.tls_policy_allowed(policy_name)


@pytest.mark.parametrize(
    ("ingress", "bad"),
    [
        ({"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}, False),
        ({"protocol": "tcp", "fromPort": 80, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}, True),
        ({"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}, True),
        ({"protocol": "udp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}, True),
        ({"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}, False),
        ({"protocol": "tcp", "fromPort": 8000, "toPort": 8000, "securityGroups": ["sg-1"]}, False),
    ],
)
def test_inline_security_group_ingress(ingress: dict[str, Any], bad: bool) -> None:
    out = r.sg_ingress_internet(r.SECURITY_GROUP, {"ingress": [ingress]}, r.RuleContext(name="sg"))
    assert bool(out) is bad, out


def test_security_group_rule_resource_and_all_protocols() -> None:
    rule = {
        "type": "ingress",
        "protocol": "-1",
        "fromPort": 0,
        "toPort": 0,
        "cidrBlocks": ["0.0.0.0/0"],
    }
    assert r.sg_ingress_internet(r.SG_RULE, rule, r.RuleContext())
    assert r.sg_ingress_internet(r.SG_RULE, rule | {"type": "egress"}, r.RuleContext()) == []
    all_v6 = {"ipProtocol": "-1", "cidrIpv6": "::/0"}
    assert "all protocols" in r.sg_ingress_internet(r.SG_INGRESS_RULE, all_v6, r.RuleContext())[0]


@pytest.mark.parametrize(
    ("statement", "bad"),
    [
        ({"Effect": "Allow", "Action": "*", "Resource": "*"}, True),
        ({"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"}, True),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, True),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, False),
        ({"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"}, False),
    ],
)
def test_iam_statements(statement: dict[str, Any], bad: bool) -> None:
    out = r.iam_no_wildcard_actions(
        "aws:iam/policy:Policy", {"policy": policy(statement)}, r.RuleContext()
    )
    assert bool(out) is bad, out


def test_iam_role_inline_policies_and_dict_documents() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}
    out = r.iam_no_wildcard_actions(
        r.IAM_ROLE,
        {"inlinePolicies": [{"name": "x", "policy": policy(*doc["Statement"])}]},
        r.RuleContext(),
    )
    assert "inlinePolicies[0].policy" in out[0]
    assert r.iam_no_wildcard_actions("aws:iam/policy:Policy", {"policy": doc}, r.RuleContext())
    assert (
        "not a JSON"
        in r.iam_no_wildcard_actions("aws:iam/policy:Policy", {"policy": "{"}, r.RuleContext())[0]
    )


def test_imds_hop_limit() -> None:
    props = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}
    out = r.launch_template_imdsv2(r.LAUNCH_TEMPLATE, props, r.RuleContext())
    assert len(out) == 1 and "httpPutResponseHopLimit is 2" in out[0]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("vllm/vllm-openai:v0.6.3", True),
        ("vllm/vllm-openai", False),
        ("vllm/vllm-openai:LATEST", False),
        ("localhost:5000/vllm", False),
        ("localhost:5000/vllm:v1", True),
        ("repo/x@sha256:" + "0" * 64, True),
    ],
)
def test_image_pinning(image: str, pinned: bool) -> None:
    assert (r.image_pin_problem(image) is None) is pinned


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("HF_TOKEN", "hf_x", True),
        ("AWS_SECRET_ACCESS_KEY", "abc", True),
        ("DB_PASSWORD", "p", True),
        ("OPENAI_API_KEY", "sk-1", True),
        ("HF_TOKEN", "", False),
        ("SIDECAR_TOKENS_PER_MINUTE", "1000", False),
        ("MAX_TOKENS", "4096", False),
        ("API_KEYS_ARN", "arn:aws:secretsmanager:x", False),
        ("MONKEY", "banana", False),
    ],
)
def test_secret_names(name: str, value: str, secret: bool) -> None:
    assert r.looks_secret(name, value) is secret


def test_container_definitions_not_json() -> None:
    out = r.ecs_images_pinned(r.TASK_DEFINITION, {"containerDefinitions": "[{"}, r.RuleContext())
    assert "not valid JSON" in out[0]


# --- stack rules: the same three cases, over a list of resources -----------------------------

BUCKET = r.StackResource("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs"})


def _svc(name: str, **kw: Any) -> r.StackResource:
    return r.StackResource(r.ECS_SERVICE, name, {"tags": service_tags(environment="dev", **kw)})


STACK_CASES = [
    (
        "guardrail-team-hourly-ceiling",
        [_svc("a", max_replicas=2, hourly=5.0), _svc("b", max_replicas=2, hourly=4.0)],  # $18/h
        [_svc("a", max_replicas=2, hourly=5.0), _svc("b", max_replicas=3, hourly=4.0)],  # $22/h
        [r.StackResource(r.ECS_SERVICE, "a", {})],  # no tags: fail closed
        "$20.00/h ceiling",
    ),
    (
        "s3-bucket-public-access-block",
        [BUCKET, r.StackResource(r.S3_PUBLIC_ACCESS_BLOCK, "pab", {"bucket": "acme-logs"})],
        [BUCKET, r.StackResource(r.S3_PUBLIC_ACCESS_BLOCK, "pab", {"bucket": "other"})],
        [BUCKET, r.StackResource(r.S3_PUBLIC_ACCESS_BLOCK, "pab", {})],
        "no BucketPublicAccessBlock",
    ),
]
STACK_CASES += KUBE_STACK_CASES
STACK_RULES = {rule.name: rule for rule in r.STACK_RULES}


def test_every_stack_rule_has_a_case() -> None:
    assert {c[0] for c in STACK_CASES} == set(STACK_RULES)


@pytest.mark.parametrize(
    ("name", "compliant", "violating", "absent", "expect"),
    STACK_CASES,
    ids=[c[0] for c in STACK_CASES],
)
def test_stack_rule_cases(
    name: str,
    compliant: list[r.StackResource],
    violating: list[r.StackResource],
    absent: list[r.StackResource],
    expect: str,
) -> None:
    rule = STACK_RULES[name]
    ctx = r.RuleContext(name="stack", config=r.default_config(rule))
    assert rule.check(compliant, ctx) == []
    found = rule.check(violating, ctx)
    assert found and all("Fix:" in m for _, m in found) and any(expect in m for _, m in found)
    assert rule.check(absent, ctx)

"""The modelfleet policy rules, as plain functions over resource inputs.

A resource rule is `(resource_type, props, ctx) -> list[str]`: `props` are the resource's inputs
as Pulumi serializes them (camelCase keys, nested objects as dicts, `pulumi.Input[str]` JSON
documents as strings), `ctx` carries the logical name and the rule's policy config, and the
result is one message per violation. A stack rule sees every resource of the stack at once and
returns `(resource name, message)` pairs. The same functions back the CrossGuard pack
(`policies/pack.py`) and the offline checker (`policies/offline.py`), and are unit-tested with
plain dicts (`tests/policies/`).

Rules that say "unless ephemeral" read the `modelfleet:ephemeral` tag from the resource's own
`tags`; a resource without the tag is treated as long-lived (fail closed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies import guardrails as g

# ---------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class RuleContext:
    """What a rule knows besides the props: the resource's logical name and the policy config."""

    name: str = "resource"
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackResource:
    """A resource as a stack rule sees it. `deps` are logical names its inputs refer to."""

    type: str
    name: str
    props: Mapping[str, Any]
    deps: tuple[str, ...] = ()


ResourceCheck = Callable[[str, Mapping[str, Any], RuleContext], list[str]]
StackCheck = Callable[[Sequence[StackResource], RuleContext], list[tuple[str, str]]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    resource_types: tuple[str, ...]
    check: ResourceCheck
    config_schema: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck
    config_schema: Mapping[str, Mapping[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------
# Type tokens (the aws:alb/* tokens are aliases of aws:lb/* and still accepted by pulumi_aws)

EFS_FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
EFS_ACCESS_POINT = "aws:efs/accessPoint:AccessPoint"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
IAM_POLICY_TYPES = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
IAM_ROLE = "aws:iam/role:Role"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
SNS_TOPIC = "aws:sns/topic:Topic"
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
SECRETS_MANAGER_TYPE = "aws:secretsmanager/secret:Secret"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
HELM_RELEASES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
# What a GPU fleet's cost guardrails read: an ECS service's tags, a NodePool's annotations.
GPU_CAPACITY_TYPES = ("aws:ecs/service:Service", NODE_POOL)

# ---------------------------------------------------------------------------------------------
# Helpers


def _short(resource_type: str) -> str:
    """`aws:efs/fileSystem:FileSystem` -> `FileSystem` (for messages)."""
    return resource_type.rsplit(":", 1)[-1]


def _who(resource_type: str, ctx: RuleContext) -> str:
    return f"{_short(resource_type)} '{ctx.name}'"


def _tags(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """AWS tags; for a Kubernetes object, its `modelfleet.io/<key>` annotations read as the
    `modelfleet:<key>` tags (a colon is not allowed in an annotation key)."""
    tags = props.get("tags")
    if isinstance(tags, Mapping):
        return tags
    metadata = props.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return {}
    prefix = g.ANNOTATION_PREFIX
    return {
        "modelfleet:" + k.removeprefix(prefix): v
        for k, v in annotations.items()
        if isinstance(k, str) and k.startswith(prefix)
    }


def is_ephemeral(props: Mapping[str, Any]) -> bool:
    return str(_tags(props).get(g.TAG_EPHEMERAL, "")).strip().lower() == "true"


def _true(value: Any) -> bool:
    """Booleans arrive as bools, and as "true" where the provider types them as strings."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _list(value: Any) -> list[Any]:
    """A list input as a list (CrossGuard hands lists over as read-only Sequence proxies)."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# EFS


def efs_encrypted_cmk(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    out = []
    if not _true(props.get("encrypted")):
        out.append(
            f"{_who(resource_type, ctx)}: encrypted is {props.get('encrypted')!r}; the model "
            "cache must be encrypted at rest. Fix: set encrypted=True with kms_key_id=<a "
            "customer-managed KMS key ARN>."
        )
    if not str(props.get("kmsKeyId") or "").strip():
        out.append(
            f"{_who(resource_type, ctx)}: kmsKeyId is not set, so EFS would use the AWS-managed "
            "key (no key policy or rotation of your own). Fix: create an aws.kms.Key and pass "
            "kms_key_id=key.arn."
        )
    return out


def efs_not_bursting(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    mode = props.get("throughputMode")
    if mode in ("elastic", "provisioned"):
        return []
    shown = "absent (AWS default: bursting)" if mode is None else repr(mode)
    return [
        f"{_who(resource_type, ctx)}: throughputMode is {shown}; bursting throughput scales "
        "with stored bytes and runs out of credits while many tasks load weights at once. "
        "Fix: set throughput_mode='elastic' (or 'provisioned' with a provisioned rate)."
    ]


def efs_access_point_root_directory(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    root = _mapping(props.get("rootDirectory"))
    path = root.get("path")
    if isinstance(path, str) and path.strip().rstrip("/"):
        return []
    shown = "absent" if path is None else repr(path)
    return [
        f"{_who(resource_type, ctx)}: rootDirectory.path is {shown}, which exposes the whole "
        "file system root. Fix: set root_directory.path to a per-model folder such as "
        "'/models/<name>' with creation_info (owner uid/gid, permissions '0750')."
    ]


def efs_access_point_posix_user(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    user = props.get("posixUser")
    if not isinstance(user, Mapping):
        return [
            f"{_who(resource_type, ctx)}: posixUser is absent, so clients act as whatever uid "
            "they run as (root in most containers). Fix: set posix_user with a non-root uid "
            "and gid (e.g. 1000/1000)."
        ]
    uid, gid = _int(user.get("uid")), _int(user.get("gid"))
    out = []
    if uid is None or uid == 0:
        out.append(
            f"{_who(resource_type, ctx)}: posixUser.uid is {user.get('uid')!r}; the limit is a "
            "non-root uid (> 0). Fix: set posix_user.uid to the fetcher/vLLM uid (e.g. 1000)."
        )
    if gid is None:
        out.append(
            f"{_who(resource_type, ctx)}: posixUser.gid is {user.get('gid')!r}. Fix: set "
            "posix_user.gid to a non-root group (e.g. 1000)."
        )
    return out


# ---------------------------------------------------------------------------------------------
# ALB

# Security policies whose minimum protocol is TLS 1.2 (ELB docs, "Security policies for your
# Application Load Balancer"). ELBSecurityPolicy-2016-08, the default, still allows TLS 1.0.
TLS_POLICY_PATTERNS = (
    re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-[A-Za-z0-9-]+$"),
    re.compile(r"^ELBSecurityPolicy-TLS-1-2-[A-Za-z0-9-]+$"),
    re.compile(r"^ELBSecurityPolicy-FS-1-2-[A-Za-z0-9-]+$"),
)
RECOMMENDED_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def tls_policy_allowed(policy: str) -> bool:
    return any(p.match(policy) for p in TLS_POLICY_PATTERNS)


def _listener_protocol(props: Mapping[str, Any]) -> str:
    # An ALB listener without a protocol is HTTP (provider docs: "Defaults to HTTP").
    return str(props.get("protocol") or "HTTP").upper()


def alb_http_redirects_to_https(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if _listener_protocol(props) != "HTTP" or is_ephemeral(props):
        return []
    actions = [_mapping(a) for a in _list(props.get("defaultActions"))]
    redirects = [
        a
        for a in actions
        if a.get("type") == "redirect"
        and str(_mapping(a.get("redirect")).get("protocol", "")).upper() == "HTTPS"
    ]
    if actions and len(redirects) == len(actions):
        return []
    kinds = ", ".join(str(a.get("type")) for a in actions) or "none"
    return [
        f"{_who(resource_type, ctx)}: plain-HTTP listener on port {props.get('port')!r} serves "
        f"traffic (default actions: {kinds}) on a non-ephemeral stack; only a redirect to HTTPS "
        "is allowed. Fix: make the default action type='redirect' with protocol='HTTPS', "
        "port='443', status_code='HTTP_301', or mark the stack ephemeral."
    ]


def alb_tls_policy(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if _listener_protocol(props) not in ("HTTPS", "TLS"):
        return []
    policy = props.get("sslPolicy")
    if isinstance(policy, str) and tls_policy_allowed(policy):
        return []
    shown = (
        "absent (AWS default ELBSecurityPolicy-2016-08, allows TLS 1.0)"
        if policy is None
        else (repr(policy))
    )
    return [
        f"{_who(resource_type, ctx)}: sslPolicy is {shown}; the minimum is TLS 1.2 "
        "(ELBSecurityPolicy-TLS13-1-2-*, -TLS13-1-3-*, -TLS-1-2-* or -FS-1-2-*). Fix: set "
        f"ssl_policy='{RECOMMENDED_TLS_POLICY}'."
    ]


def _is_application_lb(props: Mapping[str, Any]) -> bool:
    return str(props.get("loadBalancerType") or "application") == "application"


def alb_drop_invalid_headers(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if not _is_application_lb(props) or _true(props.get("dropInvalidHeaderFields")):
        return []
    return [
        f"{_who(resource_type, ctx)}: dropInvalidHeaderFields is "
        f"{props.get('dropInvalidHeaderFields')!r}; headers with invalid names reach the gateway "
        "(request smuggling surface). Fix: set drop_invalid_header_fields=True."
    ]


def alb_deletion_protection(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if is_ephemeral(props) or _true(props.get("enableDeletionProtection")):
        return []
    return [
        f"{_who(resource_type, ctx)}: enableDeletionProtection is "
        f"{props.get('enableDeletionProtection')!r} on a non-ephemeral stack; a stray "
        "`pulumi destroy` or replace would drop the endpoint. Fix: set "
        "enable_deletion_protection=True (only ephemeral stacks may omit it)."
    ]


def alb_access_logs(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if is_ephemeral(props):
        return []
    logs = _mapping(props.get("accessLogs"))
    if _true(logs.get("enabled")) and str(logs.get("bucket") or "").strip():
        return []
    shown = (
        "absent" if not logs else f"enabled={logs.get('enabled')!r}, bucket={logs.get('bucket')!r}"
    )
    return [
        f"{_who(resource_type, ctx)}: accessLogs is {shown} on a non-ephemeral stack. Fix: set "
        "access_logs={'bucket': <log bucket>, 'enabled': True} (only ephemeral stacks may omit it)."
    ]


# ---------------------------------------------------------------------------------------------
# Security groups

WORLD_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
PUBLIC_PORTS = frozenset({80, 443})


def _open_to_world_problem(
    protocol: Any, from_port: Any, to_port: Any, cidrs: Iterable[Any]
) -> str | None:
    """Why an ingress permission is not allowed, or None if it is."""
    world = sorted({str(c) for c in cidrs if str(c) in WORLD_CIDRS})
    if not world:
        return None
    proto = str(protocol if protocol is not None else "").strip().lower()
    lo, hi = _int(from_port), _int(to_port)
    if proto in ("-1", "all"):
        return f"all protocols and ports open to {', '.join(world)}"
    if proto not in ("tcp", "6"):
        return f"protocol {protocol!r} ports {from_port!r}-{to_port!r} open to {', '.join(world)}"
    if lo is None or hi is None or lo != hi or lo not in PUBLIC_PORTS:
        return f"tcp ports {from_port!r}-{to_port!r} open to {', '.join(world)}"
    return None


_SG_FIX = (
    "only tcp 80 and 443 (from_port == to_port) may be open to 0.0.0.0/0 or ::/0. Fix: restrict "
    "the source to a security group or a private CIDR, or narrow it to port 80/443."
)


def sg_ingress_internet(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    out = []
    if resource_type == SECURITY_GROUP:
        for i, rule in enumerate(_list(props.get("ingress"))):
            r = _mapping(rule)
            cidrs = _list(r.get("cidrBlocks")) + _list(r.get("ipv6CidrBlocks"))
            why = _open_to_world_problem(
                r.get("protocol"), r.get("fromPort"), r.get("toPort"), cidrs
            )
            if why:
                out.append(f"{_who(resource_type, ctx)}: ingress[{i}] has {why}; {_SG_FIX}")
    elif resource_type == SG_INGRESS_RULE:
        cidrs = _list(props.get("cidrIpv4")) + _list(props.get("cidrIpv6"))
        why = _open_to_world_problem(
            props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"), cidrs
        )
        if why:
            out.append(f"{_who(resource_type, ctx)}: {why}; {_SG_FIX}")
    elif resource_type == SG_RULE and str(props.get("type") or "") == "ingress":
        cidrs = _list(props.get("cidrBlocks")) + _list(props.get("ipv6CidrBlocks"))
        why = _open_to_world_problem(
            props.get("protocol"), props.get("fromPort"), props.get("toPort"), cidrs
        )
        if why:
            out.append(f"{_who(resource_type, ctx)}: {why}; {_SG_FIX}")
    return out


# ---------------------------------------------------------------------------------------------
# IAM


def _policy_document(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            doc = json.loads(value)
        except json.JSONDecodeError:
            return None
        return doc if isinstance(doc, Mapping) else None
    return None


def wildcard_actions(document: Mapping[str, Any]) -> list[str]:
    """Allow-statement actions that grant every action (`*`) or a whole service (`svc:*`)."""
    found: list[str] = []
    for stmt in _list(document.get("Statement")):
        s = _mapping(stmt)
        if str(s.get("Effect", "")) != "Allow":
            continue
        if "NotAction" in s:
            found.append(f"NotAction {s['NotAction']!r}")
        for action in _list(s.get("Action")):
            a = str(action).strip()
            if a == "*" or a.endswith(":*"):
                found.append(a)
    return found


def iam_no_wildcard_actions(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    documents: list[tuple[str, Any]] = []
    if resource_type == IAM_ROLE:
        for i, inline in enumerate(_list(props.get("inlinePolicies"))):
            documents.append((f"inlinePolicies[{i}].policy", _mapping(inline).get("policy")))
    else:
        documents.append(("policy", props.get("policy")))
    out = []
    for where, raw in documents:
        if raw is None:
            continue
        doc = _policy_document(raw)
        if doc is None:
            out.append(
                f"{_who(resource_type, ctx)}: {where} is not a JSON policy document, so its "
                "actions cannot be checked. Fix: pass the document through json.dumps / "
                "pulumi.Output.json_dumps."
            )
            continue
        wild = wildcard_actions(doc)
        if wild:
            out.append(
                f"{_who(resource_type, ctx)}: {where} allows wildcard action(s) "
                f"{', '.join(repr(w) for w in wild)}; the limit is named actions only. Fix: "
                "list the exact actions the task needs (e.g. 's3:GetObject', "
                "'elasticfilesystem:ClientMount')."
            )
    return out


# ---------------------------------------------------------------------------------------------
# Launch templates


def launch_template_imdsv2(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    meta = _mapping(props.get("metadataOptions"))
    out = []
    if str(meta.get("httpEndpoint") or "enabled") == "disabled":
        return []
    if meta.get("httpTokens") != "required":
        shown = (
            "absent (AWS default: optional)"
            if meta.get("httpTokens") is None
            else repr(meta.get("httpTokens"))
        )
        out.append(
            f"{_who(resource_type, ctx)}: metadataOptions.httpTokens is {shown}; IMDSv1 lets "
            "an SSRF in any container read the instance role. Fix: set "
            "metadata_options.http_tokens='required'."
        )
    hop = meta.get("httpPutResponseHopLimit")
    if _int(hop) != 1:
        out.append(
            f"{_who(resource_type, ctx)}: metadataOptions.httpPutResponseHopLimit is {hop!r}; "
            "the limit is 1, so tasks (one hop away) cannot reach the instance's credentials "
            "and use their task role instead. Fix: set "
            "metadata_options.http_put_response_hop_limit=1."
        )
    return out


def launch_template_ebs_encrypted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    mappings = [_mapping(m) for m in _list(props.get("blockDeviceMappings"))]
    if not mappings:
        return [
            f"{_who(resource_type, ctx)}: blockDeviceMappings is absent, so the root volume "
            "inherits the AMI's (unencrypted) snapshot settings. Fix: declare the root device "
            "(e.g. /dev/xvda) with ebs.encrypted='true' and a kms_key_id."
        ]
    out = []
    for i, m in enumerate(mappings):
        ebs = m.get("ebs")
        if ebs is None:
            continue  # instance-store / no-device mappings carry no EBS volume
        encrypted = _mapping(ebs).get("encrypted")
        if not _true(encrypted):
            out.append(
                f"{_who(resource_type, ctx)}: blockDeviceMappings[{i}] "
                f"({m.get('deviceName')!r}) has ebs.encrypted={encrypted!r}. Fix: set "
                "ebs.encrypted='true' (pulumi_aws types it as a string)."
            )
    return out


# ---------------------------------------------------------------------------------------------
# Logs, ECS, SNS, Secrets Manager


def log_group_retention(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    days = _int(props.get("retentionInDays"))
    if days is not None and days > 0:
        return []
    return [
        f"{_who(resource_type, ctx)}: retentionInDays is "
        f"{'absent' if days is None else days}, so "
        "logs are kept (and billed) forever. Fix: set retention_in_days (the stack's "
        "logRetentionDays; modelfleet defaults to 7 ephemeral, 30 staging/dev, 90 prod)."
    ]


SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEYS?|KEY|KEYS|TOKEN|SECRET|SECRETS|PASSWORD|PASSWD|PASSPHRASE|PWD|"
    r"CREDENTIALS?|PRIVATE_KEY|ACCESS_KEY)(?:_|$)"
)
# Names that hold a reference to a secret, not the secret itself.
NOT_SECRET_SUFFIXES = ("_ARN", "_FILE", "_PATH", "_NAME", "_HEADER", "_ENABLED")


def looks_secret(name: str, value: Any) -> bool:
    upper = name.upper()
    if not SECRET_NAME.search(upper) or upper.endswith(NOT_SECRET_SUFFIXES):
        return False
    text = "" if value is None else str(value).strip()
    # Flags and references are not secrets: SIDECAR_ALLOW_NO_AUTH=true, *_KEY_ID=arn:...
    return bool(text) and not text.startswith("arn:") and text.lower() not in ("true", "false")


def _container_definitions(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> tuple[list[Mapping[str, Any]], list[str]]:
    raw = props.get("containerDefinitions")
    if raw is None:
        return [], []
    data: Any = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return [], [
                f"{_who(resource_type, ctx)}: containerDefinitions is not valid JSON ({exc.msg} "
                f"at {exc.pos}). Fix: build it with json.dumps / pulumi.Output.json_dumps."
            ]
    if not isinstance(data, list):
        return [], [f"{_who(resource_type, ctx)}: containerDefinitions is not a JSON list."]
    return [_mapping(c) for c in data], []


def ecs_no_plain_secrets(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    containers, out = _container_definitions(resource_type, props, ctx)
    for c in containers:
        for env in _list(c.get("environment")):
            e = _mapping(env)
            name = str(e.get("name") or "")
            if looks_secret(name, e.get("value")):
                out.append(
                    f"{_who(resource_type, ctx)}: container {c.get('name')!r} passes "
                    f"{name!r} as a plain environment value (visible in the task definition, "
                    "DescribeTaskDefinition and the console). Fix: store it in Secrets Manager "
                    f"and reference it under 'secrets': [{{'name': '{name}', 'valueFrom': "
                    "<secret ARN>}]."
                )
    return out


def image_pin_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (Docker resolves it to :latest)"
    tag = last.split(":", 1)[1]
    if not tag or tag.lower() == "latest":
        return f"uses the moving tag {tag!r}"
    return None


def ecs_images_pinned(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    containers, out = _container_definitions(resource_type, props, ctx)
    for c in containers:
        image = c.get("image")
        if not isinstance(image, str) or not image.strip():
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} has no image. Fix: "
                "set image to a pinned reference (repo:version or repo@sha256:<digest>)."
            )
            continue
        why = image_pin_problem(image.strip())
        if why:
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} image {image!r} {why}; "
                "a restart could pull a different engine than the one previewed. Fix: pin a "
                "version tag (e.g. vllm/vllm-openai:v0.6.3) or a digest (@sha256:...)."
            )
    return out


def sns_encrypted(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if str(props.get("kmsMasterKeyId") or "").strip():
        return []
    return [
        f"{_who(resource_type, ctx)}: kmsMasterKeyId is not set, so alarm messages are stored "
        "unencrypted. Fix: set kms_master_key_id to a customer-managed KMS key whose policy "
        "lets cloudwatch.amazonaws.com use it (the AWS-managed alias/aws/sns key does not)."
    ]


def secret_cmk(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    key = str(props.get("kmsKeyId") or "").strip()
    if key and not key.startswith("alias/aws/"):
        return []
    shown = "not set" if not key else f"the AWS-managed {key!r}"
    return [
        f"{_who(resource_type, ctx)}: kmsKeyId is {shown}; secrets must use a customer-managed "
        "key so that access is governed by its key policy. Fix: set kms_key_id=key.arn."
    ]


PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def s3_public_access_block_settings(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    off = [f for f in PUBLIC_ACCESS_FLAGS if not _true(props.get(f))]
    if not off:
        return []
    return [
        f"{_who(resource_type, ctx)}: {', '.join(f'{f}={props.get(f)!r}' for f in off)}; all "
        f"four of {', '.join(PUBLIC_ACCESS_FLAGS)} must be True. Fix: set them to True."
    ]


# ---------------------------------------------------------------------------------------------
# Cost guardrails on ECS services (tags written by components/, see policies/guardrails.py)


def _service_env(props: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(environment, problem)."""
    env = str(_tags(props).get(g.TAG_ENVIRONMENT) or "").strip().lower()
    if not env:
        return None, f"has no {g.TAG_ENVIRONMENT} tag"
    if env not in g.ENVIRONMENTS:
        return None, f"has {g.TAG_ENVIRONMENT}={env!r}, not one of {', '.join(g.ENVIRONMENTS)}"
    return env, None


_TAG_FIX = (
    "Fix: the Fleet component must tag every ECS service and annotate every NodePool "
    "(see policies/guardrails.py)."
)


def guardrail_instance_families(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    env, problem = _service_env(props)
    if env is None:
        return [
            f"{_who(resource_type, ctx)} {problem}; instance families cannot be checked. {_TAG_FIX}"
        ]
    instance_type = str(_tags(props).get(g.TAG_INSTANCE_TYPE) or "").strip()
    if not instance_type:
        return [
            f"{_who(resource_type, ctx)} has no {g.TAG_INSTANCE_TYPE} tag; instance families "
            f"cannot be checked. {_TAG_FIX}"
        ]
    stack_tag = _tags(props).get(g.TAG_GUARDRAIL_FAMILIES)
    allowed = g.allowed_families(env, None if stack_tag is None else str(stack_tag), ctx.config)
    family = g.instance_family(instance_type)
    if family in allowed:
        return []
    default = g.allowed_families(env, None, ctx.config)
    narrowed = (
        f" (the stack's guardrails.allowedInstanceFamilies narrows the {env} default "
        f"{', '.join(default)})"
        if stack_tag
        else ""
    )
    return [
        f"{_who(resource_type, ctx)}: instance type {instance_type} (family {family}) is not "
        f"allowed in {env}; allowed: {', '.join(allowed) or 'none'}{narrowed}. Fix: pick an "
        f"instanceType from an allowed family in the stack file, or ask the platform team to "
        "extend the org allow-list (policy config allowedFamilies); a stack cannot widen it."
    ]


def guardrail_spot_outside_prod(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    env, problem = _service_env(props)
    if env is None:
        return [f"{_who(resource_type, ctx)} {problem}; capacity cannot be checked. {_TAG_FIX}"]
    tags = _tags(props)
    stack_tag = tags.get(g.TAG_GUARDRAIL_REQUIRE_SPOT)
    if not g.spot_required(env, None if stack_tag is None else str(stack_tag), ctx.config):
        return []
    capacity = str(tags.get(g.TAG_CAPACITY) or "").strip().lower()
    if capacity in g.SPOT_CAPACITIES:
        return []
    why = "the stack sets guardrails.requireSpot" if env == "prod" else f"{env} is not prod"
    shown = repr(capacity) if capacity else f"unknown (no {g.TAG_CAPACITY} tag)"
    return [
        f"{_who(resource_type, ctx)}: capacity is {shown} but spot is required ({why}); "
        f"allowed: {', '.join(g.SPOT_CAPACITIES)}. Fix: set capacity: spot (or mixed for an "
        "on-demand floor) for the model in the stack file."
    ]


def guardrail_team_hourly_ceiling(
    resources: Sequence[StackResource], ctx: RuleContext
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    by_team: dict[tuple[str, str], list[g.ServiceCost]] = {}
    limits: dict[tuple[str, str], float | None] = {}
    for r in resources:
        if r.type not in GPU_CAPACITY_TYPES:
            continue
        tags = _tags(r.props)
        try:
            cost = g.service_cost(r.name, tags)
            key = (cost.team, cost.environment)
            stack_tag = tags.get(g.TAG_GUARDRAIL_MAX_HOURLY)
            limit = g.max_hourly_usd(
                cost.environment, None if stack_tag is None else str(stack_tag), ctx.config
            )
        except g.GuardrailError as exc:
            out.append(
                (
                    r.name,
                    f"{_short(r.type)} '{r.name}': {exc}; the team's hourly ceiling cannot be "
                    "checked. "
                    f"{_TAG_FIX}",
                )
            )
            continue
        by_team.setdefault(key, []).append(cost)
        previous = limits.get(key)
        limits[key] = (
            limit if previous is None else (previous if limit is None else min(previous, limit))
        )
    for (team, env), costs in sorted(by_team.items()):
        limit = limits.get((team, env))
        total = sum(c.max_hourly_usd for c in costs)
        if limit is None or total <= limit + 1e-9:
            continue
        detail = "; ".join(c.describe() for c in costs)
        out.append(
            (
                costs[0].name,
                f"team '{team}' ({env}) can reach ${total:,.2f}/h at max replicas, above the "
                f"${limit:,.2f}/h ceiling ({detail}). Fix: lower replicas.max, use a smaller "
                "instance type, or have the platform team raise the ceiling (policy config "
                "maxHourlyUsd; a stack's guardrails.maxHourlyUsd can only lower it).",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# EKS: the cluster, its charts and its GPU capacity


def eks_secrets_encrypted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    configs = props.get("encryptionConfig")
    cfg = _mapping(configs[0] if isinstance(configs, list) and configs else configs)
    key = _mapping(cfg.get("provider")).get("keyArn")
    if "secrets" in _list(cfg.get("resources")) and key:
        return []
    return [
        f"{_who(resource_type, ctx)} does not envelope-encrypt Kubernetes Secrets with a KMS key. "
        "Fix: set encryptionConfig {resources: [secrets], provider.keyArn: the stack's key}; "
        "it cannot be turned off later."
    ]


def eks_public_endpoint_restricted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    vpc = _mapping(props.get("vpcConfig"))
    # EKS's default for endpointPublicAccess is true, and for publicAccessCidrs 0.0.0.0/0.
    if vpc.get("endpointPublicAccess") is False:
        return []
    cidrs = [str(c) for c in _list(vpc.get("publicAccessCidrs"))]
    world = sorted(set(cidrs) & WORLD_CIDRS)
    if cidrs and not world:
        return []
    shown = ", ".join(world) if world else "0.0.0.0/0 (the default when none are given)"
    return [
        f"{_who(resource_type, ctx)}: the public API endpoint is open to {shown}. Fix: list the "
        "CIDRs that run `pulumi up` and kubectl in eks.publicAccessCidrs, or leave it empty for "
        "a private-only endpoint."
    ]


EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def helm_chart_pinned(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    version = str(props.get("version") or "").strip()
    if EXACT_VERSION.match(version):
        return []
    shown = repr(version) if version else "no version (the newest at each deploy)"
    return [
        f"{_who(resource_type, ctx)}: chart {props.get('chart')!r} has {shown}. Fix: pin an "
        "exact chart version (x.y.z) in modelfleet/eks_versions.py."
    ]


def nodepool_gpu_limit(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    limits = _mapping(_mapping(props.get("spec")).get("limits"))
    limit = _int(limits.get("nvidia.com/gpu"))
    if limit is not None and limit >= 0:
        return []
    return [
        f"{_who(resource_type, ctx)} sets no nvidia.com/gpu limit: Karpenter could launch GPU "
        "nodes without bound. Fix: the plan sizes each pool's limit from replicas.max."
    ]


def node_class_imdsv2(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    opts = _mapping(_mapping(props.get("spec")).get("metadataOptions"))
    if opts.get("httpTokens") == "required" and _int(opts.get("httpPutResponseHopLimit")) == 1:
        return []
    return [
        f"{_who(resource_type, ctx)}: nodes must require IMDSv2 with a hop limit of 1 "
        f"(got httpTokens={opts.get('httpTokens')!r}, hop limit "
        f"{opts.get('httpPutResponseHopLimit')!r}), or pods can read the node role's "
        "credentials. Fix: metadataOptions {httpTokens: required, httpPutResponseHopLimit: 1}."
    ]


# ---------------------------------------------------------------------------------------------
# Stack rule: every S3 bucket has a public access block


def _known(props: Mapping[str, Any], key: str) -> Any:
    """props[key], or None where CrossGuard's proxy says the value is unknown at preview."""
    try:
        return props.get(key)
    except Exception:  # pulumi_policy.proxy.UnknownValueError; rules stay free of its import
        return None


def _bucket_keys(bucket: StackResource) -> set[str]:
    keys = {bucket.name}
    for prop in ("bucket", "id", "arn"):
        value = _known(bucket.props, prop)
        if isinstance(value, str) and value:
            keys.add(value)
    return keys


def s3_bucket_has_public_access_block(
    resources: Sequence[StackResource], ctx: RuleContext
) -> list[tuple[str, str]]:
    if any(r.type == S3_ACCOUNT_PUBLIC_ACCESS_BLOCK for r in resources):
        return []
    blocks = [r for r in resources if r.type == S3_PUBLIC_ACCESS_BLOCK]
    out = []
    for bucket in (r for r in resources if r.type in S3_BUCKETS):
        keys = _bucket_keys(bucket)
        covered = any(
            bucket.name in b.deps
            or b.name.startswith(f"{bucket.name}-")
            or str(_known(b.props, "bucket") or "") in keys
            for b in blocks
        )
        if not covered:
            out.append(
                (
                    bucket.name,
                    f"Bucket '{bucket.name}' has no BucketPublicAccessBlock, so an ACL or bucket "
                    "policy could make it public. Fix: add aws.s3.BucketPublicAccessBlock("
                    f"'{bucket.name}-public-access', bucket=bucket.id, block_public_acls=True, "
                    "block_public_policy=True, ignore_public_acls=True, "
                    "restrict_public_buckets=True).",
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Registry

_FAMILIES_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_ALLOWED_FAMILIES: {
        "type": "object",
        "description": "Allowed instance families per environment (overrides the org defaults).",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "default": {k: list(v) for k, v in g.DEFAULT_ALLOWED_FAMILIES.items()},
    }
}
_SPOT_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_SPOT_REQUIRED_ENVIRONMENTS: {
        "type": "array",
        "items": {"type": "string"},
        "description": "Environments whose GPU capacity must be spot or mixed.",
        "default": list(g.DEFAULT_SPOT_REQUIRED_ENVIRONMENTS),
    }
}
_CEILING_SCHEMA: dict[str, dict[str, Any]] = {
    g.CONFIG_MAX_HOURLY_USD: {
        "type": "object",
        "description": "Per-team ceiling in on-demand $/h at max replicas, per environment.",
        "additionalProperties": {"type": "number", "minimum": 0},
        "default": dict(g.DEFAULT_MAX_HOURLY_USD),
    }
}

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "efs-encrypted-cmk",
        "EFS file systems are encrypted with a customer-managed KMS key.",
        (EFS_FILE_SYSTEM,),
        efs_encrypted_cmk,
    ),
    ResourceRule(
        "efs-not-bursting",
        "EFS file systems use elastic or provisioned throughput, not bursting.",
        (EFS_FILE_SYSTEM,),
        efs_not_bursting,
    ),
    ResourceRule(
        "efs-access-point-root-directory",
        "EFS access points are rooted in a non-root directory.",
        (EFS_ACCESS_POINT,),
        efs_access_point_root_directory,
    ),
    ResourceRule(
        "efs-access-point-posix-user",
        "EFS access points enforce a non-root POSIX user.",
        (EFS_ACCESS_POINT,),
        efs_access_point_posix_user,
    ),
    ResourceRule(
        "alb-http-redirects-to-https",
        "HTTP listeners only redirect to HTTPS, unless the stack is ephemeral.",
        LISTENERS,
        alb_http_redirects_to_https,
    ),
    ResourceRule(
        "alb-tls-1-2",
        "HTTPS/TLS listeners use a TLS 1.2+ security policy.",
        LISTENERS,
        alb_tls_policy,
    ),
    ResourceRule(
        "alb-drop-invalid-headers",
        "Application load balancers drop invalid header fields.",
        LOAD_BALANCERS,
        alb_drop_invalid_headers,
    ),
    ResourceRule(
        "alb-deletion-protection",
        "Load balancers have deletion protection, unless the stack is ephemeral.",
        LOAD_BALANCERS,
        alb_deletion_protection,
    ),
    ResourceRule(
        "alb-access-logs",
        "Load balancers write access logs, unless the stack is ephemeral.",
        LOAD_BALANCERS,
        alb_access_logs,
    ),
    ResourceRule(
        "sg-only-web-ports-public",
        "Only tcp 80/443 are open to 0.0.0.0/0 or ::/0.",
        (SECURITY_GROUP, SG_INGRESS_RULE, SG_RULE),
        sg_ingress_internet,
    ),
    ResourceRule(
        "iam-no-wildcard-actions",
        "Inline and managed IAM policies allow no '*' or 'service:*' actions.",
        (*IAM_POLICY_TYPES, IAM_ROLE),
        iam_no_wildcard_actions,
    ),
    ResourceRule(
        "launch-template-imdsv2",
        "Launch templates require IMDSv2 with a hop limit of 1.",
        (LAUNCH_TEMPLATE,),
        launch_template_imdsv2,
    ),
    ResourceRule(
        "launch-template-ebs-encrypted",
        "Launch template EBS volumes are encrypted.",
        (LAUNCH_TEMPLATE,),
        launch_template_ebs_encrypted,
    ),
    ResourceRule(
        "log-group-retention",
        "CloudWatch log groups have a retention period.",
        (LOG_GROUP,),
        log_group_retention,
    ),
    ResourceRule(
        "ecs-no-plain-secrets",
        "Container definitions pass secret-looking values through 'secrets', not 'environment'.",
        (TASK_DEFINITION,),
        ecs_no_plain_secrets,
    ),
    ResourceRule(
        "ecs-images-pinned",
        "Container images are pinned to a version tag or digest, never latest.",
        (TASK_DEFINITION,),
        ecs_images_pinned,
    ),
    ResourceRule(
        "sns-encrypted", "SNS topics are encrypted with KMS.", (SNS_TOPIC,), sns_encrypted
    ),
    ResourceRule(
        "secrets-manager-cmk",
        "Secrets Manager secrets use a customer-managed KMS key.",
        (SECRETS_MANAGER_TYPE,),
        secret_cmk,
    ),
    ResourceRule(
        "s3-public-access-block-settings",
        "S3 public access blocks turn on all four protections.",
        (S3_PUBLIC_ACCESS_BLOCK, S3_ACCOUNT_PUBLIC_ACCESS_BLOCK),
        s3_public_access_block_settings,
    ),
    ResourceRule(
        "guardrail-instance-families",
        "GPU instance families are allowed for the environment (a stack can only narrow).",
        GPU_CAPACITY_TYPES,
        guardrail_instance_families,
        _FAMILIES_SCHEMA,
    ),
    ResourceRule(
        "guardrail-spot-outside-prod",
        "GPU capacity is spot or mixed outside prod (and in prod when the stack asks).",
        GPU_CAPACITY_TYPES,
        guardrail_spot_outside_prod,
        _SPOT_SCHEMA,
    ),
)

RESOURCE_RULES += (
    ResourceRule(
        "eks-secrets-encrypted",
        "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
        (EKS_CLUSTER,),
        eks_secrets_encrypted,
    ),
    ResourceRule(
        "eks-public-endpoint-restricted",
        "An EKS public API endpoint is limited to given CIDRs, never the world.",
        (EKS_CLUSTER,),
        eks_public_endpoint_restricted,
    ),
    ResourceRule(
        "helm-chart-pinned",
        "Helm charts are pinned to an exact version.",
        HELM_RELEASES,
        helm_chart_pinned,
    ),
    ResourceRule(
        "nodepool-gpu-limit",
        "Karpenter NodePools cap nvidia.com/gpu.",
        (NODE_POOL,),
        nodepool_gpu_limit,
    ),
    ResourceRule(
        "node-imdsv2",
        "Karpenter nodes require IMDSv2 with a hop limit of 1.",
        (EC2_NODE_CLASS,),
        node_class_imdsv2,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "guardrail-team-hourly-ceiling",
        "A team's GPU fleet at max replicas stays under its $/h ceiling for the environment.",
        guardrail_team_hourly_ceiling,
        _CEILING_SCHEMA,
    ),
    StackRule(
        "s3-bucket-public-access-block",
        "Every S3 bucket has a public access block.",
        s3_bucket_has_public_access_block,
    ),
)

# The Kubernetes objects' rules (EKS stacks), checks in policies/kube_rules.py.
from policies import kube_rules as k  # noqa: E402

KUBE_RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "k8s-images-pinned",
        "Kubernetes containers use pinned images (version tag or digest), never latest.",
        k.WORKLOADS,
        k.k8s_images_pinned,
    ),
    ResourceRule(
        "k8s-no-privileged",
        "Kubernetes containers are not privileged and cannot escalate privileges.",
        k.WORKLOADS,
        k.k8s_no_privileged,
    ),
    ResourceRule(
        "k8s-resource-limits",
        "Kubernetes containers set a memory limit, and a GPU limit equal to their GPU request.",
        k.WORKLOADS,
        k.k8s_resource_limits,
    ),
    ResourceRule(
        "k8s-gpu-pods-not-disruptible",
        "Pods using GPUs carry karpenter.sh/do-not-disrupt, so consolidation never evicts them.",
        k.WORKLOADS,
        k.k8s_gpu_pods_not_disruptible,
    ),
)

KUBE_STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "k8s-no-replicas-under-autoscaler",
        "Workloads targeted by a ScaledObject or HPA leave spec.replicas unset.",
        k.k8s_no_replicas_under_autoscaler,
    ),
)

RESOURCE_RULES += KUBE_RESOURCE_RULES
STACK_RULES += KUBE_STACK_RULES

ALL_RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCE_RULES) + tuple(
    r.name for r in STACK_RULES
)


def default_config(rule: ResourceRule | StackRule) -> dict[str, Any]:
    """The config a rule sees when the pack's config sets nothing (the schema defaults)."""
    return {k: v["default"] for k, v in (rule.config_schema or {}).items() if "default" in v}

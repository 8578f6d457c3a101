"""The modelfleet policy rules, as plain functions over resource inputs, one module per concern.

A resource rule is `(resource_type, props, ctx) -> list[str]`: `props` are the resource's inputs
as Pulumi serializes them (camelCase keys, nested objects as dicts, `pulumi.Input[str]` JSON
documents as strings), `ctx` carries the logical name and the rule's policy config, and the
result is one message per violation. A stack rule sees every resource of the stack at once and
returns `(resource name, message)` pairs. The same functions back the CrossGuard pack
(`policies/pack.py`) and the offline checker (`policies/offline.py`), and are unit-tested with
plain dicts (`tests/policies/`).

Each rule is registered next to its body with `@resource_rule(...)` or `@stack_rule(...)`
(`_registry.py`). Every module of this package is imported below, so adding a rule is one file:
a function with its decorator in the module of its concern, or a new module (e.g. `rds.py`).

Rules that say "unless ephemeral" read the `modelfleet:ephemeral` tag from the resource's own
`tags`; a resource without the tag is treated as long-lived (fail closed).
"""

from __future__ import annotations

import importlib
import pkgutil

# The shipped rule modules, their public names re-exported so `policies.rules.<name>` keeps
# working. The pack lists rules in import order: these, then any other module by name.
# `_tags` too: tests read how a resource's tags (or a Kubernetes object's annotations) are seen.
from policies.rules._common import _tags as _tags
from policies.rules._common import is_ephemeral
from policies.rules._registry import (
    RESOURCE_REGISTRY,
    STACK_REGISTRY,
    ResourceCheck,
    ResourceRule,
    RuleContext,
    StackCheck,
    StackResource,
    StackRule,
    default_config,
    resource_rule,
    stack_rule,
)
from policies.rules.alb import (
    RECOMMENDED_TLS_POLICY,
    TLS_POLICY_PATTERNS,
    alb_access_logs,
    alb_deletion_protection,
    alb_drop_invalid_headers,
    alb_http_redirects_to_https,
    alb_tls_policy,
    tls_policy_allowed,
)
from policies.rules.cost_guardrails import (
    guardrail_instance_families,
    guardrail_spot_outside_prod,
    guardrail_team_hourly_ceiling,
)
from policies.rules.ecs import (
    NOT_SECRET_SUFFIXES,
    SECRET_NAME,
    ecs_images_pinned,
    ecs_no_plain_secrets,
    image_pin_problem,
    looks_secret,
)
from policies.rules.efs import (
    efs_access_point_posix_user,
    efs_access_point_root_directory,
    efs_encrypted_cmk,
    efs_not_bursting,
)
from policies.rules.eks import (
    EXACT_VERSION,
    eks_public_endpoint_restricted,
    eks_secrets_encrypted,
    helm_chart_pinned,
    node_class_imdsv2,
    nodepool_gpu_limit,
)
from policies.rules.iam import iam_no_wildcard_actions, wildcard_actions
from policies.rules.launch_templates import launch_template_ebs_encrypted, launch_template_imdsv2
from policies.rules.logs import log_group_retention
from policies.rules.s3 import (
    PUBLIC_ACCESS_FLAGS,
    s3_bucket_has_public_access_block,
    s3_public_access_block_settings,
)
from policies.rules.secrets_manager import secret_cmk
from policies.rules.security_groups import PUBLIC_PORTS, WORLD_CIDRS, sg_ingress_internet
from policies.rules.sns import sns_encrypted
from policies.rules.tokens import (
    EC2_NODE_CLASS,
    ECS_SERVICE,
    EFS_ACCESS_POINT,
    EFS_FILE_SYSTEM,
    EKS_CLUSTER,
    GPU_CAPACITY_TYPES,
    HELM_RELEASES,
    IAM_POLICY_TYPES,
    IAM_ROLE,
    LAUNCH_TEMPLATE,
    LISTENERS,
    LOAD_BALANCERS,
    LOG_GROUP,
    NODE_POOL,
    S3_ACCOUNT_PUBLIC_ACCESS_BLOCK,
    S3_BUCKETS,
    S3_PUBLIC_ACCESS_BLOCK,
    SECRETS_MANAGER_TYPE,
    SECURITY_GROUP,
    SG_INGRESS_RULE,
    SG_RULE,
    SNS_TOPIC,
    TASK_DEFINITION,
)

# Any other module (a new one needs no line here) registers its rules when imported.
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

RESOURCE_RULES: tuple[ResourceRule, ...] = tuple(RESOURCE_REGISTRY)
STACK_RULES: tuple[StackRule, ...] = tuple(STACK_REGISTRY)
ALL_RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCE_RULES) + tuple(
    r.name for r in STACK_RULES
)

__all__ = [
    "ALL_RULE_NAMES",
    "EC2_NODE_CLASS",
    "ECS_SERVICE",
    "EFS_ACCESS_POINT",
    "EFS_FILE_SYSTEM",
    "EKS_CLUSTER",
    "EXACT_VERSION",
    "GPU_CAPACITY_TYPES",
    "HELM_RELEASES",
    "IAM_POLICY_TYPES",
    "IAM_ROLE",
    "LAUNCH_TEMPLATE",
    "LISTENERS",
    "LOAD_BALANCERS",
    "LOG_GROUP",
    "NODE_POOL",
    "NOT_SECRET_SUFFIXES",
    "PUBLIC_ACCESS_FLAGS",
    "PUBLIC_PORTS",
    "RECOMMENDED_TLS_POLICY",
    "RESOURCE_RULES",
    "S3_ACCOUNT_PUBLIC_ACCESS_BLOCK",
    "S3_BUCKETS",
    "S3_PUBLIC_ACCESS_BLOCK",
    "SECRETS_MANAGER_TYPE",
    "SECRET_NAME",
    "SECURITY_GROUP",
    "SG_INGRESS_RULE",
    "SG_RULE",
    "SNS_TOPIC",
    "STACK_RULES",
    "TASK_DEFINITION",
    "TLS_POLICY_PATTERNS",
    "WORLD_CIDRS",
    "ResourceCheck",
    "ResourceRule",
    "RuleContext",
    "StackCheck",
    "StackResource",
    "StackRule",
    "alb_access_logs",
    "alb_deletion_protection",
    "alb_drop_invalid_headers",
    "alb_http_redirects_to_https",
    "alb_tls_policy",
    "default_config",
    "ecs_images_pinned",
    "ecs_no_plain_secrets",
    "efs_access_point_posix_user",
    "efs_access_point_root_directory",
    "efs_encrypted_cmk",
    "efs_not_bursting",
    "eks_public_endpoint_restricted",
    "eks_secrets_encrypted",
    "guardrail_instance_families",
    "guardrail_spot_outside_prod",
    "guardrail_team_hourly_ceiling",
    "helm_chart_pinned",
    "iam_no_wildcard_actions",
    "image_pin_problem",
    "is_ephemeral",
    "launch_template_ebs_encrypted",
    "launch_template_imdsv2",
    "log_group_retention",
    "looks_secret",
    "node_class_imdsv2",
    "nodepool_gpu_limit",
    "resource_rule",
    "s3_bucket_has_public_access_block",
    "s3_public_access_block_settings",
    "secret_cmk",
    "sg_ingress_internet",
    "sns_encrypted",
    "stack_rule",
    "tls_policy_allowed",
    "wildcard_actions",
]

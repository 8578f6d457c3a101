"""Small helpers shared by the components: tags and child resource options.

Not a component itself; every AWS concern lives in its own file beside this one.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.dynamic
from fetcher.source import S3Source, parse_source

from modelfleet.config import StackConfig
from modelfleet.identities import Res
from modelfleet.plan_types import FleetPlan


def stack_tags(config: StackConfig, **extra: str) -> dict[str, str]:
    """Tags on every taggable resource: who owns it, and whether it may be thrown away.

    The policy pack reads `modelfleet:ephemeral` from a resource's own tags, so these are set
    explicitly rather than through provider default tags (which preview does not show).
    """
    tags = {
        "modelfleet:stack": config.stack,
        "modelfleet:team": config.team,
        "modelfleet:environment": config.environment.value,
        "modelfleet:ephemeral": "true" if config.ephemeral else "false",
        "ManagedBy": "pulumi",
    }
    tags.update(config.tags)
    tags.update(extra)
    return tags


def child(parent: pulumi.Resource, res: Res | None = None, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options of a child resource; `res` adds the aliases of names it had in earlier releases
    (see ALIASES.md), so an upgrade adopts the resource instead of replacing it."""
    if res is not None and res.aliases:
        kwargs["aliases"] = [pulumi.Alias(name=a) for a in res.aliases]
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def invoke(parent: pulumi.Resource) -> pulumi.InvokeOptions:
    """Invokes (account, partition, zones, SSM, ...) run with the caller's provider."""
    return pulumi.InvokeOptions(parent=parent)


def policy_json(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document; ARNs may be Outputs."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def s3_read_statements(partition: str, sources: list[str]) -> list[dict[str, Any]]:
    """Read-only access to exactly the S3 prefixes a model is fetched from."""
    out: list[dict[str, Any]] = []
    for source in sources:
        src = parse_source(source)
        if not isinstance(src, S3Source):
            continue
        bucket = f"arn:{partition}:s3:::{src.bucket}"
        out.append(
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket}/{src.prefix}*"}
        )
        out.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": bucket,
                "Condition": {"StringLike": {"s3:prefix": [f"{src.prefix}*"]}},
            }
        )
    return out


def engine_cache_statements(
    plan: FleetPlan,
    partition: str,
    account_id: str,
    kms_key_arn: pulumi.Input[str],
    include_kms: bool = True,
) -> list[dict[str, object]]:
    """What a role that pulls the engine image through the cache needs beyond ECR's pull
    actions: the first pull creates the cache repository and imports the image, both scoped
    to the cache prefix; its layers are encrypted with the stack's key. The roles that pull:
    the ECS execution role and GPU host role, the EKS GPU node role (the kubelet's)."""
    e = plan.engine_image
    if e.mode != "pull-through":
        return []
    repos = f"arn:{partition}:ecr:{plan.config.region}:{account_id}:repository/{e.cache_prefix}/*"
    out: list[dict[str, object]] = [
        {
            "Effect": "Allow",
            "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
            "Resource": repos,
        }
    ]
    if include_kms:
        out.append({"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": kms_key_arn})
    return out


def replacing_diff(
    triggers: tuple[str, ...], olds: dict[str, Any], news: dict[str, Any]
) -> pulumi.dynamic.DiffResult:
    """A dynamic resource whose trigger inputs changed is replaced, the new one made first
    (what depends on it moves over before the old one is deleted)."""
    changed = [k for k in triggers if olds.get(k) != news.get(k)]
    return pulumi.dynamic.DiffResult(
        changes=bool(changed), replaces=changed, delete_before_replace=False
    )

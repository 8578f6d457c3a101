"""S3: public access blocks with every flag on, and one for every bucket (a stack rule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rules._common import _true, _who
from policies.rules._registry import RuleContext, StackResource, resource_rule, stack_rule
from policies.rules.tokens import S3_ACCOUNT_PUBLIC_ACCESS_BLOCK, S3_BUCKETS, S3_PUBLIC_ACCESS_BLOCK

PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


@resource_rule(
    "s3-public-access-block-settings",
    "S3 public access blocks turn on all four protections.",
    (S3_PUBLIC_ACCESS_BLOCK, S3_ACCOUNT_PUBLIC_ACCESS_BLOCK),
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


@stack_rule("s3-bucket-public-access-block", "Every S3 bucket has a public access block.")
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

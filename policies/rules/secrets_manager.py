"""Secrets Manager: secrets use a customer-managed KMS key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules._common import _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import SECRETS_MANAGER_TYPE


@resource_rule(
    "secrets-manager-cmk",
    "Secrets Manager secrets use a customer-managed KMS key.",
    (SECRETS_MANAGER_TYPE,),
)
def secret_cmk(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    key = str(props.get("kmsKeyId") or "").strip()
    if key and not key.startswith("alias/aws/"):
        return []
    shown = "not set" if not key else f"the AWS-managed {key!r}"
    return [
        f"{_who(resource_type, ctx)}: kmsKeyId is {shown}; secrets must use a customer-managed "
        "key so that access is governed by its key policy. Fix: set kms_key_id=key.arn."
    ]

"""SNS: topics are encrypted with KMS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules._common import _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import SNS_TOPIC


@resource_rule("sns-encrypted", "SNS topics are encrypted with KMS.", (SNS_TOPIC,))
def sns_encrypted(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if str(props.get("kmsMasterKeyId") or "").strip():
        return []
    return [
        f"{_who(resource_type, ctx)}: kmsMasterKeyId is not set, so alarm messages are stored "
        "unencrypted. Fix: set kms_master_key_id to a customer-managed KMS key whose policy "
        "lets cloudwatch.amazonaws.com use it (the AWS-managed alias/aws/sns key does not)."
    ]

"""CloudWatch logs: every log group has a retention period."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules._common import _int, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import LOG_GROUP


@resource_rule(
    "log-group-retention",
    "CloudWatch log groups have a retention period.",
    (LOG_GROUP,),
)
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

"""Names derived from the stack, shared by the plan and the Pulumi components."""

from __future__ import annotations

import hashlib


def short_name(name: str, limit: int = 12) -> str:
    """A model name short enough for AWS's 32-character names, still unique per stack."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    return f"{name[: limit - 5].rstrip('-')}-{digest}"


# Target groups and load balancers take Pulumi's auto-name (logical name + 8 characters, so a
# replacement can be created before the old one is deleted) under AWS's 32-character cap.
def target_group_name(short: str) -> str:
    return f"{short}-tg"


def load_balancer_name(prefix: str) -> str:
    return f"{prefix}-alb"

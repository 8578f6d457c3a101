"""Secrets Manager entries for what containers must know but config must not show.

Values come from Pulumi secret config (encrypted in the stack file, secret in state) and reach
containers only through ECS `secrets`, never as plain environment values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pydantic import SecretStr

from components._common import child, stack_tags
from modelfleet.plan_types import FleetPlan


@dataclass(frozen=True)
class SecretsArgs:
    plan: FleetPlan
    kms_key_arn: pulumi.Input[str]


class Secrets(pulumi.ComponentResource):
    """ARNs by role: `api_keys`, `fallback_api_key`, `hf_token` (each present when configured)."""

    arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:secrets:Secrets", name, None, opts)
        plan = args.plan
        c = plan.config
        values: dict[str, SecretStr | None] = {
            "api_keys": c.gateway.api_keys,
            "fallback_api_key": c.gateway.fallback.api_key if c.gateway.fallback else None,
            "hf_token": c.hf_token,
        }
        self.arns = {}
        for spec in plan.secrets:
            value = values[spec.key]
            ids = plan.ids.secrets.secrets[spec.key]
            if value is None:  # the plan lists only configured secrets
                raise pulumi.RunError(f"{spec.config_key}: planned but not configured")
            secret = aws.secretsmanager.Secret(
                ids.secret.name,
                description=f"modelfleet {c.team}/{c.stack}: {spec.config_key}",
                kms_key_id=args.kms_key_arn,
                # Ephemeral stacks are torn down and rebuilt: a pending deletion would block
                # the next stack of the same name.
                recovery_window_in_days=0 if c.ephemeral else 30,
                tags=stack_tags(c),
                opts=child(self),
            )
            aws.secretsmanager.SecretVersion(
                ids.version.name,
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(value.get_secret_value()),
                opts=child(self),
            )
            self.arns[spec.key] = secret.arn
        self.register_outputs({k: v for k, v in self.arns.items()})

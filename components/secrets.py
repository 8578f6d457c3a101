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
from modelfleet.plan import FleetPlan


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
        c = args.plan.config
        wanted: dict[str, SecretStr] = {}
        if c.gateway.api_keys is not None:
            wanted["api-keys"] = c.gateway.api_keys
        if c.gateway.fallback is not None:
            wanted["fallback-api-key"] = c.gateway.fallback.api_key
        if c.hf_token is not None:
            wanted["hf-token"] = c.hf_token
        self.arns = {}
        for role, value in wanted.items():
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                description=f"modelfleet {c.team}/{c.stack}: {role}",
                kms_key_id=args.kms_key_arn,
                # Ephemeral stacks are torn down and rebuilt: a pending deletion would block
                # the next stack of the same name.
                recovery_window_in_days=0 if c.ephemeral else 30,
                tags=stack_tags(c),
                opts=child(self),
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{role}-value",
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(value.get_secret_value()),
                opts=child(self),
            )
            self.arns[role.replace("-", "_")] = secret.arn
        self.register_outputs({k: v for k, v in self.arns.items()})

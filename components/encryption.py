"""One customer-managed KMS key per stack: EFS, SNS and Secrets Manager encrypt with it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import child, policy_json, stack_tags
from modelfleet.plan_types import FleetPlan


@dataclass(frozen=True)
class EncryptionArgs:
    plan: FleetPlan
    account_id: str
    partition: str


class Encryption(pulumi.ComponentResource):
    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:encryption:Encryption", name, None, opts)
        c = args.plan.config
        ids = args.plan.ids.encryption
        root = f"arn:{args.partition}:iam::{args.account_id}:root"
        key = aws.kms.Key(
            ids.key.name,
            description=f"modelfleet {c.team}/{c.stack}: model cache, alarms topic, secrets",
            enable_key_rotation=True,
            # An ephemeral stack's key goes as soon as AWS allows; a real one can be recovered.
            deletion_window_in_days=7 if c.ephemeral else 30,
            policy=policy_json(
                [
                    {
                        # Delegate to IAM so roles get only what their own policies grant.
                        "Sid": "AccountAdministersViaIam",
                        "Effect": "Allow",
                        "Principal": {"AWS": root},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        # CloudWatch alarms publish to the encrypted SNS topic.
                        "Sid": "CloudWatchAlarmsPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                    },
                    {
                        # ECR's pull-through cache reads the Docker Hub credentials' secret
                        # through Secrets Manager as its service-linked role, which exists only
                        # once the first rule does: named by condition, not as a principal.
                        "Sid": "EcrPullThroughCacheReadsCredentials",
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": "kms:Decrypt",
                        "Resource": "*",
                        "Condition": {
                            "StringEquals": {
                                "kms:CallerAccount": args.account_id,
                                "kms:ViaService": f"secretsmanager.{c.region}.amazonaws.com",
                            },
                            "ArnLike": {
                                "aws:PrincipalArn": f"arn:{args.partition}:iam::{args.account_id}"
                                ":role/aws-service-role/pullthroughcache.ecr.amazonaws.com/*"
                            },
                        },
                    },
                ]
            ),
            tags=stack_tags(c),
            # Everything the stack encrypts is lost with the key: only an explicit unprotect
            # (pulumi state unprotect) lets a real stack's key go.
            opts=child(self, protect=not c.ephemeral),
        )
        aws.kms.Alias(
            ids.alias.name,
            name=ids.alias_name,
            target_key_id=key.key_id,
            # An explicit name: the replacement must wait for the old alias to go.
            opts=child(self, delete_before_replace=True),
        )
        self.key_arn = key.arn
        self.key_id = key.key_id
        self.register_outputs({"key_arn": key.arn})

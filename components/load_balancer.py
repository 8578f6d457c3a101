"""The public entry: an ALB with HTTPS (HTTP only for ephemeral stacks), a target group per
model that health-checks the sidecar's readiness, and a path rule per model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import child, invoke, policy_json, stack_tags
from modelfleet.contract import READY_PATH, SIDECAR_PORT
from modelfleet.identities import LoadBalancerIds
from modelfleet.plan_types import FleetPlan

# TLS 1.3 with TLS 1.2 fallback, no CBC ciphers: AWS's recommended policy for new listeners
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Readiness flips quickly (vLLM down, or draining): check often, act on two failures.
TARGET_HEALTH_CHECK: aws.lb.TargetGroupHealthCheckArgsDict = {
    "path": READY_PATH,
    "port": "traffic-port",
    "protocol": "HTTP",
    "matcher": "200",
    "interval": 10,
    "timeout": 5,
    "healthy_threshold": 2,
    "unhealthy_threshold": 2,
}
NOT_FOUND_BODY = json.dumps(
    {
        "error": {
            "message": "no model at this path; use /<model-name>/v1/...",
            "type": "invalid_request_error",
            "code": "model_not_found",
        }
    }
)


@dataclass(frozen=True)
class LoadBalancerArgs:
    plan: FleetPlan
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]


class LoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    target_groups: dict[str, aws.lb.TargetGroup]
    listener_rules: dict[str, aws.lb.ListenerRule]

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:load-balancer:LoadBalancer", name, None, opts)
        plan = args.plan
        c = plan.config
        ids = plan.ids.load_balancer
        tags = stack_tags(c)
        logs_bucket = (
            self._access_logs_bucket(ids, c.retention_days, tags) if ids.access_logs else None
        )
        alb = aws.lb.LoadBalancer(
            ids.load_balancer.name,
            load_balancer_type="application",
            internal=False,
            subnets=args.public_subnet_ids,
            security_groups=[args.security_group_id],
            idle_timeout=plan.alb_idle_timeout_s,
            drop_invalid_header_fields=True,
            enable_deletion_protection=not c.ephemeral,
            access_logs=(
                {"bucket": logs_bucket.bucket, "enabled": True, "prefix": "alb"}
                if logs_bucket is not None
                else None
            ),
            tags=tags,
            opts=child(self),
        )
        self.target_groups = {}
        for m in plan.models:
            self.target_groups[m.name] = aws.lb.TargetGroup(
                ids.target_groups[m.name].name,
                port=SIDECAR_PORT,
                protocol="HTTP",
                target_type=plan.target_type,
                vpc_id=args.vpc_id,
                health_check=TARGET_HEALTH_CHECK,
                # Let in-flight streams finish while the sidecar drains.
                deregistration_delay=plan.drain.deregistration_delay_s,
                # A long generation ties up a replica: send new work where the least is.
                load_balancing_algorithm_type="least_outstanding_requests",
                tags={**tags, "modelfleet:model": m.name},
                opts=child(self),
            )

        if len(plan.models) == 1:
            only = self.target_groups[plan.models[0].name]
            default_action: aws.lb.ListenerDefaultActionArgsDict = {
                "type": "forward",
                "target_group_arn": only.arn,
            }
        else:
            default_action = {
                "type": "fixed-response",
                "fixed_response": {
                    "content_type": "application/json",
                    "status_code": "404",
                    "message_body": NOT_FOUND_BODY,
                },
            }
        if plan.https:
            serving = aws.lb.Listener(
                ids.listeners["https"].name,
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=SSL_POLICY,
                certificate_arn=c.network.certificate_arn,
                default_actions=[default_action],
                tags=tags,
                opts=child(self),
            )
            aws.lb.Listener(
                ids.listeners["http-redirect"].name,
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    {
                        "type": "redirect",
                        "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"},
                    }
                ],
                tags=tags,
                opts=child(self),
            )
        else:
            # Ephemeral stacks without a certificate only: the schema refuses this otherwise.
            serving = aws.lb.Listener(
                ids.listeners["http"].name,
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[default_action],
                tags=tags,
                opts=child(self),
            )
        self.listener_rules = {}
        for m in plan.models:
            self.listener_rules[m.name] = aws.lb.ListenerRule(
                ids.rules[m.name].name,
                listener_arn=serving.arn,
                priority=m.listener_priority,  # from the model's name: stable across reorders
                conditions=[{"path_pattern": {"values": [f"/{m.name}/*"]}}],
                actions=[{"type": "forward", "target_group_arn": self.target_groups[m.name].arn}],
                tags=tags,
                opts=child(self),
            )
        self.dns_name = alb.dns_name
        self.arn_suffix = alb.arn_suffix
        self.register_outputs({"dns_name": alb.dns_name})

    def _access_logs_bucket(
        self, ids: LoadBalancerIds, retention_days: int, tags: dict[str, str]
    ) -> aws.s3.Bucket:
        b, pab, ownership, sse, lifecycle, policy = ids.access_logs
        bucket = aws.s3.Bucket(b.name, tags=tags, opts=child(self))
        aws.s3.BucketPublicAccessBlock(
            pab.name,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        aws.s3.BucketOwnershipControls(
            ownership.name,
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child(self),
        )
        # ALB access logs support SSE-S3 only, not SSE-KMS.
        aws.s3.BucketServerSideEncryptionConfiguration(
            sse.name,
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child(self),
        )
        aws.s3.BucketLifecycleConfiguration(
            lifecycle.name,
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": max(retention_days, 30)},
                }
            ],
            opts=child(self),
        )
        elb_account = aws.elb.get_service_account(opts=invoke(self))
        aws.s3.BucketPolicy(
            policy.name,
            bucket=bucket.id,
            policy=policy_json(
                [
                    {
                        # Regions before 2022 deliver as the regional ELB account, newer
                        # ones as the log delivery service.
                        "Sid": "AlbLogDelivery",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": elb_account.arn,
                            "Service": "logdelivery.elasticloadbalancing.amazonaws.com",
                        },
                        "Action": "s3:PutObject",
                        "Resource": pulumi.Output.concat(bucket.arn, "/alb/*"),
                    },
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ]
            ),
            opts=child(self),
        )
        return bucket

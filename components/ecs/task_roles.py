"""IAM for tasks, per model: an execution role (what ECS does to start the task) and a task
role (what the containers do), each granted only the resources it names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from fetcher.source import S3Source, parse_source

from components._common import assume_role_policy, child, policy_json, stack_tags
from modelfleet.containers import fetcher_sources
from modelfleet.plan_types import FleetPlan


@dataclass(frozen=True)
class TaskRolesArgs:
    plan: FleetPlan
    partition: str
    file_system_arn: pulumi.Input[str]
    access_point_arns: dict[str, pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    secret_arns: dict[str, pulumi.Input[str]]


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


class TaskRoles(pulumi.ComponentResource):
    execution_role_arn: dict[str, pulumi.Output[str]]
    task_role_arn: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: TaskRolesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:task-roles:TaskRoles", name, None, opts)
        plan = args.plan
        tags = stack_tags(plan.config)
        self.execution_role_arn = {}
        self.task_role_arn = {}
        secret_arns = list(args.secret_arns.values())
        for m in plan.models:
            ids = plan.ids.roles.models[m.name]
            execution = aws.iam.Role(
                ids.execution.name,
                assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
                tags=tags,
                opts=child(self),
            )
            aws.iam.RolePolicyAttachment(
                ids.execution_managed.name,
                role=execution.name,
                policy_arn=(
                    f"arn:{args.partition}:iam::aws:policy/service-role/"
                    "AmazonECSTaskExecutionRolePolicy"
                ),
                opts=child(self),
            )
            statements: list[dict[str, Any]] = [
                {
                    # ECR repositories and secrets are encrypted with the stack's key.
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": args.kms_key_arn,
                }
            ]
            if secret_arns:
                statements.append(
                    {
                        "Effect": "Allow",
                        "Action": ["secretsmanager:GetSecretValue"],
                        "Resource": secret_arns,
                    }
                )
            aws.iam.RolePolicy(
                ids.execution_policy.name,
                role=execution.id,
                policy=policy_json(statements),
                opts=child(self),
            )

            task = aws.iam.Role(
                ids.task.name,
                assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
                tags=tags,
                opts=child(self),
            )
            sources = [s for _, s in fetcher_sources(m, plan)]
            aws.iam.RolePolicy(
                ids.task_policy.name,
                role=task.id,
                policy=policy_json(
                    [
                        {
                            # The fetcher writes through this model's access point only.
                            "Effect": "Allow",
                            "Action": [
                                "elasticfilesystem:ClientMount",
                                "elasticfilesystem:ClientWrite",
                            ],
                            "Resource": args.file_system_arn,
                            "Condition": {
                                "StringEquals": {
                                    "elasticfilesystem:AccessPointArn": args.access_point_arns[
                                        m.name
                                    ]
                                }
                            },
                        },
                        *s3_read_statements(args.partition, sources),
                    ]
                ),
                opts=child(self),
            )
            self.execution_role_arn[m.name] = execution.arn
            self.task_role_arn[m.name] = task.arn
        self.register_outputs({"task_roles": self.task_role_arn})

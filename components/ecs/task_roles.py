"""IAM for tasks, per model: an execution role (what ECS does to start the task) and a task
role (what the containers do), each granted only the resources it names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import (
    assume_role_policy,
    child,
    engine_cache_statements,
    policy_json,
    s3_read_statements,
    stack_tags,
)
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
    compile_access_point_arns: dict[str, pulumi.Input[str]] | None = None
    account_id: str = ""


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
            # The first pull of the engine image through the cache imports it.
            statements += [
                *engine_cache_statements(
                    plan, args.partition, args.account_id, args.kms_key_arn, include_kms=False
                )
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
                        *self._compile_cache(args, m.name),
                        *s3_read_statements(args.partition, sources),
                    ]
                ),
                opts=child(self),
            )
            self.execution_role_arn[m.name] = execution.arn
            self.task_role_arn[m.name] = task.arn
        self.register_outputs({"task_roles": self.task_role_arn})

    @staticmethod
    def _compile_cache(args: TaskRolesArgs, model: str) -> list[dict[str, Any]]:
        """vLLM writes its compile cache through this model's second access point only."""
        arns = args.compile_access_point_arns or {}
        if model not in arns:
            return []
        return [
            {
                "Effect": "Allow",
                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                "Resource": args.file_system_arn,
                "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": arns[model]}},
            }
        ]

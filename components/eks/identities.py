"""EKS Pod Identity: one role per controller and per workload that calls AWS, each associated
with exactly one service account."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import (
    child,
    s3_read_statements,  # the same S3 grant as an ECS task
    stack_tags,
)
from modelfleet import eks_iam
from modelfleet.containers import fetcher_sources
from modelfleet.plan import FleetPlan


@dataclass(frozen=True)
class IdentitiesArgs:
    plan: FleetPlan
    partition: str
    region: str
    account_id: str
    cluster_name: pulumi.Input[str]
    gpu_node_role_arn: pulumi.Input[str]
    interruption_queue_arn: pulumi.Input[str]
    file_system_arn: pulumi.Input[str]
    access_point_arns: dict[str, pulumi.Input[str]]
    # vLLM's compile cache per model, mounted read-write by the vLLM container only.
    compile_access_point_arns: dict[str, pulumi.Input[str]]
    target_group_arns: dict[str, pulumi.Input[str]]


def _doc(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class Identities(pulumi.ComponentResource):
    associations: dict[str, aws.eks.PodIdentityAssociation]

    def __init__(
        self, name: str, args: IdentitiesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Identities", name, None, opts)
        plan = args.plan
        e = plan.eks
        assert e is not None
        tags = stack_tags(plan.config)
        p, region, account = args.partition, args.region, args.account_id
        policies: dict[str, pulumi.Output[str]] = {
            "karpenter": pulumi.Output.all(
                args.gpu_node_role_arn, args.interruption_queue_arn
            ).apply(
                lambda a: _doc(
                    eks_iam.karpenter_controller(p, region, account, e.cluster_name, a[0], a[1])
                )
            ),
            "aws-load-balancer-controller": pulumi.Output.all(
                *[args.target_group_arns[m.name] for m in plan.models]
            ).apply(lambda arns: _doc(eks_iam.alb_controller(list(arns)))),
            "keda-operator": pulumi.Output.from_input(_doc(eks_iam.keda_operator())),
            "efs-csi-node": pulumi.Output.all(
                args.file_system_arn,
                *[args.access_point_arns[m.name] for m in plan.models],
                *[args.compile_access_point_arns[m.name] for m in plan.models],
            ).apply(lambda a: _doc(eks_iam.efs_csi_node(a[0], list(a[1:])))),
        }
        for m in plan.models:
            if f"workload:{m.name}" in e.identities:
                sources = [s for _, s in fetcher_sources(m, plan)]
                policies[f"workload:{m.name}"] = pulumi.Output.from_input(
                    _doc(s3_read_statements(p, sources))
                )
        trust = json.dumps(eks_iam.pod_identity_trust(account))
        self.associations = {}
        for key, ident in e.identities.items():
            role = aws.iam.Role(
                ident.role_logical.name, assume_role_policy=trust, tags=tags, opts=child(self)
            )
            grant: pulumi.Resource
            if ident.managed_policy:
                grant = aws.iam.RolePolicyAttachment(
                    ident.policy_logical.name,
                    role=role.name,
                    policy_arn=f"arn:{p}:iam::aws:policy/{ident.managed_policy}",
                    opts=child(self),
                )
            else:
                grant = aws.iam.RolePolicy(
                    ident.policy_logical.name, role=role.id, policy=policies[key], opts=child(self)
                )
            self.associations[key] = aws.eks.PodIdentityAssociation(
                ident.association_logical.name,
                cluster_name=args.cluster_name,
                namespace=ident.namespace,
                service_account=ident.service_account,
                role_arn=role.arn,
                tags=tags,
                opts=child(self, depends_on=[grant]),
            )
        self.register_outputs({})

"""The EKS control plane, who may reach it, and the Kubernetes provider every object uses."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._common import assume_role_policy, child, stack_tags
from modelfleet import eks_iam
from modelfleet.eks import CONTROL_PLANE_LOG_TYPES
from modelfleet.plan import FleetPlan

# https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class ClusterArgs:
    plan: FleetPlan
    partition: str
    region: str
    subnet_ids: list[pulumi.Output[str]]
    kms_key_arn: pulumi.Input[str]
    # The deploying principal's role ARN (not its STS session ARN), from getSessionContext.
    deployer_arn: pulumi.Input[str]


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig whose token comes from `aws eks get-token`: needs the AWS CLI where
    `pulumi up` runs, and never stores a credential in state."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
            "interactiveMode": "Never",
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
    )


class Cluster(pulumi.ComponentResource):
    cluster: aws.eks.Cluster
    provider: k8s.Provider
    cluster_security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Cluster", name, None, opts)
        plan = args.plan
        e = plan.eks
        assert e is not None
        c = plan.config
        lg = e.logical
        tags = stack_tags(c)
        # EKS writes control-plane logs to this exact group; creating it first means the
        # stack's retention applies instead of "never expire".
        logs = aws.cloudwatch.LogGroup(
            lg["log_group"].name,
            name=f"/aws/eks/{e.cluster_name}/cluster",
            retention_in_days=c.retention_days,
            tags=tags,
            opts=child(self),
        )
        role = aws.iam.Role(
            lg["cluster_role"].name,
            assume_role_policy=assume_role_policy("eks.amazonaws.com"),
            tags=tags,
            opts=child(self),
        )
        attach = aws.iam.RolePolicyAttachment(
            lg["cluster_role_policy"].name,
            role=role.name,
            policy_arn=f"arn:{args.partition}:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        kms = aws.iam.RolePolicy(
            lg["cluster_role_kms"].name,
            role=role.id,
            policy=pulumi.Output.from_input(args.kms_key_arn).apply(
                lambda arn: json.dumps(
                    {"Version": "2012-10-17", "Statement": eks_iam.cluster_role_kms(arn)}
                )
            ),
            opts=child(self),
        )
        public = list(e.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            lg["cluster"].name,
            # Named, not auto-named: Karpenter's policy, its queue and the kubeconfig use it.
            name=e.cluster_name,
            version=e.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(public),
                public_access_cidrs=public or None,
            ),
            # Both default the other way, and changing them later replaces the cluster.
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # vpc-cni, kube-proxy and CoreDNS come as managed add-ons (addons.py).
            bootstrap_self_managed_addons=False,
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=args.kms_key_arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            # AWS's default is EXTENDED; the plan always decides.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=e.support_type.value),
            deletion_protection=not c.ephemeral,
            tags=tags,
            opts=child(self, depends_on=[logs, attach, kms]),
        )
        self.cluster_security_group_id = self.cluster.vpc_config.apply(
            lambda v: v.cluster_security_group_id or ""
        )
        admin_policy = f"arn:{args.partition}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}"
        associations: list[pulumi.Resource] = []
        for entry in e.access_entries.values():
            principal = entry.principal_arn or args.deployer_arn
            access = aws.eks.AccessEntry(
                entry.entry_logical.name,
                cluster_name=self.cluster.name,
                principal_arn=principal,
                type="STANDARD",
                tags=tags,
                opts=child(self),
            )
            associations.append(
                aws.eks.AccessPolicyAssociation(
                    entry.association_logical.name,
                    cluster_name=self.cluster.name,
                    principal_arn=access.principal_arn,
                    policy_arn=admin_policy,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=child(self),
                )
            )
        config = pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2], args.region))
        # Waits for the deployer's cluster-admin association: without it every object fails.
        self.provider = k8s.Provider(
            lg["provider"].name,
            kubeconfig=config,
            enable_server_side_apply=True,
            opts=child(self, depends_on=associations),
        )
        self.register_outputs({"cluster_name": self.cluster.name})

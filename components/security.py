"""Security groups: who may talk to whom, in one place.

internet --80/443--> ALB --8080--> sidecar (task ENI) ; tasks/fetcher --2049--> EFS ;
tasks/hosts/fetcher --443--> AWS APIs, ECR, the model hub. Nothing else is open: the GPU
hosts take no inbound traffic at all (tasks have their own ENIs in awsvpc mode; operators
use SSM Session Manager, not SSH).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import child, stack_tags
from modelfleet.contract import SIDECAR_PORT
from modelfleet.identities import Res
from modelfleet.plan_types import FleetPlan

NFS_PORT = 2049


@dataclass(frozen=True)
class SecurityArgs:
    plan: FleetPlan
    vpc_id: pulumi.Input[str]


class Security(pulumi.ComponentResource):
    alb_sg_id: pulumi.Output[str]
    tasks_sg_id: pulumi.Output[str]
    hosts_sg_id: pulumi.Output[str]
    fetcher_sg_id: pulumi.Output[str]
    efs_sg_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: SecurityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:security:Security", name, None, opts)
        c = args.plan.config
        ids = args.plan.ids.security
        tags = stack_tags(c)

        def group(role: str, description: str) -> aws.ec2.SecurityGroup:
            return aws.ec2.SecurityGroup(
                ids.groups[role].name,
                vpc_id=args.vpc_id,
                description=description,
                tags={**tags, "Name": f"{c.prefix}-{role}"},
                opts=child(self),
            )

        alb = group("alb", "ALB: HTTPS (and the HTTP redirect) from the allowed CIDRs")
        tasks = group("tasks", "Serving tasks: the sidecar port from the ALB only")
        hosts = group("hosts", "GPU hosts: no inbound; outbound HTTPS for ECS, ECR, SSM")
        fetcher = group("fetcher", "Pre-warm fetcher: outbound HTTPS and NFS only")
        efs = group("efs", "Model cache: NFS from serving tasks and the fetcher only")

        def rule(
            kind: type[aws.vpc.SecurityGroupIngressRule] | type[aws.vpc.SecurityGroupEgressRule],
            res: Res,
            sg: aws.ec2.SecurityGroup,
            port: int,
            description: str,
            cidr: str | None,
            peer: aws.ec2.SecurityGroup | None,
        ) -> None:
            kind(
                res.name,
                security_group_id=sg.id,
                description=description,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=cidr,
                referenced_security_group_id=peer.id if peer else None,
                tags=tags,
                opts=child(self, res),
            )

        def ingress(
            rule_name: str | tuple[int, str],
            sg: aws.ec2.SecurityGroup,
            port: int,
            description: str,
            cidr: str | None = None,
            source: aws.ec2.SecurityGroup | None = None,
        ) -> None:
            res = ids.rules[rule_name] if isinstance(rule_name, str) else ids.alb_ingress[rule_name]
            rule(aws.vpc.SecurityGroupIngressRule, res, sg, port, description, cidr, source)

        def egress(
            rule_name: str,
            sg: aws.ec2.SecurityGroup,
            port: int,
            description: str,
            cidr: str | None = None,
            dest: aws.ec2.SecurityGroup | None = None,
        ) -> None:
            rule(
                aws.vpc.SecurityGroupEgressRule,
                ids.rules[rule_name],
                sg,
                port,
                description,
                cidr,
                dest,
            )

        for port, cidr in ids.alb_ingress:
            ingress((port, cidr), alb, port, f"clients on {port}", cidr=cidr)
        egress("alb-to-tasks", alb, SIDECAR_PORT, "to the sidecar", dest=tasks)
        ingress("tasks-from-alb", tasks, SIDECAR_PORT, "from the ALB", source=alb)
        for role, sg in (("tasks", tasks), ("hosts", hosts), ("fetcher", fetcher)):
            # HTTPS anywhere: ECR/Docker Hub pulls, the model hub, AWS APIs without endpoints.
            egress(
                f"{role}-https",
                sg,
                443,
                "HTTPS to AWS APIs, registries, model hub",
                cidr="0.0.0.0/0",
            )
        egress("tasks-to-efs", tasks, NFS_PORT, "NFS to the model cache", dest=efs)
        # The ECS agent may mount EFS from the host's namespace rather than the task's.
        egress("hosts-to-efs", hosts, NFS_PORT, "NFS to the model cache", dest=efs)
        egress("fetcher-to-efs", fetcher, NFS_PORT, "NFS to the model cache", dest=efs)
        ingress("efs-from-hosts", efs, NFS_PORT, "NFS from GPU hosts", source=hosts)
        ingress("efs-from-tasks", efs, NFS_PORT, "NFS from serving tasks", source=tasks)
        ingress("efs-from-fetcher", efs, NFS_PORT, "NFS from the pre-warm fetcher", source=fetcher)

        self.alb_sg_id = alb.id
        self.tasks_sg_id = tasks.id
        self.hosts_sg_id = hosts.id
        self.fetcher_sg_id = fetcher.id
        self.efs_sg_id = efs.id
        self.register_outputs({"alb_sg_id": alb.id, "tasks_sg_id": tasks.id})

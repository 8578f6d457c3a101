"""The VPC: a new one (public + private subnets per AZ, NAT, endpoints) or an existing one."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import assume_role_policy, child, policy_json, stack_tags
from modelfleet.plan import FleetPlan


@dataclass(frozen=True)
class NetworkArgs:
    plan: FleetPlan
    availability_zones: list[str]
    region: str


def subnet_cidrs(vpc_cidr: str, azs: int) -> tuple[list[str], list[str]]:
    """Public /20s from the bottom of the VPC, private /19s from the top half.

    Private subnets are larger: every ECS task in awsvpc mode takes an address.
    """
    net = ipaddress.IPv4Network(vpc_cidr)
    halves = list(net.subnets(prefixlen_diff=1))
    public = [str(s) for s in halves[0].subnets(new_prefix=min(net.prefixlen + 4, 28))][:azs]
    private = [str(s) for s in halves[1].subnets(new_prefix=min(net.prefixlen + 3, 27))][:azs]
    return public, private


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:network:Network", name, None, opts)
        c = args.plan.config
        net = c.network
        if net.vpc_id is not None:
            # Existing VPC: the network team owns routing, NAT and endpoints.
            existing = aws.ec2.get_vpc(id=net.vpc_id)
            self.vpc_id = pulumi.Output.from_input(net.vpc_id)
            self.vpc_cidr = pulumi.Output.from_input(existing.cidr_block)
            self.public_subnet_ids = [pulumi.Output.from_input(s) for s in net.public_subnet_ids]
            self.private_subnet_ids = [pulumi.Output.from_input(s) for s in net.private_subnet_ids]
            self.register_outputs({"vpc_id": self.vpc_id})
            return

        azs = args.availability_zones[: net.availability_zones]
        tags = stack_tags(c)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=net.cidr,
            enable_dns_hostnames=True,  # EFS mount targets and interface endpoints need DNS
            enable_dns_support=True,
            tags={**tags, "Name": f"{c.prefix}-vpc"},
            opts=child(self),
        )
        # The default security group of a new VPC allows all traffic between its members;
        # adopting it with no rules leaves it closed.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child(self)
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child(self))
        public_cidrs, private_cidrs = subnet_cidrs(net.cidr, len(azs))

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**tags, "Name": f"{c.prefix}-public"},
            opts=child(self),
        )
        public: list[aws.ec2.Subnet] = []
        for i, (az, cidr) in enumerate(zip(azs, public_cidrs, strict=True)):
            s = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                map_public_ip_on_launch=False,  # only the ALB lives here, with its own IPs
                tags={**tags, "Name": f"{c.prefix}-public-{az}", "modelfleet:tier": "public"},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}-rta",
                subnet_id=s.id,
                route_table_id=public_rt.id,
                opts=child(self),
            )
            public.append(s)

        nats: list[aws.ec2.NatGateway] = []
        for i in range(c.nat_gateway_count):
            eip = aws.ec2.Eip(f"{name}-nat-{i}-eip", domain="vpc", tags=tags, opts=child(self))
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags={**tags, "Name": f"{c.prefix}-nat-{azs[i]}"},
                    opts=child(self, depends_on=[igw]),
                )
            )

        private: list[aws.ec2.Subnet] = []
        private_rts: list[aws.ec2.RouteTable] = []
        for i, (az, cidr) in enumerate(zip(azs, private_cidrs, strict=True)):
            s = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{c.prefix}-private-{az}", "modelfleet:tier": "private"},
                opts=child(self),
            )
            # Each AZ leaves through its own NAT when there is one per AZ, so an AZ outage
            # does not cut the others off.
            nat = nats[i % len(nats)]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={**tags, "Name": f"{c.prefix}-private-{az}"},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-rta", subnet_id=s.id, route_table_id=rt.id, opts=child(self)
            )
            private.append(s)
            private_rts.append(rt)

        # ECR serves image layers from S3: the gateway endpoint is free and takes the bulk of
        # every image pull off the NAT gateway.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={**tags, "Name": f"{c.prefix}-s3"},
            opts=child(self),
        )

        if args.plan.interface_endpoints:
            self._interface_endpoints(name, args, vpc, private, tags)
        self._flow_logs(name, vpc, c.retention_days, tags)
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self._vpc = vpc
        self.register_outputs({"vpc_id": vpc.id, "private_subnet_ids": self.private_subnet_ids})

    def _interface_endpoints(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """Keep ECR, logs, secrets and metrics traffic inside the VPC (and off NAT's per-GB fee)."""
        sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description="Interface endpoints: HTTPS from inside the VPC",
            tags={**tags, "Name": f"{args.plan.config.prefix}-endpoints"},
            opts=child(self),
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https",
            security_group_id=sg.id,
            description="HTTPS from the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=vpc.cidr_block,
            tags=tags,
            opts=child(self),
        )
        for svc in args.plan.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{svc.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{svc}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[sg.id],
                tags={**tags, "Name": f"{args.plan.config.prefix}-{svc}"},
                opts=child(self),
            )

    def _flow_logs(self, name: str, vpc: aws.ec2.Vpc, retention: int, tags: dict[str, str]) -> None:
        """Rejected flows only: what a security review asks for, at a fraction of ALL's volume."""
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs", retention_in_days=retention, tags=tags, opts=child(self)
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
            tags=tags,
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=policy_json(
                [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams",
                        ],
                        "Resource": [group.arn, pulumi.Output.concat(group.arn, ":*")],
                    }
                ]
            ),
            opts=child(self),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="REJECT",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=tags,
            opts=child(self),
        )

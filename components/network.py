"""The VPC: a new one (public + private subnets per AZ, NAT, endpoints) or an existing one."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import assume_role_policy, child, invoke, policy_json, stack_tags
from modelfleet.identities import NetworkIds
from modelfleet.plan_types import FleetPlan


@dataclass(frozen=True)
class NetworkArgs:
    plan: FleetPlan
    availability_zones: list[str]
    region: str


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
        ids = args.plan.ids.network
        layout = args.plan.subnets
        if layout is None or net.vpc_id is not None:
            # Existing VPC: the network team owns routing, NAT and endpoints.
            existing = aws.ec2.get_vpc(id=net.vpc_id, opts=invoke(self))
            self.vpc_id = pulumi.Output.from_input(existing.id)
            self.vpc_cidr = pulumi.Output.from_input(existing.cidr_block)
            self.public_subnet_ids = [pulumi.Output.from_input(s) for s in net.public_subnet_ids]
            self.private_subnet_ids = [pulumi.Output.from_input(s) for s in net.private_subnet_ids]
            self.register_outputs({"vpc_id": self.vpc_id})
            return

        assert ids.vpc and ids.default_sg and ids.igw and ids.public_rt and ids.s3  # a new VPC
        azs = args.availability_zones[: net.availability_zones]
        if len(azs) < net.availability_zones:
            raise pulumi.RunError(
                f"modelfleet:network.availabilityZones: {net.availability_zones} requested, "
                f"but {c.region} offers {len(azs)} available zones to this account"
            )
        tags = stack_tags(c)
        vpc = aws.ec2.Vpc(
            ids.vpc.name,
            cidr_block=layout.vpc,
            enable_dns_hostnames=True,  # EFS mount targets and interface endpoints need DNS
            enable_dns_support=True,
            tags={**tags, "Name": f"{c.prefix}-vpc"},
            opts=child(self),
        )
        # The default security group of a new VPC allows all traffic between its members;
        # adopting it with no rules leaves it closed.
        aws.ec2.DefaultSecurityGroup(
            ids.default_sg.name, vpc_id=vpc.id, tags=tags, opts=child(self)
        )
        igw = aws.ec2.InternetGateway(ids.igw.name, vpc_id=vpc.id, tags=tags, opts=child(self))

        public_rt = aws.ec2.RouteTable(
            ids.public_rt.name,
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**tags, "Name": f"{c.prefix}-public"},
            opts=child(self),
        )
        public: list[aws.ec2.Subnet] = []
        for az, cidr, pub in zip(azs, layout.public, ids.public, strict=True):
            s = aws.ec2.Subnet(
                pub.subnet.name,
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                map_public_ip_on_launch=False,  # only the ALB lives here, with its own IPs
                tags={**tags, "Name": f"{c.prefix}-public-{az}", "modelfleet:tier": "public"},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                pub.association.name,
                subnet_id=s.id,
                route_table_id=public_rt.id,
                opts=child(self),
            )
            public.append(s)

        nats: list[aws.ec2.NatGateway] = []
        for i, nat_ids in enumerate(ids.nats):
            eip = aws.ec2.Eip(nat_ids.eip.name, domain="vpc", tags=tags, opts=child(self))
            nats.append(
                aws.ec2.NatGateway(
                    nat_ids.gateway.name,
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags={**tags, "Name": f"{c.prefix}-nat-{azs[i]}"},
                    opts=child(self, depends_on=[igw]),
                )
            )

        private: list[aws.ec2.Subnet] = []
        private_rts: list[aws.ec2.RouteTable] = []
        for i, (az, cidr, priv) in enumerate(zip(azs, layout.private, ids.private, strict=True)):
            s = aws.ec2.Subnet(
                priv.subnet.name,
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
                priv.route_table.name,
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={**tags, "Name": f"{c.prefix}-private-{az}"},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                priv.association.name, subnet_id=s.id, route_table_id=rt.id, opts=child(self)
            )
            private.append(s)
            private_rts.append(rt)

        # ECR serves image layers from S3: the gateway endpoint is free and takes the bulk of
        # every image pull off the NAT gateway.
        aws.ec2.VpcEndpoint(
            ids.s3.name,
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={**tags, "Name": f"{c.prefix}-s3"},
            opts=child(self),
        )

        if args.plan.interface_endpoints:
            self._interface_endpoints(ids, args, vpc, private, tags)
        self._flow_logs(ids, vpc, c.retention_days, tags)
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self._vpc = vpc
        self.register_outputs({"vpc_id": vpc.id, "private_subnet_ids": self.private_subnet_ids})

    def _interface_endpoints(
        self,
        ids: NetworkIds,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """Keep ECR, logs, secrets and metrics traffic inside the VPC (and off NAT's per-GB fee)."""
        assert ids.endpoints_sg and ids.endpoints_https and ids.endpoints is not None
        sg = aws.ec2.SecurityGroup(
            ids.endpoints_sg.name,
            vpc_id=vpc.id,
            description="Interface endpoints: HTTPS from inside the VPC",
            tags={**tags, "Name": f"{args.plan.config.prefix}-endpoints"},
            opts=child(self),
        )
        aws.vpc.SecurityGroupIngressRule(
            ids.endpoints_https.name,
            security_group_id=sg.id,
            description="HTTPS from the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=vpc.cidr_block,
            tags=tags,
            opts=child(self),
        )
        for svc, endpoint in ids.endpoints.items():
            aws.ec2.VpcEndpoint(
                endpoint.name,
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{svc}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[sg.id],
                tags={**tags, "Name": f"{args.plan.config.prefix}-{svc}"},
                opts=child(self),
            )

    def _flow_logs(
        self, ids: NetworkIds, vpc: aws.ec2.Vpc, retention: int, tags: dict[str, str]
    ) -> None:
        """Rejected flows only: what a security review asks for, at a fraction of ALL's volume."""
        assert ids.flow_logs and ids.flow_logs_role and ids.flow_logs_policy and ids.flow_log
        group = aws.cloudwatch.LogGroup(
            ids.flow_logs.name, retention_in_days=retention, tags=tags, opts=child(self)
        )
        role = aws.iam.Role(
            ids.flow_logs_role.name,
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
            tags=tags,
            opts=child(self),
        )
        aws.iam.RolePolicy(
            ids.flow_logs_policy.name,
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
            ids.flow_log.name,
            vpc_id=vpc.id,
            traffic_type="REJECT",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=tags,
            opts=child(self),
        )

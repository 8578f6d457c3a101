"""Network (new VPC or existing), security groups and GPU capacity, on recorded inputs."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from components.ecs.gpu_capacity import GPU_AMI_PARAMETER
from components.harness import AMI, Run
from modelfleet.plan import SIDECAR_PORT, FleetPlan

pytestmark = pytest.mark.xdist_group("infra")

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
CP = "aws:ecs/capacityProvider:CapacityProvider"


def _tier(run: Run, tier: str) -> list[dict[str, object]]:
    return [s.inputs for s in run.by_type(SUBNET) if s.inputs["tags"]["modelfleet:tier"] == tier]


@pytest.mark.parametrize(("stack", "azs", "nats"), [("dev", 2, 1), ("prod", 3, 3)])
def test_new_vpc_has_public_and_private_subnets_per_az_and_nat(
    request: pytest.FixtureRequest, stack: str, azs: int, nats: int
) -> None:
    run: Run = request.getfixturevalue(stack)
    vpc = run.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsHostnames"] is True
    for tier in ("public", "private"):
        subnets = _tier(run, tier)
        assert len(subnets) == azs
        assert len({s["availabilityZone"] for s in subnets}) == azs, f"{tier}: one per AZ"
        assert all(s["mapPublicIpOnLaunch"] is False for s in subnets)
    assert len(run.by_type(NAT)) == nats
    # NAT gateways sit in public subnets, each in a different one.
    nat_subnets = [n.inputs["subnetId"] for n in run.by_type(NAT)]
    assert len(set(nat_subnets)) == nats
    assert all("-public-" in s for s in nat_subnets)
    # Every private route table leaves through a NAT, never the internet gateway.
    for rt in run.by_type("aws:ec2/routeTable:RouteTable"):
        (route,) = rt.inputs["routes"]
        if "-private-" in rt.name:
            assert "natGatewayId" in route and "gatewayId" not in route
        else:
            assert "-igw-" in route["gatewayId"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_s3_gateway_endpoint_on_private_route_tables(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run: Run = request.getfixturevalue(stack)
    s3 = run.one(ENDPOINT, "-s3")
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    assert s3.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    private_rts = {f"{r.name}-id" for r in run.by_type("aws:ec2/routeTable:RouteTable")}
    private_rts = {r for r in private_rts if "-private-" in r}
    assert set(s3.inputs["routeTableIds"]) == private_rts


def test_prod_interface_endpoints_dev_none(dev: Run, prod: Run) -> None:
    interface = {
        e.inputs["serviceName"].removeprefix("com.amazonaws.us-east-1.")
        for e in prod.by_type(ENDPOINT)
        if e.inputs["vpcEndpointType"] == "Interface"
    }
    assert interface == {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring"}
    private = {f"{s.name}-id" for s in prod.by_type(SUBNET) if "-private-" in s.name}
    for e in prod.by_type(ENDPOINT):
        if e.inputs["vpcEndpointType"] == "Interface":
            assert e.inputs["privateDnsEnabled"] is True
            assert set(e.inputs["subnetIds"]) == private
    assert all(e.inputs["vpcEndpointType"] == "Gateway" for e in dev.by_type(ENDPOINT))


def test_existing_vpc_creates_no_network_and_uses_given_subnets(
    staging: Run, staging_plan: FleetPlan
) -> None:
    net = staging_plan.config.network
    for t in ("aws:ec2/vpc:Vpc", SUBNET, NAT, "aws:ec2/internetGateway:InternetGateway", ENDPOINT):
        assert staging.by_type(t) == [], f"{t} created in an existing VPC"
    svc = staging.one("aws:ecs/service:Service")
    assert svc.inputs["networkConfiguration"]["subnets"] == net.private_subnet_ids
    assert staging.one("aws:lb/loadBalancer:LoadBalancer").inputs["subnets"] == (
        net.public_subnet_ids
    )
    assert staging.one(ASG).inputs["vpcZoneIdentifiers"] == net.private_subnet_ids
    mounts = staging.by_type("aws:efs/mountTarget:MountTarget")
    assert sorted(m.inputs["subnetId"] for m in mounts) == sorted(net.private_subnet_ids)
    assert all(
        sg.inputs["vpcId"] == net.vpc_id
        for sg in staging.by_type("aws:ec2/securityGroup:SecurityGroup")
    )


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_only_alb_is_open_to_the_internet(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    https = stack != "dev"
    open_ports = sorted(
        int(r.inputs["fromPort"])
        for r in run.by_type(INGRESS)
        if r.inputs.get("cidrIpv4") == "0.0.0.0/0"
    )
    assert open_ports == ([80, 443] if https else [80])
    for r in run.by_type(INGRESS):
        if r.inputs.get("cidrIpv4") == "0.0.0.0/0":
            assert r.inputs["securityGroupId"].endswith("-security-alb-id")
            assert r.inputs["fromPort"] == r.inputs["toPort"]
    # Tasks admit the sidecar port from the ALB's group and nothing else.
    tasks_in = [
        r.inputs for r in run.by_type(INGRESS) if "-tasks-id" in r.inputs["securityGroupId"]
    ]
    assert len(tasks_in) == 1
    (rule,) = tasks_in
    assert (rule["fromPort"], rule["toPort"]) == (SIDECAR_PORT, SIDECAR_PORT)
    assert rule["referencedSecurityGroupId"].endswith("-security-alb-id")
    assert "cidrIpv4" not in rule
    # GPU hosts take no inbound traffic at all.
    assert not [r for r in run.by_type(INGRESS) if "-hosts-id" in r.inputs["securityGroupId"]]


# --- GPU capacity ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_launch_template_hardening(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    prefix = request.getfixturevalue(f"{stack}_plan").config.prefix
    templates = run.by_type(LT)
    assert templates
    for lt in templates:
        i = lt.inputs
        assert i["imageId"] == AMI  # what the SSM parameter invoke answered
        md = i["metadataOptions"]
        assert md["httpTokens"] == "required"
        assert md["httpPutResponseHopLimit"] == 1
        (disk,) = i["blockDeviceMappings"]
        assert disk["ebs"]["encrypted"] == "true"
        assert disk["ebs"]["volumeSize"] >= 100  # the vLLM image alone unpacks to ~25 GB
        (nic,) = i["networkInterfaces"]
        assert nic["associatePublicIpAddress"] == "false"
        assert nic["securityGroups"] == [f"{prefix}-security-hosts-id"]
        script = base64.b64decode(i["userData"]).decode()
        cluster = run.one("aws:ecs/cluster:Cluster").outputs["name"]
        assert f'cluster="{cluster}"' in script
        assert "ECS_CLUSTER=${cluster}" in script
        assert "ECS_ENABLE_GPU_SUPPORT=true" in script


def test_ami_comes_from_the_gpu_al2023_ssm_parameter() -> None:
    assert GPU_AMI_PARAMETER == (
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    )


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_asg_and_capacity_provider(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    plan: FleetPlan = request.getfixturevalue(f"{stack}_plan")
    groups: dict[str, list[object]] = {}
    for m in plan.models:
        groups.setdefault(f"{m.instance_type.replace('.', '-')}-{m.capacity}", []).append(m)
    assert len(run.by_type(ASG)) == len(groups)
    for key, models in groups.items():
        asg = run.one(ASG, f"-{key}-asg").inputs
        capacity = key.rsplit("-", 1)[1]
        assert asg["minSize"] == 0
        assert asg["protectFromScaleIn"] is True
        spot = capacity in ("spot", "mixed")
        assert asg["capacityRebalance"] is spot
        if spot:
            assert "launchTemplate" not in asg
            dist = asg["mixedInstancesPolicy"]["instancesDistribution"]
            expected_base = (
                sum(m.cost.instances_min for m in models) if capacity == "mixed" else 0  # type: ignore[attr-defined]
            )
            assert dist["onDemandBaseCapacity"] == expected_base
            assert dist["onDemandPercentageAboveBaseCapacity"] == 0
        else:
            assert "mixedInstancesPolicy" not in asg
        # The gpu-waste alarm reads this group metric; ASGs publish it only when enabled.
        assert "GroupInServiceInstances" in asg["enabledMetrics"]
        cp = run.one(CP, f"-{key}-cp").inputs["autoScalingGroupProvider"]
        assert cp["managedScaling"]["status"] == "ENABLED"
        assert cp["managedTerminationProtection"] == "ENABLED"
        assert cp["autoScalingGroupArn"].endswith(f"-{key}-asg")


def test_prod_mixed_keeps_the_minimum_on_demand(prod: Run, prod_plan: FleetPlan) -> None:
    m = prod_plan.model("llama-70b")
    assert m.capacity == "mixed" and m.cost.instances_min >= 1
    asg = prod.one(ASG, "-g6e-12xlarge-mixed-asg").inputs
    assert asg["mixedInstancesPolicy"]["instancesDistribution"]["onDemandBaseCapacity"] == (
        m.cost.instances_min
    )


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_cluster_insights_and_fargate(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    cluster = run.one("aws:ecs/cluster:Cluster").inputs
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
    providers = run.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    assert "FARGATE" in providers["capacityProviders"]
    gpu_providers = {cp.outputs["name"] for cp in run.by_type(CP)}
    assert gpu_providers <= set(providers["capacityProviders"])


def test_on_demand_uses_the_launch_template_directly(given_stack: tuple[Path, Run]) -> None:
    _, run = given_stack
    (asg,) = run.by_type(ASG)
    assert asg.name.endswith("-on-demand-asg")
    assert "mixedInstancesPolicy" not in asg.inputs
    assert asg.inputs["capacityRebalance"] is False
    lt = run.one(LT)
    assert asg.inputs["launchTemplate"]["id"] == lt.outputs["id"]
    assert asg.inputs["minSize"] == 0

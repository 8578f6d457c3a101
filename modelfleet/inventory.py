"""The resources `pulumi up` creates for a plan: (type token, logical name), in pure Python.

`modelfleet plan` shows this list without a Pulumi engine. It mirrors components/, and
tests/infra/test_inventory.py runs the real program under mocks for every shipped stack and
fails on any difference, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections import defaultdict

from modelfleet.monitoring import ModelDims, model_alarms, stack_alarms
from modelfleet.naming import load_balancer_name, target_group_name
from modelfleet.plan import FleetPlan

Resource = tuple[str, str]


def _network(plan: FleetPlan, n: str) -> list[Resource]:
    c = plan.config
    if c.network.vpc_id is not None:
        return []
    azs = c.network.availability_zones
    out: list[Resource] = [
        ("aws:ec2/vpc:Vpc", f"{n}-vpc"),
        ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", f"{n}-default-sg"),
        ("aws:ec2/internetGateway:InternetGateway", f"{n}-igw"),
        ("aws:ec2/routeTable:RouteTable", f"{n}-public-rt"),
    ]
    for i in range(azs):
        out += [
            ("aws:ec2/subnet:Subnet", f"{n}-public-{i}"),
            ("aws:ec2/routeTableAssociation:RouteTableAssociation", f"{n}-public-{i}-rta"),
        ]
    for i in range(c.nat_gateway_count):
        out += [("aws:ec2/eip:Eip", f"{n}-nat-{i}-eip"),
                ("aws:ec2/natGateway:NatGateway", f"{n}-nat-{i}")]  # fmt: skip
    for i in range(azs):
        out += [
            ("aws:ec2/subnet:Subnet", f"{n}-private-{i}"),
            ("aws:ec2/routeTable:RouteTable", f"{n}-private-{i}-rt"),
            ("aws:ec2/routeTableAssociation:RouteTableAssociation", f"{n}-private-{i}-rta"),
        ]
    out.append(("aws:ec2/vpcEndpoint:VpcEndpoint", f"{n}-s3"))
    if plan.interface_endpoints:
        out += [
            ("aws:ec2/securityGroup:SecurityGroup", f"{n}-endpoints-sg"),
            ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"{n}-endpoints-https"),
        ]
        out += [("aws:ec2/vpcEndpoint:VpcEndpoint", f"{n}-{s.replace('.', '-')}")
                for s in plan.interface_endpoints]  # fmt: skip
    out += [
        ("aws:cloudwatch/logGroup:LogGroup", f"{n}-flow-logs"),
        ("aws:iam/role:Role", f"{n}-flow-logs-role"),
        ("aws:iam/rolePolicy:RolePolicy", f"{n}-flow-logs-policy"),
        ("aws:ec2/flowLog:FlowLog", f"{n}-flow-log"),
    ]
    return out


def _security(plan: FleetPlan, n: str) -> list[Resource]:
    sg = "aws:ec2/securityGroup:SecurityGroup"
    ing = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    eg = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
    out: list[Resource] = [(sg, f"{n}-{r}") for r in ("alb", "tasks", "hosts", "fetcher", "efs")]
    ports = [443, 80] if plan.https else [80]
    for i, _ in enumerate(plan.config.network.ingress_cidrs):
        out += [(ing, f"{n}-alb-in-{p}-{i}") for p in ports]
    out += [(eg, f"{n}-alb-to-tasks"), (ing, f"{n}-tasks-from-alb")]
    out += [(eg, f"{n}-{r}-https") for r in ("tasks", "hosts", "fetcher")]
    out += [
        (eg, f"{n}-tasks-to-efs"),
        (eg, f"{n}-hosts-to-efs"),
        (eg, f"{n}-fetcher-to-efs"),
        (ing, f"{n}-efs-from-hosts"),
        (ing, f"{n}-efs-from-tasks"),
        (ing, f"{n}-efs-from-fetcher"),
    ]
    return out


def _cache(plan: FleetPlan, n: str) -> list[Resource]:
    c = plan.config
    subnets = (
        len(c.network.private_subnet_ids)
        if c.network.vpc_id is not None
        else c.network.availability_zones
    )
    out: list[Resource] = [
        ("aws:efs/fileSystem:FileSystem", f"{n}-efs"),
        ("aws:efs/backupPolicy:BackupPolicy", f"{n}-backup"),
        ("aws:efs/fileSystemPolicy:FileSystemPolicy", f"{n}-policy"),
    ]
    out += [("aws:efs/mountTarget:MountTarget", f"{n}-mount-{i}") for i in range(subnets)]
    out += [("aws:efs/accessPoint:AccessPoint", f"{n}-{m.short}-ap") for m in plan.models]
    return out


def _secrets(plan: FleetPlan, n: str) -> list[Resource]:
    c = plan.config
    roles = []
    if c.gateway.api_keys is not None:
        roles.append("api-keys")
    if c.gateway.fallback is not None:
        roles.append("fallback-api-key")
    if c.hf_token is not None:
        roles.append("hf-token")
    out: list[Resource] = []
    for r in roles:
        out += [("aws:secretsmanager/secret:Secret", f"{n}-{r}"),
                ("aws:secretsmanager/secretVersion:SecretVersion", f"{n}-{r}-value")]  # fmt: skip
    return out


def _images(plan: FleetPlan, n: str) -> list[Resource]:
    out: list[Resource] = []
    for role, given in (("sidecar", plan.config.images.sidecar),
                        ("fetcher", plan.config.images.fetcher)):  # fmt: skip
        if given is None:
            out += [
                ("aws:ecr/repository:Repository", f"{n}-{role}"),
                ("aws:ecr/lifecyclePolicy:LifecyclePolicy", f"{n}-{role}-lifecycle"),
                ("docker-build:index:Image", f"{n}-{role}-image"),
            ]
    return out


def _gpu(plan: FleetPlan, n: str) -> list[Resource]:
    out: list[Resource] = [
        ("aws:ecs/cluster:Cluster", f"{n}-cluster"),
        ("aws:iam/role:Role", f"{n}-host-role"),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{n}-host-policy-0"),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{n}-host-policy-1"),
        ("aws:iam/instanceProfile:InstanceProfile", f"{n}-host-profile"),
    ]
    for key in plan.capacity_groups:
        out += [
            ("aws:ec2/launchTemplate:LaunchTemplate", f"{n}-{key}-lt"),
            ("aws:autoscaling/group:Group", f"{n}-{key}-asg"),
            ("aws:ecs/capacityProvider:CapacityProvider", f"{n}-{key}-cp"),
        ]
    out.append(("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders", f"{n}-providers"))
    return out


def _roles(plan: FleetPlan, n: str) -> list[Resource]:
    out: list[Resource] = []
    for m in plan.models:
        out += [
            ("aws:iam/role:Role", f"{n}-{m.short}-execution"),
            ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
             f"{n}-{m.short}-execution-managed"),
            ("aws:iam/rolePolicy:RolePolicy", f"{n}-{m.short}-execution-policy"),
            ("aws:iam/role:Role", f"{n}-{m.short}-task"),
            ("aws:iam/rolePolicy:RolePolicy", f"{n}-{m.short}-task-policy"),
        ]  # fmt: skip
    return out


def _load_balancer(plan: FleetPlan, n: str) -> list[Resource]:
    c = plan.config
    out: list[Resource] = []
    if not c.ephemeral:
        b = f"{n}-access-logs"
        out += [
            ("aws:s3/bucket:Bucket", b),
            ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{b}-pab"),
            ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", f"{b}-ownership"),
            ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
             f"{b}-sse"),
            ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
             f"{b}-lifecycle"),
            ("aws:s3/bucketPolicy:BucketPolicy", f"{b}-policy"),
        ]  # fmt: skip
    out.append(("aws:lb/loadBalancer:LoadBalancer", load_balancer_name(c.prefix)))
    out += [("aws:lb/targetGroup:TargetGroup", target_group_name(m.short)) for m in plan.models]
    if plan.https:
        out += [("aws:lb/listener:Listener", f"{n}-https"),
                ("aws:lb/listener:Listener", f"{n}-http-redirect")]  # fmt: skip
    else:
        out.append(("aws:lb/listener:Listener", f"{n}-http"))
    out += [("aws:lb/listenerRule:ListenerRule", f"{n}-{m.short}-rule") for m in plan.models]
    return out


def _prewarm(plan: FleetPlan, n: str) -> list[Resource]:
    out: list[Resource] = []
    for m in plan.models:
        out += [
            ("aws:cloudwatch/logGroup:LogGroup", f"{n}-{m.short}-logs"),
            ("aws:ecs/taskDefinition:TaskDefinition", f"{n}-{m.short}-fetcher"),
            ("pulumi-python:dynamic:Resource", f"{n}-{m.short}-run"),
        ]
    return out


def _serving(plan: FleetPlan, prefix: str) -> list[Resource]:
    out: list[Resource] = []
    for m in plan.models:
        n = f"{prefix}-{m.short}"
        out += [
            ("aws:cloudwatch/logGroup:LogGroup", f"{n}-logs"),
            ("aws:ecs/taskDefinition:TaskDefinition", f"{n}-task"),
            ("aws:ecs/service:Service", f"{n}-service"),
        ]
        s = f"{n}-scaling"
        out += [
            ("aws:appautoscaling/target:Target", f"{s}-target"),
            ("aws:appautoscaling/policy:Policy", f"{s}-queue-depth"),
        ]
        if m.replicas_min == 0:
            out += [("aws:appautoscaling/policy:Policy", f"{s}-from-zero"),
                    ("aws:cloudwatch/metricAlarm:MetricAlarm", f"{s}-from-zero-alarm")]  # fmt: skip
        out += [
            ("aws:appautoscaling/scheduledAction:ScheduledAction",
             f"{s}-{a.name.removeprefix(m.short + '-')}")
            for a in plan.scheduled_actions
            if a.name.startswith(f"{m.short}-")
        ]  # fmt: skip
    return out


def _monitoring(plan: FleetPlan, n: str) -> list[Resource]:
    c = plan.config
    out: list[Resource] = [
        ("aws:sns/topic:Topic", f"{n}-alarms"),
        ("aws:sns/topicPolicy:TopicPolicy", f"{n}-alarms-policy"),
    ]
    out += [("aws:sns/topicSubscription:TopicSubscription", f"{n}-email-{i}")
            for i in range(len(c.alarms.emails))]  # fmt: skip
    specs = []
    for m in plan.models:
        specs += model_alarms(c, m, ModelDims("", "", "", ""))
    # EKS has no Auto Scaling group per capacity group: Karpenter launches the GPU nodes.
    asgs = dict.fromkeys(plan.capacity_groups, "") if plan.eks is None else {}
    specs += stack_alarms(c, "", "", "", asgs)
    out += [("aws:cloudwatch/metricAlarm:MetricAlarm",
             f"{n}-{s['AlarmName'].removeprefix(c.prefix + '-')}") for s in specs]  # fmt: skip
    out.append(("aws:cloudwatch/dashboard:Dashboard", f"{n}-dashboard"))
    return out


def inventory(plan: FleetPlan) -> list[Resource]:
    """Every resource of the program for this plan, components excluded, in creation order."""
    p = plan.config.prefix
    shared: list[Resource] = [
        ("aws:kms/key:Key", f"{p}-encryption-key"),
        ("aws:kms/alias:Alias", f"{p}-encryption-alias"),
        *_network(plan, f"{p}-network"),
        *_security(plan, f"{p}-security"),
        *_cache(plan, f"{p}-cache"),
        *_secrets(plan, f"{p}-secrets"),
        *_images(plan, f"{p}-images"),
    ]
    if plan.eks is not None:
        # platform: eks: the EKS platform replaces ECS capacity, tasks and services.
        return [
            *shared,
            *_load_balancer(plan, f"{p}-lb"),
            *((r.type, r.name) for r in plan.eks.resources),
            *_monitoring(plan, f"{p}-monitoring"),
        ]
    return [
        *shared,
        *_gpu(plan, f"{p}-gpu"),
        *_roles(plan, f"{p}-roles"),
        *_load_balancer(plan, f"{p}-lb"),
        *_prewarm(plan, f"{p}-prewarm"),
        *_serving(plan, p),
        *_monitoring(plan, f"{p}-monitoring"),
    ]


def count_by_type(resources: list[Resource]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for t, _ in resources:
        counts[t] += 1
    return dict(sorted(counts.items()))

"""Every resource of a stack, by what it is: its Pulumi type and logical name, decided once.

The plan builds these from the stack (`build_identities`), the components create exactly the
resources named here (they never format a name), and `modelfleet plan` lists them by walking
the same objects, so the listing and the program cannot disagree.

Names are keyed by what a resource is (a model's name, an email address, a CIDR, a managed
policy), never by its position in a list: removing or reordering one entry of a list changes
only that entry's resources. Names of the first release that were positional are kept as
`aliases`, so an existing stack adopts its resources instead of replacing them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any


@dataclass(frozen=True)
class Res:
    """One resource: Pulumi type token and logical name (unique in the stack)."""

    type: str
    name: str
    # Logical names this resource had in earlier releases (same parent), adopted on upgrade.
    aliases: tuple[str, ...] = ()


def content_key(value: str, length: int = 8) -> str:
    """A short, stable key for a value that cannot appear in a name as it is (an email)."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:length]


def cidr_key(cidr: str) -> str:
    """`10.0.0.0/8` -> `10-0-0-0-8`: readable in `pulumi preview`, unique per CIDR."""
    return cidr.replace(".", "-").replace("/", "-")


def walk(obj: Any) -> Iterator[Res]:
    """Every `Res` inside dataclasses, mappings and sequences, in declaration order."""
    if isinstance(obj, Res):
        yield obj
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            yield from walk(getattr(obj, f.name))
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        for v in obj:
            yield from walk(v)


# Pulumi type tokens used below, one place.
T_VPC = "aws:ec2/vpc:Vpc"
T_DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
T_IGW = "aws:ec2/internetGateway:InternetGateway"
T_RT = "aws:ec2/routeTable:RouteTable"
T_RTA = "aws:ec2/routeTableAssociation:RouteTableAssociation"
T_SUBNET = "aws:ec2/subnet:Subnet"
T_EIP = "aws:ec2/eip:Eip"
T_NAT = "aws:ec2/natGateway:NatGateway"
T_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
T_SG = "aws:ec2/securityGroup:SecurityGroup"
T_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
T_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
T_FLOW_LOG = "aws:ec2/flowLog:FlowLog"
T_KMS_KEY = "aws:kms/key:Key"
T_KMS_ALIAS = "aws:kms/alias:Alias"
T_EFS = "aws:efs/fileSystem:FileSystem"
T_EFS_BACKUP = "aws:efs/backupPolicy:BackupPolicy"
T_EFS_POLICY = "aws:efs/fileSystemPolicy:FileSystemPolicy"
T_MOUNT = "aws:efs/mountTarget:MountTarget"
T_ACCESS_POINT = "aws:efs/accessPoint:AccessPoint"
T_SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token
T_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"  # noqa: S105
T_ECR = "aws:ecr/repository:Repository"
T_ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
T_IMAGE = "docker-build:index:Image"
T_PULL_THROUGH = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
T_CREATION_TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
T_ECS_CLUSTER = "aws:ecs/cluster:Cluster"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_ASG = "aws:autoscaling/group:Group"
T_CAPACITY_PROVIDER = "aws:ecs/capacityProvider:CapacityProvider"
T_CLUSTER_PROVIDERS = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
T_BUCKET = "aws:s3/bucket:Bucket"
T_BUCKET_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
T_BUCKET_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
T_BUCKET_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
T_BUCKET_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
T_LB = "aws:lb/loadBalancer:LoadBalancer"
T_TG = "aws:lb/targetGroup:TargetGroup"
T_LISTENER = "aws:lb/listener:Listener"
T_RULE = "aws:lb/listenerRule:ListenerRule"
T_TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
T_DYNAMIC = "pulumi-python:dynamic:Resource"
T_SERVICE = "aws:ecs/service:Service"
T_SCALING_TARGET = "aws:appautoscaling/target:Target"
T_SCALING_POLICY = "aws:appautoscaling/policy:Policy"
T_SCHEDULED = "aws:appautoscaling/scheduledAction:ScheduledAction"
T_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
T_TOPIC = "aws:sns/topic:Topic"
T_TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
T_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
T_DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


# ---------------------------------------------------------------------------------------------
# Per component
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptionIds:
    component: str
    key: Res
    alias: Res
    alias_name: str  # the alias itself, "alias/modelfleet/<team>-<stack>"


@dataclass(frozen=True)
class SubnetIds:
    subnet: Res
    association: Res


@dataclass(frozen=True)
class NatIds:
    eip: Res
    gateway: Res


@dataclass(frozen=True)
class PrivateSubnetIds:
    subnet: Res
    route_table: Res
    association: Res


@dataclass(frozen=True)
class NetworkIds:
    """Empty resources (`vpc is None`) for a stack in an existing VPC."""

    component: str
    vpc: Res | None = None
    default_sg: Res | None = None
    igw: Res | None = None
    public_rt: Res | None = None
    # Subnets and NAT gateways per AZ slot (the n-th zone AWS lists): AZs are the identity.
    public: tuple[SubnetIds, ...] = ()
    nats: tuple[NatIds, ...] = ()
    private: tuple[PrivateSubnetIds, ...] = ()
    s3: Res | None = None
    endpoints_sg: Res | None = None
    endpoints_https: Res | None = None
    endpoints: Mapping[str, Res] | None = None  # by service (ecr.api, logs, ...)
    flow_logs: Res | None = None
    flow_logs_role: Res | None = None
    flow_logs_policy: Res | None = None
    flow_log: Res | None = None


@dataclass(frozen=True)
class SecurityIds:
    component: str
    groups: Mapping[str, Res]  # by role: alb, tasks, hosts, fetcher, efs
    # (port, CIDR) -> rule: keyed by what it admits, not by the CIDR's place in the list.
    alb_ingress: Mapping[tuple[int, str], Res]
    rules: Mapping[str, Res]  # by role: alb-to-tasks, tasks-https, efs-from-hosts, ...


@dataclass(frozen=True)
class CacheIds:
    component: str
    file_system: Res
    backup: Res
    policy: Res
    # Mount targets per AZ slot (private subnet), access points per model name.
    mounts: tuple[Res, ...]
    access_points: Mapping[str, Res]
    # vLLM's compile cache, writable, per model name (its path names the engine version).
    compile_access_points: Mapping[str, Res] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretIds:
    secret: Res
    version: Res


@dataclass(frozen=True)
class SecretsIds:
    component: str
    secrets: Mapping[str, SecretIds]  # by secret key (api_keys, fallback_api_key, hf_token)


@dataclass(frozen=True)
class ImageIds:
    repository: Res
    lifecycle: Res
    image: Res


@dataclass(frozen=True)
class ImagesIds:
    component: str
    images: Mapping[str, ImageIds]  # by role (sidecar, fetcher), only those built here


@dataclass(frozen=True)
class EngineImageIds:
    """The engine image's pull-through cache: empty (`rule is None`) when the image is used as
    given."""

    component: str
    secret: Res | None = None  # ecr-pullthroughcache/..., the Docker Hub credentials
    secret_version: Res | None = None
    template_role: Res | None = None  # ECR assumes it to create KMS-encrypted repositories
    template_role_policy: Res | None = None
    template: Res | None = None
    rule: Res | None = None
    digest: Res | None = None  # resolves the tag's digest at `pulumi up`, when not given


@dataclass(frozen=True)
class CapacityGroupIds:
    launch_template: Res
    asg: Res
    capacity_provider: Res


@dataclass(frozen=True)
class GpuIds:
    component: str
    cluster: Res
    host_role: Res
    host_policies: Mapping[str, Res]  # by managed policy name
    host_profile: Res
    groups: Mapping[str, CapacityGroupIds]  # by capacity group key
    providers: Res
    # Completing the warm pool's lifecycle hook and pulling through the engine image cache.
    host_policy: Res | None = None
    # Groups kept for one more `pulumi up` (keepCapacityProviders), by key: the same names
    # the group had when a model used it, so Pulumi keeps the existing resources.
    kept: Mapping[str, CapacityGroupIds] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRoleIds:
    execution: Res
    execution_managed: Res
    execution_policy: Res
    task: Res
    task_policy: Res


@dataclass(frozen=True)
class RolesIds:
    component: str
    models: Mapping[str, ModelRoleIds]


@dataclass(frozen=True)
class LoadBalancerIds:
    component: str
    access_logs: tuple[Res, ...]  # bucket, pab, ownership, sse, lifecycle, policy (not ephemeral)
    load_balancer: Res
    target_groups: Mapping[str, Res]  # by model name
    listeners: Mapping[str, Res]  # https + http-redirect, or http
    rules: Mapping[str, Res]  # by model name


@dataclass(frozen=True)
class PrewarmModelIds:
    log_group: Res
    task_definition: Res
    run: Res


@dataclass(frozen=True)
class PrewarmIds:
    component: str
    models: Mapping[str, PrewarmModelIds]


@dataclass(frozen=True)
class ServingIds:
    """One model's ECS serving slice and its scaling."""

    component: str
    log_group: Res
    task_definition: Res
    service: Res
    scaling_component: str
    scaling_target: Res
    queue_depth_policy: Res
    from_zero_policy: Res | None
    from_zero_alarm: Res | None
    scheduled: Mapping[str, Res]  # by action: scale-down, scale-up


@dataclass(frozen=True)
class MonitoringIds:
    component: str
    topic: Res
    topic_policy: Res
    subscriptions: Mapping[str, Res]  # by email address
    alarms: Mapping[str, Res]  # by AlarmName
    dashboard: Res


@dataclass(frozen=True)
class Identities:
    """The whole stack. Field order is creation order."""

    encryption: EncryptionIds
    network: NetworkIds
    security: SecurityIds
    cache: CacheIds
    secrets: SecretsIds
    images: ImagesIds
    engine_image: EngineImageIds
    gpu: GpuIds | None  # None on EKS: Karpenter's NodePools are the GPU capacity
    roles: RolesIds
    load_balancer: LoadBalancerIds
    prewarm: PrewarmIds
    serving: Mapping[str, ServingIds]  # by model name
    # platform: eks: the EKS platform's resources (modelfleet.eks.EksPlan.resources).
    eks: tuple[Res, ...]
    monitoring: MonitoringIds

    def resources(self) -> list[Res]:
        out = list(walk(self))
        names = [r.name for r in out]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:  # a bug in the builders, never the user's input: say so loudly
            raise AssertionError(f"duplicate logical names {dupes}")
        return out


# ---------------------------------------------------------------------------------------------
# Builders: names only. Numbers and settings live in the plan beside these.
# ---------------------------------------------------------------------------------------------


def encryption_ids(prefix: str, team: str, stack: str) -> EncryptionIds:
    n = f"{prefix}-encryption"
    # KMS aliases take letters, digits, '/', '_' and '-' (CreateAlias AliasName); stack names
    # may also hold '.'.
    alias = "alias/modelfleet/" + re.sub(r"[^A-Za-z0-9/_-]", "-", f"{team}-{stack}")
    return EncryptionIds(n, Res(T_KMS_KEY, f"{n}-key"), Res(T_KMS_ALIAS, f"{n}-alias"), alias)


def network_ids(prefix: str, azs: int, nat_gateways: int, endpoints: Sequence[str]) -> NetworkIds:
    n = f"{prefix}-network"
    return NetworkIds(
        component=n,
        vpc=Res(T_VPC, f"{n}-vpc"),
        default_sg=Res(T_DEFAULT_SG, f"{n}-default-sg"),
        igw=Res(T_IGW, f"{n}-igw"),
        public_rt=Res(T_RT, f"{n}-public-rt"),
        public=tuple(
            SubnetIds(Res(T_SUBNET, f"{n}-public-{i}"), Res(T_RTA, f"{n}-public-{i}-rta"))
            for i in range(azs)
        ),
        nats=tuple(
            NatIds(Res(T_EIP, f"{n}-nat-{i}-eip"), Res(T_NAT, f"{n}-nat-{i}"))
            for i in range(nat_gateways)
        ),
        private=tuple(
            PrivateSubnetIds(
                Res(T_SUBNET, f"{n}-private-{i}"),
                Res(T_RT, f"{n}-private-{i}-rt"),
                Res(T_RTA, f"{n}-private-{i}-rta"),
            )
            for i in range(azs)
        ),
        s3=Res(T_ENDPOINT, f"{n}-s3"),
        endpoints_sg=Res(T_SG, f"{n}-endpoints-sg") if endpoints else None,
        endpoints_https=Res(T_INGRESS, f"{n}-endpoints-https") if endpoints else None,
        endpoints={s: Res(T_ENDPOINT, f"{n}-{s.replace('.', '-')}") for s in endpoints},
        flow_logs=Res(T_LOG_GROUP, f"{n}-flow-logs"),
        flow_logs_role=Res(T_ROLE, f"{n}-flow-logs-role"),
        flow_logs_policy=Res(T_ROLE_POLICY, f"{n}-flow-logs-policy"),
        flow_log=Res(T_FLOW_LOG, f"{n}-flow-log"),
    )


SECURITY_GROUPS = ("alb", "tasks", "hosts", "fetcher", "efs")
# (rule, kind) in creation order; kind is ingress or egress.
SECURITY_RULES: tuple[tuple[str, str], ...] = (
    ("alb-to-tasks", T_EGRESS),
    ("tasks-from-alb", T_INGRESS),
    ("tasks-https", T_EGRESS),
    ("hosts-https", T_EGRESS),
    ("fetcher-https", T_EGRESS),
    ("tasks-to-efs", T_EGRESS),
    ("hosts-to-efs", T_EGRESS),
    ("fetcher-to-efs", T_EGRESS),
    ("efs-from-hosts", T_INGRESS),
    ("efs-from-tasks", T_INGRESS),
    ("efs-from-fetcher", T_INGRESS),
)


def security_ids(prefix: str, ingress_cidrs: Sequence[str], ports: Sequence[int]) -> SecurityIds:
    n = f"{prefix}-security"
    alb_ingress: dict[tuple[int, str], Res] = {}
    for i, cidr in enumerate(ingress_cidrs):
        for port in ports:
            # First release: `alb-in-<port>-<index>`; adopted so upgrading replaces nothing.
            alb_ingress[(port, cidr)] = Res(
                T_INGRESS, f"{n}-alb-in-{port}-{cidr_key(cidr)}", (f"{n}-alb-in-{port}-{i}",)
            )
    return SecurityIds(
        component=n,
        groups={g: Res(T_SG, f"{n}-{g}") for g in SECURITY_GROUPS},
        alb_ingress=alb_ingress,
        rules={r: Res(kind, f"{n}-{r}") for r, kind in SECURITY_RULES},
    )


def cache_ids(prefix: str, mount_targets: int, models: Mapping[str, str]) -> CacheIds:
    """`models`: model name -> short name. Each model has two access points: its weights, and
    vLLM's compile cache (which the ECS task and the EKS pod both mount)."""
    n = f"{prefix}-cache"
    return CacheIds(
        component=n,
        file_system=Res(T_EFS, f"{n}-efs"),
        backup=Res(T_EFS_BACKUP, f"{n}-backup"),
        policy=Res(T_EFS_POLICY, f"{n}-policy"),
        mounts=tuple(Res(T_MOUNT, f"{n}-mount-{i}") for i in range(mount_targets)),
        access_points={name: Res(T_ACCESS_POINT, f"{n}-{s}-ap") for name, s in models.items()},
        compile_access_points={
            name: Res(T_ACCESS_POINT, f"{n}-{s}-compile-ap") for name, s in models.items()
        },
    )


# Secret key (as the components and container definitions name it) -> name role.
SECRET_ROLES = {
    "api_keys": "api-keys",
    "fallback_api_key": "fallback-api-key",
    "hf_token": "hf-token",
}


def secrets_ids(prefix: str, present: Sequence[str]) -> SecretsIds:
    n = f"{prefix}-secrets"
    return SecretsIds(
        component=n,
        secrets={
            key: SecretIds(Res(T_SECRET, f"{n}-{role}"), Res(T_SECRET_VERSION, f"{n}-{role}-value"))
            for key, role in SECRET_ROLES.items()
            if key in present
        },
    )


def images_ids(prefix: str, built: Sequence[str]) -> ImagesIds:
    n = f"{prefix}-images"
    return ImagesIds(
        component=n,
        images={
            role: ImageIds(
                Res(T_ECR, f"{n}-{role}"),
                Res(T_ECR_LIFECYCLE, f"{n}-{role}-lifecycle"),
                Res(T_IMAGE, f"{n}-{role}-image"),
            )
            for role in built
        },
    )


def engine_image_ids(prefix: str, *, pull_through: bool, resolve_digest: bool) -> EngineImageIds:
    n = f"{prefix}-engine-image"
    if not pull_through:
        return EngineImageIds(n)
    return EngineImageIds(
        component=n,
        secret=Res(T_SECRET, f"{n}-hub-credentials"),
        secret_version=Res(T_SECRET_VERSION, f"{n}-hub-credentials-value"),
        template_role=Res(T_ROLE, f"{n}-template-role"),
        template_role_policy=Res(T_ROLE_POLICY, f"{n}-template-policy"),
        template=Res(T_CREATION_TEMPLATE, f"{n}-template"),
        rule=Res(T_PULL_THROUGH, f"{n}-rule"),
        digest=Res(T_DYNAMIC, f"{n}-digest") if resolve_digest else None,
    )


# Managed policies on the GPU hosts' role, in the order the first release attached them
# (its logical names were `host-policy-<index>`).
HOST_POLICIES = (
    "service-role/AmazonEC2ContainerServiceforEC2Role",
    "AmazonSSMManagedInstanceCore",
)


def _group_ids(n: str, key: str) -> CapacityGroupIds:
    return CapacityGroupIds(
        Res(T_LAUNCH_TEMPLATE, f"{n}-{key}-lt"),
        Res(T_ASG, f"{n}-{key}-asg"),
        Res(T_CAPACITY_PROVIDER, f"{n}-{key}-cp"),
    )


def gpu_ids(
    prefix: str,
    groups: Sequence[str],
    *,
    host_policy: bool = False,
    kept: Sequence[str] = (),
) -> GpuIds:
    n = f"{prefix}-gpu"
    return GpuIds(
        component=n,
        cluster=Res(T_ECS_CLUSTER, f"{n}-cluster"),
        host_role=Res(T_ROLE, f"{n}-host-role"),
        host_policies={
            p: Res(
                T_ATTACHMENT,
                f"{n}-host-policy-{p.rsplit('/', 1)[-1].lower()}",
                (f"{n}-host-policy-{i}",),
            )
            for i, p in enumerate(HOST_POLICIES)
        },
        host_profile=Res(T_PROFILE, f"{n}-host-profile"),
        groups={key: _group_ids(n, key) for key in groups},
        providers=Res(T_CLUSTER_PROVIDERS, f"{n}-providers"),
        host_policy=Res(T_ROLE_POLICY, f"{n}-host-inline") if host_policy else None,
        kept={key: _group_ids(n, key) for key in kept},
    )


def roles_ids(prefix: str, models: Mapping[str, str]) -> RolesIds:
    n = f"{prefix}-roles"
    return RolesIds(
        component=n,
        models={
            name: ModelRoleIds(
                Res(T_ROLE, f"{n}-{s}-execution"),
                Res(T_ATTACHMENT, f"{n}-{s}-execution-managed"),
                Res(T_ROLE_POLICY, f"{n}-{s}-execution-policy"),
                Res(T_ROLE, f"{n}-{s}-task"),
                Res(T_ROLE_POLICY, f"{n}-{s}-task-policy"),
            )
            for name, s in models.items()
        },
    )


def load_balancer_ids(
    prefix: str, models: Mapping[str, str], *, access_logs: bool, https: bool
) -> LoadBalancerIds:
    n = f"{prefix}-lb"
    b = f"{n}-access-logs"
    logs = (
        (
            Res(T_BUCKET, b),
            Res(T_BUCKET_PAB, f"{b}-pab"),
            Res(T_BUCKET_OWNERSHIP, f"{b}-ownership"),
            Res(T_BUCKET_SSE, f"{b}-sse"),
            Res(T_BUCKET_LIFECYCLE, f"{b}-lifecycle"),
            Res(T_BUCKET_POLICY, f"{b}-policy"),
        )
        if access_logs
        else ()
    )
    listeners = (
        {
            "https": Res(T_LISTENER, f"{n}-https"),
            "http-redirect": Res(T_LISTENER, f"{n}-http-redirect"),
        }
        if https
        else {"http": Res(T_LISTENER, f"{n}-http")}
    )
    # Load balancers and target groups take Pulumi's auto-name (logical name + 8 characters,
    # so a replacement can be created before the old one is deleted) under AWS's 32-character
    # cap, so their logical names are short.
    return LoadBalancerIds(
        component=n,
        access_logs=logs,
        load_balancer=Res(T_LB, f"{prefix}-alb"),
        target_groups={name: Res(T_TG, f"{s}-tg") for name, s in models.items()},
        listeners=listeners,
        rules={name: Res(T_RULE, f"{n}-{s}-rule") for name, s in models.items()},
    )


def prewarm_ids(prefix: str, models: Mapping[str, str]) -> PrewarmIds:
    n = f"{prefix}-prewarm"
    return PrewarmIds(
        component=n,
        models={
            name: PrewarmModelIds(
                Res(T_LOG_GROUP, f"{n}-{s}-logs"),
                Res(T_TASK_DEF, f"{n}-{s}-fetcher"),
                Res(T_DYNAMIC, f"{n}-{s}-run"),
            )
            for name, s in models.items()
        },
    )


def serving_ids(prefix: str, short: str, *, from_zero: bool, actions: Sequence[str]) -> ServingIds:
    n = f"{prefix}-{short}"
    s = f"{n}-scaling"
    return ServingIds(
        component=n,
        log_group=Res(T_LOG_GROUP, f"{n}-logs"),
        task_definition=Res(T_TASK_DEF, f"{n}-task"),
        service=Res(T_SERVICE, f"{n}-service"),
        scaling_component=s,
        scaling_target=Res(T_SCALING_TARGET, f"{s}-target"),
        queue_depth_policy=Res(T_SCALING_POLICY, f"{s}-queue-depth"),
        from_zero_policy=Res(T_SCALING_POLICY, f"{s}-from-zero") if from_zero else None,
        from_zero_alarm=Res(T_ALARM, f"{s}-from-zero-alarm") if from_zero else None,
        scheduled={a: Res(T_SCHEDULED, f"{s}-{a}") for a in actions},
    )


def monitoring_ids(prefix: str, emails: Sequence[str], alarm_names: Sequence[str]) -> MonitoringIds:
    n = f"{prefix}-monitoring"
    return MonitoringIds(
        component=n,
        topic=Res(T_TOPIC, f"{n}-alarms"),
        topic_policy=Res(T_TOPIC_POLICY, f"{n}-alarms-policy"),
        # Keyed by the address: removing one email leaves the others' confirmed
        # subscriptions alone (the first release named them `email-<index>`).
        subscriptions={
            e: Res(T_SUBSCRIPTION, f"{n}-email-{content_key(e)}", (f"{n}-email-{i}",))
            for i, e in enumerate(emails)
        },
        alarms={a: Res(T_ALARM, f"{n}-{a.removeprefix(prefix + '-')}") for a in alarm_names},
        dashboard=Res(T_DASHBOARD, f"{n}-dashboard"),
    )

"""The EKS platform of a stack, decided before any resource exists: names, pools, identities.

Pure (no Pulumi): `modelfleet plan` prints it, the components under `components/eks/` only
wire it, and the serving slice reads its namespace, service accounts and scheduling from it.
Every name is keyed by what it is (model, add-on, identity, principal ARN), never a position.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any

from fetcher.source import S3Source, parse_source

from modelfleet import coldstart, cost, eks_versions, sizing
from modelfleet.catalog import Source
from modelfleet.config import SYSTEM_INSTANCE_PRICES, Capacity, StackConfig
from modelfleet.eks_versions import HelmChart, Support
from modelfleet.identities import Res

# --- fixed facts -------------------------------------------------------------------------------

SYSTEM_NAMESPACE = "kube-system"
GPU_RESOURCE = "nvidia.com/gpu"
# Every GPU node carries this taint, so only pods that tolerate it (the serving slice) land
# there; the NVIDIA device plugin and the DaemonSets of the add-ons tolerate it by default.
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
GPU_TAINT_EFFECT = "NoSchedule"
# Label every GPU NodePool puts on its nodes; a model's pods select their GPU class by it, so
# both pools of a mixed class match and Karpenter picks the higher weight first.
GPU_CLASS_LABEL = "modelfleet.io/gpu-class"
SYSTEM_NODE_LABEL = "modelfleet.io/system"
# Pods a rollout may add above the autoscaler's max (`maxSurge` of the serving Deployment);
# the NodePool GPU limits leave room for them.
ROLLOUT_MAX_SURGE = 1
# Empty GPU nodes go after 5 minutes: long enough that a KEDA scale-in/scale-out flap reuses
# the node, short enough that an idle GPU costs at most 5 minutes.
# Karpenter v1 requires consolidateAfter with every policy (karpenter.sh_nodepools.yaml,
# spec.disruption.required; https://karpenter.sh/docs/concepts/disruption/).
CONSOLIDATE_AFTER = "5m"
# Karpenter's default expireAfter is 720h and expiry is forceful (it ignores do-not-disrupt and
# PDBs once terminationGracePeriod runs out), so it is set explicitly: a month, for AMI patches.
EXPIRE_AFTER = "720h"
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
# Add-ons a node needs to become Ready; created before the system node group.
NETWORK_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Bottlerocket's NVIDIA variant has the device plugin built in; Karpenter picks the -nvidia
# variant for GPU instance types from the alias (karpenter-provider-aws@1d927085
# website/content/en/docs/concepts/nodeclasses.md, "amiSelectorTerms" / alias). Pinned, never
# @latest. Bottlerocket 1.64.0 covers Kubernetes 1.33 - 1.36
# (https://github.com/aws/eks-anywhere/releases/tag/v0.26.1, read 2026-12-01).
GPU_AMI_ALIAS = "bottlerocket@v1.64.0"
# Bottlerocket keeps container images on its second (data) volume, /dev/xvdb
# (karpenter nodeclasses.md, "Bottlerocket" blockDeviceMappings). Room for the engine image
# unpacked twice (a new tag is pulled beside the old during a rollout) plus the sidecar/fetcher.
DATA_VOLUME_GIB = int(math.ceil(sizing.VLLM_IMAGE_GB * 2.5 / 10) * 10) + 20
# gp3 above its 125 MiB/s baseline: ~10 GB of layers in under a minute, as data-on-eks does
# (600 MiB/s, 6000 IOPS; https://aws.amazon.com/ebs/general-purpose/).
DATA_VOLUME_THROUGHPUT_MIBPS = 600
DATA_VOLUME_IOPS = 6000
OS_VOLUME_GIB = 4  # Bottlerocket's default root volume size
# System nodes (AL2023): root volume for the OS and the controllers' images.
SYSTEM_ROOT_VOLUME_GIB = 40
# Margin on drain + cold start before a forceful expiry kills a pod (see termination_grace_s).
GRACE_MARGIN = 1.5


def _hash(value: str, n: int = 8) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:n]


def _minutes(seconds: float) -> str:
    return f"{math.ceil(seconds / 60)}m"


# The events Karpenter's interruption queue receives, by key: (source, detail-type), as its
# getting-started template routes them (karpenter-provider-aws@1d927085 website/content/en/
# docs/getting-started/getting-started-with-karpenter/cloudformation.yaml, *Rule resources).
INTERRUPTION_EVENTS: dict[str, tuple[str, str]] = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
# Karpenter deletes interruption messages after handling; older ones are stale (same template:
# MessageRetentionPeriod 300).
INTERRUPTION_RETENTION_S = 300


# Pulumi type tokens of the platform's resources, one place.
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_CLUSTER = "aws:eks/cluster:Cluster"
T_ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
T_ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
T_K8S_PROVIDER = "pulumi:providers:kubernetes"
T_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
T_ADDON = "aws:eks/addon:Addon"
T_QUEUE = "aws:sqs/queue:Queue"
T_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
T_EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
T_EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
T_CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
T_NAMESPACE = "kubernetes:core/v1:Namespace"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
T_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
T_INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
T_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
T_FSR = "aws:ebs/fastSnapshotRestore:FastSnapshotRestore"
T_DYNAMIC = "pulumi-python:dynamic:Resource"


# --- plan pieces -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePoolPlan:
    name: str  # Kubernetes name, also the logical name's suffix
    logical: Res
    gpu_class: str  # the GPU_CLASS_LABEL value its nodes carry
    instance_type: str
    capacity_type: str  # karpenter.sh/capacity-type: on-demand | spot
    weight: int
    gpu_limit: int
    models: tuple[str, ...]
    termination_grace_period: str
    capacity: str  # the GPU class's capacity mode: on-demand | spot | mixed
    gpus_per_instance: int
    instance_hourly_usd: float  # on-demand list price (or the stack's pricing override)

    @property
    def max_instances(self) -> int:
        return self.gpu_limit // self.gpus_per_instance

    @property
    def labels(self) -> dict[str, str]:
        return {GPU_CLASS_LABEL: self.gpu_class}


@dataclass(frozen=True)
class Scheduling:
    """Where a model's pods go: what the serving Deployment puts in its pod spec."""

    gpu_class: str
    pools: tuple[str, ...]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]
    gpus_per_pod: int


@dataclass(frozen=True)
class Identity:
    """One EKS Pod Identity: an IAM role assumed by one service account."""

    key: str
    namespace: str
    service_account: str
    role_logical: Res
    association_logical: Res
    policy_logical: Res
    # An AWS managed policy attached instead of an inline one (cloudwatch-agent only).
    managed_policy: str | None = None


@dataclass(frozen=True)
class AddonPlan:
    name: str
    version: str | None  # None: EKS's default build for the Kubernetes version, at deploy
    logical: Res


@dataclass(frozen=True)
class ReleasePlan:
    key: str
    chart: HelmChart
    namespace: str
    logical: Res


@dataclass(frozen=True)
class AccessEntryPlan:
    """A principal with cluster access; `principal_arn` None = the deploying role (at deploy)."""

    key: str
    principal_arn: str | None
    entry_logical: Res
    association_logical: Res


@dataclass(frozen=True)
class ImageCachePlan:
    """The prepared snapshot of the GPU nodes' data volume (eks.imageCache), built at `pulumi
    up` by a Bottlerocket builder instance (components/eks/image_cache.py)."""

    initialization: str  # rate | fast-snapshot-restore
    rate_mibps: int | None  # the node volumes' initialization rate (rate only)
    snapshot_data_gb: float  # what the snapshot stores (and a rate volume initializes)
    volume_gib: int  # builder data volume = every node's data volume
    initialization_s: float  # the whole snapshot at the rate (0 with FSR)
    fsr_credits: float  # FSR volume creation credits per AZ (bucket and refill per hour)
    ami_parameter: str  # the node class's pinned Bottlerocket NVIDIA AMI, by SSM parameter
    builder_instance_type: str
    builder_run_usd: float  # one build (per image change), not monthly
    logical: dict[str, Res]  # builder identity, security group, snapshot, FSR per AZ slot
    snapshot_monthly_usd: float
    fsr_monthly_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.snapshot_monthly_usd + self.fsr_monthly_usd


@dataclass(frozen=True)
class EksCost:
    control_plane_usd: float
    system_nodes_usd: float
    interruption_queue_usd: float
    container_insights_usd: float
    image_cache_usd: float = 0.0  # snapshot storage (+ FSR)

    @property
    def total(self) -> float:
        return (
            self.control_plane_usd
            + self.system_nodes_usd
            + self.interruption_queue_usd
            + self.container_insights_usd
            + self.image_cache_usd
        )


@dataclass(frozen=True)
class EksPlan:
    cluster_name: str
    kubernetes_version: str
    as_of: dt.date
    support: Support  # what the version is in on `as_of`, and so what it is priced at
    support_type: Support  # the cluster's upgrade policy, always sent
    end_of_standard: dt.date
    public_access_cidrs: tuple[str, ...]
    namespace: str  # the serving slice's namespace
    logical: dict[str, Res]  # single resources, keyed by what they are
    node_class_name: str
    interruption_queue_name: str
    node_pools: dict[str, NodePoolPlan]  # by pool name
    scheduling: dict[str, Scheduling]  # by model name
    identities: dict[str, Identity]  # by identity key; workloads as "workload:<model>"
    workload_service_accounts: dict[str, str]  # by model name
    # The name of each model's Deployment and Service in `namespace` (the sidecar reports its
    # metrics under it, as ECS's service name).
    workloads: dict[str, str]
    access_entries: dict[str, AccessEntryPlan]
    addons: dict[str, AddonPlan]
    releases: dict[str, ReleasePlan]
    system_instance_type: str
    system_node_count: int
    cost: EksCost
    resources: tuple[Res, ...]
    notes: list[str] = field(default_factory=list)
    image_cache: ImageCachePlan | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_name": self.cluster_name,
            "kubernetes_version": self.kubernetes_version,
            "support": self.support.value,
            "support_type": self.support_type.value,
            "end_of_standard_support": self.end_of_standard.isoformat(),
            "public_access_cidrs": list(self.public_access_cidrs),
            "namespace": self.namespace,
            "system_nodes": f"{self.system_node_count} x {self.system_instance_type}",
            "node_pools": {
                n: {
                    "instance_type": p.instance_type,
                    "capacity_type": p.capacity_type,
                    "weight": p.weight,
                    "gpu_limit": p.gpu_limit,
                    "models": list(p.models),
                    "termination_grace_period": p.termination_grace_period,
                }
                for n, p in self.node_pools.items()
            },
            "addons": {n: a.version or "EKS default at deploy" for n, a in self.addons.items()},
            "charts": {k: f"{r.chart.name} {r.chart.version}" for k, r in self.releases.items()},
            "identities": {
                k: f"{i.namespace}/{i.service_account}" for k, i in self.identities.items()
            },
            "monthly_usd": {
                "control_plane": round(self.cost.control_plane_usd, 2),
                "system_nodes": round(self.cost.system_nodes_usd, 2),
                "interruption_queue": round(self.cost.interruption_queue_usd, 2),
                "container_insights": round(self.cost.container_insights_usd, 2),
                "image_cache": round(self.cost.image_cache_usd, 2),
                "total": round(self.cost.total, 2),
            },
            "image_cache": None
            if self.image_cache is None
            else {
                "initialization": self.image_cache.initialization,
                "initialization_rate_mibps": self.image_cache.rate_mibps,
                "snapshot_data_gb": self.image_cache.snapshot_data_gb,
                "volume_gib": self.image_cache.volume_gib,
                "initialization_s": round(self.image_cache.initialization_s, 1),
                "fsr_credits_per_az": round(self.image_cache.fsr_credits, 2),
                "ami_parameter": self.image_cache.ami_parameter,
                "builder_instance_type": self.image_cache.builder_instance_type,
                "builder_run_usd": round(self.image_cache.builder_run_usd, 2),
                "monthly_usd": round(self.image_cache.monthly_usd, 2),
            },
            "resources": [f"{r.type} {r.name}" for r in self.resources],
            "notes": self.notes,
        }


# --- identities ----------------------------------------------------------------------------

# (namespace, service account) of each controller, as its pinned chart or add-on names it:
# karpenter chart values.yaml serviceAccount.name defaults to the release's fullname
# ("karpenter"); aws-load-balancer-controller likewise; keda values.yaml
# serviceAccount.operator.name "keda-operator"; aws-efs-csi-driver names its node account
# efs-csi-node-sa (aws-efs-csi-driver #1759: the add-on cannot associate it itself);
# amazon-cloudwatch-observability runs cloudwatch-agent in amazon-cloudwatch.
CONTROLLER_ACCOUNTS: dict[str, tuple[str, str]] = {
    "karpenter": (SYSTEM_NAMESPACE, "karpenter"),
    "aws-load-balancer-controller": (SYSTEM_NAMESPACE, "aws-load-balancer-controller"),
    "keda-operator": ("keda", "keda-operator"),
    "efs-csi-node": (SYSTEM_NAMESPACE, "efs-csi-node-sa"),
    "cloudwatch-agent": ("amazon-cloudwatch", "cloudwatch-agent"),
}


def workload_service_account(model_name: str) -> str:
    """The service account of a model's pods (Deployment and pre-warm Job)."""
    return f"{model_name}-serving"


def _needs_aws(source: str) -> bool:
    return isinstance(parse_source(source), S3Source)


# --- cost --------------------------------------------------------------------------------------

_READ = "2026-12-01"
EKS_PRICES: dict[str, cost.Price] = {
    # https://aws.amazon.com/eks/pricing/: $0.10 per cluster-hour in standard support, $0.60 in
    # extended support.
    "cluster_hour_standard": cost.Price(
        0.10, "cluster-hour", Source("https://aws.amazon.com/eks/pricing/", _READ)
    ),
    "cluster_hour_extended": cost.Price(
        0.60, "cluster-hour", Source("https://aws.amazon.com/eks/pricing/", _READ)
    ),
    # https://aws.amazon.com/sqs/pricing/: first 1M requests a month free, then $0.40 per
    # million. Karpenter long-polls its queue (20 s), ~130k receives a month: inside the tier.
    "sqs_million_requests": cost.Price(
        0.40, "million SQS requests", Source("https://aws.amazon.com/sqs/pricing/", _READ)
    ),
    # Control-plane logs (api, audit, authenticator) go to CloudWatch Logs at $0.50/GB
    # ingested; an idle small cluster's audit log is ~1 GB a month, assumed here.
    "logs_ingest_gb": cost.Price(
        0.50, "GB ingested", Source("https://aws.amazon.com/cloudwatch/pricing/", _READ)
    ),
}
EKS_PRICES.update(
    {
        # https://aws.amazon.com/ebs/pricing/: snapshots (standard tier) $0.05 per GB-month of
        # data stored; fast snapshot restore $0.75 per DSU-hour per AZ it is enabled in,
        # billed per minute with an hour minimum (also docs.aws.amazon.com/whitepapers/latest/
        # how-aws-pricing-works/amazon-ebs.html, us-east-1). The provisioned initialization
        # rate is billed per GiB initialized; its price was not readable here, so it is named
        # in the plan's notes and not added to the total.
        "snapshot_gb_month": cost.Price(
            0.05, "GB-month, EBS snapshot", Source("https://aws.amazon.com/ebs/pricing/", _READ)
        ),
        "fsr_dsu_hour": cost.Price(
            0.75, "FSR DSU-hour per AZ", Source("https://aws.amazon.com/ebs/pricing/", _READ)
        ),
    }
)
# A build (launch, SSM ready, pull ~10 GB, stop, snapshot ~35 GB) bills the builder for about
# a quarter hour: an assumption, shown per build.
BUILDER_RUN_HOURS = 0.25
ASSUMED_CONTROL_PLANE_LOG_GB = 1.0
# Container Insights (the amazon-cloudwatch-observability add-on) ships each node's
# performance events as logs, billed at the ingestion price; 1 GB per node-month is an
# assumption (not measured here) for a node with a handful of pods at 60 s resolution.
ASSUMED_INSIGHTS_GB_PER_NODE_MONTH = 1.0
KARPENTER_SQS_REQUESTS_PER_MONTH = 0.13e6
SQS_FREE_REQUESTS = 1e6
# Extended pricing starts when standard support ends inside the month being priced.
PRICED_MONTH = dt.timedelta(days=30)


def _cost(
    stack: StackConfig, support: Support, gpu_node_months: float, system_count: int
) -> EksCost:
    h = cost.HOURS_PER_MONTH
    key = "cluster_hour_extended" if support is Support.EXTENDED else "cluster_hour_standard"
    control = h * EKS_PRICES[key].usd
    assert stack.eks is not None
    system = system_count * h * SYSTEM_INSTANCE_PRICES[stack.eks.system_nodes.instance_type]
    billable = max(0.0, KARPENTER_SQS_REQUESTS_PER_MONTH - SQS_FREE_REQUESTS)
    queue = billable / 1e6 * EKS_PRICES["sqs_million_requests"].usd
    gb = (system_count + gpu_node_months) * ASSUMED_INSIGHTS_GB_PER_NODE_MONTH
    insights = (gb + ASSUMED_CONTROL_PLANE_LOG_GB) * EKS_PRICES["logs_ingest_gb"].usd
    return EksCost(control, system, queue, insights)


# --- the plan ----------------------------------------------------------------------------------


def termination_grace_s(drain_s: float, cold_start_s: float) -> int:
    """How long an expiring node keeps its pods: a replacement pod on a new node must become
    ready (a whole cold start) and the old one drain before Karpenter force-deletes it."""
    return sizing.round_up((drain_s + cold_start_s) * GRACE_MARGIN, 60)


def gpu_classes(models: list[Any]) -> dict[str, list[Any]]:
    """Models sharing GPU capacity: same instance type and capacity mode, keyed like the ECS
    capacity groups (`g6e-xlarge-mixed`), in the order the models come."""
    out: dict[str, list[Any]] = {}
    for m in models:
        out.setdefault(f"{m.instance_type.replace('.', '-')}-{m.capacity}", []).append(m)
    return out


def _pools(stack: StackConfig, models: list[Any]) -> dict[str, NodePoolPlan]:
    """NodePools per GPU class (instance type + capacity), two for a mixed class."""
    prefix = stack.prefix
    drain = stack.gateway.drain_seconds
    pools: dict[str, NodePoolPlan] = {}
    for gpu_class, group in gpu_classes(models).items():
        inst = group[0]
        gpus = inst.gpus_per_instance

        def instances(replicas: int, per: int) -> int:
            return sizing.ceil_div(replicas, per) if replicas > 0 else 0

        # Room for every model's max plus a rollout surge; Karpenter's limit is eventually
        # consistent, so the hard cost ceiling stays the autoscaler's max and the policy pack.
        peak = sum(
            instances(m.replicas_max + ROLLOUT_MAX_SURGE, m.tasks_per_instance) for m in group
        )
        floor = sum(instances(m.replicas_min, m.tasks_per_instance) for m in group)
        grace = _minutes(termination_grace_s(drain, max(m.cold_start_s for m in group)))
        names = tuple(m.name for m in group)
        kinds: list[tuple[str, str, int, int]]
        if inst.capacity == Capacity.MIXED.value:
            # One pool allowing both types would always prefer spot: the floor runs on an
            # on-demand pool of higher weight capped at `min` instances, the rest on spot.
            kinds = [("on-demand", "od", 100, floor), ("spot", "spot", 10, peak - floor)]
        else:
            kinds = [(inst.capacity, "", 10, peak)]
        for capacity_type, suffix, weight, n in kinds:
            if n <= 0:
                continue  # a mixed class with min 0 has no on-demand floor
            name = f"gpu-{gpu_class}" + (f"-{suffix}" if suffix else "")
            pools[name] = NodePoolPlan(
                name=name,
                logical=Res(T_NODE_POOL, f"{prefix}-nodepool-{name}"),
                gpu_class=gpu_class,
                instance_type=inst.instance_type,
                capacity_type=capacity_type,
                weight=weight,
                gpu_limit=n * gpus,
                models=names,
                termination_grace_period=grace,
                capacity=inst.capacity,
                gpus_per_instance=gpus,
                instance_hourly_usd=inst.cost.on_demand_hourly,
            )
    return pools


def _scheduling(models: list[Any], pools: dict[str, NodePoolPlan]) -> dict[str, Scheduling]:
    out: dict[str, Scheduling] = {}
    for gpu_class, group in gpu_classes(models).items():
        mine = tuple(p.name for p in pools.values() if p.gpu_class == gpu_class)
        for m in group:
            out[m.name] = Scheduling(
                gpu_class=gpu_class,
                pools=mine,
                node_selector={GPU_CLASS_LABEL: gpu_class},
                tolerations=(
                    {
                        "key": GPU_TAINT_KEY,
                        "operator": "Equal",
                        "value": GPU_TAINT_VALUE,
                        "effect": GPU_TAINT_EFFECT,
                    },
                ),
                gpus_per_pod=m.tensor_parallel,
            )
    return out


# Headroom on the data volume beyond what the snapshot holds: containers' writable layers,
# logs, and an image the snapshot lacks.
IMAGE_CACHE_HEADROOM = 1.25


def image_cache_volume_gib() -> int:
    """The builder's data volume, and so every GPU node's: the snapshot's data with headroom,
    in 10 GiB steps, never below the platform's data volume."""
    need = coldstart.SNAPSHOT_DATA_GB * 1e9 / 2**30 * IMAGE_CACHE_HEADROOM
    return max(DATA_VOLUME_GIB, math.ceil(need / 10) * 10)


def image_cache_plan(
    stack: StackConfig, pools: dict[str, NodePoolPlan], azs: int
) -> ImageCachePlan | None:
    """What the image cache builds and costs, or None when eks.imageCache.enabled is false."""
    eks = stack.eks
    assert eks is not None
    ic = eks.image_cache
    if not ic.enabled or not pools:
        return None
    p = stack.prefix
    mode = ic.mode(stack.environment)
    rate = ic.rate_mibps(stack.environment)
    fsr = mode == "fast-snapshot-restore"
    version = GPU_AMI_ALIAS.partition("@")[2].lstrip("v")
    # karpenter-provider-aws@1d927085 pkg/providers/amifamily/bottlerocket.go: the alias
    # resolves through this SSM parameter ("v" trimmed), so the builder runs the nodes' AMI.
    variant = f"aws-k8s-{eks.kubernetes_version}-nvidia"
    ami = f"/aws/service/bottlerocket/{variant}/x86_64/{version}/image_id"
    builder = next(iter(pools.values()))
    logical = {
        "role": Res(T_ROLE, f"{p}-image-cache-builder-role"),
        "policy": Res(T_ROLE_POLICY, f"{p}-image-cache-builder-policy"),
        "ssm": Res(T_ATTACHMENT, f"{p}-image-cache-builder-ssm"),
        "profile": Res(T_INSTANCE_PROFILE, f"{p}-image-cache-builder-profile"),
        "security_group": Res(T_SECURITY_GROUP, f"{p}-image-cache-builder-sg"),
        "snapshot": Res(T_DYNAMIC, f"{p}-image-cache-snapshot"),
    }
    if fsr:
        for i in range(azs):
            logical[f"fsr:{i}"] = Res(T_FSR, f"{p}-image-cache-fsr-{i}")
    data_gb = coldstart.SNAPSHOT_DATA_GB
    h = cost.HOURS_PER_MONTH
    return ImageCachePlan(
        initialization=mode,
        rate_mibps=rate,
        snapshot_data_gb=data_gb,
        volume_gib=image_cache_volume_gib(),
        initialization_s=coldstart.initialization_s(rate) if rate else 0.0,
        fsr_credits=coldstart.fsr_credits(image_cache_volume_gib()),
        ami_parameter=ami,
        builder_instance_type=builder.instance_type,
        builder_run_usd=builder.instance_hourly_usd * BUILDER_RUN_HOURS,
        logical=logical,
        snapshot_monthly_usd=data_gb * EKS_PRICES["snapshot_gb_month"].usd,
        fsr_monthly_usd=azs * h * EKS_PRICES["fsr_dsu_hour"].usd if fsr else 0.0,
    )


def _image_cache_notes(ic: ImageCachePlan | None, azs: int) -> list[str]:
    if ic is None:
        return [
            "eks.imageCache.enabled false: every GPU node pulls the engine image (SOCI parallel "
            "pull) at its first pod"
        ]
    out = [
        f"image cache: GPU nodes start from a snapshot of a {ic.volume_gib} GiB data volume "
        f"holding the images ({ic.snapshot_data_gb:g} GB of data, "
        f"${ic.snapshot_monthly_usd:.2f}/month stored), built at `pulumi up` on a "
        f"{ic.builder_instance_type} (~${ic.builder_run_usd:.2f} per build; rebuilt when an "
        "image digest changes)"
    ]
    if ic.rate_mibps is not None:
        out.append(
            f"image cache initialization: {ic.rate_mibps} MiB/s provisioned rate, the whole "
            f"snapshot in ~{ic.initialization_s:.0f} s from launch; billed per GiB initialized "
            "at every node launch (price not counted in the total: "
            "https://aws.amazon.com/ebs/pricing/). eks.imageCache.initialization "
            f"fast-snapshot-restore removes it from the start for "
            f"${azs * cost.HOURS_PER_MONTH * EKS_PRICES['fsr_dsu_hour'].usd:,.0f}/month ({azs} AZs)"
        )
    else:
        rate = coldstart.MAX_INITIALIZATION_RATE_MIBPS
        slower = (
            coldstart.eks_image_phase("rate", rate).seconds
            - coldstart.eks_image_phase("fast-snapshot-restore", rate).seconds
        )
        out.append(
            f"image cache initialization: fast snapshot restore in {azs} AZs, "
            f"${ic.fsr_monthly_usd:,.2f}/month; {ic.fsr_credits:g} volume creation credits per "
            f"AZ (refilled {ic.fsr_credits:g}/hour): a scale-out above that in one AZ within "
            "the hour gets volumes initialized on first read. EBS enables FSR on at most 5 "
            "snapshots per Region and account by default (each EKS stack holds one, two while "
            "an image change replaces it; ebs-fast-snapshot-restore.html, read 2026-12-02); "
            "billed per minute, at least an hour. eks.imageCache.initialization "
            f"rate saves that and adds ~{slower:.0f} s to every start from zero (the whole "
            f"snapshot at EBS's maximum {rate} MiB/s)"
        )
    return out


def build_eks_plan(
    stack: StackConfig,
    models: list[Any],
    as_of: dt.date,
    running_fraction: float = 1.0,
    *,
    engine_pull_through: bool,
) -> EksPlan:
    """The platform of a `platform: eks` stack on day `as_of` (support status and its price);
    `running_fraction` is the share of the month the schedule keeps the GPU floor up;
    `engine_pull_through`: the engine image comes through the stack's ECR pull-through cache,
    whose first pull on a GPU node imports it (the node role's grant)."""
    eks = stack.eks
    assert eks is not None, "build_eks_plan needs a platform: eks stack"
    p = stack.prefix
    cluster = p
    row = eks_versions.KUBERNETES_VERSIONS[eks.kubernetes_version]
    support = row.support_on(as_of)
    notes: list[str] = []
    if support is None:
        raise ValueError(
            f"eks.kubernetesVersion: EKS ended extended support for {row.version} on "
            f"{row.end_of_extended.isoformat()}"
        )
    if support is Support.STANDARD and row.end_of_standard <= as_of + PRICED_MONTH:
        support = Support.EXTENDED
    if support is Support.EXTENDED:
        notes.append(
            f"eks.kubernetesVersion {row.version}: in extended support from "
            f"{row.end_of_standard.isoformat()} (priced at the extended rate, "
            f"${EKS_PRICES['cluster_hour_extended'].usd:.2f}/h); upgrade before "
            f"{row.end_of_extended.isoformat()}"
        )
    support_type = eks.support_type or support
    if support_type is Support.STANDARD and support is Support.EXTENDED:
        notes.append(
            "eks.supportType STANDARD: EKS upgrades the control plane at the end of standard "
            f"support ({row.end_of_standard.isoformat()}) instead of charging the extended rate"
        )

    pools = _pools(stack, models)
    scheduling = _scheduling(models, pools)
    azs = (
        stack.network.availability_zones
        if stack.network.vpc_id is None
        else len(stack.network.private_subnet_ids)
    )
    image_cache = image_cache_plan(stack, pools, azs)
    notes += _image_cache_notes(image_cache, azs)
    pinned = "@sha256:" in stack.images.vllm or stack.images.docker_hub_credentials is not None
    if image_cache is not None and not pinned:
        notes.append(
            "image cache: images.vllm is a tag and no pull-through cache resolves it to a "
            "digest, so the snapshot holds what the tag pointed at when it was built and is "
            "rebuilt only when images.vllm changes; pin a digest or set "
            "images.dockerHubCredentials"
        )

    identities: dict[str, Identity] = {}
    for key, (ns, sa) in CONTROLLER_ACCOUNTS.items():
        managed = "CloudWatchAgentServerPolicy" if key == "cloudwatch-agent" else None
        identities[key] = Identity(
            key,
            ns,
            sa,
            Res(T_ROLE, f"{p}-{key}-role"),
            Res(T_POD_IDENTITY, f"{p}-{key}-pod-identity"),
            Res(T_ATTACHMENT if managed else T_ROLE_POLICY, f"{p}-{key}-policy"),
            managed,
        )
    namespace = p
    workload_sas: dict[str, str] = {}
    for m in models:
        workload_sas[m.name] = workload_service_account(m.name)
        conf = next(mc for mc in stack.models if mc.name == m.name)
        sources = [m.source, *(a.source for a in conf.lora_adapters)]
        if any(_needs_aws(s) for s in sources):
            key = f"workload:{m.name}"
            identities[key] = Identity(
                key,
                namespace,
                workload_sas[m.name],
                Res(T_ROLE, f"{p}-{m.short}-workload-role"),
                Res(T_POD_IDENTITY, f"{p}-{m.short}-workload-pod-identity"),
                Res(T_ROLE_POLICY, f"{p}-{m.short}-workload-policy"),
            )

    access: dict[str, AccessEntryPlan] = {
        "deployer": AccessEntryPlan(
            "deployer",
            None,
            Res(T_ACCESS_ENTRY, f"{p}-access-deployer"),
            Res(T_ACCESS_POLICY, f"{p}-access-deployer-admin"),
        )
    }
    for arn in eks.admin_role_arns:
        h = _hash(arn)
        access[f"admin:{arn}"] = AccessEntryPlan(
            f"admin:{arn}",
            arn,
            Res(T_ACCESS_ENTRY, f"{p}-access-admin-{h}"),
            Res(T_ACCESS_POLICY, f"{p}-access-admin-{h}-admin"),
        )

    addons = {
        name: AddonPlan(name, version, Res(T_ADDON, f"{p}-addon-{name}"))
        for name, table in eks_versions.ADDON_VERSIONS[eks.kubernetes_version].items()
        for version in [eks.addon_versions.get(name, table)]
    }
    releases = {
        key: ReleasePlan(key, chart, chart.namespace, Res(T_RELEASE, f"{p}-release-{key}"))
        for key, chart in eks_versions.CHARTS.items()
    }
    names = {
        "cluster": (T_CLUSTER, f"{p}-eks"),
        "cluster_role": (T_ROLE, f"{p}-eks-cluster-role"),
        "cluster_role_policy": (T_ATTACHMENT, f"{p}-eks-cluster-role-policy"),
        "cluster_role_kms": (T_ROLE_POLICY, f"{p}-eks-cluster-role-kms"),
        "log_group": (T_LOG_GROUP, f"{p}-eks-control-plane-logs"),
        "system_node_role": (T_ROLE, f"{p}-eks-system-node-role"),
        "gpu_node_role": (T_ROLE, f"{p}-eks-gpu-node-role"),
        "system_launch_template": (T_LAUNCH_TEMPLATE, f"{p}-eks-system-nodes-lt"),
        "system_node_group": (T_NODE_GROUP, f"{p}-eks-system-nodes"),
        "gpu_node_access": (T_ACCESS_ENTRY, f"{p}-eks-gpu-node-access"),
        "provider": (T_K8S_PROVIDER, f"{p}-k8s"),
        "interruption_queue": (T_QUEUE, f"{p}-karpenter-interruptions"),
        "interruption_queue_policy": (T_QUEUE_POLICY, f"{p}-karpenter-interruptions-policy"),
        "node_class": (T_NODE_CLASS, f"{p}-ec2nodeclass-gpu"),
        "keda_namespace": (T_NAMESPACE, f"{p}-ns-keda"),
    }
    for key in INTERRUPTION_EVENTS:
        names[f"rule:{key}"] = (T_EVENT_RULE, f"{p}-karpenter-{key}")
        names[f"target:{key}"] = (T_EVENT_TARGET, f"{p}-karpenter-{key}-target")
    for role in ("system_node_role", "gpu_node_role"):
        for policy in eks_versions.NODE_MANAGED_POLICIES:
            names[f"{role}:{policy}"] = (T_ATTACHMENT, f"{names[role][1]}-{policy}")
    if engine_pull_through:
        # The kubelet pulls the engine image with the GPU node's role.
        names["gpu_node_engine_image"] = (T_ROLE_POLICY, f"{p}-eks-gpu-node-engine-image")
    logical = {key: Res(t, n) for key, (t, n) in names.items()}

    gpu_node_months = sum(m.cost.instances_min for m in models) * running_fraction
    plan = EksPlan(
        cluster_name=cluster,
        kubernetes_version=eks.kubernetes_version,
        as_of=as_of,
        support=support,
        support_type=support_type,
        end_of_standard=row.end_of_standard,
        public_access_cidrs=tuple(eks.public_access_cidrs),
        namespace=namespace,
        logical=logical,
        node_class_name="gpu",
        interruption_queue_name=cluster,
        node_pools=pools,
        scheduling=scheduling,
        identities=identities,
        workload_service_accounts=workload_sas,
        workloads={m.name: m.name for m in models},
        access_entries=access,
        addons=addons,
        releases=releases,
        system_instance_type=eks.system_nodes.instance_type,
        system_node_count=eks.system_nodes.count,
        cost=replace(
            _cost(stack, support, gpu_node_months, eks.system_nodes.count),
            image_cache_usd=image_cache.monthly_usd if image_cache else 0.0,
        ),
        resources=(),
        notes=notes,
        image_cache=image_cache,
    )
    return _with_resources(plan)


def crd_logical(prefix: str, crd_name: str) -> Res:
    return Res(T_CRD, f"{prefix}-crd-{crd_name}")


def _with_resources(plan: EksPlan) -> EksPlan:
    """The platform's resources in the order the components create them."""
    lg = plan.logical
    out: list[Res] = []
    prefix = lg["cluster"].name.removesuffix("-eks")
    # cluster.py
    out += [lg[k] for k in ("log_group", "cluster_role", "cluster_role_policy", "cluster_role_kms")]
    out.append(lg["cluster"])
    for entry in plan.access_entries.values():
        out += [entry.entry_logical, entry.association_logical]
    out.append(lg["provider"])
    # addons.py: networking first, or the nodes never become Ready
    out += [plan.addons[name].logical for name in NETWORK_ADDONS]
    # nodes.py
    for role in ("system_node_role", "gpu_node_role"):
        out.append(lg[role])
        out += [lg[f"{role}:{policy}"] for policy in eks_versions.NODE_MANAGED_POLICIES]
    if "gpu_node_engine_image" in lg:
        out.append(lg["gpu_node_engine_image"])
    out += [lg["system_launch_template"], lg["system_node_group"], lg["gpu_node_access"]]
    # karpenter.py: the interruption queue
    out += [lg["interruption_queue"], lg["interruption_queue_policy"]]
    for key in INTERRUPTION_EVENTS:
        out += [lg[f"rule:{key}"], lg[f"target:{key}"]]
    # identities.py
    for ident in plan.identities.values():
        out += [ident.role_logical, ident.policy_logical, ident.association_logical]
    # addons.py: the rest, once nodes and identities exist
    out += [a.logical for a in plan.addons.values() if a.name not in NETWORK_ADDONS]
    # controllers.py: CRDs, then the charts
    for crds in eks_versions.VENDORED_CRDS.values():
        out += [crd_logical(prefix, crd) for crd in crds]
    out.append(lg["keda_namespace"])
    out += [rel.logical for rel in plan.releases.values()]
    # image_cache.py: the builder's identity and network, the snapshot, FSR per AZ
    if plan.image_cache is not None:
        out += list(plan.image_cache.logical.values())
    # karpenter.py: the node class and the pools
    out.append(lg["node_class"])
    out += [pool.logical for pool in plan.node_pools.values()]
    return replace(plan, resources=tuple(out))

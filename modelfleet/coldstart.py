"""How long a replica takes from the capacity request to a ready engine, phase by phase.

Four phases, each with its figure and where the figure comes from:

- capacity: ECS managed scaling notices the task waiting for an instance and raises the Auto
  Scaling group's desired capacity, then an instance starts and its ECS agent registers;
- image: the engine, sidecar and fetcher images on the instance, and the task's containers;
- weights: the checkpoint read from the EFS model cache into GPU memory;
- engine: vLLM's start after the weights (torch.compile, CUDA graph capture, the API server).

Two starts are planned. The *first* start has nothing prepared: a freshly launched instance,
the images pulled, vLLM compiling its graphs. A *warm* start is what the stack's settings give
every later start from zero running instances: a stopped, pre-initialized instance from the
warm pool with the images already on its root volume (on-demand groups, warm pool on), and
vLLM's compiled graphs read from the cache on EFS (every group). `cold_start_s` in the plan is
the warm start; health checks, grace periods and the below-desired alarm cover the first one.

A wake-up caused by a request also waits for the trigger: the ALB publishes RequestCount once
a minute and the wake alarm evaluates whole periods, so that path is reported beside the
capacity-request figure, not folded into it.

Pure arithmetic: no pulumi, no AWS calls. Every constant names its source and the date it was
read; none was tuned to meet a target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelfleet import sizing

_READ = "2026-12-01"

# --- capacity --------------------------------------------------------------------------------
# ECS managed scaling publishes CapacityProviderReservation once a minute and its scale-out
# alarm needs one breaching datapoint, so a task waiting for an instance raises the group's
# desired capacity about a minute later
# (https://aws.amazon.com/blogs/containers/deep-dive-on-amazon-ecs-cluster-auto-scaling/,
# read 2026-12-01).
MANAGED_SCALING_REACTION_S = 60
# A stopped, pre-initialized instance from the warm pool serves "in as low as 30 seconds"
# (AWS at the warm pools launch, https://www.infoq.com/news/2021/05/aws-warm-pools/ and
# https://aws.amazon.com/blogs/compute/scaling-your-applications-faster-with-ec2-auto-scaling-warm-pools/,
# read 2026-12-01): Auto Scaling's figure to InService, a floor ("as low as"), not a typical
# start. The ECS agent then registers the instance. With ECS_WARM_POOLS_CHECK the agent reads
# the IMDS item autoscaling/target-lifecycle-state before registering
# (github.com/aws/amazon-ecs-agent v1.105.0, agent/app/agent.go:424-430 and 571-598, read
# 2026-12-02): leaving the pool that item already reads InService (Auto Scaling sets the
# target state before the transition, https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html),
# so the check adds no wait; had it read anything else, the agent would sleep a whole
# asgLifecyclePollWait (one minute, agent.go:100) before reading again. What remains is the
# agent's own start and RegisterContainerInstance after the boot: AGENT_REGISTER_S, for which
# neither AWS nor the agent's source gives a figure (an assumption). The one public
# measurement of a whole stopped warm-pool scale-out found (Kubernetes nodes, not ECS: 80 s
# from the scale event to a ready node against 110 s cold,
# https://github.com/keikoproj/instance-manager/issues/277, 2021-04-20, read 2026-12-02)
# counts a cluster autoscaler's reaction and the kubelet's readiness, which ECS does not
# have, so it is not used; it says the floor may be optimistic.
WARM_POOL_IN_SERVICE_S = 30
AGENT_REGISTER_S = 10
WARM_POOL_START_S = WARM_POOL_IN_SERVICE_S + AGENT_REGISTER_S
# A freshly launched instance: the ECS GPU AMI's boot and agent registration (sizing.py).
COLD_BOOT_S = sizing.INSTANCE_BOOT_SECONDS
# EKS: Karpenter launches for a pending pod after its batching window, at most
# batchMaxDuration = 10 s by default (https://karpenter.sh/docs/reference/settings/, read
# 2026-12-01; the idle window is 1 s, the maximum is counted). There is no warm pool: every
# start launches a node.
KARPENTER_BATCH_S = 10
# From the launch to a Ready node: "We typically see new nodes come up in about 30-40s in a
# ready state" (Karpenter maintainer, aws/karpenter-provider-aws#6165, 2024-05-09, read
# 2026-12-01); a Bottlerocket node with the data-volume snapshot "register[s] and
# initialize[s] (~30 seconds)" (https://akingscote.co.uk/posts/aws-eks-bottlerocket-prefetch,
# read 2026-12-01). The upper end is counted.
EKS_NODE_READY_S = 40
# On the NVIDIA variant the GPU becomes allocatable when the built-in device plugin registers
# nvidia.com/gpu: it starts ~10 s after the kernel (console log of an aws-k8s-nvidia node,
# bottlerocket-os/bottlerocket#3726, read 2026-12-01). Counted on top of Ready, as the
# maintainer's figure is not a GPU node's.
GPU_DEVICE_PLUGIN_S = 10
EKS_CAPACITY_S = KARPENTER_BATCH_S + EKS_NODE_READY_S + GPU_DEVICE_PLUGIN_S

# --- EKS image cache: a snapshot of Bottlerocket's data volume with the images pulled ---------
# What the snapshot holds: containerd keeps the compressed layers in its content store and
# the unpacked snapshots beside them (a pull by `ctr`, as github.com/aws-samples/
# bottlerocket-images-cache snapshot.sh does, does not discard layers; and an EBS snapshot
# stores every block written, so layers deleted after the pull would still count). Unpacked,
# the official vllm/vllm-openai image is 28.6 GB (vllm-project/vllm#22377, "Size of official
# out-of-the-box vllm-openai:latest docker image: 28.6 GB", updated 2025-12-10, read
# 2026-12-01); compressed it is sizing.VLLM_IMAGE_GB.
IMAGE_UNPACKED_GB = 28.6
SNAPSHOT_DATA_GB = sizing.VLLM_IMAGE_GB + IMAGE_UNPACKED_GB
SNAPSHOT_DATA_MIB = SNAPSHOT_DATA_GB * 1e9 / 2**20
# EBS Provisioned Rate for Volume Initialization: "snapshot blocks are downloaded from Amazon
# S3 and written to the volume at the specified rate after creation", 100-300 MiB/s
# (https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html, read 2026-12-01).
# AWS promises no order, so the whole snapshot's data is counted; the volume is created with
# the instance, so initialization runs during boot and only what is left after the node is
# ready counts in the image phase.
MAX_INITIALIZATION_RATE_MIBPS = 300
# Fast snapshot restore: "a volume from a snapshot that is fully initialized at creation"
# (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-fast-snapshot-restore.html, read
# 2026-12-01); volume creation credits per snapshot per AZ: bucket MAX(1, MIN(10, 1024 /
# snapshot GiB)), refilled at MIN(10, 1024 / snapshot GiB) an hour (volume-creation-credits).


def fsr_credits(snapshot_volume_gib: int) -> float:
    """FSR volume creation credits (bucket size, and refill per hour) for a snapshot."""
    return max(1.0, min(10.0, 1024 / snapshot_volume_gib))


def initialization_s(rate_mibps: int) -> float:
    return SNAPSHOT_DATA_MIB / rate_mibps


# --- image -----------------------------------------------------------------------------------
# Pull and extraction of the ~10 GB engine image (sizing.py: extraction, not the network, is
# the limit, so pulling from the region's ECR instead of Docker Hub changes cost and rate
# limits, not this figure).
FIRST_IMAGE_S = sizing.VLLM_IMAGE_GB * 1000 / sizing.IMAGE_PULL_MBPS
# With the images already on the root volume (pulled when the instance entered the warm pool,
# by the task's digest, and ECS_IMAGE_PULL_BEHAVIOR=prefer-cached) two steps remain before
# vLLM's container runs:
# - the task's awsvpc network interface: ECS creates an ENI and attaches it to the instance
#   with EC2 API calls, which "adds an overhead of several seconds to your task launches"
#   (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-recommendations.html,
#   read 2026-12-02); "several" is read as 5 s. The agent adds no fixed wait of its own: it
#   acknowledges the ENI once udev reports it and ACS has sent the attachment, retrying at
#   most 6 s when the two arrive out of order (amazon-ecs-agent v1.105.0
#   agent/eni/watcher/watcher.go:36-40). The ecs-eni CNI plugin once waited for the ENI to
#   show in instance metadata, up to 18 s (github.com/aws/amazon-ecs-cni-plugins/pull/66);
#   2018.08.0 removed that dependency (pull/81). The measured figures found are Fargate's
#   (11 s and 44 s from createdAt to pullStartedAt, 2026-01-05,
#   github.com/opensearch-project/opensearch-migrations/pull/2116), which include Fargate
#   placing the task on its own capacity: not comparable here;
# - the task's start: the pause container and its CNI setup, the two EFS volumes mounted with
#   TLS, the fetcher's check that the model is complete on EFS (vLLM's container waits for its
#   SUCCESS, modelfleet/containers.py) and vLLM's container created. An assumption: AWS
#   publishes no figure for it.
ENI_ATTACH_S = 5
TASK_START_S = 5
CACHED_IMAGE_S = ENI_ATTACH_S + TASK_START_S
# EKS: Bottlerocket's SOCI snapshotter in parallel-pull-unpack mode downloads and unpacks
# layers concurrently (https://bottlerocket.dev/en/os/1.53.x/api/settings/container-runtime-plugins/,
# read 2026-12-01). For images without a SOCI index, parallel pull measured 14-50 % faster
# than Docker's pull on 20 GB+ images (awslabs/soci-snapshotter commit f1fcd05, 2026-04); the
# low end is assumed.
SOCI_PARALLEL_GAIN = 0.14
EKS_IMAGE_S = FIRST_IMAGE_S * (1 - SOCI_PARALLEL_GAIN)
# Concurrency per image, as the Bottlerocket settings reference's example sets it.
SOCI_DOWNLOADS_PER_IMAGE = 10
SOCI_UNPACKS_PER_IMAGE = 10
NODE_SNAPSHOTTER = "soci"


def bottlerocket_user_data() -> str:
    """The GPU node class's Bottlerocket settings (TOML; Karpenter merges its own into them):
    the SOCI snapshotter in parallel-pull-unpack mode, so the ~10 GB engine image downloads and
    unpacks its layers concurrently onto the data volume. Settings names from the Bottlerocket
    reference (container-runtime `snapshotter`, container-runtime-plugins soci-snapshotter
    `pull-mode` and `parallel-pull-unpack.*`); a changed snapshotter takes effect at boot,
    which is when Karpenter's nodes read it."""
    return (
        "[settings.container-runtime]\n"
        f'snapshotter = "{NODE_SNAPSHOTTER}"\n'
        "\n"
        "[settings.container-runtime-plugins.soci-snapshotter]\n"
        'pull-mode = "parallel-pull-unpack"\n'
        "\n"
        "[settings.container-runtime-plugins.soci-snapshotter.parallel-pull-unpack]\n"
        f"max-concurrent-downloads-per-image = {SOCI_DOWNLOADS_PER_IMAGE}\n"
        f"max-concurrent-unpacks-per-image = {SOCI_UNPACKS_PER_IMAGE}\n"
    )


# Root volume of a GPU host: the vLLM image unpacks to ~25 GB and a deploy briefly holds two
# versions (components/ecs/gpu_capacity.py); a stopped warm-pool instance keeps paying for it.
ROOT_VOLUME_GIB = 200

# --- weights ---------------------------------------------------------------------------------
# vLLM 0.31.0's `--safetensors-load-strategy` (vllm/config/load.py, LoadConfig; read at the
# stored snapshot 030eb6656c of github.com/vllm-project/vllm, 2026-12-01, the tag itself being
# too large to fetch here):
#   prefetch  "Checkpoint files are read into the OS page cache before workers load them ...
#             Useful on network or high-latency storage"; model_loader/weight_utils.py
#             `_prefetch_all_checkpoints` reads the shards with parallel threads (4 by default)
#             in large sequential blocks, then the loader maps them from the page cache;
#   eager     "The entire file is read into CPU memory upfront ... recommended for models on
#             network filesystems (e.g., Lustre, NFS)", one shard at a time (`load(f.read())`);
#   lazy      memory-mapped, random reads: the slowest on NFS.
# The plan picks prefetch when the vLLM container's memory holds the whole checkpoint in page
# cache next to vLLM's own host memory, else eager when it holds a shard twice (the bytes read
# and the tensors made from them), else lazy.
PREFETCH_THREADS = 4
# What one NFS connection to EFS carries (sizing.py's figure) and EFS Elastic's documented
# per-client maximum (https://docs.aws.amazon.com/efs/latest/ug/performance.html, read
# 2026-12-02: 1,500 MiBps read/write per client for Elastic throughput, 500 MiBps for
# Provisioned and Bursting). Both come from the mount helper the ECS agent mounts EFS volumes
# with (amazon-efs-utils): since v2.0 its efs-proxy forwards the kernel's NFS traffic, starts
# with one connection, and once a mount moves 300 MiB/s for 1 s opens up to 5 connections
# to the file system (github.com/aws/efs-utils v3.2.0, src/proxy/src/controller.rs:33-38
# DEFAULT_SCALE_UP_CONFIG: max_multiplexed_connections 5, scale_up_bytes_per_sec_threshold
# 300 MiB; read 2026-12-02): 300 MiB/s is what the proxy counts as one connection's worth,
# and 5 x 300 = 1,500 MiB/s, the per-client maximum. vLLM's parallel prefetch readers keep
# several connections busy; one sequential reader (eager, lazy) stays on one.
STREAM_MIBPS = sizing.EFS_READ_MIBPS
EFS_PER_CLIENT_MIBPS = 1500.0
EFS_PROXY_CONNECTIONS = 5
# transformers' save_pretrained shards checkpoints at 5 GB by default (max_shard_size="5GB"),
# which is how the hub's safetensors checkpoints are cut.
SHARD_GIB = 5e9 / sizing.GIB
# vLLM's own host memory while loading (Python, torch, CUDA host context, tokenizer): an
# assumption from the resident size of a vLLM server process of an 8-70B model.
VLLM_HOST_MIB = 6144

# --- engine ----------------------------------------------------------------------------------
# The compile cache has no lock: vllm/compilation/backends.py `CompilerManager` reads its index
# with `ast.literal_eval(open(...).read())` and rewrites it with a plain `open(path, "w")`
# (same stored snapshot). Replicas that start together on an empty cache each compile and
# write the same hash-keyed files; one that reads the index while another rewrites it fails
# to parse it and exits, and ECS starts the task again (Kubernetes restarts the container),
# now on the complete cache. What the cache holds is code vLLM loads: on ECS only the model's
# own task role can write it; on EKS only the model's vLLM container mounts its claim, and the
# volume is bound to that claim alone (claimRef).
# Of sizing.py's 90 s engine start, torch.compile of the model's graphs; with the compiled
# artifacts in VLLM_CACHE_ROOT vLLM loads them instead (vLLM's torch.compile design notes,
# https://docs.vllm.ai/en/latest/design/torch_compile/ "Compilation Cache", read 2026-12-01:
# copying torch_compile_cache "save[s] a great amount of compilation time").
ENGINE_COMPILE_S = 40
COMPILE_CACHE_LOAD_S = 5


@dataclass(frozen=True)
class Phase:
    phase: str  # capacity | image | weights | engine
    seconds: float
    how: str  # what happens in this phase
    source: str  # where the figure comes from


# The engine phase of both platforms: the first start of a model on an engine version compiles
# into the empty compile cache; every later one reads the compiled graphs from it.
COMPILING_ENGINE = Phase(
    "engine",
    sizing.ENGINE_INIT_SECONDS,
    "vLLM compiles its graphs (the compile cache is empty) and captures CUDA graphs",
    f"{sizing.ENGINE_INIT_SECONDS} s engine start (sizing.py)",
)
CACHED_ENGINE = Phase(
    "engine",
    sizing.ENGINE_INIT_SECONDS - ENGINE_COMPILE_S + COMPILE_CACHE_LOAD_S,
    "compiled graphs read from VLLM_CACHE_ROOT on EFS, CUDA graphs captured",
    f"{sizing.ENGINE_INIT_SECONDS} s - {ENGINE_COMPILE_S} s torch.compile + "
    f"{COMPILE_CACHE_LOAD_S} s cache load",
)


@dataclass(frozen=True)
class StartPath:
    kind: str  # first | warm
    phases: tuple[Phase, ...]
    # The containers already run during the image phase: a data volume initializing from its
    # snapshot serves the engine's first reads as they come, so the engine's own start must
    # cover what is left of the initialization (EKS image cache at a provisioned rate).
    image_during_container: bool = False

    @property
    def total_s(self) -> float:
        return sum(p.seconds for p in self.phases)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.phase == name)

    @property
    def container_start_s(self) -> float:
        """From vLLM's container start to healthy: what health checks and grace must cover."""
        image = self.phase("image").seconds if self.image_during_container else 0.0
        return image + self.phase("weights").seconds + self.phase("engine").seconds


@dataclass(frozen=True)
class TriggerPlan:
    """A wake-up caused by a request at a scaled-to-zero model, before the capacity request."""

    metric_period_s: int  # the ALB's RequestCount period
    alarm_window_s: int  # the wake alarm's evaluation periods x period
    total_s: float  # trigger + the warm start
    source: str


@dataclass(frozen=True)
class WeightLoad:
    strategy: str  # prefetch | eager | lazy
    mibps: float
    buffer_mib: int  # host memory the strategy needs beyond vLLM's own
    why: str


@dataclass(frozen=True)
class ColdStartPlan:
    first: StartPath
    warm: StartPath
    warm_pool: bool  # the warm start comes from a warm pool
    weight_load: WeightLoad
    trigger: TriggerPlan
    notes: tuple[str, ...] = ()


def weight_load(checkpoint_gib: float, vllm_memory_mib: int, tensor_parallel: int) -> WeightLoad:
    """The load strategy the vLLM container's memory can carry, and its read rate.

    `checkpoint_gib`: the checkpoint as stored on EFS (what vLLM reads, whatever the serving
    dtype: a bf16 repository served as fp8 reads 2 bytes a weight)."""
    weights_mib = math.ceil(checkpoint_gib * 1024)
    free = vllm_memory_mib - VLLM_HOST_MIB
    if weights_mib <= free:
        return WeightLoad(
            "prefetch",
            min(min(PREFETCH_THREADS, EFS_PROXY_CONNECTIONS) * STREAM_MIBPS, EFS_PER_CLIENT_MIBPS),
            weights_mib,
            f"{PREFETCH_THREADS} parallel readers on efs-proxy's up to {EFS_PROXY_CONNECTIONS} "
            f"connections x {STREAM_MIBPS:g} MiB/s, at most EFS "
            f"Elastic's {EFS_PER_CLIENT_MIBPS:g} MiB/s per client; the page cache holds the "
            f"{checkpoint_gib:.1f} GiB checkpoint",
        )
    # Every TP rank reads every shard it needs at once: a shard's bytes and its tensors each.
    shard_mib = math.ceil(min(SHARD_GIB, checkpoint_gib) * 1024) * 2 * tensor_parallel
    if shard_mib <= free:
        return WeightLoad(
            "eager",
            STREAM_MIBPS,
            shard_mib,
            f"one sequential read per shard at {STREAM_MIBPS:g} MiB/s; the checkpoint does not "
            f"fit the container's page cache next to vLLM ({vllm_memory_mib:,} MiB)",
        )
    return WeightLoad(
        "lazy",
        STREAM_MIBPS,
        0,
        "memory-mapped reads: the container's memory holds neither the checkpoint nor a shard",
    )


def plan_cold_start(
    *,
    checkpoint_gib: float,
    vllm_memory_mib: int,
    tensor_parallel: int,
    warm_pool: bool,
    wake_period_s: int,
    wake_evaluation_periods: int,
    platform: str = "ecs",
    image_cache: str | None = None,
    initialization_rate_mibps: int = MAX_INITIALIZATION_RATE_MIBPS,
) -> ColdStartPlan:
    """`image_cache` (EKS): None (SOCI parallel pull at every start), "rate" or
    "fast-snapshot-restore" (nodes start from the prepared data-volume snapshot)."""
    if platform == "eks":
        return _eks_cold_start(
            checkpoint_gib,
            vllm_memory_mib,
            tensor_parallel,
            wake_period_s,
            wake_evaluation_periods,
            image_cache,
            initialization_rate_mibps,
        )
    load = weight_load(checkpoint_gib, vllm_memory_mib, tensor_parallel)
    weights_s = checkpoint_gib * 1024 / load.mibps
    scaling = (
        f"ECS managed scaling {MANAGED_SCALING_REACTION_S} s (one 1-minute "
        "CapacityProviderReservation datapoint)"
    )
    weights = Phase(
        "weights",
        weights_s,
        f"{checkpoint_gib:.1f} GiB checkpoint from EFS, --safetensors-load-strategy "
        f"{load.strategy}",
        load.why,
    )
    first = StartPath(
        "first",
        (
            Phase(
                "capacity",
                MANAGED_SCALING_REACTION_S + COLD_BOOT_S,
                "a new instance boots and registers",
                f"{scaling} + ECS GPU AMI boot {COLD_BOOT_S} s",
            ),
            Phase(
                "image",
                FIRST_IMAGE_S,
                "engine image pulled and extracted",
                f"{sizing.VLLM_IMAGE_GB:g} GB at {sizing.IMAGE_PULL_MBPS:g} MB/s extraction",
            ),
            weights,
            COMPILING_ENGINE,
        ),
    )
    engine = CACHED_ENGINE
    if warm_pool:
        warm = StartPath(
            "warm",
            (
                Phase(
                    "capacity",
                    MANAGED_SCALING_REACTION_S + WARM_POOL_START_S,
                    "a stopped, pre-initialized instance leaves the warm pool",
                    f"{scaling} + warm-pool start {WARM_POOL_START_S} s (AWS: as low as "
                    f"{WARM_POOL_IN_SERVICE_S} s to InService, + {AGENT_REGISTER_S} s ECS agent "
                    "start and registration, assumed; ECS_WARM_POOLS_CHECK adds no wait: the "
                    "target state already reads InService)",
                ),
                Phase(
                    "image",
                    CACHED_IMAGE_S,
                    "images already on the root volume; the task's ENI attached, EFS mounted, "
                    "the fetcher's check, containers created",
                    f"ENI {ENI_ATTACH_S} s (AWS: awsvpc adds 'several seconds') + task start "
                    f"{TASK_START_S} s (assumed, no published figure)",
                ),
                weights,
                engine,
            ),
        )
    else:
        warm = StartPath("warm", (first.phases[0], first.phases[1], weights, engine))
    notes: list[str] = []
    if not warm_pool:
        notes.append(
            "no warm pool on this capacity: every start from zero boots a new instance and pulls "
            "the engine image; only the compile cache is warm"
        )
    window = wake_period_s * wake_evaluation_periods
    trigger = TriggerPlan(
        metric_period_s=wake_period_s,
        alarm_window_s=window,
        total_s=wake_period_s + window + warm.total_s,
        source=(
            f"ALB RequestCount arrives per {wake_period_s} s; the wake alarm evaluates "
            f"{wake_evaluation_periods} x {wake_period_s} s before the service scales"
        ),
    )
    return ColdStartPlan(first, warm, warm_pool, load, trigger, tuple(notes))


def eks_image_phase(image_cache: str | None, rate_mibps: int) -> Phase:
    """The image phase of an EKS start: after the node is ready, what is left before the pod's
    containers run from the images on the data volume."""
    if image_cache is None:
        return Phase(
            "image",
            EKS_IMAGE_S,
            "engine image by SOCI parallel pull and unpack onto the data volume",
            f"{FIRST_IMAGE_S:.0f} s sequential pull - {SOCI_PARALLEL_GAIN:.0%} (soci-snapshotter: "
            "parallel pull 14-50 % faster on 20 GB+ images without an index)",
        )
    if image_cache == "fast-snapshot-restore":
        return Phase(
            "image",
            CACHED_IMAGE_S,
            "images already on the data volume (fast snapshot restore: fully initialized at "
            "creation); pod IP attached, containers created",
            f"{CACHED_IMAGE_S} s assumed for the containers' creation (no published figure); "
            "EBS FSR docs: no initialization",
        )
    init = initialization_s(rate_mibps)
    ready = EKS_NODE_READY_S + GPU_DEVICE_PLUGIN_S
    left = init - ready
    return Phase(
        "image",
        max(CACHED_IMAGE_S, left),
        f"images already on the data volume; EBS initializes its {SNAPSHOT_DATA_GB:g} GB at "
        f"{rate_mibps} MiB/s from the launch, {max(0.0, left):.0f} s of it after the node is ready",
        f"{SNAPSHOT_DATA_GB:g} GB ({sizing.VLLM_IMAGE_GB:g} GB layers + {IMAGE_UNPACKED_GB:g} GB "
        f"unpacked) / {rate_mibps} MiB/s = {init:.0f} s - {ready} s node start (EBS provisioned "
        "initialization rate; no order promised, so all of it counts)",
    )


def _eks_cold_start(
    checkpoint_gib: float,
    vllm_memory_mib: int,
    tensor_parallel: int,
    wake_period_s: int,
    wake_evaluation_periods: int,
    image_cache: str | None = None,
    rate_mibps: int = MAX_INITIALIZATION_RATE_MIBPS,
) -> ColdStartPlan:
    """EKS: Karpenter launches a node for every start from zero (no warm pool), so the first
    and the warm start share capacity and image phases: the engine image comes from the
    prepared data-volume snapshot (eks.imageCache), or by SOCI parallel pull without it. The
    serving pods mount the model's compile cache (modelfleet/kube/objects.py), so only the
    first start on an engine version compiles."""
    load = weight_load(checkpoint_gib, vllm_memory_mib, tensor_parallel)
    phases = (
        Phase(
            "capacity",
            EKS_CAPACITY_S,
            "Karpenter launches a GPU node for the pending pod; Bottlerocket boots, joins, and "
            "its device plugin registers the GPU",
            f"Karpenter batchMaxDuration {KARPENTER_BATCH_S} s + node Ready {EKS_NODE_READY_S} s "
            f"(karpenter-provider-aws#6165: 30-40 s) + NVIDIA device plugin {GPU_DEVICE_PLUGIN_S} "
            "s (bottlerocket#3726 boot log)",
        ),
        eks_image_phase(image_cache, rate_mibps),
        Phase(
            "weights",
            checkpoint_gib * 1024 / load.mibps,
            f"{checkpoint_gib:.1f} GiB checkpoint from EFS, --safetensors-load-strategy "
            f"{load.strategy}",
            load.why,
        ),
    )
    overlap = image_cache == "rate"
    first = StartPath("first", (*phases, COMPILING_ENGINE), image_during_container=overlap)
    warm = StartPath("warm", (*phases, CACHED_ENGINE), image_during_container=overlap)
    window = wake_period_s * wake_evaluation_periods
    image_note = (
        "the image phase starts from the prepared data-volume snapshot (eks.imageCache, "
        f"initialization {image_cache})"
        if image_cache
        else "eks.imageCache.enabled false: the image phase uses SOCI parallel pull"
    )
    return ColdStartPlan(
        first=first,
        warm=warm,
        warm_pool=False,
        weight_load=load,
        trigger=TriggerPlan(
            metric_period_s=wake_period_s,
            alarm_window_s=window,
            total_s=wake_period_s + window + warm.total_s,
            source=f"a {wake_period_s} s metric period and a {window} s scaler window",
        ),
        notes=(
            "EKS: no warm pool (Karpenter launches a node per start from zero); "
            f"{image_note}; the pods mount the model's compile cache, so only the first start "
            "on an engine version compiles",
        ),
    )


def lifecycle_heartbeat_s(margin: float) -> int:
    """How long Auto Scaling waits for the user data to pull the images and complete the
    EC2_INSTANCE_LAUNCHING hook before it proceeds anyway: the first pull, with margin."""
    return max(300, sizing.round_up((COLD_BOOT_S + FIRST_IMAGE_S) * margin, 60))


ASSUMPTIONS: tuple[sizing.Assumption, ...] = (
    sizing.Assumption(
        "managed scaling reaction",
        f"{MANAGED_SCALING_REACTION_S} s",
        "one 1-minute CapacityProviderReservation datapoint (AWS containers blog)",
    ),
    sizing.Assumption(
        "warm-pool start",
        f"{WARM_POOL_START_S} s",
        f"stopped instance to InService 'as low as {WARM_POOL_IN_SERVICE_S} s' (AWS, a floor) "
        f"+ {AGENT_REGISTER_S} s ECS agent start and registration (assumed; the warm-pools "
        "check adds no wait, agent v1.105.0 agent.go)",
    ),
    sizing.Assumption(
        "cached images",
        f"{CACHED_IMAGE_S} s",
        f"awsvpc ENI {ENI_ATTACH_S} s ('several seconds', ECS docs) + task start "
        f"{TASK_START_S} s (pause container, EFS mounts, fetcher check, containers; assumed)",
    ),
    sizing.Assumption(
        "weight load (prefetch)",
        f"{PREFETCH_THREADS} x {STREAM_MIBPS:g} MiB/s, at most {EFS_PER_CLIENT_MIBPS:g} MiB/s",
        f"vLLM's prefetch readers; efs-proxy opens up to {EFS_PROXY_CONNECTIONS} connections "
        f"past {STREAM_MIBPS:g} MiB/s (efs-utils controller.rs); EFS Elastic per-client "
        "maximum (EFS performance docs)",
    ),
    sizing.Assumption(
        "vLLM host memory",
        f"{VLLM_HOST_MIB} MiB",
        "beside what the load strategy buffers",
    ),
    sizing.Assumption(
        "EKS node start",
        f"{KARPENTER_BATCH_S} + {EKS_NODE_READY_S} + {GPU_DEVICE_PLUGIN_S} s",
        "Karpenter batch window + node Ready (karpenter-provider-aws#6165) + NVIDIA device "
        "plugin (bottlerocket#3726)",
    ),
    sizing.Assumption(
        "EKS image snapshot",
        f"{SNAPSHOT_DATA_GB:g} GB at {MAX_INITIALIZATION_RATE_MIBPS} MiB/s",
        "compressed layers + unpacked image, initialized by EBS at the provisioned rate",
    ),
    sizing.Assumption(
        "compile cache",
        f"-{ENGINE_COMPILE_S} s compile, +{COMPILE_CACHE_LOAD_S} s load",
        "torch.compile artifacts read from VLLM_CACHE_ROOT (vLLM design docs)",
    ),
)

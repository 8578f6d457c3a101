#!/bin/bash
# Bootstrap of a GPU host on the ECS GPU-optimized Amazon Linux 2023 AMI (NVIDIA driver and
# container toolkit come with the AMI). components/ecs/gpu_capacity.py fills in the values.
set -euo pipefail

cluster="__ECS_CLUSTER__"
# true on groups with a warm pool: the instance first boots into the pool, pulls the images
# and is stopped; it joins the cluster when it starts again to serve.
warm_pool="__WARM_POOL__"

cat >>/etc/ecs/ecs.config <<CONFIG
ECS_CLUSTER=${cluster}
ECS_ENABLE_GPU_SUPPORT=true
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_SPOT_INSTANCE_DRAINING=true
ECS_AWSVPC_BLOCK_IMDS=true
ECS_IMAGE_PULL_BEHAVIOR=prefer-cached
ECS_CONTAINER_STOP_TIMEOUT=120s
ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=10m
ECS_WARM_POOLS_CHECK=${warm_pool}
CONFIG
# ECS_AWSVPC_BLOCK_IMDS: tasks use their own task role, never the host's instance profile.
# prefer-cached: a task uses the image already on the host (pulled into the warm pool, or by
#   an earlier task) instead of pulling the ~10 GB vLLM image again.
# STOP_TIMEOUT 120s: the sidecar drains in-flight streams before vLLM is stopped.
# ECS_WARM_POOLS_CHECK: the agent does not register while the instance is in the warm pool
#   (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html).

if [[ $warm_pool != true ]]; then
  exit 0
fi

# Auto Scaling stops a warm-pool instance as soon as it has launched, without waiting for user
# data; the EC2_INSTANCE_LAUNCHING hook holds it until the images are on the root volume. The
# hook fires again when the instance leaves the pool, and cloud-init runs user data on the
# first boot only, so the hook's completion lives in a per-boot script
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
mkdir -p /etc/modelfleet
cat >/etc/modelfleet/warm-pool.env <<'ENV'
__WARM_POOL_ENV__
ENV
hook_script=/var/lib/cloud/scripts/per-boot/modelfleet-warm-pool.sh
mkdir -p "$(dirname "$hook_script")"
cat >"$hook_script" <<'BOOT'
__WARM_POOL_BOOT__
BOOT
chmod 0755 "$hook_script"
# First boot: cloud-init ran the (then empty) per-boot scripts before this user data.
"$hook_script"

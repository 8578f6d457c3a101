#!/bin/bash
# Bootstrap of a GPU host on the ECS GPU-optimized Amazon Linux 2023 AMI (NVIDIA driver and
# container toolkit come with the AMI). components/ecs/gpu_capacity.py fills in the cluster name.
set -euo pipefail

cluster="__ECS_CLUSTER__"

cat >>/etc/ecs/ecs.config <<EOF
ECS_CLUSTER=${cluster}
ECS_ENABLE_GPU_SUPPORT=true
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_SPOT_INSTANCE_DRAINING=true
ECS_AWSVPC_BLOCK_IMDS=true
ECS_IMAGE_PULL_BEHAVIOR=prefer-cached
ECS_CONTAINER_STOP_TIMEOUT=120s
ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=10m
EOF
# ECS_AWSVPC_BLOCK_IMDS: tasks use their own task role, never the host's instance profile.
# prefer-cached: a replacement task on the same host skips the ~10 GB vLLM image pull.
# STOP_TIMEOUT 120s: the sidecar drains in-flight streams before vLLM is stopped.

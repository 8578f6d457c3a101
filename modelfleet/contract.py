"""The container contract: ports, paths, shares and metric names that the plan, the container
definitions, the alarms and the images (docker/) must agree on.

A leaf module: it imports nothing from modelfleet, so every other module may import it.
"""

from __future__ import annotations

MODELS_MOUNT = "/models"
MODELS_VOLUME = "models"
VLLM_PORT = 8000
SIDECAR_PORT = 8080
READY_PATH = "/ready"
HEALTH_PATH = "/health"

# Sidecar's share of a task: it proxies bytes and must not take the CPU vLLM's scheduler and
# tokenizer need, so it gets a small, fixed slice.
SIDECAR_CPU_UNITS = 512
SIDECAR_MEMORY_MIB = 512
FETCHER_CPU_UNITS = 256
FETCHER_MEMORY_MIB = 1024
# ECS registers less memory than the instance has (kernel, agent, Docker): ~6 % on GPU AMIs.
# Asking for more than the registered figure leaves the task PENDING forever, so keep a margin.
ECS_REGISTERED_MEMORY_SHARE = 0.90
# Headroom on every duration we derive from the cold-start estimate.
STARTUP_MARGIN = 1.5

# ECS stops a container with SIGTERM, then SIGKILL after stopTimeout (120 s at most on EC2
# and Fargate: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html).
MAX_STOP_TIMEOUT = 120
PREWARM_CONTAINER = "fetcher"
# No single request may hold a replica longer than two hours.
MAX_REQUEST_SECONDS = 7200

# Metrics the sidecar publishes in embedded metric format (docker/sidecar).
EMF_NAMESPACE = "modelfleet"
QUEUE_DEPTH = "QueueDepth"
TIME_TO_FIRST_TOKEN = "TimeToFirstToken"  # noqa: S105 - a metric name
SERVICE_DIMENSION = "Service"

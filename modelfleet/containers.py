"""ECS container definitions for a model's task, as plain data.

Pure so that a test can validate them against botocore's RegisterTaskDefinition model and the
limits table without Pulumi; the component only fills in ARNs and image references.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.contract import (
    COMPILE_CACHE_MOUNT,
    COMPILE_CACHE_VOLUME,
    EMF_NAMESPACE,
    FETCHER_CPU_UNITS,
    FETCHER_MEMORY_MIB,
    MODELS_MOUNT,
    MODELS_VOLUME,
    PREWARM_CONTAINER,
    SIDECAR_CPU_UNITS,
    SIDECAR_MEMORY_MIB,
    SIDECAR_PORT,
    VLLM_PORT,
)
from modelfleet.plan_types import FleetPlan, ModelPlan

__all__ = [
    "EMF_NAMESPACE",
    "MODELS_VOLUME",
    "PREWARM_CONTAINER",
    "TaskRefs",
    "container_definitions",
    "fetcher_command",
    "fetcher_sources",
    "prewarm_container",
]


@dataclass(frozen=True)
class TaskRefs:
    """What the container definitions need from other resources."""

    region: str
    log_group: str
    vllm_image: str
    sidecar_image: str
    fetcher_image: str
    # Secrets Manager ARNs by the plan's secret key (`FleetPlan.secrets`).
    secret_arns: Mapping[str, str] = field(default_factory=dict)


def _secrets(plan: FleetPlan, refs: TaskRefs, container: str) -> list[dict[str, str]]:
    """ECS `secrets` for one container: the plan's secrets table, never plain environment."""
    return [
        {"name": s.env, "valueFrom": refs.secret_arns[s.key]}
        for s in plan.secrets
        if s.container == container
    ]


def _logs(refs: TaskRefs, prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": refs.log_group,
            "awslogs-region": refs.region,
            "awslogs-stream-prefix": prefix,
            # A blocked log pipe must never stall token streaming.
            "mode": "non-blocking",
            "max-buffer-size": "25m",
        },
    }


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def fetcher_sources(m: ModelPlan, plan: FleetPlan) -> list[tuple[str, str]]:
    """(container name, source) for the model and each LoRA adapter."""
    cfg = next(x for x in plan.config.models if x.name == m.name)
    out = [("fetch-model", m.source)]
    out += [(f"fetch-{a.name}"[:255], a.source) for a in cfg.lora_adapters]
    return out


def fetcher_command(m: ModelPlan, source: str) -> list[str]:
    """`python -m fetcher SOURCE DEST_ROOT --expect JSON`: the fetch, and what the plan assumed
    of it (format, dtype, weight bytes, LoRA rank) for the fetcher to verify before any GPU
    task loads it."""
    return [source, MODELS_MOUNT, "--expect", json.dumps(m.fetch_expect[source], sort_keys=True)]


def fetcher_container(
    name: str, command: list[str], plan: FleetPlan, refs: TaskRefs, essential: bool
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "image": refs.fetcher_image,
        "essential": essential,
        "command": command,
        "cpu": FETCHER_CPU_UNITS,
        "memoryReservation": FETCHER_MEMORY_MIB,
        "mountPoints": [
            {"sourceVolume": MODELS_VOLUME, "containerPath": MODELS_MOUNT, "readOnly": False}
        ],
        "environment": _env({"AWS_DEFAULT_REGION": refs.region}),
        "readonlyRootFilesystem": False,
        "logConfiguration": _logs(refs, "fetcher"),
    }
    if secrets := _secrets(plan, refs, "fetcher"):
        c["secrets"] = secrets
    return c


def _compile_cache_mount(m: ModelPlan) -> list[dict[str, Any]]:
    """vLLM's compile cache, the one place it writes: a second access point per model and
    engine version, mounted in the vLLM container only, where the plan gives it one."""
    if not m.compile_cache_path:
        return []
    return [
        {
            "sourceVolume": COMPILE_CACHE_VOLUME,
            "containerPath": COMPILE_CACHE_MOUNT,
            "readOnly": False,
        }
    ]


def engine_start_s(m: ModelPlan) -> float:
    """From vLLM's container start to ready, as the warm start expects it."""
    if m.cold_start is None:
        return m.container_start_s
    return m.cold_start.warm.container_start_s


def http_probe_argv(port: int, path: str) -> list[str]:
    """A health probe run inside the container: the engine listens on 127.0.0.1 only."""
    # python3 is in both images (vLLM's and ours); curl is not guaranteed in either.
    return [
        "python3",
        "-c",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', "
        "timeout=4)",
    ]


def _http_probe(port: int, path: str) -> list[str]:
    return ["CMD", *http_probe_argv(port, path)]


def vllm_env(m: ModelPlan) -> dict[str, str]:
    """vLLM's environment, the same on every platform."""
    env = {
        # Weights come from the cache; serving must never reach for the hub.
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if m.compile_cache_path:
        # torch.compile artifacts persist in VLLM_CACHE_ROOT (vllm/envs.py; vLLM writes
        # VLLM_CACHE_ROOT/torch_compile_cache/<hash>/rank_<r>_<dp>), so a start after the
        # first one loads them instead of compiling.
        env["VLLM_CACHE_ROOT"] = COMPILE_CACHE_MOUNT
    return env


# The sidecar publishes QueueDepth every this many seconds (its own default, set explicitly
# because the EKS scaler turns a per-minute Sum of the samples back into a total queue).
EMF_INTERVAL_S = 10


def sidecar_env(plan: FleetPlan, m: ModelPlan, drain_s: int) -> dict[str, str]:
    """The gateway sidecar's plain settings, the same on every platform but the drain (ECS
    sends SIGKILL stopTimeout after SIGTERM); secrets go apart (`plan.secrets`)."""
    g = plan.config.gateway
    t = plan.sidecar[m.name]
    env = {
        "SIDECAR_HOST": "0.0.0.0",  # noqa: S104 - the task/pod address; only the ALB is admitted
        "SIDECAR_PORT": str(SIDECAR_PORT),
        "SIDECAR_UPSTREAM_URL": f"http://127.0.0.1:{VLLM_PORT}",
        "SIDECAR_ROUTE_PREFIX": f"/{m.name}",
        "SIDECAR_RPM": str(g.rate_limit.requests_per_minute),
        "SIDECAR_TPM": str(g.rate_limit.tokens_per_minute),
        "SIDECAR_MAX_BODY_BYTES": str(g.max_body_bytes),
        "SIDECAR_MAX_INFLIGHT": str(m.sidecar_max_inflight),
        "SIDECAR_DRAIN_SECONDS": str(drain_s),
        # A blocking answer ends with a clean OpenAI-shaped 504 just before the ALB would cut
        # the connection; a stream may run for a whole maxModelLen at single-stream speed.
        "SIDECAR_FIRST_BYTE_TIMEOUT": str(t.first_byte_s),
        "SIDECAR_TOTAL_TIMEOUT": str(t.total_s),
        "SIDECAR_SERVICE_NAME": m.service_name,
        # The engine's expected start once its container runs (weights + engine, the warm
        # start's figures): the gateway's Retry-After while vLLM is not ready yet.
        "SIDECAR_ENGINE_START_SECONDS": str(math.ceil(engine_start_s(m))),
        "SIDECAR_MODEL_NAME": m.name,
        "SIDECAR_EMF_NAMESPACE": EMF_NAMESPACE,
        "SIDECAR_EMF_INTERVAL": str(EMF_INTERVAL_S),
        # Below the ALB idle timeout, so a slow first token never looks like a dead connection.
        "SIDECAR_KEEPALIVE_SECONDS": str(t.sse_keepalive_s),
        # Idle HTTP connections outlive the ALB's, so the ALB never reuses one the sidecar is
        # closing (a spurious 502); 620 s is the sidecar's own default.
        "SIDECAR_HTTP_KEEPALIVE_SECONDS": str(t.http_keepalive_s),
    }
    if g.allow_no_auth:
        env["SIDECAR_ALLOW_NO_AUTH"] = "1"
    if g.fallback is not None:
        env["SIDECAR_FALLBACK_URL"] = g.fallback.base_url
        env["SIDECAR_FALLBACK_MODEL"] = g.fallback.model
    return env


def container_definitions(m: ModelPlan, plan: FleetPlan, refs: TaskRefs) -> list[dict[str, Any]]:
    fetchers = [
        fetcher_container(n, fetcher_command(m, s), plan, refs, essential=False)
        for n, s in fetcher_sources(m, plan)
    ]
    hc = m.vllm_health_check
    vllm: dict[str, Any] = {
        "name": "vllm",
        "image": refs.vllm_image,
        "essential": True,
        "command": m.vllm_command,
        "resourceRequirements": [{"type": "GPU", "value": str(m.tensor_parallel)}],
        # The task's memory less what the others reserve: one fetcher per source, the sidecar
        # (ECS rejects a task whose containers reserve more than its memory).
        "memoryReservation": m.vllm_memory_mib,
        "linuxParameters": {"sharedMemorySize": m.shared_memory_mib, "initProcessEnabled": True},
        "ulimits": [
            {"name": "memlock", "softLimit": -1, "hardLimit": -1},
            {"name": "nofile", "softLimit": 65535, "hardLimit": 65535},
        ],
        "mountPoints": [
            # Read-only: serving never writes weights; only the fetcher does.
            {"sourceVolume": MODELS_VOLUME, "containerPath": MODELS_MOUNT, "readOnly": True},
            *_compile_cache_mount(m),
        ],
        "dependsOn": [{"containerName": f["name"], "condition": "SUCCESS"} for f in fetchers],
        "environment": _env(vllm_env(m)),
        "healthCheck": {
            "command": _http_probe(VLLM_PORT, "/health"),
            "interval": hc.interval,
            "timeout": hc.timeout,
            "retries": hc.retries,
            "startPeriod": hc.start_period,
        },
        # Give up on a vLLM that has not turned healthy by the end of its health budget.
        "startTimeout": hc.budget_s,
        "stopTimeout": plan.drain.stop_timeout_s,
        "logConfiguration": _logs(refs, "vllm"),
    }
    env = sidecar_env(plan, m, plan.drain.sidecar_drain_s)
    secrets = _secrets(plan, refs, "sidecar")
    sidecar: dict[str, Any] = {
        "name": "sidecar",
        "image": refs.sidecar_image,
        "essential": True,
        "cpu": SIDECAR_CPU_UNITS,
        "memoryReservation": SIDECAR_MEMORY_MIB,
        "portMappings": [{"containerPort": SIDECAR_PORT, "protocol": "tcp", "name": "http"}],
        # With vLLM, not after it: the task runs and registers with its target group while
        # the engine loads, and the gateway answers 503 with Retry-After meanwhile (the ALB
        # fails open to unhealthy targets when none is healthy) instead of the ALB's own 503
        # for the whole start. The target's /ready turns healthy with the engine.
        "dependsOn": [{"containerName": "vllm", "condition": "START"}],
        "environment": _env(env),
        "secrets": secrets,
        "readonlyRootFilesystem": True,
        "healthCheck": {
            "command": _http_probe(SIDECAR_PORT, "/health"),
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 15,
        },
        "stopTimeout": plan.drain.stop_timeout_s,
        "logConfiguration": _logs(refs, "sidecar"),
    }
    return [*fetchers, vllm, sidecar]


def prewarm_container(plan: FleetPlan, refs: TaskRefs) -> list[dict[str, Any]]:
    """The one-shot pre-warm task: the fetcher alone, sized by the Fargate task.

    Its command (SOURCE DEST_ROOT --expect JSON, `fetcher_command`) is given per run by the
    pre-warm provider, one run per source, so one task definition serves a model and its
    adapters.
    """
    c = fetcher_container(PREWARM_CONTAINER, [], plan, refs, essential=True)
    del c["cpu"], c["memoryReservation"]
    return [c]

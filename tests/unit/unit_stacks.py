"""Stack files for the unit tests: a minimal valid one, one with every key, and a writer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"

LLAMA_8B_SOURCE = "hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/8f0c7c5e-1a2b-4c3d-9e8f-0a1b2c3d4e5f"

# The smallest stack the schema accepts: ephemeral (so HTTP and no API keys are allowed).
MINIMAL: dict[str, Any] = {
    "aws:region": "us-east-1",
    "modelfleet:team": "search",
    "modelfleet:ephemeral": True,
    "modelfleet:models": [
        {
            "name": "llama-8b",
            "source": LLAMA_8B_SOURCE,
            "maxModelLen": 8192,
            "instanceType": "g6.xlarge",
        }
    ],
    "modelfleet:gateway": {"allowNoAuth": True},
}

# Every key of the stack file contract, each set to a value other than its default, so that a
# key silently dropped (or mapped to the wrong field) shows up as a wrong value.
FULL: dict[str, Any] = {
    "aws:region": "eu-west-1",
    "modelfleet:environment": "staging",
    "modelfleet:team": "search",
    "modelfleet:platform": "ecs",
    "modelfleet:ephemeral": False,
    "modelfleet:network": {
        "vpcCidr": "10.60.0.0/16",
        "availabilityZones": 3,
        # ACM certificates are regional: the stack's own Region (eu-west-1).
        "certificateArn": CERT.replace("us-east-1", "eu-west-1"),
        "natGateways": "per-az",
        "ingressCidrs": ["10.0.0.0/8", "192.168.0.0/16"],
        "idleTimeoutSeconds": 900,
    },
    "modelfleet:models": [
        {
            "name": "custom-7b",
            "source": "s3://acme-models/custom-7b/v1/",
            "parameters": {
                "parametersB": 7.0,
                "activeParametersB": 6.5,
                "layers": 32,
                "attentionHeads": 32,
                "kvHeads": 8,
                "headDim": 128,
                "maxContext": 32768,
                "vocabSize": 32000,
                "tiedEmbeddings": True,
            },
            "checkpoint": "float16",
            "dtype": "float16",
            "kvCacheDtype": "fp8",
            "maxModelLen": 16384,
            "instanceType": "g6e.xlarge",
            "tensorParallel": 1,
            "gpuMemoryUtilization": 0.85,
            "maxNumSeqs": 64,
            "replicas": {"min": 0, "max": 4},
            "capacity": "spot",
            "vllmArgs": ["--enable-prefix-caching", "--max-loras=4"],
            # Outside ephemeral stacks an hf:// source pins a commit; this one is on S3.
            "loraAdapters": [
                {"name": "rerank", "source": "s3://acme-models/rerank-lora/v3/", "rank": 64}
            ],
        },
        {
            "name": "llama-8b",
            # AWQ serving needs an AWQ checkpoint: the catalog's, mirrored to S3.
            "source": "s3://acme-models/llama-3.1-8b-awq/v1/",
            "model": "llama-3.1-8b-awq",
            "dtype": "awq",
            "maxModelLen": 8192,
            "instanceType": "g6.12xlarge",
            "replicas": {"min": 2, "max": 6},
            "capacity": "mixed",
        },
    ],
    "modelfleet:gateway": {
        "apiKeys": {"secure": "v1:AAAA:apikeys-ciphertext"},
        "allowNoAuth": False,
        "rateLimit": {"requestsPerMinute": 600, "tokensPerMinute": 200000},
        "maxBodyBytes": 2097152,
        "maxInflight": 128,
        "fallback": {
            "baseUrl": "https://api.example.com/v1",
            "model": "some-model",
            "apiKey": {"secure": "v1:BBBB:fallback-ciphertext"},
        },
        "drainSeconds": 120,
    },
    "modelfleet:schedule": {
        "timezone": "Europe/Berlin",
        "scaleDown": "30 19 * * MON-FRI",
        "scaleUp": "0 8 * * MON-FRI",
    },
    "modelfleet:alarms": {
        "emails": ["search-oncall@example.com"],
        "p99LatencySeconds": 20.0,
        "queueDepth": 8,
        "errorRatePercent": 2.5,
    },
    "modelfleet:autoscaling": {
        "queueDepthTarget": 2.5,
        "scaleOutCooldown": 30,
        "scaleInCooldown": 300,
    },
    "modelfleet:images": {
        "vllm": "vllm/vllm-openai:v0.30.0-cu129",
        "sidecar": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sidecar:1.2.3",
        "fetcher": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fetcher:1.2.3",
        "dockerHubCredentials": {"secure": "v1:CCCC:hub-ciphertext"},
    },
    "modelfleet:coldStart": {"warmPool": False},
    "modelfleet:keepCapacityProviders": ["g6-12xlarge-mixed"],
    "modelfleet:pricing": {"instances": {"g6e.xlarge": 1.5}, "spotDiscount": 0.5},
    "modelfleet:guardrails": {
        "allowedInstanceFamilies": ["g6", "g6e"],
        "maxHourlyUsd": 20.0,
        "requireSpot": True,
    },
    "modelfleet:logRetentionDays": 14,
    "modelfleet:hfToken": {"secure": "v1:CCCC:hf-ciphertext"},
    "modelfleet:tags": {"cost-center": "1234", "owner": "search"},
}


def config(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of a stack's `config:` mapping, safe to mutate."""
    return copy.deepcopy(MINIMAL if base is None else base)


def write_stack(directory: Path, cfg: dict[str, Any], stack: str = "test") -> Path:
    path = directory / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": cfg}, sort_keys=False))
    return path


def engine_form(cfg: dict[str, Any]) -> dict[str, str]:
    """What the Pulumi engine hands the program: every value a string, structures as JSON."""
    import json

    out: dict[str, str] = {}
    for key, value in cfg.items():
        if isinstance(value, dict | list):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out

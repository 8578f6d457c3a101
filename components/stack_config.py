"""Read the stack's config from the Pulumi engine into the same StackConfig the CLI uses."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from modelfleet.config import NAMESPACE, StackConfig, load_config_mapping


def engine_config() -> tuple[dict[str, Any], set[str]]:
    """Every `namespace:key` the engine passed, and which of them are secrets."""
    values: dict[str, Any] = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    secret = set(runtime_config.get_config_secret_keys_env())
    secret.update(k for k in values if runtime_config.is_config_secret(k))
    return values, secret


def load_stack_config() -> StackConfig:
    values, secret = engine_config()
    relevant = {
        k: v for k, v in values.items() if k.startswith(f"{NAMESPACE}:") or k == "aws:region"
    }
    return load_config_mapping(relevant, stack=pulumi.get_stack(), secret_keys=secret)

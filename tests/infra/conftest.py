"""Each shipped stack runs once per worker under Pulumi mocks; variants run from tmp stack files.

All infra tests share the xdist group "infra" (`pytestmark` in each module), so with
`-n 2 --dist loadgroup` they land on one worker and these session fixtures run once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import DEV, FALLBACK_URL, PROD, STAGING, plan_of

from components.harness import Run, run_stack
from modelfleet.plan import FleetPlan

Mutate = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="session")
def dev() -> Run:
    return run_stack(DEV)


@pytest.fixture(scope="session")
def prod() -> Run:
    return run_stack(PROD)


@pytest.fixture(scope="session")
def staging() -> Run:
    return run_stack(STAGING)


@pytest.fixture(scope="session")
def dev_plan() -> FleetPlan:
    return plan_of(DEV)


@pytest.fixture(scope="session")
def prod_plan() -> FleetPlan:
    return plan_of(PROD)


@pytest.fixture(scope="session")
def staging_plan() -> FleetPlan:
    return plan_of(STAGING)


def write_variant(directory: Path, stack: str, base: Path, mutate: Mutate) -> Path:
    """A copy of `base` with `mutate` applied to its `config:` mapping, as Pulumi.<stack>.yaml."""
    doc = yaml.safe_load(base.read_text())
    config = copy.deepcopy(doc["config"])
    mutate(config)
    path = directory / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


@pytest.fixture
def stack_variant(tmp_path: Path) -> Callable[[str, Path, Mutate], tuple[Path, Run]]:
    """Write a variant of a shipped stack to tmp_path and run the program on it."""

    def make(stack: str, base: Path, mutate: Mutate) -> tuple[Path, Run]:
        path = write_variant(tmp_path, stack, base, mutate)
        return path, run_stack(path)

    return make


# Variants several modules use: run once per session.


def _scale_to_zero(config: dict[str, Any]) -> None:
    config["modelfleet:models"][0]["replicas"] = {"min": 0, "max": 2}


def _images_fallback(config: dict[str, Any]) -> None:
    config["modelfleet:images"] = {
        "sidecar": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sidecar:1.2.3",
        "fetcher": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fetcher:1.2.3",
    }
    gateway = config["modelfleet:gateway"]
    gateway.pop("allowNoAuth", None)
    gateway["apiKeys"] = {"secure": "v1:abc:def"}
    gateway["fallback"] = {
        "baseUrl": FALLBACK_URL,
        "model": "some-model",
        "apiKey": {"secure": "v1:ghi:jkl"},
    }
    config["modelfleet:hfToken"] = {"secure": "v1:mno:pqr"}
    config["modelfleet:network"]["idleTimeoutSeconds"] = 1000
    config["modelfleet:models"][0]["capacity"] = "on-demand"


@pytest.fixture(scope="session")
def zero_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """dev with replicas.min 0: scale from zero on a request."""
    path = write_variant(tmp_path_factory.mktemp("zero"), "zero", DEV, _scale_to_zero)
    return path, run_stack(path)


@pytest.fixture(scope="session")
def given_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """dev with prebuilt images, API keys, a fallback API, an HF token, a long idle timeout,
    on-demand capacity."""
    path = write_variant(tmp_path_factory.mktemp("given"), "given", DEV, _images_fallback)
    return path, run_stack(path)

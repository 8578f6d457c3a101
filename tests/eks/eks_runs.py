"""The EKS stacks the tests run: the shipped ones, and an ephemeral variant in an existing VPC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.harness import Run, run_stack
from modelfleet.config import load_stack_file
from modelfleet.plan import FleetPlan, build_plan

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"


def _is_eks(path: Path) -> bool:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return bool(doc["config"].get("modelfleet:platform") == "eks")


SHIPPED_EKS = sorted(p for p in STACKS.glob("Pulumi.*.yaml") if _is_eks(p))
SHIPPED_ECS = sorted(p for p in STACKS.glob("Pulumi.*.yaml") if not _is_eks(p))
PROD_EKS = STACKS / "Pulumi.prod-eks.yaml"


def small_variant(config: dict[str, Any]) -> None:
    """An ephemeral dev EKS stack in an existing VPC: one spot model that scales to zero,
    private endpoint only, defaults everywhere else."""
    config["modelfleet:environment"] = "dev"
    config["modelfleet:ephemeral"] = True
    config["modelfleet:eks"] = {"kubernetesVersion": "1.34"}
    config["modelfleet:network"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "publicSubnetIds": ["subnet-0a1b2c3d4e5f60003", "subnet-0a1b2c3d4e5f60004"],
    }
    model = config["modelfleet:models"][0]
    model["replicas"] = {"min": 0, "max": 2}
    model["capacity"] = "spot"
    config["modelfleet:models"] = [model]
    config.pop("modelfleet:schedule", None)
    config["modelfleet:gateway"] = {"allowNoAuth": True}


_RUNS: dict[Path, Run] = {}


def run_of(path: Path) -> Run:
    if path not in _RUNS:
        _RUNS[path] = run_stack(path)
    return _RUNS[path]


def plan_of(path: Path) -> FleetPlan:
    return build_plan(load_stack_file(path))

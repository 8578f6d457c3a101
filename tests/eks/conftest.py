"""EKS stacks under Pulumi mocks: the shipped EKS stack and a variant, each run once."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from eks_runs import PROD_EKS, plan_of, run_of, small_variant

from components.harness import Run
from modelfleet.plan import FleetPlan


@pytest.fixture(scope="session")
def eks_small_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = yaml.safe_load(PROD_EKS.read_text())
    config = copy.deepcopy(doc["config"])
    small_variant(config)
    path = tmp_path_factory.mktemp("eks") / "Pulumi.eks-small.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


@pytest.fixture(scope="session", params=["prod-eks", "eks-small"])
def eks_case(request: pytest.FixtureRequest, eks_small_path: Path) -> tuple[Path, Run, FleetPlan]:
    path = PROD_EKS if request.param == "prod-eks" else eks_small_path
    return path, run_of(path), plan_of(path)

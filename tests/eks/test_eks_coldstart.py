"""Cold start on EKS (issue 13, item 3): the GPU node class pulls the engine image by SOCI
parallel pull (Bottlerocket's settings), the plan's image phase says what that buys and where
the figure comes from, and no ECS warm pool leaks into an EKS stack. The compile cache the pods
mount: tests/eks/test_eks_engine_cache.py."""

from __future__ import annotations

import tomllib

import pytest
from eks_runs import PROD_EKS, plan_of

from components.harness import Run
from modelfleet import coldstart, sizing
from modelfleet.plan import FleetPlan

pytestmark = pytest.mark.xdist_group("eks")

Case = tuple[object, Run, FleetPlan]


def test_node_class_pulls_by_soci_parallel_pull(eks_case: Case) -> None:
    _, run, _ = eks_case
    spec = run.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass").inputs["spec"]
    settings = tomllib.loads(spec["userData"])["settings"]
    assert settings["container-runtime"]["snapshotter"] == "soci"
    soci = settings["container-runtime-plugins"]["soci-snapshotter"]
    assert soci["pull-mode"] == "parallel-pull-unpack"
    assert soci["parallel-pull-unpack"] == {
        "max-concurrent-downloads-per-image": coldstart.SOCI_DOWNLOADS_PER_IMAGE,
        "max-concurrent-unpacks-per-image": coldstart.SOCI_UNPACKS_PER_IMAGE,
    }
    # Layers unpack onto the data volume: its provisioned throughput carries the parallel pull.
    data = next(b for b in spec["blockDeviceMappings"] if b["deviceName"] == "/dev/xvdb")
    assert data["ebs"]["throughput"] >= 600


def test_eks_cold_start_phases_and_sources() -> None:
    plan = plan_of(PROD_EKS)
    for m in plan.models:
        cs = m.cold_start
        assert cs is not None and not cs.warm_pool  # Karpenter: a node per start from zero
        phases = {ph.phase: ph for ph in cs.warm.phases}
        assert phases["image"].seconds == pytest.approx(
            sizing.VLLM_IMAGE_GB * 1000 / sizing.IMAGE_PULL_MBPS * (1 - 0.14)
        )
        assert "soci-snapshotter" in phases["image"].source
        assert (
            phases["capacity"].seconds == coldstart.KARPENTER_BATCH_S + sizing.INSTANCE_BOOT_SECONDS
        )
        # The pods mount the compile cache: the warm start loads the compiled graphs.
        assert phases["engine"] == coldstart.CACHED_ENGINE
        assert m.cold_start_s == pytest.approx(cs.warm.total_s)
        assert any(n.startswith("EKS: no warm pool") for n in m.notes)


def test_no_ecs_warm_pool_on_eks(eks_case: Case) -> None:
    _, _, plan = eks_case
    assert all(g.warm_pool is None for g in plan.capacity.values())
    assert plan.shared_cost.warm_pools_usd == 0

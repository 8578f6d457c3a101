"""The pure EKS plan: support windows and their price, NodePools, names, identities."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from eks_stacks import ADMIN, ADMIN_2, QWEN_SOURCE, eks_config, model, plan_for

from modelfleet import eks, eks_versions
from modelfleet.config import ConfigError
from modelfleet.eks_versions import Support

CRD_DIR = Path(__file__).resolve().parents[2] / "components" / "eks" / "crds"


def test_platform_eks_alone_is_a_whole_stack_on_the_default_version(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, eks_config())
    assert plan.eks is not None
    assert plan.eks.kubernetes_version == eks_versions.DEFAULT_KUBERNETES_VERSION == "1.35"
    assert plan.eks.support is Support.STANDARD
    # AWS defaults to EXTENDED: the plan always says which, and STANDARD while it is.
    assert plan.eks.support_type is Support.STANDARD
    assert plan.eks.cost.control_plane_usd == pytest.approx(730 * 0.10)
    assert plan.eks.public_access_cidrs == ()


def test_ecs_stacks_have_no_eks_plan(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:platform"] = "ecs"
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is None
    assert "eks" not in plan.to_dict()


def test_version_leaving_standard_support_within_the_month_is_priced_extended(
    tmp_path: Path,
) -> None:
    # 1.34's standard support ends 2026-12-02 (EKS release calendar).
    plan = plan_for(tmp_path, eks_config(kubernetesVersion="1.34"))
    assert plan.eks is not None
    assert plan.eks.support is Support.EXTENDED
    assert plan.eks.cost.control_plane_usd == pytest.approx(730 * 0.60)
    assert any("1.34: in extended support from 2026-12-02" in n for n in plan.notes)
    # Two months earlier the same version is standard and cheaper.
    early = plan_for(tmp_path, eks_config(kubernetesVersion="1.34"), as_of=dt.date(2026, 10, 1))
    assert early.eks is not None and early.eks.support is Support.STANDARD
    assert plan.monthly_usd - early.monthly_usd == pytest.approx(730 * 0.50)


def test_extended_version_with_standard_upgrade_policy_is_explained(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, eks_config(kubernetesVersion="1.33", supportType="STANDARD"))
    assert plan.eks is not None
    assert plan.eks.support is Support.EXTENDED
    assert plan.eks.support_type is Support.STANDARD
    assert any("upgrades the control plane" in n for n in plan.notes)
    default = plan_for(tmp_path, eks_config(kubernetesVersion="1.33"))
    assert default.eks is not None and default.eks.support_type is Support.EXTENDED


def test_version_past_extended_support_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plan_for(tmp_path, eks_config(kubernetesVersion="1.33"), as_of=dt.date(2027, 8, 1))
    assert len(info.value.problems) == 1
    assert "eks.kubernetesVersion: EKS ended extended support for 1.33" in str(info.value)


def test_every_allowed_version_has_addons_and_controller_support() -> None:
    for version in eks_versions.allowed_versions():
        row = eks_versions.KUBERNETES_VERSIONS[version]
        assert row.end_of_standard < row.end_of_extended
        assert set(eks_versions.ADDON_VERSIONS[version]) == set(eks_versions.ADDON_NAMES)
        # Pinned add-on builds are for this Kubernetes minor (kube-proxy carries it).
        assert eks_versions.ADDON_VERSIONS[version]["kube-proxy"].startswith(f"v{version}.")  # type: ignore[union-attr]
    assert {"1.33", "1.34", "1.35"} == set(eks_versions.allowed_versions())


def test_mixed_capacity_is_two_pools_on_demand_first(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:models"] = [
        model("chat", source=QWEN_SOURCE, instanceType="g6e.xlarge", capacity="mixed",
              replicas={"min": 2, "max": 5})
    ]  # fmt: skip
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is not None
    pools = plan.eks.node_pools
    od, spot = pools["gpu-g6e-xlarge-mixed-od"], pools["gpu-g6e-xlarge-mixed-spot"]
    assert (od.capacity_type, spot.capacity_type) == ("on-demand", "spot")
    assert od.weight > spot.weight
    # On-demand holds the floor (min x GPUs); spot takes the rest plus one rollout surge.
    assert od.gpu_limit == 2 * 1
    assert spot.gpu_limit == (5 + eks.ROLLOUT_MAX_SURGE - 2) * 1
    sched = plan.eks.scheduling["chat"]
    assert sched.node_selector == {eks.GPU_CLASS_LABEL: "g6e-xlarge-mixed"}
    assert set(sched.pools) == {od.name, spot.name}
    assert od.labels == spot.labels == sched.node_selector


def test_mixed_with_no_floor_has_only_the_spot_pool(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:models"] = [model("chat", capacity="mixed", replicas={"min": 0, "max": 2})]
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is not None
    assert list(plan.eks.node_pools) == ["gpu-g6-xlarge-mixed-spot"]


def test_models_sharing_a_gpu_class_share_a_pool_sized_for_both(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:models"] = [
        model("aa", replicas={"min": 1, "max": 2}),
        model("bb", replicas={"min": 0, "max": 3}),
        model("cc", instanceType="g6e.xlarge", source=QWEN_SOURCE, capacity="spot"),
    ]
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is not None
    shared = plan.eks.node_pools["gpu-g6-xlarge-on-demand"]
    assert shared.models == ("aa", "bb")
    assert shared.gpu_limit == (2 + 1) + (3 + 1)
    assert plan.eks.node_pools["gpu-g6e-xlarge-spot"].capacity_type == "spot"


def test_expiry_grace_covers_drain_and_a_cold_start(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:gateway"] = {"allowNoAuth": True, "drainSeconds": 300}
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is not None
    pool = next(iter(plan.eks.node_pools.values()))
    grace_s = int(pool.termination_grace_period.removesuffix("m")) * 60
    assert grace_s >= 300 + plan.models[0].cold_start_s
    assert eks.EXPIRE_AFTER == "720h"


def test_names_are_keyed_by_what_they_are_not_position(tmp_path: Path) -> None:
    cfg = eks_config(adminRoleArns=[ADMIN, ADMIN_2])
    cfg["modelfleet:models"] = [model("aa"), model("bb", instanceType="g6e.xlarge",
                                                   source=QWEN_SOURCE)]  # fmt: skip
    first = plan_for(tmp_path, cfg)
    cfg["modelfleet:models"].reverse()
    cfg["modelfleet:eks"]["adminRoleArns"].reverse()
    second = plan_for(tmp_path, cfg)
    assert first.eks is not None and second.eks is not None
    assert {(r.type, r.name) for r in first.eks.resources} == {
        (r.type, r.name) for r in second.eks.resources
    }
    names = [r.name for r in first.eks.resources]
    assert len(names) == len(set(names))
    entry = first.eks.access_entries[f"admin:{ADMIN}"]
    assert entry.principal_arn == ADMIN
    assert entry.entry_logical == second.eks.access_entries[f"admin:{ADMIN}"].entry_logical


def test_controller_and_workload_identities(tmp_path: Path) -> None:
    cfg = eks_config()
    cfg["modelfleet:models"] = [
        model("hub"),
        model("own", source="s3://weights-bucket/qwen/", model="Qwen/Qwen2.5-7B-Instruct"),
    ]
    plan = plan_for(tmp_path, cfg)
    assert plan.eks is not None
    ids = plan.eks.identities
    assert (ids["efs-csi-node"].namespace, ids["efs-csi-node"].service_account) == (
        "kube-system",
        "efs-csi-node-sa",
    )
    assert ids["keda-operator"].service_account == "keda-operator"
    # Every model has a service account; only one that reads AWS (S3) gets a role.
    assert plan.eks.workload_service_accounts == {"hub": "hub-serving", "own": "own-serving"}
    assert "workload:own" in ids and "workload:hub" not in ids
    assert ids["workload:own"].namespace == plan.eks.namespace


def test_vendored_crds_are_exactly_the_listed_ones() -> None:
    found: set[str] = set()
    for path in CRD_DIR.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition"
                found.add(doc["metadata"]["name"])
    listed = {c for crds in eks_versions.VENDORED_CRDS.values() for c in crds}
    assert found == listed
    assert set(eks_versions.VENDORED_CRDS) == set(eks_versions.CHARTS)


def test_charts_are_pinned_to_exact_versions() -> None:
    for chart in eks_versions.CHARTS.values():
        parts = chart.version.split(".")
        assert len(parts) == 3 and all(p.isdigit() for p in parts), chart
    assert eks_versions.CHARTS["karpenter"].version == "1.14.1"


def test_a_stack_holds_an_addon_at_a_build(tmp_path: Path) -> None:
    """Add-ons without a sourced build in the table follow EKS's default for the Kubernetes
    version (re-read at each preview, so a new default shows as an update); a stack can hold
    any add-on at a build, and a misspelt add-on or build is one error naming the key."""
    held = plan_for(tmp_path, eks_config(addonVersions={"vpc-cni": "v1.21.1-eksbuild.8"}))
    assert held.eks is not None
    assert held.eks.addons["vpc-cni"].version == "v1.21.1-eksbuild.8"
    table = eks_versions.ADDON_VERSIONS[held.eks.kubernetes_version]
    assert held.eks.addons["coredns"].version == table["coredns"]
    for bad in ({"vpc-cnx": "v1.21.1-eksbuild.8"}, {"vpc-cni": "latest"}):
        with pytest.raises(ConfigError) as info:
            plan_for(tmp_path, eks_config(addonVersions=bad))
        assert "eks.addonVersions" in str(info.value)

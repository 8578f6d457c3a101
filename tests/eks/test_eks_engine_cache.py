"""Issue 13 on EKS, items 1 and 4: the serving pods pull the engine image from the account's
registry (the ECR pull-through cache, pinned by digest) with a GPU node role allowed to import
it under the cache prefix only, and mount vLLM's compile cache from a second, writable access
point per model and engine version, in the vLLM container only, so only the first start
compiles."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from eks_runs import PROD_EKS, plan_of, run_of
from serving_support import placeholder_objects, two_model_config

from components.harness import ACCOUNT, Recorded, Run, run_stack
from modelfleet import coldstart
from modelfleet.contract import COMPILE_CACHE_MOUNT, COMPILE_CACHE_VOLUME, MODELS_MOUNT
from modelfleet.kube.objects import MODELS_VOLUME
from modelfleet.kube.render import render_files
from modelfleet.kube.serving import serving_plan
from modelfleet.plan import FleetPlan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from infra_support import assert_valid

pytestmark = pytest.mark.xdist_group("eks")

Case = tuple[Path, Run, FleetPlan]
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ACCESS_POINT = "aws:efs/accessPoint:AccessPoint"
# The harness's answer for the digest the pull-through cache resolves at `pulumi up`.
MOCK_DIGEST = "sha256:" + "1" * 64
IMPORT = {"ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}


def _kube(run: Run, kind: str, name: str) -> Recorded:
    found = [
        r
        for r in run.resources
        if r.type.startswith("kubernetes:")
        and r.type.endswith(f":{kind}")
        and (r.inputs.get("metadata") or {}).get("name") == name
    ]
    assert len(found) == 1, (kind, name, [r.name for r in found])
    return found[0]


def _pod(run: Run, kind: str, name: str) -> dict[str, Any]:
    return dict(_kube(run, kind, name).inputs["spec"]["template"]["spec"])


def _names(urns: list[str]) -> set[str]:
    return {u.split("::")[-1] for u in urns}


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def _variant_file(tmp: Path, name: str, edit: Any) -> Path:
    """prod-eks with `edit` applied to its config."""
    doc = yaml.safe_load(PROD_EKS.read_text())
    config = copy.deepcopy(doc["config"])
    edit(config)
    path = tmp / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def _variant(tmp: Path, name: str, edit: Any) -> tuple[FleetPlan, Run]:
    """The variant planned and run under mocks."""
    path = _variant_file(tmp, name, edit)
    return plan_of(path), run_stack(path)


def _plan_variant(tmp: Path, name: str, edit: Any) -> FleetPlan:
    return plan_of(_variant_file(tmp, name, edit))


# --- item 1: the engine image from the account's registry ----------------------------------


def test_eks_stacks_build_the_pull_through_cache_of_the_engine_image(eks_case: Case) -> None:
    _, run, plan = eks_case
    e = plan.engine_image
    assert e.mode == "pull-through"  # the shipped EKS stack gives Docker Hub credentials
    rule = run.one("aws:ecr/pullThroughCacheRule:PullThroughCacheRule").inputs
    assert rule["ecrRepositoryPrefix"] == e.cache_prefix
    template = run.one("aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate").inputs
    assert template["prefix"] == e.cache_prefix
    digest = run.one("pulumi-python:dynamic:Resource", "-engine-image-digest").inputs
    assert (digest["repository"], digest["tag"]) == (e.cache_repository, e.tag)


def test_every_pod_runs_the_engine_from_the_accounts_registry_by_digest(eks_case: Case) -> None:
    _, run, plan = eks_case
    e = plan.engine_image
    expected = f"{ACCOUNT}.dkr.ecr.{plan.config.region}.amazonaws.com/{e.cache_repository}"
    expected += f"@{MOCK_DIGEST}"
    for m in plan.models:
        pod = _pod(run, "Deployment", m.name)
        vllm = next(c for c in pod["containers"] if c["name"] == "vllm")
        assert vllm["image"] == expected
        assert vllm["image"] != plan.config.images.vllm  # never Docker Hub as written


def test_without_credentials_the_pods_use_the_image_as_given(tmp_path: Path) -> None:
    def no_credentials(config: dict[str, Any]) -> None:
        config.pop("modelfleet:images")

    plan, run = _variant(tmp_path, "eks-given", no_credentials)
    assert plan.engine_image.mode == "given"
    assert plan.eks is not None and "gpu_node_engine_image" not in plan.eks.logical
    assert not run.by_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    for m in plan.models:
        vllm = next(c for c in _pod(run, "Deployment", m.name)["containers"] if c["name"] == "vllm")
        assert vllm["image"] == plan.config.images.vllm
    # No cache prefix, no import grant on the node role.
    for p in run.by_type(ROLE_POLICY):
        for s in json.loads(p.inputs["policy"])["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert not IMPORT & set(actions), p.name


def test_gpu_node_role_imports_the_engine_under_the_cache_prefix_only(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    e = plan.engine_image
    policy = run.named(plan.eks.logical["gpu_node_engine_image"].name)
    # On the GPU node role (the kubelet's), not the system nodes'.
    assert policy.inputs["role"] == run.named(plan.eks.logical["gpu_node_role"].name).outputs["id"]
    doc = policy.inputs["policy"]
    params = {"RoleName": "role", "PolicyName": policy.outputs["name"], "PolicyDocument": doc}
    assert_valid("iam", "PutRolePolicy", params, policy.name)
    statements = json.loads(doc)["Statement"]
    repos = f"arn:aws:ecr:{plan.config.region}:{ACCOUNT}:repository/{e.cache_prefix}/*"
    (ecr,) = [s for s in statements if IMPORT & set(s["Action"])]
    assert set(ecr["Action"]) == IMPORT and ecr["Resource"] == repos
    key = run.one("aws:kms/key:Key").outputs["arn"]
    for s in statements:
        assert s["Effect"] == "Allow"
        assert "*" not in json.dumps(s["Resource"]).replace(f"{e.cache_prefix}/*", "")
        assert all(a != "*" and not a.endswith(":*") for a in s["Action"])
    assert {json.dumps(s["Resource"]) for s in statements} == {
        json.dumps(repos),
        json.dumps(key),
    }
    # ECR's pull actions come with the managed pull-only policy on the same role.
    pull_only = run.named(plan.eks.logical["gpu_node_role:AmazonEC2ContainerRegistryPullOnly"].name)
    assert pull_only.inputs["policyArn"].endswith(":policy/AmazonEC2ContainerRegistryPullOnly")
    # The same grant as the ECS hosts' (components._common.engine_cache_statements): the
    # system node role gets none.
    system = run.named(plan.eks.logical["system_node_role"].name).outputs["id"]
    assert not [p for p in run.by_type(ROLE_POLICY) if p.inputs["role"] == system]
    # The nodes join (and pull) only once the grant exists.
    access = run.named(plan.eks.logical["gpu_node_access"].name)
    assert policy.name in _names(access.dependencies)


def test_nat_savings_only_where_the_ecr_endpoints_exist(tmp_path: Path) -> None:
    """prod-eks is a new-VPC prod stack: ECR and S3 endpoints, so its image pulls leave NAT.
    The same stack as dev has no interface endpoints: its pulls cross NAT either way."""

    def no_credentials(config: dict[str, Any]) -> None:
        config.pop("modelfleet:images")

    def dev(config: dict[str, Any]) -> None:
        config["modelfleet:environment"] = "dev"

    def dev_no_credentials(config: dict[str, Any]) -> None:
        dev(config)
        no_credentials(config)

    prod = plan_of(PROD_EKS)
    assert {"ecr.api", "ecr.dkr"} <= set(prod.interface_endpoints)
    given = _plan_variant(tmp_path, "eks-given", no_credentials)
    assert prod.shared_cost.nat_usd < given.shared_cost.nat_usd
    dev_cached = _plan_variant(tmp_path, "eks-dev", dev)
    dev_given = _plan_variant(tmp_path, "eks-dev-given", dev_no_credentials)
    assert not dev_cached.interface_endpoints
    assert dev_cached.shared_cost.nat_usd == dev_given.shared_cost.nat_usd


def test_offline_render_shows_the_registry_reference_with_an_unresolved_digest(
    tmp_path: Path,
) -> None:
    plan = plan_of(PROD_EKS)
    e = plan.engine_image
    assert e.tag is not None and e.digest is None
    want = (
        f"<account-id>.dkr.ecr.{plan.config.region}.amazonaws.com/{e.cache_repository}"
        f"@<unresolved-digest:{e.tag}>"
    )
    for m in plan.models:
        text = render_files(plan)[f"{m.name}.deployment.yaml"]
        (deployment,) = list(yaml.safe_load_all(text))
        vllm = next(
            c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
        )
        assert vllm["image"] == want
    # A digest given in images.vllm needs no lookup: the render shows it.
    digest = "sha256:" + "ab" * 32

    def pinned(config: dict[str, Any]) -> None:
        config["modelfleet:images"]["vllm"] = f"vllm/vllm-openai@{digest}"

    pinned_plan = _plan_variant(tmp_path, "eks-pinned", pinned)
    objs = placeholder_objects(pinned_plan)
    images = {
        c["image"]
        for o in objs
        if o.kind == "Deployment"
        for c in o.body["spec"]["template"]["spec"]["containers"]
        if c["name"] == "vllm"
    }
    assert images == {
        f"<account-id>.dkr.ecr.{plan.config.region}.amazonaws.com/"
        f"{pinned_plan.engine_image.cache_repository}@{digest}"
    }


# --- item 4: vLLM's compile cache on the pods ------------------------------------------------


def test_compile_cache_volume_on_the_models_second_access_point(eks_case: Case) -> None:
    _, run, plan = eks_case
    sp = serving_plan(plan)
    fs = run.one("aws:efs/fileSystem:FileSystem").outputs["id"]
    for m in plan.models:
        sm = sp.models[m.name]
        ap = run.named(plan.ids.cache.compile_access_points[m.name].name)
        # Per model and engine version, outside the weights directory (the ECS path scheme).
        assert ap.inputs["rootDirectory"]["path"] == m.compile_cache_path
        assert m.compile_cache_path.endswith(f"/{plan.engine_image.version_key}")
        weights = run.named(plan.ids.cache.access_points[m.name].name)
        pv = _kube(run, "PersistentVolume", sm.compile_volume).inputs["spec"]
        assert pv["csi"]["volumeHandle"] == f"{fs}::{ap.outputs['id']}"
        assert pv["csi"]["volumeHandle"] != f"{fs}::{weights.outputs['id']}"
        assert pv["mountOptions"] == ["tls", "iam"]
        assert pv["claimRef"] == {"namespace": sp.namespace, "name": sm.compile_claim}
        assert pv["persistentVolumeReclaimPolicy"] == "Retain"
        pvc = _kube(run, "PersistentVolumeClaim", sm.compile_claim)
        assert pvc.inputs["spec"]["volumeName"] == sm.compile_volume
        assert pvc.inputs["metadata"]["namespace"] == sp.namespace
        # The pods wait for the claim, the claim for its volume.
        deployment = _kube(run, "Deployment", sm.deployment)
        assert pvc.name in _names(deployment.dependencies)
        pv_rec = _kube(run, "PersistentVolume", sm.compile_volume)
        assert pv_rec.name in _names(pvc.dependencies)


def test_compile_cache_mounted_read_write_in_the_vllm_container_only(eks_case: Case) -> None:
    _, run, plan = eks_case
    sp = serving_plan(plan)
    for m in plan.models:
        sm = sp.models[m.name]
        pod = _pod(run, "Deployment", sm.deployment)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[COMPILE_CACHE_VOLUME]["persistentVolumeClaim"] == {
            "claimName": sm.compile_claim
        }
        assert volumes[MODELS_VOLUME]["persistentVolumeClaim"] == {"claimName": sm.claim}
        containers = {c["name"]: c for c in pod["containers"]}
        vllm = _mounts(containers["vllm"])
        assert vllm[COMPILE_CACHE_VOLUME]["mountPath"] == COMPILE_CACHE_MOUNT
        assert vllm[COMPILE_CACHE_VOLUME]["readOnly"] is False
        # The weights stay read-only for serving.
        assert vllm[MODELS_VOLUME] == {
            "name": MODELS_VOLUME,
            "mountPath": MODELS_MOUNT,
            "readOnly": True,
        }
        env = {e["name"]: e.get("value") for e in containers["vllm"]["env"]}
        assert env["VLLM_CACHE_ROOT"] == COMPILE_CACHE_MOUNT
        others = [containers["sidecar"], *pod["initContainers"]]
        others += _pod(run, "Job", sm.prewarm_job)["containers"]
        for c in others:
            assert COMPILE_CACHE_VOLUME not in _mounts(c), c["name"]
            assert "VLLM_CACHE_ROOT" not in {e["name"] for e in c.get("env", [])}
        job_volumes = {v["name"] for v in _pod(run, "Job", sm.prewarm_job)["volumes"]}
        assert COMPILE_CACHE_VOLUME not in job_volumes


def test_compile_cache_objects_are_schema_valid_at_the_stacks_version(tmp_path: Path) -> None:
    from serving_support import eks_plan_for, validate

    plan = eks_plan_for(tmp_path, two_model_config())
    assert plan.eks is not None
    sp = serving_plan(plan)
    names = {sm.compile_volume for sm in sp.models.values()}
    names |= {sm.compile_claim for sm in sp.models.values()}
    objs = [o for o in placeholder_objects(plan) if o.name in names]
    assert len(objs) == 2 * len(plan.models)
    for o in objs:
        validate(o.body, plan.eks.kubernetes_version)
    # A misspelt field fails, so the check can fail.
    bad = copy.deepcopy(objs[0].body)
    bad["spec"]["readOnlyy"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, plan.eks.kubernetes_version, strict=True)


def test_the_compile_cache_is_where_the_efs_identity_may_mount(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    doc = json.loads(run.named(plan.eks.identities["efs-csi-node"].policy_logical.name).inputs[
        "policy"
    ])  # fmt: skip
    allowed = set(
        doc["Statement"][0]["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
    )
    for m in plan.models:
        ap = run.named(plan.ids.cache.compile_access_points[m.name].name)
        assert ap.outputs["arn"] in allowed


# --- item 4: the plan's engine phase --------------------------------------------------------


def test_eks_warm_start_loads_the_compiled_graphs_and_the_first_compiles() -> None:
    plan = plan_of(PROD_EKS)
    for m in plan.models:
        cs = m.cold_start
        assert cs is not None
        assert cs.first.phase("engine") == coldstart.COMPILING_ENGINE
        assert cs.warm.phase("engine") == coldstart.CACHED_ENGINE
        # The figure ECS uses, from the same constants.
        assert cs.warm.phase("engine").seconds == (
            cs.first.phase("engine").seconds
            - coldstart.ENGINE_COMPILE_S
            + coldstart.COMPILE_CACHE_LOAD_S
        )
        assert "VLLM_CACHE_ROOT" in cs.warm.phase("engine").how
        # Only the engine phase differs between the two starts.
        for phase in ("capacity", "image", "weights"):
            assert cs.warm.phase(phase) == cs.first.phase(phase)
        assert m.cold_start_s == pytest.approx(cs.warm.total_s)
        assert m.first_start_s == pytest.approx(cs.first.total_s)
        assert cs.trigger.total_s == pytest.approx(
            cs.trigger.metric_period_s + cs.trigger.alarm_window_s + cs.warm.total_s
        )
        # Probes still cover the first start, which compiles.
        assert m.container_start_s == pytest.approx(cs.first.container_start_s)
        assert not any("until the serving pods" in n for n in m.notes)


def test_replicas_compiling_together_is_stated_for_eks() -> None:
    plan = plan_of(PROD_EKS)
    m = next(m for m in plan.models if m.replicas_min > 1)
    assert any(
        "empty compile cache" in n and "Kubernetes restarts its vLLM container" in n
        for n in m.notes
    )


def test_prod_eks_plan_lists_the_compile_cache_and_node_grant() -> None:
    plan = plan_of(PROD_EKS)
    assert plan.eks is not None
    names = {r.name for r in plan.eks.resources}
    assert plan.eks.logical["gpu_node_engine_image"].name in names
    compile_aps = {r.name for r in plan.ids.cache.compile_access_points.values()}
    assert len(compile_aps) == len(plan.models)
    run = run_of(PROD_EKS)
    assert compile_aps <= {r.name for r in run.by_type(ACCESS_POINT)}

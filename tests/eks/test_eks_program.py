"""The EKS platform as the program builds it under mocks, for every EKS stack: what AWS and the
API server would receive, validated against botocore's models, Kubernetes' own schemas and the
vendored CRDs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from eks_runs import PROD_EKS, SHIPPED_ECS, plan_of, run_of
from eks_support import K8S_TYPE_PREFIX, PAYLOADS, crd_schema, ec2_shaped, k8s_object

from components.eks.controllers import vendored_crds
from components.harness import Run
from modelfleet import eks, eks_versions
from modelfleet.catalog import INSTANCE_TYPES
from modelfleet.kube.manifest import planned_resources
from modelfleet.plan import FleetPlan

pytestmark = pytest.mark.xdist_group("eks")

CHART_VALUES = Path(__file__).resolve().parent / "chart_values"
Case = tuple[Path, Run, FleetPlan]


def _validate_aws(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
    from infra_support import validate

    return validate(service, operation, params)


def _name(urn: str) -> str:
    return urn.split("::")[-1]


# --- the program builds what the plan lists ----------------------------------------------------


def test_program_builds_exactly_the_planned_platform(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    planned = [(r.type, r.name) for r in plan.eks.resources]
    recorded = {(r.type, r.name) for r in run.resources}
    assert set(planned) <= recorded, set(planned) - recorded
    # Nothing EKS-flavoured is created outside the plan's list.
    eks_types = {t for t, _ in planned}
    # The serving slice's objects are planned by modelfleet.kube (issue 11).
    names = {n for _, n in planned} | {n for _, n in planned_resources(plan)}
    extra = {
        (r.type, r.name)
        for r in run.resources
        if (r.type.startswith(K8S_TYPE_PREFIX) or r.type.startswith("aws:eks/"))
        and r.name not in names
    }
    assert extra == set()
    assert {"aws:eks/cluster:Cluster", "kubernetes:karpenter.sh/v1:NodePool"} <= eks_types
    # The plan's order is a valid creation order: every explicit dependency comes first.
    position = {n: i for i, (_, n) in enumerate(planned)}
    for r in run.resources:
        for dep in r.dependencies:
            d = _name(dep)
            if r.name in position and d in position:
                assert position[d] < position[r.name], f"{r.name} before its dependency {d}"


def test_ecs_stacks_build_no_eks_resource() -> None:
    for path in SHIPPED_ECS:
        run = run_of(path)
        assert not [r for r in run.resources if r.type.startswith(("aws:eks/", K8S_TYPE_PREFIX))]
        assert plan_of(path).eks is None


# --- the cluster, right on day one --------------------------------------------------------------


def test_cluster_settings_that_cannot_change_later(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    c = run.one("aws:eks/cluster:Cluster").inputs
    assert c["name"] == plan.eks.cluster_name
    assert c["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    assert c["bootstrapSelfManagedAddons"] is False
    assert c["upgradePolicy"] == {"supportType": plan.eks.support_type.value}
    assert c["encryptionConfig"]["resources"] == ["secrets"]
    key = run.one("aws:kms/key:Key")
    assert c["encryptionConfig"]["provider"]["keyArn"] == key.outputs["arn"]
    assert c["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert c["deletionProtection"] is (not plan.config.ephemeral)
    vpc = c["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is bool(plan.eks.public_access_cidrs)
    assert vpc.get("publicAccessCidrs") in (None, list(plan.eks.public_access_cidrs))
    assert "0.0.0.0/0" not in (vpc.get("publicAccessCidrs") or [])


def test_control_plane_logs_go_to_a_group_created_first(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    group = run.named(plan.eks.logical["log_group"].name)
    assert group.inputs["name"] == f"/aws/eks/{plan.eks.cluster_name}/cluster"
    assert group.inputs["retentionInDays"] == plan.config.retention_days
    cluster = run.one("aws:eks/cluster:Cluster")
    assert group.name in {_name(d) for d in cluster.dependencies}


def test_admins_and_the_deployer_get_cluster_admin_by_access_entry(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    entries = {r.inputs["principalArn"]: r for r in run.by_type("aws:eks/accessEntry:AccessEntry")}
    admins = set(plan.config.eks.admin_role_arns) if plan.config.eks else set()
    # The deployer comes from getSessionContext (its role ARN, not the session's).
    deployer = "arn:aws:iam::123456789012:user/ci"
    gpu_role = run.named(plan.eks.logical["gpu_node_role"].name).outputs["arn"]
    assert set(entries) == admins | {deployer, gpu_role}
    assert entries[gpu_role].inputs["type"] == "EC2_LINUX"
    assocs = run.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {a.inputs["principalArn"] for a in assocs} == admins | {deployer}
    for a in assocs:
        assert a.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
        assert a.inputs["accessScope"] == {"type": "cluster"}
    # The provider waits for every admin association: nothing is applied before access works.
    provider = run.one("pulumi:providers:kubernetes")
    assert {a.name for a in assocs} <= {_name(d) for d in provider.dependencies}
    config = json.loads(provider.inputs["kubeconfig"])
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:4] == ["eks", "get-token", "--cluster-name", plan.eks.cluster_name]


def test_every_kubernetes_object_goes_through_the_cluster_provider(eks_case: Case) -> None:
    _, run, _ = eks_case
    provider = run.one("pulumi:providers:kubernetes")
    objects = [r for r in run.resources if r.type.startswith(K8S_TYPE_PREFIX)]
    assert objects
    for r in objects:
        assert _name(r.provider.split("::" + provider.name + "-id")[0]) == provider.name, r.name


# --- EKS API payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(PAYLOADS))
def test_eks_api_payloads_are_valid_requests(eks_case: Case, operation: str) -> None:
    _, run, _ = eks_case
    type_token, convert = PAYLOADS[operation]
    recorded = run.by_type(type_token)
    assert recorded, type_token
    for r in recorded:
        assert _validate_aws("eks", operation, convert(r)) == [], r.name


def test_payload_validation_can_fail() -> None:
    problems = _validate_aws(
        "eks", "CreatePodIdentityAssociation", {"clusterName": "c", "namespace": "n"}
    )
    assert problems and "serviceAccount" in problems[0]


# --- Kubernetes objects --------------------------------------------------------------------------


def test_every_kubernetes_object_is_valid_at_the_stack_version(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    version = plan.eks.kubernetes_version
    typed = [
        r
        for r in run.resources
        if r.type.startswith(K8S_TYPE_PREFIX)
        and r.type.split(":")[1].split("/")[0] in ("core", "apiextensions.k8s.io", "apps", "batch")
    ]
    serving = {n for _, n in planned_resources(plan)}  # the serving slice's (issue 11)
    platform = [r for r in typed if r.name not in serving]
    assert len(platform) == sum(len(c) for c in eks_versions.VENDORED_CRDS.values()) + 1
    # The serving slice's objects: tests/eks/test_serving_mocks.py (secrets unwrapped there).
    for r in platform:
        kubernetes_validate.validate(k8s_object(r), version, strict=True)


def test_kubernetes_validation_can_fail() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x"},
        "spec": {"finalizerz": []},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.35", strict=True)


def test_every_custom_resource_matches_its_vendored_crd(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    custom = [r for r in run.resources if r.type.startswith(("kubernetes:karpenter",))]
    assert len(custom) == 1 + len(plan.eks.node_pools)
    for r in custom:
        obj = ec2_shaped(k8s_object(r))
        jsonschema.validate(obj, crd_schema(obj["apiVersion"], obj["kind"]))


def test_custom_resource_validation_can_fail(eks_case: Case) -> None:
    _, run, _ = eks_case
    pool = k8s_object(run.by_type("kubernetes:karpenter.sh/v1:NodePool")[0])
    pool["spec"]["disruption"]["consolidateAftr"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(pool, crd_schema("karpenter.sh/v1", "NodePool"))


# --- GPU capacity ---------------------------------------------------------------------------


def test_gpu_capacity_comes_only_from_karpenter_node_pools(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    for ng in run.by_type("aws:eks/nodeGroup:NodeGroup"):
        for t in ng.inputs["instanceTypes"]:
            assert t not in INSTANCE_TYPES, "system nodes carry no GPU"
    pools = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.by_type(
        "kubernetes:karpenter.sh/v1:NodePool")}  # fmt: skip
    assert set(pools) == set(plan.eks.node_pools)
    for name, spec in pools.items():
        p = plan.eks.node_pools[name]
        assert spec["limits"] == {"nvidia.com/gpu": str(p.gpu_limit)}
        assert "replicas" not in spec  # no static nodes: zero pods, zero GPU nodes
        assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"
        assert spec["disruption"]["consolidateAfter"] == eks.CONSOLIDATE_AFTER
        assert {tuple(b["reasons"]) for b in spec["disruption"]["budgets"]} == {
            ("Empty",),
            ("Drifted",),
        }
        t = spec["template"]["spec"]
        assert t["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
        assert t["expireAfter"] == "720h"
        reqs = {r["key"]: r["values"] for r in t["requirements"]}
        assert reqs["karpenter.sh/capacity-type"] == [p.capacity_type]
        assert reqs["node.kubernetes.io/instance-type"] == [p.instance_type]
        assert spec["template"]["metadata"]["labels"] == {eks.GPU_CLASS_LABEL: p.gpu_class}


def test_gpu_node_class_is_pinned_imdsv2_and_encrypted(eks_case: Case) -> None:
    _, run, plan = eks_case
    spec = run.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass").inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": eks.GPU_AMI_ALIAS}]
    assert not spec["amiSelectorTerms"][0]["alias"].endswith("@latest")
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    data = next(b for b in spec["blockDeviceMappings"] if b["deviceName"] == "/dev/xvdb")
    assert data["ebs"]["volumeType"] == "gp3"
    assert int(data["ebs"]["volumeSize"].removesuffix("Gi")) >= 2 * 10
    # The OS volume is encrypted; the data volume is made from the image cache's snapshot,
    # which is encrypted with the stack's key (EC2 refuses an encryption value with one).
    assert spec["blockDeviceMappings"][0]["ebs"]["encrypted"] is True
    assert plan.eks is not None and plan.eks.image_cache is not None
    assert "encrypted" not in data["ebs"] and data["ebs"]["snapshotID"].startswith("snap-")
    builder = run.named(plan.eks.image_cache.logical["snapshot"].name)
    assert builder.inputs["kmsKeyId"] == run.one("aws:kms/key:Key").outputs["arn"]
    # Subnets by ID: the stack's private subnets, a new VPC's or the given ones.
    if plan.config.network.vpc_id:
        assert [s["id"] for s in spec["subnetSelectorTerms"]] == (
            plan.config.network.private_subnet_ids
        )
    sgs = [s["id"] for s in spec["securityGroupSelectorTerms"]]
    tasks = run.named(f"{plan.config.prefix}-security-tasks").outputs["id"]
    assert tasks in sgs  # the ALB -> sidecar rule of the shared security groups
    role = run.named(plan.eks.logical["gpu_node_role"].name) if plan.eks else None
    assert role is not None and spec["role"] == role.outputs["name"]


def test_interruption_queue_receives_every_karpenter_event(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    queue = run.one("aws:sqs/queue:Queue")
    assert queue.inputs["name"] == plan.eks.interruption_queue_name
    assert queue.inputs["sqsManagedSseEnabled"] is True
    patterns = {
        tuple(json.loads(r.inputs["eventPattern"])["detail-type"])
        for r in run.by_type("aws:cloudwatch/eventRule:EventRule")
        if r.name.startswith(f"{plan.config.prefix}-karpenter-")
    }
    assert patterns == {(d,) for _, d in eks.INTERRUPTION_EVENTS.values()}
    karpenter = run.one("kubernetes:helm.sh/v3:Release", "release-karpenter")
    assert karpenter.inputs["values"]["settings"]["interruptionQueue"] == queue.inputs["name"]


# --- add-ons and controllers ----------------------------------------------------------------------


def test_addons_are_pinned_per_version_and_network_policy_is_enforced(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    addons = {r.inputs["addonName"]: r.inputs for r in run.by_type("aws:eks/addon:Addon")}
    assert set(addons) == set(eks_versions.ADDON_NAMES)
    pinned = eks_versions.ADDON_VERSIONS[plan.eks.kubernetes_version]
    for name, version in pinned.items():
        assert addons[name]["addonVersion"] == (version or "v1.0.0-eksbuild.1")
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    # The sidecars' QueueDepth reaches CloudWatch through the agent's EMF listener (stdout
    # lines are nested by Fluent Bit); the agent's own config must turn it on.
    agent = json.loads(addons["amazon-cloudwatch-observability"]["configurationValues"])["agent"]
    collected = agent["config"]["logs"]["metrics_collected"]
    assert "emf" in collected and collected["kubernetes"]["enhanced_container_insights"] is True
    # The nodes come after the networking add-ons, or they never become Ready.
    ng = run.one("aws:eks/nodeGroup:NodeGroup")
    deps = {_name(d) for d in ng.dependencies}
    assert {plan.eks.addons[n].logical.name for n in eks.NETWORK_ADDONS} <= deps


def _keys(values: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(values, dict):
        for k, v in values.items():
            out.add(prefix + k)
            if isinstance(v, dict) and v:
                out |= _keys(v, prefix + k + ".")
    return out


def test_helm_releases_are_pinned_skip_crds_and_set_only_known_values(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    releases = {r.inputs["name"]: r for r in run.by_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == set(eks_versions.CHARTS)
    crds = {r.inputs["metadata"]["name"]: r.name for r in run.by_type(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")}  # fmt: skip
    assert set(crds) == set(vendored_crds())
    for key, r in releases.items():
        chart = eks_versions.CHARTS[key]
        i = r.inputs
        assert i["version"] == chart.version
        assert i["skipCrds"] is True
        assert i["namespace"] == chart.namespace
        defaults = yaml.safe_load((CHART_VALUES / f"{key}-{chart.version}.yaml").read_text())
        unknown = _keys(i["values"]) - _keys(defaults)
        # Maps the chart leaves empty ({}) take any key (resources, nodeSelector).
        open_maps = {p for p in _keys(defaults) if defaults_at(defaults, p) == {}}
        unknown = {k for k in unknown if not any(k.startswith(p + ".") for p in open_maps)}
        assert unknown == set(), (key, unknown)
        # Every CRD of the chart exists before the release.
        deps = {_name(d) for d in r.dependencies}
        assert {crds[c] for c in eks_versions.VENDORED_CRDS[key]} <= deps
    assert releases["keda"].inputs["values"]["crds"] == {"install": False}
    alb = releases["aws-load-balancer-controller"].inputs["values"]
    assert alb["clusterName"] == plan.eks.cluster_name
    vpc_ids = {r.outputs["id"] for r in run.by_type("aws:ec2/vpc:Vpc")} or {
        plan.config.network.vpc_id
    }
    assert alb["vpcId"] in vpc_ids


def defaults_at(values: Any, path: str) -> Any:
    node = values
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# --- identities -----------------------------------------------------------------------------


def _statements(run: Run, name: str) -> list[dict[str, Any]]:
    doc = json.loads(run.named(name).inputs["policy"])
    return list(doc["Statement"])


def test_every_pod_identity_is_least_privilege(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    for key, ident in plan.eks.identities.items():
        role = run.named(ident.role_logical.name)
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
        assoc = run.named(ident.association_logical.name).inputs
        assert (assoc["namespace"], assoc["serviceAccount"]) == (
            ident.namespace,
            ident.service_account,
        )
        if ident.managed_policy:
            continue
        for s in _statements(run, ident.policy_logical.name):
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert s["Effect"] == "Allow"
            for a in actions:
                assert a != "*" and not a.endswith(":*"), (key, a)
    # Karpenter may launch and terminate only nodes tagged for this cluster.
    karp = _statements(run, plan.eks.identities["karpenter"].policy_logical.name)
    terminate = next(s for s in karp if "ec2:TerminateInstances" in s["Action"])
    assert terminate["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/kubernetes.io/cluster/{plan.eks.cluster_name}": "owned"
    }
    # The load balancer controller registers targets in this stack's target groups only.
    alb = _statements(run, plan.eks.identities["aws-load-balancer-controller"].policy_logical.name)
    register = next(s for s in alb if "elasticloadbalancing:RegisterTargets" in s["Action"])
    tgs = {r.outputs["arn"] for r in run.by_type("aws:lb/targetGroup:TargetGroup")}
    assert set(register["Resource"]) == tgs
    # One EFS identity mounts every model's access point, and only those.
    efs = _statements(run, plan.eks.identities["efs-csi-node"].policy_logical.name)
    aps = {r.outputs["arn"] for r in run.by_type("aws:efs/accessPoint:AccessPoint")}
    cond = efs[0]["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
    assert set(cond) == aps


def test_prod_eks_stack_plans_two_models_with_mixed_capacity() -> None:
    plan = plan_of(PROD_EKS)
    assert plan.eks is not None and len(plan.models) == 2
    assert all(m.capacity == "mixed" for m in plan.models)
    kinds = {(p.gpu_class, p.capacity_type) for p in plan.eks.node_pools.values()}
    assert ("g6e-xlarge-mixed", "on-demand") in kinds and ("g6e-xlarge-mixed", "spot") in kinds


def test_system_nodes_also_keep_pods_off_imds(eks_case: Case) -> None:
    _, run, plan = eks_case
    assert plan.eks is not None
    lt = run.named(plan.eks.logical["system_launch_template"].name).inputs
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert all(b["ebs"]["encrypted"] == "true" for b in lt["blockDeviceMappings"])
    ng = run.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert (
        ng["launchTemplate"]["id"]
        == run.named(plan.eks.logical["system_launch_template"].name).outputs["id"]
    )
    # Nothing on them needs IMDS: the controllers are told their region (and VPC).
    values = {r.inputs["name"]: r.inputs["values"] for r in run.by_type(
        "kubernetes:helm.sh/v3:Release")}  # fmt: skip
    assert {"name": "AWS_REGION", "value": plan.config.region} in values["karpenter"]["controller"][
        "env"
    ]
    assert values["aws-load-balancer-controller"]["region"] == plan.config.region

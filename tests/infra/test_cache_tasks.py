"""Model cache, pre-warm wiring, task definitions and task IAM, on recorded inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import (
    DYNAMIC,
    FALLBACK_URL,
    PROD,
    SERVICE,
    container,
    containers,
    dependency_names,
    fetcher_task,
    plan_of,
    policy_statements,
    serving_task,
    urn_name,
)

from components.harness import SECRET_STAND_INS, Run, run_stack
from modelfleet.containers import fetcher_command, fetcher_sources
from modelfleet.partitions import partition_of
from modelfleet.plan import MODELS_MOUNT, SIDECAR_PORT, FleetPlan, prewarm_timeout_s

pytestmark = pytest.mark.xdist_group("infra")

STACKS = ["dev", "prod", "staging"]
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def _run_plan(request: pytest.FixtureRequest, stack: str) -> tuple[Run, FleetPlan]:
    return request.getfixturevalue(stack), request.getfixturevalue(f"{stack}_plan")


# --- model cache -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_efs_encrypted_with_rotating_stack_key(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    key = run.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    fs = run.one("aws:efs/fileSystem:FileSystem").inputs
    assert fs["encrypted"] is True
    assert fs["kmsKeyId"] == key.outputs["arn"]
    assert fs["throughputMode"] == "elastic"
    mounts = run.by_type("aws:efs/mountTarget:MountTarget")
    private = [
        s.outputs["id"]
        for s in run.by_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["modelfleet:tier"] == "private"
    ] or plan.config.network.private_subnet_ids
    assert sorted(m.inputs["subnetId"] for m in mounts) == sorted(private)
    assert all(
        m.inputs["securityGroups"] == [f"{plan.config.prefix}-security-efs-id"] for m in mounts
    )


@pytest.mark.parametrize("stack", STACKS)
def test_access_point_per_model(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    aps = run.by_type("aws:efs/accessPoint:AccessPoint")
    # Weights and the compile cache: two per model.
    assert len(aps) == 2 * len(plan.models)
    version = plan.engine_image.version_key
    for m in plan.models:
        ap = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-ap").inputs
        assert ap["rootDirectory"]["path"] == f"/{m.name}"
        assert ap["posixUser"] == {"uid": 1000, "gid": 1000}
        assert ap["rootDirectory"]["creationInfo"]["ownerUid"] == 1000
        compile_ap = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-compile-ap").inputs
        # Per model and engine version, outside every model's weights directory.
        assert compile_ap["rootDirectory"]["path"] == f"/_compile/{m.name}/{version}"
        assert compile_ap["posixUser"] == {"uid": 1000, "gid": 1000}


@pytest.mark.parametrize("stack", STACKS)
def test_nfs_only_from_tasks_hosts_fetcher(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    p = plan.config.prefix
    efs_in = [
        r.inputs
        for r in run.by_type(INGRESS)
        if r.inputs["securityGroupId"] == f"{p}-security-efs-id"
    ]
    assert {r["referencedSecurityGroupId"] for r in efs_in} == {
        f"{p}-security-{role}-id" for role in ("tasks", "hosts", "fetcher")
    }
    for r in efs_in:
        assert (r["fromPort"], r["toPort"]) == (2049, 2049)
        assert "cidrIpv4" not in r


# --- pre-warm ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_prewarm_run_per_model_before_its_service(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run, plan = _run_plan(request, stack)
    runs = [r for r in run.by_type(DYNAMIC) if r.name.endswith("-run")]
    assert len(runs) == len(plan.models)
    p = plan.config.prefix
    for m in plan.models:
        pre = run.one(DYNAMIC, f"-{m.short}-run")
        assert pre.inputs["sources"] == [s for _, s in fetcher_sources(m, plan)]
        assert pre.inputs["sources"][0] == m.source
        # The same argv, expectations included, as the serving task's fetcher containers.
        assert pre.inputs["commands"] == {
            s: fetcher_command(m, s) for _, s in fetcher_sources(m, plan)
        }
        assert pre.inputs["timeoutSeconds"] == prewarm_timeout_s(m.checkpoint_gib)
        assert pre.inputs["destRoot"] == MODELS_MOUNT
        assert pre.inputs["accessPoint"] == f"{p}-cache-{m.short}-ap-id"
        assert pre.inputs["taskDefinition"] == fetcher_task(run, m.short).outputs["arn"]
        svc = run.one(SERVICE, f"-{m.short}-service")
        assert pre.name in {urn_name(u) for u in svc.dependencies}
        # ECS refuses a Fargate RunTask or a service on a provider not yet on the cluster,
        # and a task that mounts EFS before its mount targets exist fails to start.
        for r in (pre, svc):
            needs = dependency_names(run, r)
            assert f"{p}-gpu-providers" in needs, r.name
            mounts = {x.name for x in run.by_type("aws:efs/mountTarget:MountTarget")}
            assert mounts <= needs, r.name


def test_prewarm_sources_include_lora_adapters(staging: Run, staging_plan: FleetPlan) -> None:
    (m,) = staging_plan.models
    pre = staging.one(DYNAMIC, "-run")
    adapter = "s3://acme-search-adapters/rerank-lora/v3/"
    assert pre.inputs["sources"] == [m.source, adapter]
    # The adapter's fetch checks its rank against what vLLM is told (--max-lora-rank 16).
    expect = json.loads(pre.inputs["commands"][adapter][3])
    assert expect == {"key": "modelfleet:models[mistral-7b].loraAdapters[search-rerank]",
                      "max_lora_rank": 16}  # fmt: skip


@pytest.mark.parametrize("stack", STACKS)
def test_fargate_fetcher_task_per_model(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    for m in plan.models:
        td = fetcher_task(run, m.short).inputs
        assert td["requiresCompatibilities"] == ["FARGATE"]
        assert td["networkMode"] == "awsvpc"
        (vol,) = td["volumes"]
        efs = vol["efsVolumeConfiguration"]
        assert efs["transitEncryption"] == "ENABLED"
        assert (
            efs["authorizationConfig"]["accessPointId"]
            == f"{plan.config.prefix}-cache-{m.short}-ap-id"
        )
        (c,) = json.loads(td["containerDefinitions"])
        assert c["essential"] is True
        assert "resourceRequirements" not in c  # no GPU to download


# --- serving task definition -------------------------------------------------------------------


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("stack", STACKS)
def test_container_order_and_dependencies(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    for m in plan.models:
        cs = containers(serving_task(run, m.short))
        fetchers = [c for c in cs if c["name"].startswith("fetch-")]
        # python -m fetcher SOURCE DEST_ROOT --expect JSON, JSON being the plan's figures.
        assert [c["command"][:3] for c in fetchers] == [
            [s, MODELS_MOUNT, "--expect"] for _, s in fetcher_sources(m, plan)
        ]
        for c, (_, s) in zip(fetchers, fetcher_sources(m, plan), strict=True):
            assert json.loads(c["command"][3]) == m.fetch_expect[s]
        assert all(c["essential"] is False for c in fetchers)
        vllm = container(serving_task(run, m.short), "vllm")
        assert vllm["essential"] is True
        assert vllm["dependsOn"] == [
            {"containerName": f["name"], "condition": "SUCCESS"} for f in fetchers
        ]
        sidecar = container(serving_task(run, m.short), "sidecar")
        # Starts with vLLM, so the target registers and the gateway answers 503 + Retry-After
        # during the engine's start (docker/sidecar/README.md, "Waking up").
        assert sidecar["dependsOn"] == [{"containerName": "vllm", "condition": "START"}]
        # The sidecar is the one port the ALB reaches.
        with_ports = [c["name"] for c in cs if c.get("portMappings")]
        assert with_ports == ["sidecar"]
        assert [p["containerPort"] for p in sidecar["portMappings"]] == [SIDECAR_PORT]


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_arguments_from_the_plan(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    for m in plan.models:
        vllm = container(serving_task(run, m.short), "vllm")
        cmd = vllm["command"]
        if plan.engine_image.mode == "pull-through":
            # The stack's own registry, pinned by the digest the cache resolved.
            host, _, path = vllm["image"].partition("/")
            assert host == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
            assert path.startswith(f"{plan.engine_image.cache_prefix}/vllm/vllm-openai@sha256:")
        else:
            assert vllm["image"].startswith("vllm/vllm-openai:v")  # pinned, never :latest
        assert vllm["resourceRequirements"] == [{"type": "GPU", "value": str(m.tensor_parallel)}]
        assert _flag(cmd, "--served-model-name") == m.name
        assert _flag(cmd, "--max-model-len") == str(m.max_model_len)
        assert _flag(cmd, "--tensor-parallel-size") == str(m.tensor_parallel)
        assert _flag(cmd, "--max-num-seqs") == str(m.max_num_seqs)
        assert float(_flag(cmd, "--gpu-memory-utilization")) == pytest.approx(0.9)
        assert _flag(cmd, "--model") == m.model_path
        assert vllm["linuxParameters"]["sharedMemorySize"] == m.shared_memory_mib
        hc = vllm["healthCheck"]
        assert 0 <= hc["startPeriod"] <= 300
        assert 5 <= hc["interval"] <= 300
        assert 2 <= hc["timeout"] <= 60
        assert 1 <= hc["retries"] <= 10
        assert vllm["startTimeout"] == m.vllm_health_check.budget_s


def test_prod_fp8_quantization_and_tensor_parallel(prod: Run, prod_plan: FleetPlan) -> None:
    m = prod_plan.model("llama-70b")
    assert m.tensor_parallel > 1
    vllm = container(serving_task(prod, m.short), "vllm")
    # A bf16 repository served as fp8: online quantization, 0.31's spelling.
    assert _flag(vllm["command"], "--quantization") == "fp8_per_tensor"
    assert vllm["resourceRequirements"] == [{"type": "GPU", "value": str(m.tensor_parallel)}]
    assert vllm["linuxParameters"]["sharedMemorySize"] > 1024  # NCCL between TP ranks
    assert "--quantization" not in container(serving_task(prod, "llama-8b"), "vllm")["command"]


def test_staging_lora(staging: Run, staging_plan: FleetPlan) -> None:
    (m,) = staging_plan.models
    cmd = container(serving_task(staging, m.short), "vllm")["command"]
    assert "--enable-lora" in cmd
    assert _flag(cmd, "--max-lora-rank") == "16"  # vLLM's default, stated
    (module,) = [a for a in cmd[cmd.index("--lora-modules") + 1 :] if "=" in a]
    name, _, path = module.partition("=")
    assert name == "search-rerank"
    assert path.startswith(f"{MODELS_MOUNT}/")


SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def _secret_values() -> set[str]:
    return set(SECRET_STAND_INS.values())


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_only_through_secrets_manager(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    secret_arns = {s.outputs["arn"] for s in run.by_type("aws:secretsmanager/secret:Secret")}
    for td in run.by_type("aws:ecs/taskDefinition:TaskDefinition"):
        raw = td.inputs["containerDefinitions"]
        for value in _secret_values():
            assert value not in raw, f"{td.name}: a secret value in the container definitions"
        for c in containers(td):
            for env in c.get("environment", []):
                assert not SECRETISH.search(env["name"]), f"{td.name}/{c['name']}: {env['name']}"
            for s in c.get("secrets", []):
                assert s["valueFrom"] in secret_arns
    for m in plan.models:
        sidecar = container(serving_task(run, m.short), "sidecar")
        names = {s["name"] for s in sidecar.get("secrets", [])}
        assert ("SIDECAR_API_KEYS" in names) is (plan.config.gateway.api_keys is not None)
        fetch = container(serving_task(run, m.short), "fetch-model")
        assert ("HF_TOKEN" in {s["name"] for s in fetch.get("secrets", [])}) is (
            plan.config.hf_token is not None
        )


def test_fallback_key_is_a_secret_and_its_url_plain(given_stack: tuple[Path, Run]) -> None:
    _, run = given_stack
    td = run.one("aws:ecs/taskDefinition:TaskDefinition", "-task")
    sidecar = container(td, "sidecar")
    env = {e["name"]: e["value"] for e in sidecar["environment"]}
    assert env["SIDECAR_FALLBACK_URL"] == FALLBACK_URL
    secrets = {s["name"]: s["valueFrom"] for s in sidecar["secrets"]}
    assert secrets["SIDECAR_FALLBACK_API_KEY"].endswith("-secrets-fallback-api-key")
    assert secrets["SIDECAR_API_KEYS"].endswith("-secrets-api-keys")
    assert "SIDECAR_ALLOW_NO_AUTH" not in env
    assert "mock-fallback-key" not in td.inputs["containerDefinitions"]


@pytest.mark.parametrize("stack", STACKS)
def test_awslogs_to_the_models_log_group(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    for m in plan.models:
        group = run.named(f"{plan.config.prefix}-{m.short}-logs")
        assert group.inputs["retentionInDays"] == plan.config.retention_days
        for c in containers(serving_task(run, m.short)):
            log = c["logConfiguration"]
            assert log["logDriver"] == "awslogs"
            assert log["options"]["awslogs-group"] == group.outputs["name"]
            assert log["options"]["awslogs-region"] == plan.config.region
    for g in run.by_type("aws:cloudwatch/logGroup:LogGroup"):
        assert g.inputs["retentionInDays"] > 0


@pytest.mark.parametrize("stack", STACKS)
def test_task_memory_and_cpu_fit_the_task(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    for m in plan.models:
        td = serving_task(run, m.short)
        cs = containers(td)
        assert sum(c.get("memoryReservation", 0) for c in cs) <= int(td.inputs["memory"])
        assert sum(c.get("cpu", 0) for c in cs) <= int(td.inputs["cpu"])
        assert td.inputs["placementConstraints"] == [
            {"type": "memberOf", "expression": f"attribute:ecs.instance-type == {m.instance_type}"}
        ]


# --- IAM ---------------------------------------------------------------------------------------


def _resources(statement: dict[str, Any]) -> list[str]:
    r = statement["Resource"]
    return r if isinstance(r, list) else [r]


@pytest.mark.parametrize("stack", STACKS)
def test_execution_role_reads_only_the_stacks_secrets(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run, plan = _run_plan(request, stack)
    # The Docker Hub credentials are ECR's to read (the pull-through cache), never a task's.
    secret_arns = sorted(
        s.outputs["arn"]
        for s in run.by_type("aws:secretsmanager/secret:Secret")
        if not s.inputs.get("name", "").startswith("ecr-pullthroughcache/")
    )
    assert secret_arns
    for m in plan.models:
        statements = policy_statements(run, f"-{m.short}-execution-policy")
        reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
        assert len(reads) == 1
        assert sorted(_resources(reads[0])) == secret_arns
        for s in statements:
            assert "*" not in _resources(s)
            assert s["Effect"] == "Allow"


@pytest.mark.parametrize("stack", STACKS)
def test_task_role_mounts_only_its_access_point(request: pytest.FixtureRequest, stack: str) -> None:
    run, plan = _run_plan(request, stack)
    fs_arn = run.one("aws:efs/fileSystem:FileSystem").outputs["arn"]
    for m in plan.models:
        ap_arn = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-ap").outputs["arn"]
        compile_arn = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-compile-ap").outputs[
            "arn"
        ]
        statements = policy_statements(run, f"-{m.short}-task-policy")
        efs = [
            s for s in statements if any(a.startswith("elasticfilesystem:") for a in s["Action"])
        ]
        # The weights (the fetcher writes them) and the compile cache (vLLM writes it): this
        # model's two access points and no other.
        assert len(efs) == 2
        for statement in efs:
            assert set(statement["Action"]) == {
                "elasticfilesystem:ClientMount",
                "elasticfilesystem:ClientWrite",
            }
            assert statement["Resource"] == fs_arn
        assert [s["Condition"] for s in efs] == [
            {"StringEquals": {"elasticfilesystem:AccessPointArn": arn}}
            for arn in (ap_arn, compile_arn)
        ]
        # S3 reads exactly the prefixes the model and its adapters come from; none for the Hub.
        reads = {s["Resource"] for s in statements if s["Action"] == ["s3:GetObject"]}
        expected = set()
        for _, source in fetcher_sources(m, plan):
            if source.startswith("s3://"):
                expected.add(f"arn:aws:s3:::{source.removeprefix('s3://')}*")
        assert reads == expected


def test_task_role_reads_only_the_adapter_prefix(staging: Run) -> None:
    statements = policy_statements(staging, "-task-policy")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in s["Action"])]
    objects = [s for s in s3 if s["Action"] == ["s3:GetObject"]]
    assert [s["Resource"] for s in objects] == [
        "arn:aws:s3:::acme-search-adapters/rerank-lora/v3/*"
    ]
    (listing,) = [s for s in s3 if s["Action"] == ["s3:ListBucket"]]
    assert listing["Resource"] == "arn:aws:s3:::acme-search-adapters"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["rerank-lora/v3/*"]}}
    assert all("Put" not in a and "Delete" not in a for s in s3 for a in s["Action"])


SECRET_VALUES = {
    "SIDECAR_API_KEYS": SECRET_STAND_INS["apiKeys"],
    "SIDECAR_FALLBACK_API_KEY": SECRET_STAND_INS["apiKey"],
}


@pytest.mark.parametrize("stack", [*STACKS, "given_stack"])
def test_sidecar_accepts_its_environment(request: pytest.FixtureRequest, stack: str) -> None:
    """The sidecar reads SIDECAR_* once at start: a misspelt name would be silently ignored,
    a bad value would crash-loop the task. Both show here, before any GPU is paid for."""
    from sidecar.settings import ENV_VARS, Settings

    value = request.getfixturevalue(stack)
    run: Run = value[1] if isinstance(value, tuple) else value
    tds = [
        t for t in run.by_type("aws:ecs/taskDefinition:TaskDefinition") if t.name.endswith("-task")
    ]
    assert tds
    for td in tds:
        sidecar = container(td, "sidecar")
        env = {e["name"]: e["value"] for e in sidecar["environment"]}
        unknown = sorted(set(env) - set(ENV_VARS))
        assert not unknown, f"{td.name}: the sidecar does not read {unknown}"
        for s in sidecar.get("secrets", []):
            assert s["name"] in ENV_VARS
            env[s["name"]] = SECRET_VALUES[s["name"]]
        settings = Settings.from_env(env)
        assert settings.port == SIDECAR_PORT
        model = env["SIDECAR_MODEL_NAME"]
        assert settings.route_prefix == f"/{model}"
        assert settings.service_name == td.inputs["family"]


def test_images_built_and_pinned_by_digest(prod: Run) -> None:
    repos = {r.name.rsplit("-", 1)[1]: r for r in prod.by_type("aws:ecr/repository:Repository")}
    assert set(repos) == {"sidecar", "fetcher"}
    for repo in repos.values():
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS"
    for td in prod.by_type("aws:ecs/taskDefinition:TaskDefinition"):
        for c in containers(td):
            if c["name"] == "vllm":
                continue
            role = "sidecar" if c["name"] == "sidecar" else "fetcher"
            assert c["image"].startswith(repos[role].outputs["repositoryUrl"] + "@sha256:")


def test_given_images_are_used_as_they_are(given_stack: tuple[Path, Run]) -> None:
    _, run = given_stack
    td = run.one("aws:ecs/taskDefinition:TaskDefinition", "-task")
    assert container(td, "sidecar")["image"].endswith("/sidecar:1.2.3")
    assert container(td, "fetch-model")["image"].endswith("/fetcher:1.2.3")
    (fetcher,) = containers(run.one("aws:ecs/taskDefinition:TaskDefinition", "-fetcher"))
    assert fetcher["image"].endswith("/fetcher:1.2.3")


def _shipped_in_region(tmp_path: Path, stack: str, region: str) -> Path:
    """A shipped stack moved to `region`: its certificate and admin roles re-issued there, in
    that Region's partition (validate refuses them from anywhere else)."""
    doc = yaml.safe_load((PROD.parent / f"Pulumi.{stack}.yaml").read_text())
    config = doc["config"]
    config["aws:region"] = region
    partition = partition_of(region)[0]
    network = config["modelfleet:network"]
    network["certificateArn"] = network["certificateArn"].replace(
        "arn:aws:acm:us-east-1:", f"arn:{partition}:acm:{region}:"
    )
    if "modelfleet:eks" in config:
        eks = config["modelfleet:eks"]
        eks["adminRoleArns"] = [
            a.replace("arn:aws:", f"arn:{partition}:") for a in eks["adminRoleArns"]
        ]
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("cn-north-1", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"),
        ("eu-central-2", "123456789012.dkr.ecr.eu-central-2.amazonaws.com"),
    ],
)
def test_engine_image_comes_from_the_registry_of_the_stacks_partition(
    tmp_path: Path, region: str, host: str
) -> None:
    """ECR's registry host is per partition (botocore's endpoint data: amazonaws.com.cn in
    aws-cn); a task in cn-north-1 pulling from *.amazonaws.com would never start."""
    path = _shipped_in_region(tmp_path, "prod", region)  # pulls vLLM through its ECR cache
    plan = plan_of(path)
    assert plan.engine_image.mode == "pull-through"
    assert plan.engine_image.offline_reference(region).startswith(
        f"<account-id>.dkr.ecr.{region}.{host.split(f'.{region}.', 1)[1]}/"
    )
    run = run_stack(path)
    for m in plan.models:
        image = container(serving_task(run, m.short), "vllm")["image"]
        assert image.partition("/")[0] == host


@pytest.mark.parametrize(
    ("stack", "region", "principal"),
    [
        ("prod", "cn-north-1", "ec2.amazonaws.com.cn"),
        ("prod-eks", "cn-north-1", "ec2.amazonaws.com.cn"),
        ("prod-eks", "us-gov-west-1", "ec2.amazonaws.com"),
    ],
)
def test_instance_roles_trust_ec2_of_the_stacks_partition(
    tmp_path: Path, stack: str, region: str, principal: str
) -> None:
    """Every role an EC2 instance assumes (ECS GPU hosts, EKS nodes, the image-cache builder)
    trusts ec2.<the partition's DNS suffix>, as Karpenter's node role does."""
    run = run_stack(_shipped_in_region(tmp_path, stack, region))
    trusted = {
        r.name: [
            s["Principal"]["Service"] for s in json.loads(r.inputs["assumeRolePolicy"])["Statement"]
        ]
        for r in run.by_type("aws:iam/role:Role")
    }
    ec2_roles = {
        name: services
        for name, services in trusted.items()
        if any(str(svc).startswith("ec2.") for svc in services)
    }
    assert ec2_roles, trusted
    assert all(services == [principal] for services in ec2_roles.values()), ec2_roles

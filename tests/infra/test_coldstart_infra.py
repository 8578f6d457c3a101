"""Cold start, as the program builds it (issue 13): the engine image in the account's registry
through a pull-through cache, warm pools on on-demand groups only, the user data that fills
them (shellcheck, and its lifecycle-hook completion run against fakes), the compile cache on
its own access point, and the payloads as AWS would receive them."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from infra_support import (
    PROD,
    assert_valid,
    container,
    dependency_names,
    policy_statements,
    serving_task,
)

from components.ecs.gpu_capacity import WARM_POOL_BOOT, user_data_script
from components.harness import ACCOUNT, Run
from modelfleet import coldstart
from modelfleet.contract import COMPILE_CACHE_MOUNT, COMPILE_CACHE_VOLUME, MODELS_VOLUME
from modelfleet.plan import FleetPlan

pytestmark = pytest.mark.xdist_group("infra")

ROOT = Path(__file__).resolve().parents[2]
SHELLCHECK = ROOT / ".venv" / "bin" / "shellcheck"
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
RULE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
SECRET = "aws:secretsmanager/secret:Secret"
DYNAMIC = "pulumi-python:dynamic:Resource"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


# --- engine image in the account's registry ------------------------------------------------


def test_pull_through_rule_and_template_on_the_cache_prefix(
    prod: Run, prod_plan: FleetPlan
) -> None:
    e = prod_plan.engine_image
    assert e.mode == "pull-through" and e.cache_prefix == "mf-platform-prod-hub"
    key_arn = prod.one("aws:kms/key:Key").outputs["arn"]
    rule = prod.one(RULE).inputs
    assert rule["ecrRepositoryPrefix"] == e.cache_prefix
    assert rule["upstreamRegistryUrl"] == "registry-1.docker.io"
    secret = prod.one(SECRET, "-engine-image-hub-credentials")
    # ECR reads upstream credentials only from secrets named ecr-pullthroughcache/...
    assert secret.inputs["name"] == "ecr-pullthroughcache/mf-platform-prod-docker-hub"
    assert secret.inputs["kmsKeyId"] == key_arn
    assert rule["credentialArn"] == secret.outputs["arn"]
    template = prod.one(TEMPLATE).inputs
    assert template["prefix"] == e.cache_prefix
    assert template["appliedFors"] == ["PULL_THROUGH_CACHE"]
    assert template["imageTagMutability"] == "IMMUTABLE"
    assert template["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key_arn}]
    lifecycle = json.loads(template["lifecyclePolicy"])
    assert lifecycle["rules"][0]["action"] == {"type": "expire"}
    assert template["customRoleArn"].endswith("-engine-image-template-role")
    # The rule waits for the credentials' value and the template: the first pull needs both.
    deps = dependency_names(prod, prod.one(RULE))
    assert {"mf-platform-prod-engine-image-template", secret.name + "-value"} <= deps


def test_credentials_secret_holds_what_ecr_reads(prod: Run) -> None:
    version = prod.one("aws:secretsmanager/secretVersion:SecretVersion", "-hub-credentials-value")
    value = version.inputs["secretString"]
    if isinstance(value, dict):  # recorded as a secret: Pulumi wraps the plaintext
        value = value["value"]
    # The harness's stand-in for the decrypted `username:accessToken`.
    assert json.loads(value) == {
        "username": "mockuser",
        "accessToken": "dckr_pat_mock",
    }


def test_engine_image_pinned_by_digest_in_the_accounts_registry(
    prod: Run, prod_plan: FleetPlan
) -> None:
    e = prod_plan.engine_image
    digest = prod.one(DYNAMIC, "-engine-image-digest")
    assert digest.inputs["repository"] == f"{e.cache_prefix}/vllm/vllm-openai"
    assert digest.inputs["tag"] == "v0.31.0-cu129"
    assert digest.inputs["registryId"] == ACCOUNT
    assert "mf-platform-prod-engine-image-rule" in dependency_names(prod, digest)
    expected = f"{REGISTRY}/{e.cache_prefix}/vllm/vllm-openai@sha256:{'1' * 64}"
    for m in prod_plan.models:
        assert container(serving_task(prod, m.short), "vllm")["image"] == expected


def test_a_given_digest_skips_the_lookup(stack_variant: Any) -> None:
    digest = "sha256:" + "ab" * 32

    def pinned(config: dict[str, Any]) -> None:
        config["modelfleet:images"]["vllm"] = f"vllm/vllm-openai@{digest}"

    _, run = stack_variant("pinned", PROD, pinned)
    assert not [r for r in run.by_type(DYNAMIC) if r.name.endswith("-digest")]
    image = container(serving_task(run, "llama-8b"), "vllm")["image"]
    assert image == f"{REGISTRY}/mf-platform-pinned-hub/vllm/vllm-openai@{digest}"


def test_without_credentials_the_image_is_used_as_given(dev: Run, dev_plan: FleetPlan) -> None:
    assert dev_plan.engine_image.mode == "given"
    assert not dev.by_type(RULE) and not dev.by_type(TEMPLATE)
    assert container(serving_task(dev, "llama-8b"), "vllm")["image"] == dev_plan.config.images.vllm
    assert any("images.dockerHubCredentials" in n for n in dev_plan.notes)


def test_first_pull_permissions_scoped_to_the_cache_prefix(prod: Run, prod_plan: FleetPlan) -> None:
    repos = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/mf-platform-prod-hub/*"
    wanted = {"ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}
    roles = [f"-{m.short}-execution-policy" for m in prod_plan.models] + ["-gpu-host-inline"]
    for role in roles:
        statements = policy_statements(prod, role)
        ecr = [s for s in statements if wanted & set(s["Action"])]
        assert len(ecr) == 1, role
        assert set(ecr[0]["Action"]) == wanted
        assert ecr[0]["Resource"] == repos


# --- warm pools --------------------------------------------------------------------------------


def test_warm_pool_on_on_demand_groups_only(prod: Run, prod_plan: FleetPlan) -> None:
    for key, group in prod_plan.capacity.items():
        asg = prod.one(ASG, f"-{key}-asg").inputs
        if group.capacity == "spot":
            assert "warmPool" not in asg and "initialLifecycleHooks" not in asg
            assert group.warm_pool is None and group.notes
            continue
        wp = group.warm_pool
        assert wp is not None
        assert asg["warmPool"] == {
            "poolState": "Stopped",
            "minSize": 0,
            # Prepared capacity follows the group's instances at replicas.max.
            "maxGroupPreparedCapacity": group.instances_max,
            "instanceReusePolicy": {"reuseOnScaleIn": False},
        }
        (hook,) = asg["initialLifecycleHooks"]
        assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert hook["name"] == wp.hook_name
        assert hook["heartbeatTimeout"] == wp.heartbeat_s
        assert "launchTemplate" in asg and "mixedInstancesPolicy" not in asg


def test_spot_stack_has_no_warm_pool_and_says_so(dev: Run, dev_plan: FleetPlan) -> None:
    (m,) = dev_plan.models
    assert m.capacity == "spot"
    assert all("warmPool" not in a.inputs for a in dev.by_type(ASG))
    assert any("refuses warm pools on spot groups" in n for n in m.notes)
    # The next best path: the compile cache still warms the engine phase.
    assert m.cold_start is not None and not m.cold_start.warm_pool
    assert m.cold_start.warm.phase("engine").seconds < m.cold_start.first.phase("engine").seconds


def test_stack_key_turns_the_warm_pool_off(stack_variant: Any) -> None:
    def off(config: dict[str, Any]) -> None:
        config["modelfleet:coldStart"] = {"warmPool": False}

    _, run = stack_variant("cold", PROD, off)
    assert all("warmPool" not in a.inputs for a in run.by_type(ASG))
    user_data = [base64.b64decode(lt.inputs["userData"]).decode() for lt in run.by_type(LT)]
    assert all('warm_pool="false"' in u for u in user_data)
    # No hook to complete: the host's own policy keeps only the engine cache's first pull.
    statements = policy_statements(run, "-gpu-host-inline")
    assert not [s for s in statements if "autoscaling:CompleteLifecycleAction" in s["Action"]]
    assert any("ecr:BatchImportUpstreamImage" in s["Action"] for s in statements)


def test_host_completes_only_its_warm_groups_hooks(prod: Run, prod_plan: FleetPlan) -> None:
    statements = policy_statements(prod, "-gpu-host-inline")
    (complete,) = [s for s in statements if "autoscaling:CompleteLifecycleAction" in s["Action"]]
    warm = {
        prod.one(ASG, f"-{k}-asg").outputs["arn"]
        for k, g in prod_plan.capacity.items()
        if g.warm_pool is not None
    }
    assert set(complete["Resource"]) == warm


# --- user data ---------------------------------------------------------------------------------


def _user_data(run: Run, key: str) -> str:
    lt = run.one(LT, f"-{key}-lt")
    return base64.b64decode(lt.inputs["userData"]).decode()


@pytest.mark.parametrize("key", ["g6e-xlarge-on-demand", "g6e-xlarge-spot"])
def test_rendered_user_data_passes_shellcheck(prod: Run, key: str, tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(_user_data(prod, key))
    boot = tmp_path / "boot.sh"
    boot.write_text(WARM_POOL_BOOT.read_text())
    result = subprocess.run(
        [str(SHELLCHECK), str(script), str(boot)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_warm_user_data_pulls_the_tasks_images_by_digest(prod: Run, prod_plan: FleetPlan) -> None:
    text = _user_data(prod, "g6e-xlarge-on-demand")
    assert "ECS_WARM_POOLS_CHECK=${warm_pool}" in text and 'warm_pool="true"' in text
    hook = prod_plan.capacity["g6e-xlarge-on-demand"].warm_pool
    assert hook is not None and f"HOOK={hook.hook_name}" in text
    images_line = next(line for line in text.splitlines() if line.startswith("IMAGES="))
    images = images_line.removeprefix('IMAGES="').removesuffix('"').split()
    vllm = container(serving_task(prod, "llama-8b"), "vllm")["image"]
    sidecar = container(serving_task(prod, "llama-8b"), "sidecar")["image"]
    assert images[0] == vllm and sidecar in images
    assert all("@sha256:" in i for i in images)  # exactly the bytes the tasks name
    # The spot group's user data configures the agent and stops there.
    spot = _user_data(prod, "g6e-xlarge-spot")
    assert 'warm_pool="false"' in spot and "IMAGES=" not in spot


class _Imds(BaseHTTPRequestHandler):
    """IMDSv2 as EC2 speaks it: PUT a token, then GET metadata with it (401 without)."""

    values: dict[str, str] = {}

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token" or not self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        ):
            self._send(400, "")
            return
        self._send(200, "tok-123")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "tok-123":
            self._send(401, "")
            return
        key = self.path.removeprefix("/latest/meta-data/")
        if key in self.values:
            self._send(200, self.values[key])
        else:
            self._send(404, "")

    def _send(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def imds() -> Iterator[tuple[str, dict[str, str]]]:
    values: dict[str, str] = {"instance-id": "i-0abc1234def567890"}
    handler = type("Imds", (_Imds,), {"values": values})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", values
    finally:
        server.shutdown()
        server.server_close()


FAKE = """#!/bin/bash
# Reads its input as the real tool would (docker login, systemd-cat), then answers.
cat >/dev/null
echo "$(basename "$0") $*" >>"$CALLS"
case "$(basename "$0") $1 $2" in
  "aws ecr get-login-password") echo secret-password ;;
  "aws autoscaling describe-auto-scaling-instances") echo mf-group-asg-abc ;;
  "docker pull"*) [[ $* != *broken* ]] ;;
esac
"""


def _run_boot(tmp_path: Path, imds_url: str, images: list[str]) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("aws", "docker", "systemctl", "systemd-cat"):
        fake = bin_dir / tool
        fake.write_text(FAKE)
        fake.chmod(0o755)
    env_file = tmp_path / "warm-pool.env"
    env_file.write_text(f'REGION=us-east-1\nHOOK=mf-hook\nIMAGES="{" ".join(images)}"\n')
    calls = tmp_path / "calls"
    calls.write_text("")
    result = subprocess.run(
        ["bash", str(WARM_POOL_BOOT)],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "MODELFLEET_WARM_POOL_ENV": str(env_file),
            "MODELFLEET_IMDS": imds_url,
            "CALLS": str(calls),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Logging and starting Docker are not what these tests are about.
    return [
        c for c in calls.read_text().splitlines() if not c.startswith(("systemd-cat", "systemctl"))
    ]


def test_entering_the_pool_pulls_then_completes_the_hook(
    imds: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, values = imds
    values["autoscaling/target-lifecycle-state"] = "Warmed:Stopped"
    engine = f"{REGISTRY}/mf-hub/vllm/vllm-openai@sha256:{'1' * 64}"
    sidecar = f"{REGISTRY}/mf-images-sidecar@sha256:{'2' * 64}"
    calls = _run_boot(tmp_path, url, [engine, sidecar])
    logins = [c for c in calls if c.startswith("docker login")]
    assert len(logins) == 1 and logins[0].endswith(REGISTRY)  # one login per registry
    assert [c for c in calls if c.startswith("docker pull")] == [
        f"docker pull --quiet {engine}",
        f"docker pull --quiet {sidecar}",
    ]
    complete = calls[-1]
    assert complete == (
        "aws autoscaling complete-lifecycle-action --region us-east-1 "
        "--auto-scaling-group-name mf-group-asg-abc --lifecycle-hook-name mf-hook "
        "--instance-id i-0abc1234def567890 --lifecycle-action-result CONTINUE"
    )
    # The hook is completed after every pull, never before.
    assert calls.index(complete) > max(i for i, c in enumerate(calls) if "pull" in c)


def test_leaving_the_pool_completes_the_hook_without_pulling(
    imds: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, values = imds
    values["autoscaling/target-lifecycle-state"] = "InService"
    calls = _run_boot(tmp_path, url, [f"{REGISTRY}/x@sha256:{'1' * 64}"])
    assert not [c for c in calls if c.startswith("docker")]
    assert calls[-1].startswith("aws autoscaling complete-lifecycle-action")
    assert calls[-1].endswith("--lifecycle-action-result CONTINUE")


def test_a_failed_pull_still_completes_the_hook(
    imds: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """A host whose pull failed still serves (its first task pulls); Auto Scaling must not
    wait out the heartbeat for it."""
    url, values = imds
    values["autoscaling/target-lifecycle-state"] = "Warmed:Stopped"
    calls = _run_boot(tmp_path, url, ["docker.io/broken/image:1", f"{REGISTRY}/ok@sha256:1"])
    assert "docker pull --quiet docker.io/broken/image:1" in calls
    assert f"docker pull --quiet {REGISTRY}/ok@sha256:1" in calls
    assert calls[-1].startswith("aws autoscaling complete-lifecycle-action")


def test_user_data_script_substitutes_every_placeholder(prod_plan: FleetPlan) -> None:
    for group in prod_plan.capacity.values():
        text = user_data_script("cluster-x", "us-east-1", group, ["img@sha256:1"])
        assert "__" not in text.replace("__file__", ""), group.key


# --- compile cache and weight load ------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_compile_cache_on_its_own_access_point(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    plan: FleetPlan = request.getfixturevalue(f"{stack}_plan")
    for m in plan.models:
        td = serving_task(run, m.short)
        volumes = {v["name"]: v for v in td.inputs["volumes"]}
        compile_ap = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-compile-ap")
        weights_ap = run.one("aws:efs/accessPoint:AccessPoint", f"-{m.short}-ap")
        efs = volumes[COMPILE_CACHE_VOLUME]["efsVolumeConfiguration"]
        assert efs["authorizationConfig"]["accessPointId"] == compile_ap.outputs["id"]
        assert efs["transitEncryption"] == "ENABLED"
        weights = volumes[MODELS_VOLUME]["efsVolumeConfiguration"]
        assert weights["authorizationConfig"]["accessPointId"] == weights_ap.outputs["id"]
        vllm = container(td, "vllm")
        mounts = {p["sourceVolume"]: p for p in vllm["mountPoints"]}
        assert mounts[MODELS_VOLUME]["readOnly"] is True  # weights stay read-only
        assert mounts[COMPILE_CACHE_VOLUME] == {
            "sourceVolume": COMPILE_CACHE_VOLUME,
            "containerPath": COMPILE_CACHE_MOUNT,
            "readOnly": False,
        }
        env = {e["name"]: e["value"] for e in vllm["environment"]}
        assert env["VLLM_CACHE_ROOT"] == COMPILE_CACHE_MOUNT
        # Mounted there only.
        for c in json.loads(td.inputs["containerDefinitions"]):
            if c["name"] != "vllm":
                mounted = {p["sourceVolume"] for p in c.get("mountPoints", [])}
                assert COMPILE_CACHE_VOLUME not in mounted


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_weight_load_strategy_fits_the_containers_memory(
    request: pytest.FixtureRequest, stack: str
) -> None:
    run: Run = request.getfixturevalue(stack)
    plan: FleetPlan = request.getfixturevalue(f"{stack}_plan")
    for m in plan.models:
        assert m.cold_start is not None
        load = m.cold_start.weight_load
        cmd = container(serving_task(run, m.short), "vllm")["command"]
        assert cmd[cmd.index("--safetensors-load-strategy") + 1] == load.strategy
        # What the strategy buffers fits beside vLLM's own memory in the container.
        assert load.buffer_mib + coldstart.VLLM_HOST_MIB <= m.vllm_memory_mib or (
            load.strategy == "lazy"
        )
        if load.strategy == "prefetch":
            assert load.buffer_mib >= m.weights_gib * 1024


@pytest.mark.parametrize("stack", ["dev", "prod", "staging"])
def test_sidecar_expects_the_warm_engine_start(request: pytest.FixtureRequest, stack: str) -> None:
    run: Run = request.getfixturevalue(stack)
    plan: FleetPlan = request.getfixturevalue(f"{stack}_plan")
    for m in plan.models:
        assert m.cold_start is not None
        env = {
            e["name"]: e["value"]
            for e in container(serving_task(run, m.short), "sidecar")["environment"]
        }
        expected = math.ceil(m.cold_start.warm.container_start_s)
        assert env["SIDECAR_ENGINE_START_SECONDS"] == str(expected)


# --- payloads as AWS receives them --------------------------------------------------------------


def test_pull_through_payloads_validate(prod: Run) -> None:
    rule = prod.one(RULE).inputs
    assert_valid(
        "ecr",
        "CreatePullThroughCacheRule",
        {
            "ecrRepositoryPrefix": rule["ecrRepositoryPrefix"],
            "upstreamRegistryUrl": rule["upstreamRegistryUrl"],
            "credentialArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
            "ecr-pullthroughcache/mf-platform-prod-docker-hub-AbCdEf",
            "upstreamRegistry": "docker-hub",
        },
        "pull-through cache rule",
    )
    t = prod.one(TEMPLATE).inputs
    assert_valid(
        "ecr",
        "CreateRepositoryCreationTemplate",
        {
            "prefix": t["prefix"],
            "description": t["description"],
            "encryptionConfiguration": {
                "encryptionType": t["encryptionConfigurations"][0]["encryptionType"],
                "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6789-abcd-"
                "ef0123456789",
            },
            "resourceTags": [{"Key": k, "Value": v} for k, v in t["resourceTags"].items()],
            "imageTagMutability": t["imageTagMutability"],
            "lifecyclePolicy": t["lifecyclePolicy"],
            "appliedFor": t["appliedFors"],
            "customRoleArn": "arn:aws:iam::123456789012:role/mf-platform-prod-template-role",
        },
        "repository creation template",
    )
    secret = prod.one(SECRET, "-engine-image-hub-credentials").inputs
    assert_valid(
        "secretsmanager",
        "CreateSecret",
        {"Name": secret["name"], "KmsKeyId": "k", "Description": secret["description"]},
        "pull-through credentials",
    )
    repo = prod.one(DYNAMIC, "-engine-image-digest").inputs
    assert_valid(
        "ecr",
        "BatchGetImage",
        {
            "registryId": repo["registryId"],
            "repositoryName": repo["repository"],
            "imageIds": [{"imageTag": repo["tag"]}],
        },
        "digest lookup",
    )


def test_warm_pool_and_hook_payloads_validate(prod: Run) -> None:
    for asg in prod.by_type(ASG):
        i = asg.inputs
        if "warmPool" not in i:
            continue
        wp = i["warmPool"]
        assert_valid(
            "autoscaling",
            "PutWarmPool",
            {
                "AutoScalingGroupName": asg.name,
                "MaxGroupPreparedCapacity": wp["maxGroupPreparedCapacity"],
                "MinSize": wp["minSize"],
                "PoolState": wp["poolState"],
                "InstanceReusePolicy": {"ReuseOnScaleIn": False},
            },
            asg.name,
        )
        for hook in i["initialLifecycleHooks"]:
            assert_valid(
                "autoscaling",
                "PutLifecycleHook",
                {
                    "AutoScalingGroupName": asg.name,
                    "LifecycleHookName": hook["name"],
                    "LifecycleTransition": hook["lifecycleTransition"],
                    "HeartbeatTimeout": hook["heartbeatTimeout"],
                    "DefaultResult": hook["defaultResult"],
                },
                hook["name"],
            )
            assert_valid(
                "autoscaling",
                "CompleteLifecycleAction",
                {
                    "LifecycleHookName": hook["name"],
                    "AutoScalingGroupName": asg.name,
                    "LifecycleActionResult": "CONTINUE",
                    "InstanceId": "i-0abc1234def567890",
                },
                "the user data's completion",
            )


def test_capacity_strategy_payloads_validate(prod: Run) -> None:
    for svc in prod.by_type("aws:ecs/service:Service"):
        strategy = svc.inputs["capacityProviderStrategies"]
        assert_valid(
            "ecs",
            "CreateService",
            {"serviceName": svc.name, "capacityProviderStrategy": strategy},
            svc.name,
        )
        # ECS needs one provider with a weight, and base on one entry at most.
        assert any(s["weight"] > 0 for s in strategy)
        assert sum(1 for s in strategy if s["base"] > 0) <= 1

"""Run the Pulumi program offline under `pulumi.runtime.set_mocks`, recording every resource.

The program (`__main__.py`) runs unmodified, with the stack file's config handed over as the
engine hands it during `pulumi preview`: structured values JSON-encoded, secrets decrypted
(here: to stand-in values) and their keys marked secret. Invokes that would ask AWS (account,
zones, the GPU AMI parameter) answer with fixed, realistic values.

Used by the infra tests and by `modelfleet check`, which runs the policy pack on the result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc as pulumi_rpc
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from modelfleet.partitions import partition_of

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
ACCOUNT = "123456789012"
AMI = "ami-0a1b2c3d4e5f67890"
# Stand-ins for decrypted secrets, shaped as the program expects them.
SECRET_STAND_INS = {
    "apiKeys": "ci:mock-api-key",
    "apiKey": "mock-fallback-key",
    "hfToken": "hf_mock_token",
    "dockerHubCredentials": "mockuser:dckr_pat_mock",
}


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)  # URNs of explicit dependencies
    parent: str = ""
    provider: str = ""  # the explicit provider reference ("<urn>::<id>"), if any
    # Resource options the engine received: protect, deleteBeforeReplace, aliases (names).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    resources: list[Recorded]
    stack_outputs: dict[str, Any]

    def by_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name_part: str = "") -> Recorded:
        found = [r for r in self.by_type(type_token) if name_part in r.name]
        if len(found) != 1:
            names = [r.name for r in found]
            raise LookupError(f"expected one {type_token} named *{name_part}*, found {names}")
        return found[0]

    def named(self, name: str) -> Recorded:
        return next(r for r in self.resources if r.name == name)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Also records what `Mocks` does not see: parents, dependencies and stack outputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.dependencies: dict[str, tuple[list[str], str]] = {}
        self.providers: dict[str, str] = {}
        self.options: dict[str, dict[str, Any]] = {}
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.dependencies[request.name] = (list(request.dependencies), request.parent)
        self.providers[request.name] = request.provider
        self.options[request.name] = {
            "protect": bool(request.protect),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "ignoreChanges": sorted(request.ignoreChanges),
            # Named aliases only (pulumi_aws adds unnamed type aliases of its own).
            "aliases": sorted(
                a.spec.name
                for a in request.aliases
                if a.WhichOneof("alias") == "spec" and a.spec.name
            ),
        }
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if "pulumi:pulumi:Stack" in request.urn:
            self.stack_outputs = pulumi_rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def _service(type_token: str) -> str:
    return type_token.split(":")[1].split("/")[0]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        # ARNs and hosts as that Region's partition writes them.
        self.partition, self.dns_suffix = partition_of(region)
        self.resources: list[Recorded] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        rid = f"{args.name}-id"
        physical = inputs.get("name") or f"{args.name}-a1b2c3d"
        out: dict[str, Any] = {
            **inputs,
            "name": physical,
            "arn": f"arn:{self.partition}:{_service(args.typ)}:{self.region}:{ACCOUNT}:{args.name}",
            "id": rid,
        }
        t = args.typ
        if t == "aws:lb/loadBalancer:LoadBalancer":
            out["dnsName"] = f"{physical}-1234567890.{self.region}.elb.{self.dns_suffix}"
            out["arnSuffix"] = f"app/{physical}/0123456789abcdef"
        elif t == "aws:lb/targetGroup:TargetGroup":
            out["arnSuffix"] = f"targetgroup/{physical}/0123456789abcdef"
        elif t == "aws:ecr/repository:Repository":
            out["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{self.region}.{self.dns_suffix}/{physical}"
            out["registryId"] = ACCOUNT
        elif t == "docker-build:index:Image":
            out["digest"] = "sha256:" + "0" * 64
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            out["latestVersion"] = 1
        elif t == "aws:s3/bucket:Bucket":
            out["bucket"] = physical
        elif t == "aws:kms/key:Key":
            out["keyId"] = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
        elif t == "aws:ec2/vpc:Vpc":
            out["cidrBlock"] = inputs.get("cidrBlock")
        elif t == "aws:cloudwatch/dashboard:Dashboard":
            out["dashboardName"] = inputs.get("dashboardName")
        elif t == "pulumi-python:dynamic:Resource" and {"repository", "tag"} <= set(inputs):
            # The engine image's digest, as the pull-through cache would report it.
            out["digest"] = "sha256:" + "1" * 64
        elif t == "pulumi-python:dynamic:Resource" and {"amiParameter", "images"} <= set(inputs):
            # The image cache's snapshot, as EC2 names one (snap- and 17 hex digits).
            h = hashlib.sha256(args.name.encode()).hexdigest()
            out["snapshotId"] = f"snap-{h[:17]}"
            out["builderInstanceId"] = f"i-{h[17:34]}"
            out["imageId"] = f"ami-{h[34:51]}"
        elif t == "aws:eks/cluster:Cluster":
            out["endpoint"] = f"https://0123456789ABCDEF.gr7.{self.region}.eks.{self.dns_suffix}"
            out["certificateAuthority"] = {"data": "bW9jay1jYQ=="}
            out["vpcConfig"] = {
                **(inputs.get("vpcConfig") or {}),
                "clusterSecurityGroupId": "sg-0c1a2b3c4d5e6f708",
            }
        elif t == "aws:sqs/queue:Queue":
            out["url"] = f"https://sqs.{self.region}.{self.dns_suffix}/{ACCOUNT}/{physical}"
        self.resources.append(Recorded(t, args.name, inputs, out))
        return rid, out

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        token = args.token
        r = self.region
        answers: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": f"arn:{self.partition}:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            },
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                # us-east-1 lists six zones; stacks may ask for up to six.
                "names": [f"{r}{z}" for z in "abcdef"],
                "zoneIds": ["use1-az1", "use1-az2", "use1-az4", "use1-az6", "use1-az3", "use1-az5"],
                "id": r,
            },
            "aws:ssm/getParameter:getParameter": {
                "name": args.args.get("name"),
                "value": AMI,
                "type": "String",
                "id": args.args.get("name"),
                "arn": "",
                "version": 1,
                "insecureValue": AMI,
            },
            "aws:ec2/getVpc:getVpc": {"id": args.args.get("id"), "cidrBlock": "10.60.0.0/16"},
            # A /20 of the VPC above per subnet id, distinct per id.
            "aws:ec2/getSubnet:getSubnet": {
                "id": args.args.get("id"),
                "cidrBlock": _subnet_cidr(str(args.args.get("id"))),
                "vpcId": "vpc-0123456789abcdef0",
                "availabilityZone": f"{r}{'abc'[_subnet_slot(str(args.args.get('id'))) % 3]}",
            },
            # The deploying principal behind the caller's ARN (a user here; for an assumed
            # role, the role's ARN with its path).
            "aws:iam/getSessionContext:getSessionContext": {
                "arn": args.args.get("arn"),
                "issuerArn": args.args.get("arn"),
                "issuerId": "AIDAEXAMPLE",
                "issuerName": "ci",
                "sessionName": "",
                "id": args.args.get("arn"),
            },
            # EKS's default build of an add-on for a Kubernetes version.
            "aws:eks/getAddonVersion:getAddonVersion": {
                "addonName": args.args.get("addonName"),
                "kubernetesVersion": args.args.get("kubernetesVersion"),
                "version": "v1.0.0-eksbuild.1",
                "id": args.args.get("addonName"),
            },
            "aws:elb/getServiceAccount:getServiceAccount": {
                "id": "127311923021",
                "arn": f"arn:{self.partition}:iam::127311923021:root",
            },
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "userName": "AWS",
                "password": "mock-ecr-password",
                "id": ACCOUNT,
                "authorizationToken": "",
                "expiresAt": "",
                "proxyEndpoint": "",
            },
        }
        if token not in answers:
            raise NotImplementedError(f"no mock for invoke {token}")
        return answers[token], []


def _subnet_cidr(subnet_id: str) -> str:
    return f"10.60.{_subnet_slot(subnet_id) * 16}.0/20"


def _subnet_slot(subnet_id: str) -> int:
    return int(hashlib.sha256(subnet_id.encode()).hexdigest(), 16) % 16


def _engine_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _decrypt(value: Any, key: str = "") -> tuple[Any, bool]:
    """Replace `{secure: ...}` with a stand-in plaintext; report whether any was found."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_STAND_INS.get(key, "mock-secret"), True
        found = False
        out = {}
        for k, v in value.items():
            out[k], f = _decrypt(v, str(k))
            found |= f
        return out, found
    if isinstance(value, list):
        items = [_decrypt(v, key) for v in value]
        return [v for v, _ in items], any(f for _, f in items)
    return value, False


def engine_config_from_file(stack_file: Path) -> tuple[str, dict[str, str], list[str]]:
    """(stack name, engine config map, secret keys) as `pulumi preview` would pass them."""
    doc = yaml.safe_load(stack_file.read_text())
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        name = str(key).partition(":")[2]
        plain, is_secret = _decrypt(value, name)
        config[str(key)] = _engine_value(plain)
        if is_secret:
            secret_keys.append(str(key))
    return stack, config, secret_keys


def _ensure_event_loop() -> None:
    """Give this thread an open event loop if it has none.

    pulumi's runtime creates futures and runs `_sync_await` on the thread's current loop
    (`asyncio.get_event_loop()`); a caller that closed or cleared it, as pytest-asyncio does after
    each async test, would otherwise fail with "There is no current event loop".
    """
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_stack(stack_file: Path, preview: bool = True) -> Run:
    """Run `__main__.py` for one stack file under mocks, as `pulumi preview` would."""
    _ensure_event_loop()
    stack, config, secret_keys = engine_config_from_file(Path(stack_file))
    region = config.get("aws:region", "us-east-1")
    mocks = RecordingMocks(region)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="modelfleet", stack=stack, preview=preview, monitor=monitor
    )
    pulumi.runtime.set_all_config(config, secret_keys)
    SETTINGS.outputs.clear()

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    for r in mocks.resources:
        r.dependencies, r.parent = monitor.dependencies.get(r.name, ([], ""))
        r.provider = monitor.providers.get(r.name, "")
        r.options = monitor.options.get(r.name, {})
    return Run(mocks.resources, monitor.stack_outputs)


def run_program(stack_file: Path, preview: bool = True) -> list[Recorded]:
    """Every resource the program registers for one stack file (see `run_stack`)."""
    return run_stack(stack_file, preview).resources

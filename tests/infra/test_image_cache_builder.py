"""The EKS image cache's snapshot builder against real boto3 EC2 and SSM clients with botocore's
Stubber: every request is checked against the services' models (and our expected parameters),
so a malformed RunInstances or SendCommand fails here rather than at `pulumi up`. Covers
create, a new image digest replacing the snapshot, delete, and cleanup when a step fails."""

from __future__ import annotations

import base64
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import boto3
import pytest
from botocore.stub import ANY, Stubber

from components.eks.image_cache import (
    CREDENTIAL_PROVIDER,
    CTR,
    POLL_SECONDS,
    PULL_TIMEOUT_S,
    TRIGGERS,
    ImageCacheError,
    ImageCacheProvider,
    build_snapshot,
    builder_user_data,
    delete_snapshot,
    ecr_repository_arns,
    pull_script,
    qualified,
)
from modelfleet import coldstart

pytestmark = pytest.mark.xdist_group("infra")

SHELLCHECK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "shellcheck"

ENGINE = (
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/mf-search-prod-eks-hub/vllm/vllm-openai"
    "@sha256:" + "1" * 64
)
SIDECAR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sidecar-a1b2c3d@sha256:" + "2" * 64
PUBLIC = "public.ecr.aws/example/fetcher@sha256:" + "3" * 64
INSTANCE = "i-0a1b2c3d4e5f60789"
VOLUME = "vol-0a1b2c3d4e5f60789"
SNAPSHOT = "snap-0a1b2c3d4e5f60789"
AMI = "ami-0a1b2c3d4e5f60789"
COMMAND = "3c6ea9c1-3a5c-4f2e-9d7e-0a1b2c3d4e5f"
KMS = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
PROPS: dict[str, Any] = {
    "region": "us-east-1",
    "profile": None,
    "roles": [],
    "amiParameter": "/aws/service/bottlerocket/aws-k8s-1.35-nvidia/x86_64/1.64.0/image_id",
    "instanceType": "g6e.xlarge",
    "subnetId": "subnet-0a1b2c3d4e5f60001",
    "securityGroupId": "sg-0a1b2c3d4e5f60003",
    "instanceProfileArn": "arn:aws:iam::123456789012:instance-profile/builder",
    "kmsKeyId": KMS,
    "osVolumeGib": 4,
    "volumeGib": 50,
    "userData": builder_user_data(),
    "snapshotter": "soci",
    "images": [ENGINE, SIDECAR, PUBLIC],
    "description": "search/prod-eks",
    "tags": {"team": "search", "modelfleet:role": "image-cache"},
}
TAGS = [{"Key": "modelfleet:role", "Value": "image-cache"}, {"Key": "team", "Value": "search"}]


def _client(service: Literal["ec2", "ssm"]) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.fixture
def clients() -> Iterator[tuple[Any, Stubber, Any, Stubber]]:
    ec2, ssm = _client("ec2"), _client("ssm")
    with Stubber(ec2) as ec2_stub, Stubber(ssm) as ssm_stub:
        yield ec2, ec2_stub, ssm, ssm_stub
        ec2_stub.assert_no_pending_responses()
        ssm_stub.assert_no_pending_responses()


def _expect_launch(ec2_stub: Stubber, ssm_stub: Stubber) -> None:
    ssm_stub.add_response(
        "get_parameter",
        {"Parameter": {"Name": PROPS["amiParameter"], "Type": "String", "Value": AMI}},
        {"Name": PROPS["amiParameter"]},
    )
    data_volume = {
        "VolumeSize": 50,
        "VolumeType": "gp3",
        "Encrypted": True,
        "KmsKeyId": KMS,
        "DeleteOnTermination": True,
    }
    ec2_stub.add_response(
        "run_instances",
        {"Instances": [{"InstanceId": INSTANCE}]},
        {
            "ImageId": AMI,
            "InstanceType": "g6e.xlarge",
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": PROPS["subnetId"],
            "SecurityGroupIds": [PROPS["securityGroupId"]],
            "IamInstanceProfile": {"Arn": PROPS["instanceProfileArn"]},
            "UserData": base64.b64encode(PROPS["userData"].encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {**data_volume, "VolumeSize": 4}},
                {"DeviceName": "/dev/xvdb", "Ebs": data_volume},
            ],
            "InstanceInitiatedShutdownBehavior": "stop",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": TAGS},
                {"ResourceType": "volume", "Tags": TAGS},
            ],
        },
    )


def _expect_online(ssm_stub: Stubber, status: str) -> None:
    info = [{"InstanceId": INSTANCE, "PingStatus": status}] if status else []
    ssm_stub.add_response(
        "describe_instance_information",
        {"InstanceInformationList": info},
        {"Filters": [{"Key": "InstanceIds", "Values": [INSTANCE]}]},
    )


def _expect_pull(
    ssm_stub: Stubber, statuses: list[str], output: str = "", not_yet: bool = False
) -> None:
    ssm_stub.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND}},
        {
            "InstanceIds": [INSTANCE],
            "DocumentName": "AWS-RunShellScript",
            "Comment": ANY,
            "Parameters": {"commands": [pull_script(PROPS["images"], "soci")]},
            "TimeoutSeconds": PULL_TIMEOUT_S,
        },
    )
    if not_yet:
        # Right after SendCommand the invocation may not exist yet.
        ssm_stub.add_client_error(
            "get_command_invocation",
            "InvocationDoesNotExist",
            expected_params={"CommandId": COMMAND, "InstanceId": INSTANCE},
        )
    for status in statuses:
        ssm_stub.add_response(
            "get_command_invocation",
            {
                "CommandId": COMMAND,
                "InstanceId": INSTANCE,
                "Status": status,
                "StandardOutputContent": output,
                "StandardErrorContent": "",
            },
            {"CommandId": COMMAND, "InstanceId": INSTANCE},
        )


def _expect_stop_and_snapshot(ec2_stub: Stubber, states: list[str]) -> None:
    ec2_stub.add_response("stop_instances", {}, {"InstanceIds": [INSTANCE]})
    for state in ("stopping", "stopped"):
        ec2_stub.add_response(
            "describe_instances",
            {
                "Reservations": [
                    {
                        "Instances": [
                            {
                                "InstanceId": INSTANCE,
                                "State": {"Name": state},
                                "BlockDeviceMappings": [
                                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-0os"}},
                                    {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeId": VOLUME}},
                                ],
                            }
                        ]
                    }
                ]
            },
            {"InstanceIds": [INSTANCE]},
        )
    ec2_stub.add_response(
        "create_snapshot",
        {"SnapshotId": SNAPSHOT},
        {
            "VolumeId": VOLUME,
            "Description": "modelfleet image cache: search/prod-eks",
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": TAGS}],
        },
    )
    for state in states:
        snap: dict[str, Any] = {"SnapshotId": SNAPSHOT, "State": state}
        if state == "error":
            snap["StateMessage"] = "internal error"
        ec2_stub.add_response(
            "describe_snapshots", {"Snapshots": [snap]}, {"SnapshotIds": [SNAPSHOT]}
        )


def _expect_terminate(ec2_stub: Stubber) -> None:
    ec2_stub.add_response("terminate_instances", {}, {"InstanceIds": [INSTANCE]})


def test_builds_the_snapshot_and_terminates_the_builder(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ec2, ec2_stub, ssm, ssm_stub = clients
    _expect_launch(ec2_stub, ssm_stub)
    _expect_online(ssm_stub, "")
    _expect_online(ssm_stub, "Online")
    _expect_pull(ssm_stub, ["InProgress", "Success"], not_yet=True)
    _expect_stop_and_snapshot(ec2_stub, ["pending", "completed"])
    _expect_terminate(ec2_stub)
    slept: list[float] = []
    out = build_snapshot(ec2, ssm, PROPS, sleep=slept.append, clock=lambda: 0.0)
    assert out == {"snapshotId": SNAPSHOT, "builderInstanceId": INSTANCE, "imageId": AMI}
    # SSM once, the pull twice (not yet, in progress), stopping once, the snapshot once.
    assert slept == [POLL_SECONDS] * 5


def test_a_failed_pull_terminates_the_builder_with_the_output(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ec2, ec2_stub, ssm, ssm_stub = clients
    _expect_launch(ec2_stub, ssm_stub)
    _expect_online(ssm_stub, "Online")
    _expect_pull(ssm_stub, ["Failed"], output="ctr: failed to resolve reference: 403 Forbidden")
    _expect_terminate(ec2_stub)
    with pytest.raises(ImageCacheError) as info:
        build_snapshot(ec2, ssm, PROPS, sleep=lambda _s: None, clock=lambda: 0.0)
    assert "403 Forbidden" in str(info.value) and INSTANCE in str(info.value)


def test_a_failed_snapshot_is_deleted_and_the_builder_terminated(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ec2, ec2_stub, ssm, ssm_stub = clients
    _expect_launch(ec2_stub, ssm_stub)
    _expect_online(ssm_stub, "Online")
    _expect_pull(ssm_stub, ["Success"])
    _expect_stop_and_snapshot(ec2_stub, ["error"])
    ec2_stub.add_response("delete_snapshot", {}, {"SnapshotId": SNAPSHOT})
    _expect_terminate(ec2_stub)
    with pytest.raises(ImageCacheError, match="internal error"):
        build_snapshot(ec2, ssm, PROPS, sleep=lambda _s: None, clock=lambda: 0.0)


def test_an_unreachable_ssm_agent_times_out_and_terminates(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ec2, ec2_stub, ssm, ssm_stub = clients
    _expect_launch(ec2_stub, ssm_stub)
    _expect_online(ssm_stub, "")
    _expect_online(ssm_stub, "ConnectionLost")
    _expect_terminate(ec2_stub)
    ticks = iter([0.0, 0.0, 10_000.0])
    with pytest.raises(ImageCacheError, match="route to SSM"):
        build_snapshot(ec2, ssm, PROPS, sleep=lambda _s: None, clock=lambda: next(ticks))


def test_delete_removes_the_snapshot_and_tolerates_one_already_gone() -> None:
    ec2 = _client("ec2")
    with Stubber(ec2) as stub:
        stub.add_response("delete_snapshot", {}, {"SnapshotId": SNAPSHOT})
        stub.add_client_error(
            "delete_snapshot", "InvalidSnapshot.NotFound", expected_params={"SnapshotId": SNAPSHOT}
        )
        stub.add_client_error(
            "delete_snapshot", "InvalidSnapshot.InUse", expected_params={"SnapshotId": SNAPSHOT}
        )
        delete_snapshot(ec2, SNAPSHOT)
        delete_snapshot(ec2, SNAPSHOT)
        with pytest.raises(Exception, match="InUse"):
            delete_snapshot(ec2, SNAPSHOT)
        stub.assert_no_pending_responses()


def test_a_new_image_replaces_the_snapshot_a_new_session_does_not() -> None:
    provider = ImageCacheProvider()
    olds = {**PROPS, "snapshotId": SNAPSHOT}
    assert not provider.diff(SNAPSHOT, olds, {**olds, "profile": "other"}).changes
    moved = provider.diff(
        SNAPSHOT, olds, {**olds, "images": [ENGINE.replace("1" * 64, "4" * 64), SIDECAR, PUBLIC]}
    )
    # Create the new snapshot before deleting the old: the node class moves over first.
    assert moved.changes and moved.replaces == ["images"] and not moved.delete_before_replace
    assert {"images", "amiParameter", "volumeGib", "kmsKeyId", "userData"} <= set(TRIGGERS)


def test_pull_script_keeps_credentials_on_the_host() -> None:
    script = pull_script(PROPS["images"], "soci")
    # Every image into the kubelet's namespace with the nodes' snapshotter, by digest.
    for image in PROPS["images"]:
        assert "--snapshotter soci --label io.cri-containerd.image=managed" in script
        assert image in script
    assert script.count(f"{CTR} images pull") == 3
    # ECR images authenticate through the host's credential provider; the public one does not;
    # no token is echoed.
    assert script.count(CREDENTIAL_PROVIDER) == 2
    assert "echo $pw" not in script and "echo ${pw}" not in script
    # AWS-RunShellScript runs it with sh in Bottlerocket's control container.
    res = subprocess.run(
        [str(SHELLCHECK), "-s", "sh", "-"], input=script, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout


def test_short_references_are_pulled_by_the_name_the_kubelet_asks_for() -> None:
    assert qualified("vllm/vllm-openai:v0.31.0-cu129") == "docker.io/vllm/vllm-openai:v0.31.0-cu129"
    assert qualified("busybox@sha256:" + "5" * 64) == "docker.io/library/busybox@sha256:" + "5" * 64
    assert qualified(ENGINE) == ENGINE and qualified(PUBLIC) == PUBLIC
    assert "docker.io/vllm/vllm-openai:v0.31.0-cu129" in pull_script(
        ["vllm/vllm-openai:v0.31.0-cu129"], "soci"
    )


def test_builder_boots_with_the_node_class_settings() -> None:
    node = tomllib.loads(coldstart.bottlerocket_user_data())["settings"]
    builder = tomllib.loads(builder_user_data())["settings"]
    assert builder["container-runtime"] == node["container-runtime"]
    assert builder["container-runtime-plugins"] == node["container-runtime-plugins"]
    assert builder["host-containers"]["admin"]["enabled"] is True


def test_builder_may_pull_only_the_stacks_ecr_repositories() -> None:
    assert ecr_repository_arns("aws", PROPS["images"]) == [
        "arn:aws:ecr:us-east-1:123456789012:repository/mf-search-prod-eks-hub/vllm/vllm-openai",
        "arn:aws:ecr:us-east-1:123456789012:repository/sidecar-a1b2c3d",
    ]

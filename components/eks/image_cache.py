"""The GPU nodes' image cache: a snapshot of Bottlerocket's data volume with the images pulled.

What github.com/aws-samples/bottlerocket-images-cache (snapshot.sh, ebs-snapshot-instance.yaml,
commit 3370ea0) does with a shell script and CloudFormation, as a dynamic resource that runs at
`pulumi up` as the stack's `aws` provider identity (components.stack_config.aws_session_settings):

1. RunInstances: the node class's own AMI (Bottlerocket NVIDIA, pinned version, by its SSM
   parameter) with the node class's Bottlerocket settings plus the admin host container, in a
   private subnet, IMDSv2 only, no public address, its data volume (/dev/xvdb) encrypted with
   the stack's KMS key; an instance profile that can only register with SSM and pull the
   stack's images;
2. waits for the SSM agent, then Run Command pulls every image by digest into containerd's
   `k8s.io` namespace (the kubelet's) with the snapshotter the nodes use;
3. stops the instance, snapshots the data volume (encrypted like the volume), waits for the
   snapshot to complete, and terminates the builder. Any failure terminates the builder and
   deletes a half-made snapshot; the error carries the command's output.

A new image digest (or AMI, volume size, settings, key) replaces the snapshot: the node class
takes the new ID (Karpenter drifts the nodes one at a time), then the old snapshot is deleted.
Deleting the resource deletes the snapshot.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_aws as aws

from components._common import (
    assume_role_policy,
    child,
    engine_cache_statements,
    invoke,
    policy_json,
    replacing_diff,
    stack_tags,
)
from components.stack_config import aws_session
from modelfleet import coldstart, eks
from modelfleet.plan_types import FleetPlan

POLL_SECONDS = 10.0
# Bottlerocket's SSM agent registers within a minute or two of launch; a ~10 GB pull through
# the region's ECR takes minutes; a first snapshot of ~35 GB of data takes longer.
SSM_ONLINE_TIMEOUT_S = 600
PULL_TIMEOUT_S = 1800
SNAPSHOT_TIMEOUT_S = 3600
STOP_TIMEOUT_S = 600
OUTPUT_TAIL_CHARS = 2000
# The admin container's root shell in the host's namespaces, and containerd's CLI on the socket
# the kubelet uses, in its `k8s.io` namespace (snapshot.sh CTR_CMD).
CTR = "apiclient exec admin sheltie ctr -a /run/containerd/containerd.sock -n k8s.io"
# ECR credentials stay on the host: the kubelet's own image credential provider answers a
# CredentialProviderRequest on stdin with the instance role's token, which is passed to ctr and
# never printed or sent back through SSM. Bottlerocket's kubelet runs it from
# `--image-credential-provider-bin-dir /usr/libexec/kubernetes/kubelet/plugins` (a Bottlerocket
# kubelet command line in DataDog/datadog-agent pkg/compliance/k8sconfig loader_test.go,
# bottleRocketProcTable) with HOME=/root (Bottlerocket's credential-provider-config template
# for ecr-credential-provider); read 2026-12-01.
CREDENTIAL_PROVIDER = "/usr/libexec/kubernetes/kubelet/plugins/ecr-credential-provider"


class ImageCacheError(Exception):
    pass


def builder_user_data() -> str:
    """The node class's Bottlerocket settings (same snapshotter, so the state on the snapshot
    is the nodes'; Bottlerocket resets snapshotter state when the selected snapshotter changes
    across boots, bottlerocket 1.44.0 release notes, configure-snapshotter.service), plus the
    admin host container that Run Command reaches the host through (snapshot.sh)."""
    return coldstart.bottlerocket_user_data() + (
        "\n[settings.host-containers.admin]\nenabled = true\n"
    )


def qualified(image: str) -> str:
    """The name the kubelet's CRI gives a short reference (docker.io, library/ for official
    images), which ctr needs spelled out; the cached image must carry the name pods ask for."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def pull_script(images: Sequence[str], snapshotter: str) -> str:
    """The Run Command script (AWS-RunShellScript, in Bottlerocket's control container)."""
    lines = [
        "set -eu",
        # snapshot.sh stops the kubelet first: nothing else writes to the data volume.
        "apiclient exec admin sheltie systemctl stop kubelet || true",
    ]
    for image in map(qualified, images):
        registry = image.split("/", 1)[0]
        request = json.dumps(
            {
                "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                "kind": "CredentialProviderRequest",
                "image": image,
            },
            separators=(",", ":"),
        )
        auth = (
            f"printf '%s' {shlex.quote(request)} | HOME=/root {CREDENTIAL_PROVIDER}"
            if ".dkr.ecr." in registry
            else ""
        )
        if auth:
            lines.append(
                "pw=$(apiclient exec admin sheltie sh -c "
                + shlex.quote(auth)
                + ' | sed -n \'s/.*"password":"\\([^"]*\\)".*/\\1/p\')'
            )
            user = ' --user "AWS:${pw}"'
        else:
            user = ""
        lines.append(
            f"{CTR} images pull --snapshotter {snapshotter} --label "
            f"io.cri-containerd.image=managed --platform linux/amd64{user} {shlex.quote(image)}"
            " >/dev/null"
        )
        lines.append(f"echo pulled {shlex.quote(image)}")
    lines.append("apiclient exec admin sheltie sync")
    return "\n".join(lines) + "\n"


def _wait(
    what: str, check: Any, timeout_s: float, sleep: Any, clock: Any, on_timeout: str = ""
) -> Any:
    deadline = clock() + timeout_s
    while True:
        done = check()
        if done is not None:
            return done
        if clock() > deadline:
            raise ImageCacheError(f"{what} did not finish within {timeout_s:.0f} s{on_timeout}")
        sleep(POLL_SECONDS)


def build_snapshot(
    ec2: Any,
    ssm: Any,
    props: Mapping[str, Any],
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> dict[str, Any]:
    """Launch the builder, pull, snapshot, terminate; the snapshot's ID and the builder's.

    `ec2` and `ssm` are boto3 clients (tests pass stubbed ones).
    """
    ami = ssm.get_parameter(Name=props["amiParameter"])["Parameter"]["Value"]
    tags = [{"Key": k, "Value": v} for k, v in sorted(props["tags"].items())]
    resp = ec2.run_instances(
        ImageId=ami,
        InstanceType=props["instanceType"],
        MinCount=1,
        MaxCount=1,
        SubnetId=props["subnetId"],
        SecurityGroupIds=[props["securityGroupId"]],
        IamInstanceProfile={"Arn": props["instanceProfileArn"]},
        UserData=base64.b64encode(props["userData"].encode()).decode(),
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "VolumeSize": props["osVolumeGib"],
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "KmsKeyId": props["kmsKeyId"],
                    "DeleteOnTermination": True,
                },
            },
            {
                "DeviceName": "/dev/xvdb",
                "Ebs": {
                    "VolumeSize": props["volumeGib"],
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "KmsKeyId": props["kmsKeyId"],
                    "DeleteOnTermination": True,
                },
            },
        ],
        InstanceInitiatedShutdownBehavior="stop",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
    )
    instance = resp["Instances"][0]["InstanceId"]
    snapshot: str | None = None
    try:

        def online() -> bool | None:
            info = ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [instance]}]
            )["InstanceInformationList"]
            return True if info and info[0].get("PingStatus") == "Online" else None

        _wait(
            f"SSM registration of {instance}",
            online,
            SSM_ONLINE_TIMEOUT_S,
            sleep,
            clock,
            "; the builder's subnet needs a route to SSM (NAT or endpoints)",
        )
        command = ssm.send_command(
            InstanceIds=[instance],
            DocumentName="AWS-RunShellScript",
            Comment="modelfleet image cache: pull the serving images",
            Parameters={"commands": [pull_script(props["images"], props["snapshotter"])]},
            TimeoutSeconds=PULL_TIMEOUT_S,
        )["Command"]["CommandId"]

        def pulled() -> dict[str, Any] | None:
            try:
                inv = ssm.get_command_invocation(CommandId=command, InstanceId=instance)
            except ssm.exceptions.InvocationDoesNotExist:
                return None
            return inv if inv["Status"] not in ("Pending", "InProgress", "Delayed") else None

        inv = _wait("the image pull", pulled, PULL_TIMEOUT_S, sleep, clock)
        if inv["Status"] != "Success":
            out = (inv.get("StandardErrorContent") or "") + (inv.get("StandardOutputContent") or "")
            raise ImageCacheError(
                f"pulling the images on {instance} ended {inv['Status']}: "
                f"{out[-OUTPUT_TAIL_CHARS:] or '(no output)'}"
            )
        # Stopped, so the snapshot is of a quiet file system (snapshot.sh step 6).
        ec2.stop_instances(InstanceIds=[instance])

        def stopped() -> dict[str, Any] | None:
            r = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
            return r if r["State"]["Name"] == "stopped" else None

        desc = _wait(f"stopping {instance}", stopped, STOP_TIMEOUT_S, sleep, clock)
        volume = next(
            b["Ebs"]["VolumeId"]
            for b in desc["BlockDeviceMappings"]
            if b["DeviceName"] == "/dev/xvdb"
        )
        snapshot = ec2.create_snapshot(
            VolumeId=volume,
            Description=f"modelfleet image cache: {props['description']}"[:255],
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
        )["SnapshotId"]

        def completed() -> bool | None:
            s = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
            if s["State"] == "error":
                raise ImageCacheError(f"snapshot {snapshot}: {s.get('StateMessage', 'error')}")
            return True if s["State"] == "completed" else None

        _wait(f"snapshot {snapshot}", completed, SNAPSHOT_TIMEOUT_S, sleep, clock)
    except BaseException:
        if snapshot is not None:
            ec2.delete_snapshot(SnapshotId=snapshot)
        raise
    finally:
        ec2.terminate_instances(InstanceIds=[instance])
    return {"snapshotId": snapshot, "builderInstanceId": instance, "imageId": ami}


# What the snapshot holds or how it is made; the session (profile, roles) is not.
TRIGGERS = (
    "images",
    "amiParameter",
    "volumeGib",
    "kmsKeyId",
    "userData",
    "snapshotter",
    "instanceType",
)


class ImageCacheProvider(pulumi.dynamic.ResourceProvider):
    """Runs in the Pulumi engine's Python host as the stack's `aws` provider identity."""

    def _clients(self, props: Mapping[str, Any]) -> tuple[Any, Any]:
        session = aws_session(dict(props))
        return session.client("ec2"), session.client("ssm")

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        ec2, ssm = self._clients(props)
        outs = {**props, **build_snapshot(ec2, ssm, props)}
        return pulumi.dynamic.CreateResult(id_=outs["snapshotId"], outs=outs)

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        # Create the new snapshot first: the node class moves to it, then the old one goes.
        return replacing_diff(TRIGGERS, olds, news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        ec2, _ = self._clients(props)
        delete_snapshot(ec2, id_)


def delete_snapshot(ec2: Any, snapshot_id: str) -> None:
    """Delete the snapshot; one already gone is what deleting wanted."""
    from botocore.exceptions import ClientError

    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidSnapshot.NotFound":
            raise


class ImageCacheSnapshot(pulumi.dynamic.Resource):
    snapshotId: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            ImageCacheProvider(),
            name,
            {**props, "snapshotId": None, "builderInstanceId": None, "imageId": None},
            opts,
        )


@dataclass(frozen=True)
class ImageCacheArgs:
    plan: FleetPlan
    partition: str
    region: str
    account_id: str
    vpc_id: pulumi.Input[str]
    # The stack's private subnets by AZ slot: the builder runs in the first, FSR is enabled in
    # each one's AZ.
    private_subnet_ids: list[pulumi.Output[str]]
    kms_key_arn: pulumi.Input[str]
    # Every image a GPU node's pods run, pinned by digest (engine, sidecar, fetcher).
    images: list[pulumi.Input[str]]
    session: Mapping[str, Any]


def ecr_repository_arns(partition: str, refs: Sequence[str]) -> list[str]:
    """The ECR repositories of the images that live in ECR (the others are public pulls)."""
    out: list[str] = []
    for ref in refs:
        host, _, rest = ref.partition("/")
        if ".dkr.ecr." not in host:
            continue
        account, _, tail = host.partition(".dkr.ecr.")
        region = tail.split(".", 1)[0]
        repo = rest.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        out.append(f"arn:{partition}:ecr:{region}:{account}:repository/{repo}")
    return sorted(set(out))


class ImageCache(pulumi.ComponentResource):
    """`snapshot_id`: what the GPU node class's data volume is made from."""

    snapshot_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:ImageCache", name, None, opts)
        plan = args.plan
        e = plan.eks
        assert e is not None and e.image_cache is not None
        ic = e.image_cache
        lg = ic.logical
        tags = stack_tags(plan.config)
        repos = pulumi.Output.all(*args.images).apply(
            lambda refs: ecr_repository_arns(args.partition, [str(r) for r in refs])
        )
        role = aws.iam.Role(
            lg["role"].name,
            assume_role_policy=assume_role_policy(plan.ec2_service_principal),
            tags=tags,
            opts=child(self),
        )
        # Run Command reaches the builder through SSM (snapshot.sh); nothing else is managed.
        ssm_core = aws.iam.RolePolicyAttachment(
            lg["ssm"].name,
            role=role.name,
            policy_arn=f"arn:{args.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child(self),
        )
        pull = aws.iam.RolePolicy(
            lg["policy"].name,
            role=role.id,
            policy=policy_json(
                [
                    {
                        # GetAuthorizationToken has no resource-level permissions.
                        "Effect": "Allow",
                        "Action": "ecr:GetAuthorizationToken",
                        "Resource": "*",
                    },
                    {
                        # Only the stack's images.
                        "Effect": "Allow",
                        "Action": [
                            "ecr:BatchGetImage",
                            "ecr:GetDownloadUrlForLayer",
                            "ecr:BatchCheckLayerAvailability",
                        ],
                        "Resource": repos,
                    },
                    # A pull through the cache may still import the engine's layers, under the
                    # cache prefix only, and read them with the stack's key (as the GPU nodes).
                    *engine_cache_statements(
                        plan, args.partition, args.account_id, args.kms_key_arn
                    ),
                ]
            ),
            opts=child(self),
        )
        profile = aws.iam.InstanceProfile(
            lg["profile"].name, role=role.name, tags=tags, opts=child(self)
        )
        # Egress only (HTTPS to ECR, S3 and SSM); nothing reaches the builder.
        sg = aws.ec2.SecurityGroup(
            lg["security_group"].name,
            vpc_id=args.vpc_id,
            description="modelfleet image cache builder: egress HTTPS only",
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "ECR, S3, SSM",
                }
            ],
            tags=tags,
            opts=child(self),
        )
        snapshot = ImageCacheSnapshot(
            lg["snapshot"].name,
            {
                "region": args.region,
                "profile": args.session.get("profile"),
                "roles": list(args.session.get("roles") or []),
                "amiParameter": ic.ami_parameter,
                "instanceType": ic.builder_instance_type,
                "subnetId": args.private_subnet_ids[0],
                "securityGroupId": sg.id,
                "instanceProfileArn": profile.arn,
                "kmsKeyId": args.kms_key_arn,
                "osVolumeGib": eks.OS_VOLUME_GIB,
                "volumeGib": ic.volume_gib,
                "userData": builder_user_data(),
                "snapshotter": coldstart.NODE_SNAPSHOTTER,
                "images": args.images,
                "description": f"{plan.config.team}/{plan.config.stack}",
                "tags": {**tags, "modelfleet:role": "image-cache"},
            },
            # The instance profile must carry its permissions before the builder pulls.
            opts=child(self, depends_on=[ssm_core, pull]),
        )
        self.snapshot_id = snapshot.snapshotId
        for key, res in lg.items():
            if key.startswith("fsr:"):
                slot = int(key.split(":", 1)[1])
                subnet = aws.ec2.get_subnet_output(
                    id=args.private_subnet_ids[slot], opts=invoke(self)
                )
                aws.ebs.FastSnapshotRestore(
                    res.name,
                    availability_zone=subnet.availability_zone,
                    snapshot_id=self.snapshot_id,
                    opts=child(self),
                )
        self.register_outputs({"snapshot_id": self.snapshot_id})

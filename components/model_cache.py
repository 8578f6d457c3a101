"""The model cache: EFS, encrypted with the stack's key, two access points per model.

Weights are written once (pre-warm at `pulumi up`, guarded again at each task start) and read
by every replica, so a scale-out loads from inside the VPC instead of the internet. A second,
writable access point per model holds vLLM's compile cache (VLLM_CACHE_ROOT) under a
directory named for the engine version, so only the first start of a model on an engine
version compiles; the vLLM container mounts the weights read-only and only this one writable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, policy_json, stack_tags
from modelfleet.contract import MODELS_VOLUME
from modelfleet.plan_types import FleetPlan

# The fetcher image and the access points agree on this POSIX identity (docker/fetcher).
MODEL_UID = 1000
MODEL_GID = 1000


@dataclass(frozen=True)
class ModelCacheArgs:
    plan: FleetPlan
    kms_key_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]


class ModelCache(pulumi.ComponentResource):
    file_system_id: pulumi.Output[str]
    file_system_arn: pulumi.Output[str]
    access_points: dict[str, aws.efs.AccessPoint]
    compile_access_points: dict[str, aws.efs.AccessPoint]

    def __init__(
        self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:model-cache:ModelCache", name, None, opts)
        c = args.plan.config
        ids = args.plan.ids.cache
        tags = stack_tags(c)
        fs = aws.efs.FileSystem(
            ids.file_system.name,
            encrypted=True,
            kms_key_id=args.kms_key_arn,
            performance_mode="generalPurpose",
            # Elastic: a cold start reads tens of GiB at once; bursting credits would run out
            # on the first scale-out and provisioned throughput is paid for while idle.
            throughput_mode="elastic",
            tags={**tags, "Name": f"{c.prefix}-models"},
            # Hours of downloads live here; only an explicit unprotect lets a real stack's go.
            opts=child(self, protect=not c.ephemeral),
        )
        # Weights are a cache of pinned, re-downloadable artifacts: backups would only cost.
        aws.efs.BackupPolicy(
            ids.backup.name,
            file_system_id=fs.id,
            backup_policy={"status": "DISABLED"},
            opts=child(self),
        )
        aws.efs.FileSystemPolicy(
            ids.policy.name,
            file_system_id=fs.id,
            policy=policy_json(
                [
                    {
                        "Sid": "DenyUnencryptedTransport",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "*",
                        "Resource": fs.arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                    {
                        # Access goes through the access points' POSIX identity, never as root.
                        "Sid": "DenyRootAccess",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "elasticfilesystem:ClientRootAccess",
                        "Resource": fs.arn,
                    },
                ]
            ),
            opts=child(self),
        )
        mounts: list[aws.efs.MountTarget] = []
        for mount_ids, subnet in zip(ids.mounts, args.subnet_ids, strict=True):
            mount = aws.efs.MountTarget(
                mount_ids.name,
                file_system_id=fs.id,
                subnet_id=subnet,
                security_groups=[args.security_group_id],
                opts=child(self),
            )
            mounts.append(mount)
        self.access_points = {}
        for m in args.plan.models:
            self.access_points[m.name] = aws.efs.AccessPoint(
                ids.access_points[m.name].name,
                file_system_id=fs.id,
                posix_user={"uid": MODEL_UID, "gid": MODEL_GID},
                root_directory={
                    "path": f"/{m.name}",
                    "creation_info": {
                        "owner_uid": MODEL_UID,
                        "owner_gid": MODEL_GID,
                        "permissions": "0755",
                    },
                },
                tags={**tags, "Name": f"{c.prefix}-{m.name}", "modelfleet:model": m.name},
                opts=child(self),
            )
        self.compile_access_points = {}
        for m in args.plan.models:
            # vLLM keys its artifacts by a hash of the model, its config and the code inside this
            # directory (vllm/compilation/backends.py: VLLM_CACHE_ROOT/torch_compile_cache/
            # <hash>/rank_<r>_<dp>); the directory per engine version lets an upgrade start
            # clean and the old version's directory be removed with it.
            self.compile_access_points[m.name] = aws.efs.AccessPoint(
                ids.compile_access_points[m.name].name,
                file_system_id=fs.id,
                posix_user={"uid": MODEL_UID, "gid": MODEL_GID},
                root_directory={
                    "path": m.compile_cache_path,
                    "creation_info": {
                        "owner_uid": MODEL_UID,
                        "owner_gid": MODEL_GID,
                        "permissions": "0755",
                    },
                },
                tags={
                    **tags,
                    "Name": f"{c.prefix}-{m.name}-compile",
                    "modelfleet:model": m.name,
                },
                opts=child(self),
            )
        # A task that mounts the file system in an AZ without a mount target fails to start:
        # the pre-warm run and the services get the id only once every mount target exists.
        self.file_system_id = pulumi.Output.all(fs.id, *[m.id for m in mounts]).apply(
            lambda v: str(v[0])
        )
        self.file_system_arn = fs.arn
        self.register_outputs({"file_system_id": fs.id})


def efs_volume(
    file_system_id: pulumi.Input[str],
    access_point_id: pulumi.Input[str],
    name: str = MODELS_VOLUME,
) -> Any:
    """A task volume on one access point: TLS in transit, IAM-authorized mount."""
    return {
        "name": name,
        "efs_volume_configuration": {
            "file_system_id": file_system_id,
            "root_directory": "/",
            "transit_encryption": "ENABLED",
            "authorization_config": {"access_point_id": access_point_id, "iam": "ENABLED"},
        },
    }

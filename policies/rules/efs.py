"""EFS: the model cache is encrypted with the stack's key, never bursting, and reached only
through access points that pin a non-root directory and user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules._common import _int, _mapping, _true, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import EFS_ACCESS_POINT, EFS_FILE_SYSTEM


@resource_rule(
    "efs-encrypted-cmk",
    "EFS file systems are encrypted with a customer-managed KMS key.",
    (EFS_FILE_SYSTEM,),
)
def efs_encrypted_cmk(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    out = []
    if not _true(props.get("encrypted")):
        out.append(
            f"{_who(resource_type, ctx)}: encrypted is {props.get('encrypted')!r}; the model "
            "cache must be encrypted at rest. Fix: set encrypted=True with kms_key_id=<a "
            "customer-managed KMS key ARN>."
        )
    if not str(props.get("kmsKeyId") or "").strip():
        out.append(
            f"{_who(resource_type, ctx)}: kmsKeyId is not set, so EFS would use the AWS-managed "
            "key (no key policy or rotation of your own). Fix: create an aws.kms.Key and pass "
            "kms_key_id=key.arn."
        )
    return out


@resource_rule(
    "efs-not-bursting",
    "EFS file systems use elastic or provisioned throughput, not bursting.",
    (EFS_FILE_SYSTEM,),
)
def efs_not_bursting(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    mode = props.get("throughputMode")
    if mode in ("elastic", "provisioned"):
        return []
    shown = "absent (AWS default: bursting)" if mode is None else repr(mode)
    return [
        f"{_who(resource_type, ctx)}: throughputMode is {shown}; bursting throughput scales "
        "with stored bytes and runs out of credits while many tasks load weights at once. "
        "Fix: set throughput_mode='elastic' (or 'provisioned' with a provisioned rate)."
    ]


@resource_rule(
    "efs-access-point-root-directory",
    "EFS access points are rooted in a non-root directory.",
    (EFS_ACCESS_POINT,),
)
def efs_access_point_root_directory(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    root = _mapping(props.get("rootDirectory"))
    path = root.get("path")
    if isinstance(path, str) and path.strip().rstrip("/"):
        return []
    shown = "absent" if path is None else repr(path)
    return [
        f"{_who(resource_type, ctx)}: rootDirectory.path is {shown}, which exposes the whole "
        "file system root. Fix: set root_directory.path to a per-model folder such as "
        "'/models/<name>' with creation_info (owner uid/gid, permissions '0750')."
    ]


@resource_rule(
    "efs-access-point-posix-user",
    "EFS access points enforce a non-root POSIX user.",
    (EFS_ACCESS_POINT,),
)
def efs_access_point_posix_user(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    user = props.get("posixUser")
    if not isinstance(user, Mapping):
        return [
            f"{_who(resource_type, ctx)}: posixUser is absent, so clients act as whatever uid "
            "they run as (root in most containers). Fix: set posix_user with a non-root uid "
            "and gid (e.g. 1000/1000)."
        ]
    uid, gid = _int(user.get("uid")), _int(user.get("gid"))
    out = []
    if uid is None or uid == 0:
        out.append(
            f"{_who(resource_type, ctx)}: posixUser.uid is {user.get('uid')!r}; the limit is a "
            "non-root uid (> 0). Fix: set posix_user.uid to the fetcher/vLLM uid (e.g. 1000)."
        )
    if gid is None:
        out.append(
            f"{_who(resource_type, ctx)}: posixUser.gid is {user.get('gid')!r}. Fix: set "
            "posix_user.gid to a non-root group (e.g. 1000)."
        )
    return out

"""GPU launch templates: IMDSv2 only, hop limit 1, every EBS volume encrypted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules._common import _int, _list, _mapping, _true, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import LAUNCH_TEMPLATE


@resource_rule(
    "launch-template-imdsv2",
    "Launch templates require IMDSv2 with a hop limit of 1.",
    (LAUNCH_TEMPLATE,),
)
def launch_template_imdsv2(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    meta = _mapping(props.get("metadataOptions"))
    out = []
    if str(meta.get("httpEndpoint") or "enabled") == "disabled":
        return []
    if meta.get("httpTokens") != "required":
        shown = (
            "absent (AWS default: optional)"
            if meta.get("httpTokens") is None
            else repr(meta.get("httpTokens"))
        )
        out.append(
            f"{_who(resource_type, ctx)}: metadataOptions.httpTokens is {shown}; IMDSv1 lets "
            "an SSRF in any container read the instance role. Fix: set "
            "metadata_options.http_tokens='required'."
        )
    hop = meta.get("httpPutResponseHopLimit")
    if _int(hop) != 1:
        out.append(
            f"{_who(resource_type, ctx)}: metadataOptions.httpPutResponseHopLimit is {hop!r}; "
            "the limit is 1, so tasks (one hop away) cannot reach the instance's credentials "
            "and use their task role instead. Fix: set "
            "metadata_options.http_put_response_hop_limit=1."
        )
    return out


@resource_rule(
    "launch-template-ebs-encrypted",
    "Launch template EBS volumes are encrypted.",
    (LAUNCH_TEMPLATE,),
)
def launch_template_ebs_encrypted(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    mappings = [_mapping(m) for m in _list(props.get("blockDeviceMappings"))]
    if not mappings:
        return [
            f"{_who(resource_type, ctx)}: blockDeviceMappings is absent, so the root volume "
            "inherits the AMI's (unencrypted) snapshot settings. Fix: declare the root device "
            "(e.g. /dev/xvda) with ebs.encrypted='true' and a kms_key_id."
        ]
    out = []
    for i, m in enumerate(mappings):
        ebs = m.get("ebs")
        if ebs is None:
            continue  # instance-store / no-device mappings carry no EBS volume
        encrypted = _mapping(ebs).get("encrypted")
        if not _true(encrypted):
            out.append(
                f"{_who(resource_type, ctx)}: blockDeviceMappings[{i}] "
                f"({m.get('deviceName')!r}) has ebs.encrypted={encrypted!r}. Fix: set "
                "ebs.encrypted='true' (pulumi_aws types it as a string)."
            )
    return out

"""Read the stack's config from the Pulumi engine into the same StackConfig the CLI uses."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from modelfleet.config import NAMESPACE, StackConfig, load_config_mapping


def engine_config() -> tuple[dict[str, Any], set[str]]:
    """Every `namespace:key` the engine passed, and which of them are secrets."""
    values: dict[str, Any] = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    secret = set(runtime_config.get_config_secret_keys_env())
    secret.update(k for k in values if runtime_config.is_config_secret(k))
    return values, secret


def load_stack_config() -> StackConfig:
    values, secret = engine_config()
    relevant = {
        k: v for k, v in values.items() if k.startswith(f"{NAMESPACE}:") or k == "aws:region"
    }
    return load_config_mapping(relevant, stack=pulumi.get_stack(), secret_keys=secret)


def aws_session_settings() -> dict[str, Any]:
    """Region, profile and roles of the stack's `aws` provider, so code that calls AWS outside
    the provider (the pre-warm's boto3 session) acts as the same identity, not as whatever
    credentials the environment of `pulumi up` happens to hold.

    pulumi-aws 7 takes `aws:assumeRoles` (a list, assumed in order); 6 took `aws:assumeRole`.
    Static keys in config (`aws:accessKey`) are not forwarded: use a profile or the role.
    """
    values, _ = engine_config()

    def decoded(key: str) -> Any:
        raw = values.get(f"aws:{key}")
        if isinstance(raw, str) and raw[:1] in "[{":
            return json.loads(raw)
        return raw

    roles = decoded("assumeRoles") or ([decoded("assumeRole")] if decoded("assumeRole") else [])
    return {
        "profile": decoded("profile") or None,
        "roles": [
            {
                k: r[k]
                for k in ("roleArn", "sessionName", "externalId", "sourceIdentity")
                if r.get(k)
            }
            for r in roles
            if isinstance(r, dict) and r.get("roleArn")
        ],
    }


def aws_session(props: dict[str, Any], boto3_module: Any = None) -> Any:
    """A boto3 session as the stack's `aws` provider: its region, profile and roles (assumed
    in order), never the ambient credentials of whoever runs `pulumi up`."""
    if boto3_module is None:
        import boto3 as boto3_module
    session = boto3_module.Session(profile_name=props.get("profile"), region_name=props["region"])
    for role in props.get("roles") or []:
        params = {
            "RoleArn": role["roleArn"],
            "RoleSessionName": role.get("sessionName") or "modelfleet-prewarm",
        }
        if role.get("externalId"):
            params["ExternalId"] = role["externalId"]
        if role.get("sourceIdentity"):
            params["SourceIdentity"] = role["sourceIdentity"]
        creds = session.client("sts").assume_role(**params)["Credentials"]
        session = boto3_module.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=props["region"],
        )
    return session

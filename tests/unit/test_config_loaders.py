"""The two loaders give the same StackConfig: the stack file (CLI) and the engine's mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from unit_stacks import FULL, LLAMA_8B_SOURCE, STACKS, config, engine_form, write_stack

from modelfleet.config import (
    ConfigError,
    StackConfig,
    is_encrypted,
    load_config_mapping,
    load_stack_file,
    resolve_stack,
)


def _without_secrets(c: StackConfig) -> StackConfig:
    gw = c.gateway
    fallback = gw.fallback.model_copy(update={"api_key": None}) if gw.fallback else None
    gateway = gw.model_copy(update={"api_keys": None, "fallback": fallback})
    images = c.images.model_copy(update={"docker_hub_credentials": None})
    return c.model_copy(update={"gateway": gateway, "hf_token": None, "images": images})


DEV_YAML = f"""
config:
  aws:region: us-east-1
  modelfleet:environment: dev
  modelfleet:team: platform
  modelfleet:platform: ecs
  modelfleet:ephemeral: true
  modelfleet:network:
    vpcCidr: 10.40.0.0/16
    availabilityZones: 2
  modelfleet:models:
    - name: llama-8b
      source: {LLAMA_8B_SOURCE}
      model: llama-3.1-8b
      dtype: bfloat16
      maxModelLen: 8192
      instanceType: g6.xlarge
      replicas: {{min: 1, max: 2}}
      capacity: spot
      vllmArgs: ["--enable-prefix-caching"]
  modelfleet:gateway:
    allowNoAuth: true
    rateLimit: {{requestsPerMinute: 600, tokensPerMinute: 200000}}
  modelfleet:hfToken:
    secure: v1:Qm7Rt2Lx9Vb4Nc1Z:Hf3Kd8Jw1Pq6Ty9Ue2Ir5Ow8Lk1Mj4
  modelfleet:schedule:
    timezone: America/New_York
    scaleDown: "0 20 * * MON-FRI"
    scaleUp: "0 7 * * MON-FRI"
  modelfleet:alarms:
    emails: [platform-dev@example.com]
  modelfleet:logRetentionDays: 14
"""


def test_dev_stack_written_as_the_engine_passes_it(tmp_path: Path) -> None:
    # What `pulumi up -s dev` hands the program for DEV_YAML: strings, with structured values
    # JSON-encoded, booleans as "true"/"false", secrets decrypted and listed as secret keys.
    engine = {
        "aws:region": "us-east-1",
        "modelfleet:environment": "dev",
        "modelfleet:team": "platform",
        "modelfleet:platform": "ecs",
        "modelfleet:ephemeral": "true",
        "modelfleet:network": json.dumps({"vpcCidr": "10.40.0.0/16", "availabilityZones": 2}),
        "modelfleet:models": json.dumps([{
            "name": "llama-8b", "source": LLAMA_8B_SOURCE, "model": "llama-3.1-8b",
            "dtype": "bfloat16", "maxModelLen": 8192, "instanceType": "g6.xlarge",
            "replicas": {"min": 1, "max": 2}, "capacity": "spot",
            "vllmArgs": ["--enable-prefix-caching"],
        }]),
        "modelfleet:gateway": json.dumps({
            "allowNoAuth": True,
            "rateLimit": {"requestsPerMinute": 600, "tokensPerMinute": 200000},
        }),
        "modelfleet:hfToken": "hf_dev_token",
        "modelfleet:schedule": json.dumps({"timezone": "America/New_York",
                                           "scaleDown": "0 20 * * MON-FRI",
                                           "scaleUp": "0 7 * * MON-FRI"}),
        "modelfleet:alarms": json.dumps({"emails": ["platform-dev@example.com"]}),
        "modelfleet:logRetentionDays": "14",
        "pulumi:tags": json.dumps({"ignored": "other namespaces are not ours"}),
    }  # fmt: skip
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(DEV_YAML)
    from_file = load_stack_file(path)
    from_engine = load_config_mapping(engine, "dev", {"modelfleet:hfToken"})
    # Equal but for the secret: the file holds ciphertext, the engine decrypted it.
    assert from_engine.model_copy(update={"hf_token": from_file.hf_token}) == from_file
    assert from_file.hf_token is not None and is_encrypted(from_file.hf_token)
    assert from_engine.hf_token is not None
    assert from_engine.hf_token.get_secret_value() == "hf_dev_token"
    # and with no secret at all, the two objects are equal as they are
    engine.pop("modelfleet:hfToken")
    path.write_text(DEV_YAML.replace("  modelfleet:hfToken:\n    secure: v1:", "  # "))
    assert load_config_mapping(engine, "dev") == load_stack_file(path)
    assert from_engine.ephemeral is True and from_engine.log_retention_days == 14


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_shipped_stacks_same_from_both_loaders(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())["config"]
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    # The engine decrypts secrets and lists the keys that hold them.
    secret_keys = {k for k, v in raw.items() if "secure" in json.dumps(v)}
    decrypted = json.loads(json.dumps(raw).replace('"secure"', '"was_secure"'))
    for key in secret_keys:
        decrypted[key] = _decrypt(decrypted[key])
    from_engine = load_config_mapping(engine_form(decrypted), stack, secret_keys)
    from_file = load_stack_file(path)
    assert _without_secrets(from_engine) == _without_secrets(from_file)
    assert (from_engine.gateway.api_keys is None) == (from_file.gateway.api_keys is None)


def _decrypt(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"was_secure"}:
            return "plaintext-" + value["was_secure"][-6:]
        return {k: _decrypt(v) for k, v in value.items()}
    return value


def test_full_stack_same_from_both_loaders_with_secrets(tmp_path: Path) -> None:
    from_file = load_stack_file(write_stack(tmp_path, config(FULL), "full"))
    cfg = config(FULL)
    cfg["modelfleet:gateway"]["apiKeys"] = "team-a:key-a,team-b:key-b"
    cfg["modelfleet:gateway"]["fallback"]["apiKey"] = "sk-fallback"
    cfg["modelfleet:hfToken"] = "hf_token_value"
    cfg["modelfleet:images"]["dockerHubCredentials"] = "hubuser:dckr_pat_value"
    secret_keys = {"modelfleet:gateway", "modelfleet:hfToken", "modelfleet:images"}
    from_engine = load_config_mapping(engine_form(cfg), "full", secret_keys)

    assert _without_secrets(from_engine) == _without_secrets(from_file)
    # Offline the file holds ciphertext only; under the engine the program gets the values.
    assert from_file.gateway.api_keys is not None and is_encrypted(from_file.gateway.api_keys)
    assert from_engine.gateway.api_keys is not None
    assert from_engine.gateway.api_keys.get_secret_value() == "team-a:key-a,team-b:key-b"
    assert from_engine.hf_token is not None
    assert from_engine.hf_token.get_secret_value() == "hf_token_value"
    creds = from_engine.images.docker_hub_credentials
    assert creds is not None and creds.get_secret_value() == "hubuser:dckr_pat_value"
    for text in (repr(from_engine), str(from_engine), from_engine.model_dump_json()):
        assert "key-a" not in text and "sk-fallback" not in text and "hf_token_value" not in text
        assert "dckr_pat_value" not in text


def test_engine_secret_not_marked_secret_is_rejected() -> None:
    cfg = config()
    cfg["modelfleet:gateway"] = {"apiKeys": "team-a:key-a"}
    with pytest.raises(ConfigError) as info:
        load_config_mapping(engine_form(cfg), "dev")  # secret_keys left empty
    assert str(info.value) == (
        "stacks/Pulumi.dev.yaml: modelfleet:gateway.apiKeys: a secret in plain text; set it "
        "with `pulumi config set --secret --path 'modelfleet:gateway.apiKeys' ...`"
    )
    assert "key-a" not in str(info.value)


def test_engine_hf_token_not_marked_secret_is_rejected() -> None:
    cfg = config()
    cfg["modelfleet:hfToken"] = "hf_abc"
    with pytest.raises(ConfigError, match=r"modelfleet:hfToken: a secret in plain text"):
        load_config_mapping(engine_form(cfg), "dev")
    ok = load_config_mapping(engine_form(cfg), "dev", {"modelfleet:hfToken"})
    assert ok.hf_token is not None and ok.hf_token.get_secret_value() == "hf_abc"


def test_engine_errors_name_the_same_key_path_as_the_file(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:models"][0]["maxModelLength"] = 8192
    with pytest.raises(ConfigError) as from_engine:
        load_config_mapping(engine_form(cfg), "dev")
    with pytest.raises(ConfigError) as from_file:
        load_stack_file(write_stack(tmp_path, cfg, "dev"))
    assert (
        from_engine.value.problems
        == from_file.value.problems
        == ["modelfleet:models[0].maxModelLength: unknown key"]
    )
    assert from_engine.value.origin == "stacks/Pulumi.dev.yaml"


def test_engine_value_that_is_not_json() -> None:
    engine = engine_form(config())
    engine["modelfleet:models"] = '[{"name": "llama-8b",'
    with pytest.raises(ConfigError, match=r"modelfleet:models: not valid JSON"):
        load_config_mapping(engine, "dev")


def test_engine_scalars_arrive_as_strings() -> None:
    cfg = config()
    cfg["modelfleet:logRetentionDays"] = 30
    cfg["modelfleet:ephemeral"] = True
    c = load_config_mapping(engine_form(cfg), "dev")
    assert c.log_retention_days == 30
    assert c.ephemeral is True


def test_resolve_stack_name_or_path(tmp_path: Path) -> None:
    assert resolve_stack("dev", "stacks") == Path("stacks/Pulumi.dev.yaml")
    assert resolve_stack("elsewhere/Pulumi.x.yaml", "stacks") == Path("elsewhere/Pulumi.x.yaml")
    existing = write_stack(tmp_path, config(), "y")
    assert resolve_stack(str(existing), "stacks") == existing

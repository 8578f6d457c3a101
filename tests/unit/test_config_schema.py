"""The stack file contract: every key is accepted and lands in `StackConfig` where it belongs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from unit_stacks import CERT, FULL, LLAMA_8B_SOURCE, STACKS, config, write_stack

from modelfleet.config import (
    Capacity,
    Checkpoint,
    Dtype,
    Environment,
    Platform,
    StackConfig,
    is_encrypted,
    load_stack_file,
)


def _aliases(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every camelCase key path of a schema, nested sections included."""
    out: set[str] = set()
    for name, f in model.model_fields.items():
        key = prefix + (f.alias or name)
        out.add(key)
        for arg in (f.annotation, *get_args(f.annotation)):
            for inner in (arg, *get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    out |= _aliases(inner, key + ".")
    return out


FREE_FORM = {"tags", "pricing.instances"}  # maps whose keys are data, not schema keys


def _keys(value: Any, prefix: str) -> set[str]:
    """Every key path a stack's `modelfleet:` section sets."""
    out: set[str] = set()
    if isinstance(value, dict) and set(value) != {"secure"}:
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            if path not in FREE_FORM:
                out |= _keys(v, path)
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, prefix)
    return out


def test_full_example_uses_every_schema_key() -> None:
    # If a key is added to the schema, FULL must set it, so that the test below covers it.
    schema = _aliases(StackConfig) - {"stack", "region"}  # from the file name and aws:region
    # The existing-VPC form excludes vpcCidr; test_network_existing_vpc_form covers it.
    schema -= {"network.vpcId", "network.privateSubnetIds", "network.publicSubnetIds"}
    # `eks:` belongs to platform: eks only; tests/eks/test_eks_config.py sets every key of it.
    schema -= {k for k in schema if k == "eks" or k.startswith("eks.")}
    section = {k.removeprefix("modelfleet:"): v for k, v in FULL.items() if k != "aws:region"}
    used = _keys(section, "")
    assert schema - used == set()
    assert used - schema == set()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> StackConfig:
    return load_stack_file(write_stack(tmp_path_factory.mktemp("full"), config(FULL), "full"))


def test_top_level_keys_land(full: StackConfig) -> None:
    assert full.stack == "full"  # from Pulumi.full.yaml
    assert full.region == "eu-west-1"  # from aws:region
    assert full.environment is Environment.STAGING
    assert full.team == "search"
    assert full.platform is Platform.ECS
    assert full.ephemeral is False
    assert full.log_retention_days == 14
    assert full.retention_days == 14
    assert full.tags == {"cost-center": "1234", "owner": "search"}


def test_kept_capacity_providers_land(full: StackConfig) -> None:
    assert full.keep_capacity_providers == ["g6-12xlarge-mixed"]


def test_network_new_vpc_keys_land(full: StackConfig) -> None:
    n = full.network
    assert n.vpc_cidr == "10.60.0.0/16"
    assert n.cidr == "10.60.0.0/16"
    assert n.availability_zones == 3
    assert n.certificate_arn == CERT.replace("us-east-1", "eu-west-1")
    assert n.nat_gateways == "per-az"
    assert n.ingress_cidrs == ["10.0.0.0/8", "192.168.0.0/16"]
    assert n.idle_timeout_seconds == 900
    assert n.vpc_id is None
    assert full.nat_gateway_count == 3  # per-az x 3 AZs


def test_network_existing_vpc_form(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:network"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "publicSubnetIds": ["subnet-0a1b2c3d4e5f60101", "subnet-0a1b2c3d4e5f60102"],
    }
    n = load_stack_file(write_stack(tmp_path, cfg)).network
    assert n.vpc_id == "vpc-0a1b2c3d4e5f60718"
    assert n.private_subnet_ids == ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
    assert n.public_subnet_ids == ["subnet-0a1b2c3d4e5f60101", "subnet-0a1b2c3d4e5f60102"]
    assert n.vpc_cidr is None


def test_existing_vpc_has_no_nat_gateways(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:network"] = {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "publicSubnetIds": ["subnet-0a1b2c3d4e5f60101", "subnet-0a1b2c3d4e5f60102"],
    }
    assert load_stack_file(write_stack(tmp_path, cfg)).nat_gateway_count == 0


def test_model_keys_land(full: StackConfig) -> None:
    m = full.models[0]
    assert m.name == "custom-7b"
    assert m.source == "s3://acme-models/custom-7b/v1/"
    assert m.dtype is Dtype.FLOAT16
    assert m.kv_cache_dtype == "fp8"
    assert m.max_model_len == 16384
    assert m.instance_type == "g6e.xlarge"
    assert m.instance.gpus == 1
    assert m.tensor_parallel == 1
    assert m.gpu_memory_utilization == 0.85
    assert m.max_num_seqs == 64
    assert (m.replicas.min, m.replicas.max) == (0, 4)
    assert m.capacity is Capacity.SPOT
    assert m.vllm_args == ["--enable-prefix-caching", "--max-loras=4"]
    assert [(a.name, a.source, a.rank) for a in m.lora_adapters] == [
        ("rerank", "s3://acme-models/rerank-lora/v3/", 64)
    ]
    assert m.checkpoint is Checkpoint.FLOAT16
    assert m.max_lora_rank == 64


def test_inline_parameters_become_the_architecture(full: StackConfig) -> None:
    arch = full.models[0].arch
    assert (arch.parameters_b, arch.active_parameters_b) == (7.0, 6.5)
    assert (arch.layers, arch.attention_heads, arch.kv_heads, arch.head_dim) == (32, 32, 8, 128)
    assert (arch.max_context, arch.vocab_size, arch.tied_embeddings) == (32768, 32000, True)


def test_catalog_model_by_alias_and_by_source(full: StackConfig, tmp_path: Path) -> None:
    # `model: llama-3.1-8b` is an alias of the repo id; without `model`, the repo id in
    # `source` is the catalog key.
    assert full.models[1].catalog_key == "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"
    assert full.models[1].checkpoint_format is Checkpoint.AWQ
    assert full.models[1].dtype is Dtype.AWQ
    assert full.models[1].capacity is Capacity.MIXED
    no_model = load_stack_file(write_stack(tmp_path, config()))
    assert no_model.models[0].catalog_key == "meta-llama/Llama-3.1-8B-Instruct"
    assert no_model.models[0].arch.layers == 32


def test_gateway_keys_land_and_secrets_stay_opaque(full: StackConfig) -> None:
    g = full.gateway
    assert g.api_keys is not None and is_encrypted(g.api_keys)
    assert g.allow_no_auth is False
    assert (g.rate_limit.requests_per_minute, g.rate_limit.tokens_per_minute) == (600, 200000)
    assert g.max_body_bytes == 2097152
    assert g.max_inflight == 128
    assert g.drain_seconds == 120
    assert g.fallback is not None
    assert g.fallback.base_url == "https://api.example.com/v1"
    assert g.fallback.model == "some-model"
    assert is_encrypted(g.fallback.api_key)
    assert full.hf_token is not None and is_encrypted(full.hf_token)
    # The ciphertext never reaches a repr or a dump.
    assert "ciphertext" not in repr(full)
    assert "ciphertext" not in full.model_dump_json()


def test_schedule_alarms_autoscaling_keys_land(full: StackConfig) -> None:
    assert full.schedule is not None
    assert full.schedule.timezone == "Europe/Berlin"
    assert full.schedule.scale_down == "30 19 * * MON-FRI"
    assert full.schedule.scale_up == "0 8 * * MON-FRI"
    a = full.alarms
    assert (a.emails, a.p99_latency_seconds, a.queue_depth, a.error_rate_percent) == (
        ["search-oncall@example.com"], 20.0, 8, 2.5,
    )  # fmt: skip
    s = full.autoscaling
    assert (s.queue_depth_target, s.scale_out_cooldown, s.scale_in_cooldown) == (2.5, 30, 300)


def test_images_pricing_guardrails_keys_land(full: StackConfig) -> None:
    assert full.images.vllm == "vllm/vllm-openai:v0.30.0-cu129"
    assert full.images.sidecar == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sidecar:1.2.3"
    assert full.images.fetcher == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fetcher:1.2.3"
    creds = full.images.docker_hub_credentials
    assert creds is not None and is_encrypted(creds)  # ciphertext offline, never plain
    assert full.cold_start.warm_pool is False
    assert full.pricing.instances == {"g6e.xlarge": 1.5}
    assert full.pricing.spot_discount == 0.5
    gr = full.guardrails
    assert (gr.allowed_instance_families, gr.max_hourly_usd, gr.require_spot) == (
        ["g6", "g6e"], 20.0, True,
    )  # fmt: skip


def test_defaults_of_a_minimal_stack(tmp_path: Path) -> None:
    c = load_stack_file(write_stack(tmp_path, config(), "mini"))
    m = c.models[0]
    assert (c.environment, c.platform, c.region) == (Environment.DEV, Platform.ECS, "us-east-1")
    assert (m.dtype, m.kv_cache_dtype, m.capacity) == (Dtype.BFLOAT16, "auto", Capacity.ON_DEMAND)
    assert (m.tensor_parallel, m.max_num_seqs, m.gpu_memory_utilization) == (None, None, 0.9)
    assert (m.replicas.min, m.replicas.max) == (1, 1)
    assert c.network.ingress_cidrs == ["0.0.0.0/0"]
    assert c.network.nat_gateways is None and c.nat_gateway_count == 1  # dev: one NAT
    assert c.schedule is None
    assert c.retention_days == 7  # ephemeral
    assert c.prefix == "mf-search-mini"
    assert c.images.vllm.startswith("vllm/vllm-openai:v")  # pinned, never :latest


@pytest.mark.parametrize(
    ("environment", "ephemeral", "days"),
    [("dev", True, 7), ("dev", False, 30), ("staging", False, 30), ("prod", False, 90)],
)
def test_log_retention_default_by_environment(
    tmp_path: Path, environment: str, ephemeral: bool, days: int
) -> None:
    cfg = config()
    cfg["modelfleet:environment"] = environment
    cfg["modelfleet:ephemeral"] = ephemeral
    if not ephemeral:
        cfg["modelfleet:network"] = {"certificateArn": CERT}
        cfg["modelfleet:gateway"] = {"apiKeys": {"secure": "v1:x"}}
    assert load_stack_file(write_stack(tmp_path, cfg)).retention_days == days


def test_prod_defaults_to_one_nat_gateway_per_az(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:environment"] = "prod"
    cfg["modelfleet:ephemeral"] = False
    cfg["modelfleet:network"] = {"certificateArn": CERT, "availabilityZones": 3}
    cfg["modelfleet:gateway"] = {"apiKeys": {"secure": "v1:x"}}
    assert load_stack_file(write_stack(tmp_path, cfg)).nat_gateway_count == 3


def test_dtype_and_kv_dtype_values_accepted(tmp_path: Path) -> None:
    # Each serving dtype with a checkpoint vLLM can serve it from.
    for dtype, checkpoint in (("bfloat16", "bfloat16"), ("float16", "bfloat16"),
                              ("fp8", "bfloat16"), ("fp8", "fp8"), ("awq", "awq"),
                              ("gptq", "gptq")):  # fmt: skip
        cfg = config()
        cfg["modelfleet:models"][0] |= {
            "dtype": dtype, "checkpoint": checkpoint, "kvCacheDtype": "fp8"
        }  # fmt: skip
        m = load_stack_file(write_stack(tmp_path, cfg)).models[0]
        assert (m.dtype.value, m.checkpoint_format.value) == (dtype, checkpoint)


def test_source_forms_accepted(tmp_path: Path) -> None:
    cfg = config()
    s3 = {"name": "llama-s3", "source": "s3://bucket-1/llama/8b/", "model": "llama-3.1-8b",
          "maxModelLen": 4096, "instanceType": "g6.xlarge"}  # fmt: skip
    cfg["modelfleet:models"].append(s3)
    c = load_stack_file(write_stack(tmp_path, cfg))
    assert [m.source for m in c.models] == [LLAMA_8B_SOURCE, "s3://bucket-1/llama/8b/"]
    assert c.models[1].catalog_key == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_shipped_stacks_load(path: Path) -> None:
    c = load_stack_file(path)
    assert c.stack == path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    assert c.models


def test_prefix_is_short_and_unique_per_team_and_stack(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:team"] = "platform"
    eu = load_stack_file(write_stack(tmp_path, cfg, "staging-eu")).prefix
    us = load_stack_file(write_stack(tmp_path, cfg, "staging-us")).prefix
    # "mf-platform-staging-eu" is 22 characters: cut to 15 plus a 4-digit hash of the whole.
    assert eu != us
    assert len(eu) == len(us) == 20
    assert eu.startswith("mf-platform-sta")
    assert load_stack_file(write_stack(tmp_path, cfg, "dev")).prefix == "mf-platform-dev"


@pytest.mark.parametrize(
    ("stack", "head"),
    [
        # Pulumi's stack names take capitals, "_" and "." too; S3, ECR, load balancer and EKS
        # cluster names and Kubernetes namespaces do not: each becomes "-", and the digest of
        # the name as written follows.
        ("dev_alice", "mf-search-dev-a"),
        ("Prod", "mf-search-prod"),
        ("team-a.staging", "mf-search-team"),
        # A safe name longer than 20 keeps the prefix it always had: cut to 15, plus the digest.
        ("staging-eu-west-1", "mf-search-stagi"),
    ],
)
def test_prefix_is_name_safe_whatever_the_stack_is_called(
    tmp_path: Path, stack: str, head: str
) -> None:
    got = load_stack_file(write_stack(tmp_path, config(), stack)).prefix
    digest = hashlib.sha256(f"mf-search-{stack}".encode()).hexdigest()[:4]
    assert got == f"{head}-{digest}"
    assert re.fullmatch(r"mf-[a-z0-9-]*[a-z0-9]", got) and len(got) <= 20


def test_prefixes_of_stacks_that_differ_only_in_unsafe_characters_differ(tmp_path: Path) -> None:
    dotted = load_stack_file(write_stack(tmp_path, config(), "a.b")).prefix
    dashed = load_stack_file(write_stack(tmp_path, config(), "a-b")).prefix
    assert dashed == "mf-search-a-b"
    assert dotted != dashed and dotted.startswith("mf-search-a-b-")

"""Every stack the schema must reject: one message naming the stack file and the key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_stacks import CERT, config, write_stack

from modelfleet.config import ConfigError, load_stack_file

Mutation = Callable[[dict[str, Any]], None]
SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]


def model(**changes: Any) -> Mutation:
    def mutate(cfg: dict[str, Any]) -> None:
        m = cfg["modelfleet:models"][0]
        for k, v in changes.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v

    return mutate


def top(key: str, value: Any) -> Mutation:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg[f"modelfleet:{key}"] = value

    return mutate


def schedule(**changes: str) -> Mutation:
    base = {"timezone": "UTC", "scaleDown": "0 20 * * MON-FRI", "scaleUp": "0 7 * * MON-FRI"}
    return top("schedule", base | changes)


def not_ephemeral(cfg: dict[str, Any]) -> None:
    """A stack that would be valid without ephemeral: certificate and API keys given."""
    cfg["modelfleet:ephemeral"] = False
    cfg["modelfleet:network"] = {"certificateArn": CERT}
    cfg["modelfleet:gateway"] = {"apiKeys": {"secure": "v1:x"}}


def both(*mutations: Mutation) -> Mutation:
    def mutate(cfg: dict[str, Any]) -> None:
        for m in mutations:
            m(cfg)

    return mutate


def duplicate_model(cfg: dict[str, Any]) -> None:
    cfg["modelfleet:models"].append(dict(cfg["modelfleet:models"][0]))


# (id, mutation, key path the message must name, a fragment of the explanation)
CASES: list[tuple[str, Mutation, str, str]] = [
    # unknown keys, at every depth
    ("unknown-top", top("modles", []), "modelfleet:modles", "unknown key"),
    ("unknown-model-key", model(maxModelLength=8192), "modelfleet:models[0].maxModelLength",
     "unknown key"),
    ("unknown-nested", model(replicas={"min": 1, "maxx": 2}), "modelfleet:models[0].replicas.maxx",
     "unknown key"),
    ("unknown-gateway", top("gateway", {"allowNoAuth": True, "rateLimits": {}}),
     "modelfleet:gateway.rateLimits", "unknown key"),
    ("region-key", top("region", "eu-west-1"), "modelfleet:region",
     "unknown key (the region comes from aws:region)"),
    ("stack-key", top("stack", "prod"), "modelfleet:stack", "unknown key"),
    ("missing-required", model(maxModelLen=None), "modelfleet:models[0].maxModelLen",
     "required key is missing"),
    ("missing-team", lambda c: c.pop("modelfleet:team"), "modelfleet:team", "required key"),
    # wrong types
    ("type-int", model(maxModelLen="lots"), "modelfleet:models[0].maxModelLen", "valid integer"),
    ("type-bool", top("ephemeral", "maybe"), "modelfleet:ephemeral", "valid boolean"),
    ("type-list", top("models", {"name": "x"}), "modelfleet:models", "valid list"),
    ("type-section", model(replicas=3), "modelfleet:models[0].replicas", "valid dictionary"),
    ("type-tag", top("tags", {"owner": 7}), "modelfleet:tags.owner", "valid string"),
    ("enum-dtype", model(dtype="int4"), "modelfleet:models[0].dtype", "'bfloat16'"),
    ("enum-capacity", model(capacity="reserved"), "modelfleet:models[0].capacity", "'spot'"),
    ("enum-environment", top("environment", "qa"), "modelfleet:environment", "'prod'"),
    ("range-gpu-util", model(gpuMemoryUtilization=0.99),
     "modelfleet:models[0].gpuMemoryUtilization", "less than or equal to 0.98"),
    ("range-tp", model(tensorParallel=16), "modelfleet:models[0].tensorParallel", "8"),
    ("bad-name", model(name="Llama_8B"), "modelfleet:models[0].name", "pattern"),
    ("bad-email", top("alarms", {"emails": ["oncall"]}), "modelfleet:alarms.emails[0]", "pattern"),
    ("bad-retention", top("logRetentionDays", 8), "modelfleet:logRetentionDays",
     "CloudWatch Logs accepts one of"),
    ("http-fallback", top("gateway", {"allowNoAuth": True, "fallback": {
        "baseUrl": "http://api.example.com/v1", "model": "m", "apiKey": {"secure": "v1:x"}}}),
     "modelfleet:gateway.fallback.baseUrl", "https"),
    # cron
    ("cron-fields", schedule(scaleDown="0 20 * *"), "modelfleet:schedule.scaleDown",
     "needs five fields"),
    ("cron-six-fields", schedule(scaleUp="0 7 * * MON-FRI *"), "modelfleet:schedule.scaleUp",
     "needs five fields"),
    ("cron-hour-range", schedule(scaleDown="0 24 * * *"), "modelfleet:schedule.scaleDown",
     "hour: 24 is outside 0-23"),
    ("cron-minute-range", schedule(scaleUp="60 7 * * *"), "modelfleet:schedule.scaleUp",
     "minute: 60 is outside 0-59"),
    ("cron-both-days", schedule(scaleDown="0 20 1 * MON"), "modelfleet:schedule.scaleDown",
     "restricts both day-of-month and day-of-week"),
    ("cron-name", schedule(scaleDown="0 20 * * MOM"), "modelfleet:schedule.scaleDown",
     "not a number or a name"),
    # catalogs and formats
    ("unknown-instance", model(instanceType="g9.xlarge"), "modelfleet:models[0].instanceType",
     "unknown instance type 'g9.xlarge'; the catalog has: g4dn.xlarge"),
    ("unknown-price-instance", top("pricing", {"instances": {"g9.xlarge": 1.0}}),
     "modelfleet:pricing.instances.g9.xlarge", "unknown instance type"),
    ("negative-price", top("pricing", {"instances": {"g6.xlarge": -0.5}}),
     "modelfleet:pricing.instances.g6.xlarge", "greater than or equal to 0"),
    ("bad-region", lambda c: c.__setitem__("aws:region", "us-east"), "aws:region", "pattern"),
    ("unknown-timezone", schedule(timezone="Mars/Olympus_Mons"), "modelfleet:schedule.timezone",
     "unknown IANA time zone"),
    ("cidr-host-bits", top("network", {"vpcCidr": "10.40.0.1/16"}), "modelfleet:network.vpcCidr",
     "not a CIDR block"),
    ("cidr-garbage", top("network", {"ingressCidrs": ["10.0.0.0/8", "office"]}),
     "modelfleet:network.ingressCidrs[1]", "not a CIDR block"),
    ("cidr-ipv6", top("network", {"vpcCidr": "fd00::/48"}), "modelfleet:network.vpcCidr", "IPv4"),
    ("bad-cert-arn", top("network", {"certificateArn": "arn:aws:iam::123456789012:role/x"}),
     "modelfleet:network.certificateArn", "pattern"),
    # ACM certificates are regional, and an ALB takes one from its own Region only.
    ("cert-other-region", top("network", {
        "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b"}),
     "modelfleet:network.certificateArn",
     "the certificate is in eu-west-1 (aws), the stack in us-east-1 (aws)"),
    ("cert-other-partition", top("network", {
        "certificateArn": "arn:aws-us-gov:acm:us-east-1:123456789012:certificate/0a1b"}),
     "modelfleet:network.certificateArn", "request or import one in us-east-1"),
    ("unpinned-source", model(source="hf://meta-llama/Llama-3.1-8B-Instruct"),
     "modelfleet:models[0].source", "a revision is required"),
    ("bad-scheme", model(source="https://huggingface.co/meta-llama/x"),
     "modelfleet:models[0].source", "expected hf://org/name@revision or s3://"),
    ("unpinned-lora", model(loraAdapters=[{"name": "rerank", "source": "hf://acme/lora"}]),
     "modelfleet:models[0].loraAdapters[0].source", "a revision is required"),
    ("not-in-catalog", model(source="hf://acme/secret-model@v1"), "modelfleet:models[0]",
     "model 'acme/secret-model' is not in the catalog"),
    ("unknown-model-alias", model(model="llama-9b"), "modelfleet:models[0]",
     "describe it under `parameters`"),
    ("parameters-heads", model(source="hf://acme/m@v1", parameters={
        "parametersB": 7, "layers": 32, "attentionHeads": 32, "kvHeads": 5, "headDim": 128,
        "maxContext": 8192}), "modelfleet:models[0].parameters", "multiple of kvHeads"),
    ("image-latest", top("images", {"vllm": "vllm/vllm-openai:latest"}), "modelfleet:images.vllm",
     "pin the image to a version tag or an @sha256 digest"),
    ("image-untagged", top("images", {"sidecar": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s"}),
     "modelfleet:images.sidecar", "not latest"),
    ("image-bad-ref", top("images", {"vllm": "vllm/vllm openai:1"}), "modelfleet:images.vllm",
     "pattern"),
    # checkpoint vs serving precision (vLLM 0.31 rules, issue 12)
    ("awq-on-bf16-checkpoint", model(dtype="awq"), "modelfleet:models[0]",
     "dtype: awq needs an AWQ checkpoint and this source is a bfloat16 one"),
    ("gptq-on-bf16-checkpoint", model(dtype="gptq", checkpoint="float16"), "modelfleet:models[0]",
     "use dtype: fp8 or float16, or a GPTQ repository as the source (checkpoint: gptq)"),
    ("fp8-checkpoint-as-bf16", model(checkpoint="fp8", dtype="bfloat16"), "modelfleet:models[0]",
     "dtype: the source is FP8-quantized and serves only as dtype: fp8"),
    ("fp8-catalog-checkpoint-as-bf16", model(
        source="hf://RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic@main", dtype="bfloat16",
        instanceType="p5.48xlarge"), "modelfleet:models[0]", "cannot dequantize it to bfloat16"),
    ("awq-checkpoint-as-fp8", model(checkpoint="awq", dtype="fp8"), "modelfleet:models[0]",
     "the source is AWQ-quantized and serves only as dtype: awq"),
    ("bad-lora-rank",
     model(loraAdapters=[{"name": "rerank", "source": "s3://b-1/r/", "rank": 1024}]),
     "modelfleet:models[0].loraAdapters[0].rank", "less than or equal to 512"),
    ("reserved-lora-rank", model(vllmArgs=["--max-lora-rank=64"]),
     "modelfleet:models[0].vllmArgs", "loraAdapters[].rank"),
    # moving revisions outside ephemeral stacks (issue 12)
    ("branch-not-ephemeral", both(not_ephemeral, model(
        source="hf://meta-llama/Llama-3.1-8B-Instruct@main")), "modelfleet:models[0].source",
     "follows 'main', which can move between two deploys; pin the 40-hex commit"),
    ("short-sha-not-ephemeral", both(not_ephemeral, model(
        source="hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f")), "modelfleet:models[0].source",
     "hf://meta-llama/Llama-3.1-8B-Instruct@<commit-sha>"),
    ("lora-tag-not-ephemeral", both(not_ephemeral, model(
        loraAdapters=[{"name": "rerank", "source": "hf://acme/rerank-lora@v3"}])),
     "modelfleet:models[0].loraAdapters[0].source", "follows 'v3'"),
    # model rules
    ("duplicate-names", duplicate_model, "modelfleet:models", "duplicate name(s) ['llama-8b']"),
    ("min-over-max", model(replicas={"min": 3, "max": 1}), "modelfleet:models[0].replicas",
     "min (3) is greater than max (1)"),
    ("reserved-flag", model(vllmArgs=["--enable-prefix-caching", "--max-model-len", "4096"]),
     "modelfleet:models[0].vllmArgs", "--max-model-len is set by modelfleet"),
    ("reserved-flag-eq", model(vllmArgs=["--tensor-parallel-size=2"]),
     "modelfleet:models[0].vllmArgs", "use the matching stack key"),
    # secrets in plain text
    ("plain-api-keys", top("gateway", {"apiKeys": "team-a:sk-123"}), "modelfleet:gateway.apiKeys",
     "a secret in plain text"),
    ("plain-hf-token", top("hfToken", "hf_abc123"), "modelfleet:hfToken", "secret in plain text"),
    ("plain-key-list", top("gateway", {"apiKeys": ["team-a:sk-1", "team-b:sk-2"]}),
     "modelfleet:gateway.apiKeys", "a secret in plain text"),
    ("plain-fallback-key", top("gateway", {"allowNoAuth": True, "fallback": {
        "baseUrl": "https://api.example.com/v1", "model": "m", "apiKey": "sk-123"}}),
     "modelfleet:gateway.fallback.apiKey", "a secret in plain text"),
    # stack-wide rules
    ("no-certificate", both(not_ephemeral, top("network", {})),
     "modelfleet:network.certificateArn", "plain HTTP is only allowed when ephemeral"),
    ("no-api-keys", both(not_ephemeral, top("gateway", {})), "modelfleet:gateway.apiKeys",
     "allowNoAuth"),
    ("no-auth-not-ephemeral", both(not_ephemeral, top("gateway", {"allowNoAuth": True})),
     "modelfleet:gateway.allowNoAuth", "only allowed when ephemeral"),
    ("prod-ephemeral", top("environment", "prod"), "modelfleet:ephemeral",
     "a prod stack cannot be ephemeral"),
    ("prod-single-nat", both(not_ephemeral, top("environment", "prod"), top("network", {
        "certificateArn": CERT, "natGateways": "single"})), "modelfleet:network.natGateways",
     "one NAT gateway per AZ"),
    ("eks-on-ecs", top("eks", {}), "modelfleet:eks", "only allowed with platform: eks"),
    ("eks-admin-other-partition", both(top("platform", "eks"), top("eks", {
        "adminRoleArns": ["arn:aws-us-gov:iam::123456789012:role/admins"]})),
     "modelfleet:eks.adminRoleArns[0]", "the stack's Region us-east-1 is in aws"),
    ("eks-unknown-key", both(top("platform", "eks"), top("eks", {"nodeGroups": 2})),
     "modelfleet:eks.nodeGroups", "unknown key"),
    ("eks-version-newer", both(top("platform", "eks"), top("eks", {"kubernetesVersion": "1.36"})),
     "modelfleet:eks.kubernetesVersion", "KEDA 2.20"),
    ("eks-version-refused", both(top("platform", "eks"),
                                 top("eks", {"kubernetesVersion": "1.32"})),
     "modelfleet:eks.kubernetesVersion", "tested on Kubernetes 1.33 - 1.35"),
    ("eks-version-gone", both(top("platform", "eks"), top("eks", {"kubernetesVersion": "1.28"})),
     "modelfleet:eks.kubernetesVersion", "EKS no longer offers it"),
    ("eks-public-world", both(top("platform", "eks"),
                              top("eks", {"publicAccessCidrs": ["0.0.0.0/0"]})),
     "modelfleet:eks.publicAccessCidrs[0]", "must not be open to the world"),
    ("eks-admin-not-role", both(top("platform", "eks"), top("eks", {
        "adminRoleArns": ["arn:aws:iam::123456789012:user/alice"]})),
     "modelfleet:eks.adminRoleArns[0]", "should match pattern"),
    ("eks-system-type", both(top("platform", "eks"),
                             top("eks", {"systemNodes": {"instanceType": "g6e.xlarge"}})),
     "modelfleet:eks.systemNodes.instanceType", "unknown system node type"),
    ("eks-one-system-node", both(top("platform", "eks"), top("eks", {"systemNodes": {"count": 1}})),
     "modelfleet:eks.systemNodes.count", "greater than or equal to 2"),
    ("vpc-id-no-subnets", top("network", {"vpcId": "vpc-0a1b2c3d4e5f60718"}),
     "modelfleet:network", "needs at least two subnets"),
    ("subnets-no-vpc-id", top("network", {"privateSubnetIds": SUBNETS}), "modelfleet:network",
     "need vpcId"),
    ("vpc-id-and-cidr", top("network", {"vpcId": "vpc-0a1b2c3d4e5f60718", "vpcCidr": "10.0.0.0/16",
                                        "privateSubnetIds": SUBNETS, "publicSubnetIds": SUBNETS}),
     "modelfleet:network", "not both"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "key", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_rejected_with_one_message_naming_file_and_key(
    tmp_path: Path, mutate: Mutation, key: str, fragment: str
) -> None:
    cfg = config()
    mutate(cfg)
    path = write_stack(tmp_path, cfg, "bad")
    with pytest.raises(ConfigError) as info:
        load_stack_file(path)
    err = info.value
    assert err.origin == str(path)
    assert len(err.problems) == 1, err.problems
    # The whole message is "<stack file>: <key path>: <explanation>".
    assert str(err).startswith(f"{path}: {key}: "), str(err)
    assert fragment in str(err)


def test_unknown_keys_are_all_reported(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:modles"] = []
    cfg["modelfleet:models"][0]["maxModelLength"] = 1
    with pytest.raises(ConfigError) as info:
        load_stack_file(write_stack(tmp_path, cfg))
    assert sorted(info.value.problems) == [
        "modelfleet:models[0].maxModelLength: unknown key",
        "modelfleet:modles: unknown key",
    ]


@pytest.mark.parametrize("secret", ["team-a:sk-123", "hf_abc123"])
def test_plain_secret_value_is_never_echoed(tmp_path: Path, secret: str) -> None:
    cfg = config()
    cfg["modelfleet:gateway"] = {"apiKeys": secret}
    cfg["modelfleet:hfToken"] = secret
    with pytest.raises(ConfigError) as info:
        load_stack_file(write_stack(tmp_path, cfg))
    assert len(info.value.problems) == 2
    assert secret not in str(info.value)


def test_wrong_type_of_secret_is_not_echoed(tmp_path: Path) -> None:
    cfg = config()
    cfg["modelfleet:gateway"] = {"allowNoAuth": True, "fallback": {
        "baseUrl": "https://api.example.com/v1", "model": "m", "apiKey": 123456789}}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_stack_file(write_stack(tmp_path, cfg))
    assert "modelfleet:gateway.fallback.apiKey" in str(info.value)
    assert "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("config: [", "not valid YAML"),
        ("just a string\n", "expected a mapping with a `config:` section"),
        ("config:\n", "expected a mapping with a `config:` section"),
    ],
)
def test_unreadable_stack_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^" + str(path)) as info:
        load_stack_file(path)
    assert fragment in str(info.value)


def test_missing_binary_and_directory_stack_files(tmp_path: Path) -> None:
    binary = tmp_path / "Pulumi.bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00config")
    for path, fragment in (
        (tmp_path / "Pulumi.nope.yaml", "no such stack file"),
        (binary, "cannot read the stack file"),
        (tmp_path, "cannot read the stack file"),
    ):
        with pytest.raises(ConfigError) as info:
            load_stack_file(path)
        assert str(info.value).startswith(f"{path}: {fragment}")


def test_the_mutations_start_from_valid_stacks(tmp_path: Path) -> None:
    # Each rejection above changes one thing; the stacks it starts from must load.
    for mutate in (lambda c: None, not_ephemeral, schedule()):
        cfg = config()
        mutate(cfg)
        load_stack_file(write_stack(tmp_path, cfg))

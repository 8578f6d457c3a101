"""The `modelfleet` command end to end, as a user runs it: a subprocess in the repository root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"
CONSOLE_SCRIPT = Path(sys.executable).parent / "modelfleet"
BAD_INPUT = 2


def run(*args: str, script: bool = False, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    cmd = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "modelfleet.cli"]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_bad_input(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, one `error:` message on stderr with every fragment, and no traceback."""
    assert proc.returncode == BAD_INPUT, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.stderr.count("error: ") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    return proc.stderr


def dev_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())
    return config


def write(tmp_path: Path, doc: dict[str, Any], stack: str = "bad") -> Path:
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def dev_json() -> dict[str, Any]:
    proc = run("plan", "dev", "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)  # the whole stdout is one JSON object
    return doc


def test_console_script_lists_the_commands() -> None:
    # `python -m modelfleet.cli` is what the other tests run; this is the installed script.
    assert CONSOLE_SCRIPT.exists()
    proc = run("--help", script=True)
    assert proc.returncode == 0, proc.stderr
    for command in ("plan", "validate", "cost", "breakeven", "check"):
        assert command in proc.stdout


def test_plan_dev_prints_the_monthly_cost(dev_json: dict[str, Any]) -> None:
    start = time.perf_counter()
    proc = run("plan", "dev", script=True)
    elapsed = time.perf_counter() - start
    print(f"`modelfleet plan dev` took {elapsed:.2f} s")  # shown with -s; not asserted
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"Monthly cost: \$([\d,]+\.\d\d) \(a month is 730 h\)", proc.stdout)
    assert found, proc.stdout
    # The people's view and the machines' view agree.
    assert float(found.group(1).replace(",", "")) == dev_json["monthly_usd"]
    assert "Model llama-8b" in proc.stdout
    assert "g6.xlarge: 1 x NVIDIA L4" in proc.stdout
    assert "$90.92" in proc.stdout  # 0.8048 x 0.4 x 730 x 65/168, the GPU line
    assert proc.stderr == ""


def test_plan_dev_json(dev_json: dict[str, Any]) -> None:
    assert dev_json["stack"] == "dev"
    [m] = dev_json["models"]
    assert {"name", "instance_type", "gpus_per_instance", "tensor_parallel", "weights_gib",
            "kv_cache_gib", "fits", "monthly_usd"} <= set(m)  # fmt: skip
    assert (m["name"], m["instance_type"], m["gpus_per_instance"]) == ("llama-8b", "g6.xlarge", 1)
    assert (m["tensor_parallel"], m["fits"]) == (1, True)
    # 8.03e9 x 2 bytes = 14.96 GiB; KV pool 20.24 - 14.96 - 1.5 = 3.79 GiB
    assert (m["weights_gib"], m["kv_cache_gib"]) == (14.96, 3.39)
    assert m["monthly_usd"] == 90.92
    shared = sum(dev_json["shared_monthly_usd"].values())
    assert dev_json["monthly_usd"] == pytest.approx(m["monthly_usd"] + shared, abs=0.05)
    assert isinstance(dev_json.get("resources"), list)


def test_plan_accepts_a_stack_file_path(tmp_path: Path) -> None:
    path = write(tmp_path, dev_config(), "copy")
    proc = run("plan", str(path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stack"] == "copy"


def test_plan_shows_the_upgrade_step_from_a_mixed_group(tmp_path: Path) -> None:
    """Issue 13: a stack upgrading from `capacity: mixed` keeps the old group for one run; the
    plan says so, and what run 2 needs."""
    doc = yaml.safe_load((REPO / "stacks" / "Pulumi.prod.yaml").read_text())
    doc["config"]["modelfleet:keepCapacityProviders"] = ["g6e-xlarge-mixed"]
    path = write(tmp_path, doc, "prod")
    proc = run("plan", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "GPU group g6e-xlarge-mixed" in text
    assert "kept for this pulumi up" in text
    assert "upgrade, run 1 of 2" in text and "Run 2:" in text
    data = json.loads(run("plan", str(path), "--json", cwd=tmp_path).stdout)
    (kept,) = data["kept_capacity_groups"]
    assert kept["key"] == "g6e-xlarge-mixed"
    assert kept["moved_to"] == ["g6e-xlarge-on-demand", "g6e-xlarge-spot"]
    names = {r["name"] for r in data["resources"]}
    assert {f"mf-platform-prod-gpu-g6e-xlarge-mixed-{s}" for s in ("lt", "asg", "cp")} <= names


def test_validate_every_shipped_stack() -> None:
    proc = run("validate")
    assert proc.returncode == 0, proc.stderr
    for path in sorted(STACKS.glob("Pulumi.*.yaml")):
        assert f"ok stacks/{path.name}" in proc.stdout


def test_validate_a_bad_stack_file(tmp_path: Path) -> None:
    doc = dev_config()
    doc["config"]["modelfleet:models"][0]["maxModelLength"] = 8192
    path = write(tmp_path, doc)
    proc = run("validate", str(path))
    assert_bad_input(proc, f"{path}: modelfleet:models[0].maxModelLength: unknown key")
    assert proc.stdout == ""


def test_validate_reports_each_stack(tmp_path: Path) -> None:
    doc = dev_config()
    doc["config"]["modelfleet:schedule"]["scaleDown"] = "0 25 * * MON-FRI"
    bad_cron = write(tmp_path, doc, "cron")
    doc = dev_config()
    doc["config"]["modelfleet:models"][0]["maxModelLen"] = "long"
    wrong_type = write(tmp_path, doc, "type")
    binary = tmp_path / "Pulumi.bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    proc = run("validate", "dev", str(bad_cron), str(wrong_type), "nosuch", str(binary))
    assert proc.returncode == BAD_INPUT
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.splitlines() == ["ok stacks/Pulumi.dev.yaml"]
    # One message per bad stack, each naming its file and key path.
    assert proc.stderr.splitlines() == [
        f"error: {bad_cron}: modelfleet:schedule.scaleDown: hour: 25 is outside 0-23 "
        "(got '0 25 * * MON-FRI')",
        f"error: {wrong_type}: modelfleet:models[0].maxModelLen: Input should be a valid "
        "integer, unable to parse string as an integer (got 'long')",
        "error: stacks/Pulumi.nosuch.yaml: no such stack file",
        f"error: {binary}: cannot read the stack file: 'utf-8' codec can't decode byte 0xff "
        "in position 0: invalid start byte",
    ]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda c: c["modelfleet:models"][0].update(instanceType="g9.xlarge"),
         ["modelfleet:models[0].instanceType: unknown instance type 'g9.xlarge'"]),
        (lambda c: c.update({"modelfleet:gateway": {"apiKeys": "team:sk-plain"}}),
         ["modelfleet:gateway.apiKeys: a secret in plain text"]),
    ],
    ids=["unknown-instance", "plain-secret"],
)  # fmt: skip
def test_plan_bad_input_exits_2(tmp_path: Path, mutate: Any, fragments: list[str]) -> None:
    doc = dev_config()
    mutate(doc["config"])
    path = write(tmp_path, doc)
    err = assert_bad_input(run("plan", str(path)), f"{path}: ", *fragments)
    assert "sk-plain" not in err


def test_input_that_looks_like_markup_is_printed_as_text(tmp_path: Path) -> None:
    # The message quotes the value and the pattern; Rich must neither eat "[a-z]" nor choke
    # on a stray closing tag.
    doc = dev_config()
    doc["config"]["modelfleet:team"] = "[/x]"
    path = write(tmp_path, doc)
    assert_bad_input(
        run("validate", str(path)),
        "modelfleet:team: String should match pattern '^[a-z][a-z0-9-]{0,22}[a-z0-9]$' "
        "(got '[/x]')",
    )


def test_plan_model_too_big_exits_2_with_the_arithmetic(tmp_path: Path) -> None:
    doc = dev_config()
    doc["config"]["modelfleet:models"][0]["maxModelLen"] = 65536
    path = write(tmp_path, doc)
    assert_bad_input(
        run("plan", str(path)),
        f"{path}: modelfleet:models[0] (llama-8b): does not fit g6.xlarge",
        # 14.96 GiB weights + 1.5 runtime + 65536 x 131072 B = 8 GiB of KV = 24.5 GiB
        "= 24.5 GiB > budget 22.1 GiB (as torch sees it) x utilization 0.9 = 19.8 GiB",
        "would fit: maxModelLen <= 27648 at TP 1",
        "instanceType: g6e.xlarge (TP 1)",
    )


def test_plan_a_directory(tmp_path: Path) -> None:
    assert_bad_input(run("plan", str(tmp_path)), f"{tmp_path}: cannot read the stack file")


def test_cost_prod() -> None:
    proc = run("cost", "prod")
    assert proc.returncode == 0, proc.stderr
    for line in ("GPU llama-8b", "GPU llama-70b", "GPU qwen-7b", "NAT", "VPC endpoints", "total"):
        assert line in proc.stdout
    # 2 x g6e.xlarge on-demand (mixed floor) x 730 h x 16/24 = $1,811.37
    assert "$1,811.37" in proc.stdout


def test_cost_prod_json_matches_plan() -> None:
    cost = json.loads(run("cost", "prod", "--json").stdout)
    plan = json.loads(run("plan", "prod", "--json").stdout)
    assert cost["monthly_usd"] == plan["monthly_usd"]
    assert cost["running_fraction"] == round(16 / 24, 4)
    assert [m["name"] for m in cost["models"]] == ["llama-8b", "llama-70b", "qwen-7b"]


BREAKEVEN = ["breakeven", "--input-tokens-per-day", "10000000", "--output-tokens-per-day",
             "2000000", "--api-input-price", "3", "--api-output-price", "15"]  # fmt: skip


def test_breakeven_json() -> None:
    proc = run(*BREAKEVEN, "--instance-type", "g6.xlarge", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    # API: ($30 + $30)/day x 730/24 = $1,825.00; self-hosted: $0.8048 x 730 = $587.50;
    # break-even at $5/M blended: 587.504 / (30.4167 x 5e-6) = 3,863,040 tokens/day.
    assert d["api_monthly_usd"] == 1825.0
    assert d["self_hosted_monthly_usd"] == 587.5
    assert d["breakeven_tokens_per_day"] == 3863040
    assert d["cheaper"] == "self-hosted"


def test_breakeven_hourly_price_and_engineering_time() -> None:
    proc = run(*BREAKEVEN, "--hourly-price", "2", "--instances", "2", "--engineering-hours",
               "20", "--engineering-rate", "50", "--json")  # fmt: skip
    d = json.loads(proc.stdout)
    # 2 x $2 x 730 + 20 h x $50 = $3,920 > $1,825 API
    assert d["self_hosted_monthly_usd"] == 3920.0
    assert d["cheaper"] == "api"


def test_breakeven_table() -> None:
    proc = run(*BREAKEVEN, "--instance-type", "g6.xlarge")
    assert proc.returncode == 0, proc.stderr
    assert "$1,825.00" in proc.stdout and "3,863,040 tokens/day" in proc.stdout


def test_breakeven_against_a_free_api() -> None:
    proc = run("breakeven", "--input-tokens-per-day", "1000", "--output-tokens-per-day", "0",
               "--api-input-price", "0", "--api-output-price", "0", "--hourly-price", "1",
               "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert (d["breakeven_tokens_per_day"], d["cheaper"]) == (None, "api")


def test_breakeven_unknown_instance_type() -> None:
    assert_bad_input(
        run(*BREAKEVEN, "--instance-type", "g9.xlarge"),
        "--instance-type: unknown instance type 'g9.xlarge'; the catalog has: g4dn.xlarge",
    )


def test_breakeven_rejects_infinity() -> None:
    # "inf" parses as a float; the JSON answer ("Infinity") would not parse back.
    proc = run(*BREAKEVEN[:-2], "--api-output-price", "inf", "--hourly-price", "1", "--json")
    assert_bad_input(proc, "--api-output-price: give a finite number")


def test_breakeven_needs_exactly_one_price() -> None:
    assert_bad_input(
        run(*BREAKEVEN, "--instance-type", "g6.xlarge", "--hourly-price", "1"),
        "exactly one of --instance-type or --hourly-price",
    )


def test_cli_does_not_import_pulumi() -> None:
    # What keeps `modelfleet plan` well under two seconds: no Pulumi engine, no provider SDKs.
    code = (
        "import sys, modelfleet.cli, modelfleet.plan, modelfleet.config, modelfleet.cost; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pulumi', 'pulumi_aws', 'pulumi_docker_build', 'boto3', 'botocore')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert proc.stdout.strip() == "[]"

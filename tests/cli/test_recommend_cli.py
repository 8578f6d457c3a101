"""`modelfleet recommend` end to end: a subprocess in the repository root, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from modelfleet.recommend import OUTPUT_SCHEMA

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"
BAD_INPUT = 2
EXAMPLE_70B = (
    "llama-3.3-70b",
    "--requests-per-day",
    "100000",
    "--input-tokens",
    "2000",
    "--output-tokens",
    "500",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "recommend", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_json(*args: str) -> dict[str, Any]:
    proc = run(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)  # the whole stdout is one JSON object
    return doc


VALIDATOR = Draft202012Validator(OUTPUT_SCHEMA)


def test_the_schema_is_a_valid_schema_that_can_fail() -> None:
    Draft202012Validator.check_schema(OUTPUT_SCHEMA)
    doc = run_json("llama-3.1-8b")
    VALIDATOR.validate(doc)
    broken = dict(doc, options=[{k: v for k, v in doc["options"][0].items() if k != "dtype"}])
    assert not VALIDATOR.is_valid(broken)
    assert not VALIDATOR.is_valid(dict(doc, options=[]))
    assert not VALIDATOR.is_valid({k: v for k, v in doc.items() if k != "assumptions"})


@pytest.mark.parametrize(
    "args",
    [
        ("llama-3.1-8b",),
        EXAMPLE_70B,
        (*EXAMPLE_70B, "--api", "groq-llama-3.3-70b"),
        ("mistral-7b", "--tokens-per-second", "500", "--capacity", "mixed", "--top", "3"),
        (
            "llama-3.2-3b",
            "--hours",
            "0 7 * * MON-FRI; 0 20 * * MON-FRI",
            "--api-input-price",
            "0.1",
            "--api-output-price",
            "0.2",
            "--dtype",
            "float16",
            "--dtype",
            "fp8",
        ),
        (f"{STACKS / 'Pulumi.search-staging.yaml'}#mistral-7b", "--requests-per-day", "20000"),
    ],
    ids=["8b", "70b-load", "70b-groq", "tokens-per-s", "schedule", "stack-entry"],
)
def test_json_output_matches_the_schema(args: tuple[str, ...]) -> None:
    doc = run_json(*args)
    VALIDATOR.validate(doc)
    monthly = [o["monthly_usd"] for o in doc["options"]]
    assert monthly == sorted(monthly)
    for o in doc["options"]:
        assert o["capacity_tokens_per_s"] >= doc["load"]["needed_tokens_per_s"]
    for key in ("peak_to_average", "target_utilization"):
        assert doc["assumptions"][key]["why"]


def test_the_8b_example_names_the_cheapest_gpu_and_a_ready_entry() -> None:
    proc = run("llama-3.1-8b")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "Options, cheapest first" in text
    # the catalog's FP8 checkpoint of it fits one T4, weight-only, the cheapest instance
    assert "g4dn.xlarge 1xT4" in text
    assert "Not chosen" in text and "g6.xlarge" in text
    # the printed entry is YAML that goes under modelfleet:models as it is
    entry_text = text.split("(paste under modelfleet:models)\n", 1)[1].split("\nnote:", 1)[0]
    entry = yaml.safe_load(entry_text)[0]
    assert entry["instanceType"] == "g4dn.xlarge"
    assert entry["model"] == "llama-3.1-8b-fp8"
    assert "pin it to a commit" in text


def test_the_70b_example_with_break_even(tmp_path: Path) -> None:
    proc = run(*EXAMPLE_70B, "--api", "groq-llama-3.3-70b")
    assert proc.returncode == 0, proc.stderr
    assert "Break-even against the API" in proc.stdout
    assert "https://groq.com/pricing (2026-12-01)" in proc.stdout
    doc = run_json(*EXAMPLE_70B, "--api", "groq-llama-3.3-70b")
    w = doc["options"][0]
    assert (w["instance_type"], w["dtype"]) == ("g6e.12xlarge", "fp8")
    b = doc["breakeven"]
    assert b["self_hosted_monthly_usd"] == pytest.approx(
        b["gpu_monthly_usd"] + b["shared_monthly_usd"], abs=0.01
    )
    assert b["cheaper"] == "api"
    # the winner's entry plans as a fit through `modelfleet plan`, the command a user runs next
    dev = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())
    dev["config"]["modelfleet:models"] = [w["model_entry"]]
    dev["config"].pop("modelfleet:schedule")
    path = tmp_path / "Pulumi.trial.yaml"
    path.write_text(yaml.safe_dump(dev, sort_keys=False))
    plan = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "plan", str(path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr
    m = json.loads(plan.stdout)["models"][0]
    assert m["fits"] and m["instance_type"] == "g6e.12xlarge"
    assert m["cost"]["monthly_max_usd"] == pytest.approx(w["monthly_usd"], abs=0.01)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ("llama-3.3-70b", "--instance-type", "g6.xlarge"),
            ("no option serves", "tried 1 instance type(s)", "nearest: --instance-type"),
        ),
        (("llama-3.1-8b", "--max-model-len", "200000"), ("nearest: --max-model-len 131072",)),
        (("llama-3.1-8b", "--requests-per-day", "1e9"), ("not enough throughput",)),
        (("llama-3.2-3b", "--dtype", "awq"), ("--dtype: awq needs a checkpoint",)),
        (("llama-3.1-8b", "--hours", "weekdays"), ("--hours: expected 24x7",)),
        (("llama-3.1-8b", "--api", "nope"), ("--api: unknown API price",)),
        (("llama-3.1-8b", "--capacity", "cheap"), ("--capacity:",)),
        (("llama-3.1-8b", "--top", "0"), ("--top:",)),
        ((str(STACKS / "Pulumi.prod.yaml"),), ("has 3 models; name one",)),
        (("no-such-model",), ("MODEL: 'no-such-model'",)),
    ],
)
def test_impossible_or_bad_requests_exit_2_with_one_line(
    args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    proc = run(*args)
    assert proc.returncode == BAD_INPUT, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: ")
    assert proc.stderr.count("\n") == 1  # one line, however long
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert proc.stdout == ""


def test_seed_breakeven_through_both_commands() -> None:
    # `modelfleet breakeven`'s first seed (10M in + 2M out a day at $3/$15, one g6.xlarge)
    # and the same load through `recommend`: the same API bill, the same GPU month, and
    # recommend's self-hosted month adds the stack's shared costs.
    be = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "breakeven", "--input-tokens-per-day", "1e7",
         "--output-tokens-per-day", "2e6", "--api-input-price", "3", "--api-output-price", "15",
         "--instance-type", "g6.xlarge", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert be.returncode == 0, be.stderr
    seed = json.loads(be.stdout)
    doc = run_json(
        "llama-3.1-8b", "--requests-per-day", "10000", "--input-tokens", "1000",
        "--output-tokens", "200", "--instance-type", "g6.xlarge", "--dtype", "bfloat16",
        "--api-input-price", "3", "--api-output-price", "15",
    )  # fmt: skip
    b = doc["breakeven"]
    assert b["api_monthly_usd"] == seed["api_monthly_usd"] == 1825.0
    assert b["gpu_monthly_usd"] == seed["self_hosted_monthly_usd"] == 587.5
    assert b["self_hosted_monthly_usd"] == pytest.approx(587.5 + b["shared_monthly_usd"], abs=0.01)
    assert b["cheaper"] == seed["cheaper"] == "self-hosted"

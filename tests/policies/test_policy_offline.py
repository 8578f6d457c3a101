"""The offline checker and the CrossGuard wrappers, on whole recorded stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_fixtures import broken_stack, good_stack
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import offline, pack
from policies import rules as r

ROOT = Path(__file__).resolve().parents[2]


def test_pack_has_at_least_15_rules_with_unique_names() -> None:
    assert len(r.ALL_RULE_NAMES) >= 15
    assert len(set(r.ALL_RULE_NAMES)) == len(r.ALL_RULE_NAMES)


def test_good_stack_passes() -> None:
    verdict = offline.run_rules(good_stack())
    assert verdict.violations == []
    assert verdict.passed
    assert verdict.rules == len(r.ALL_RULE_NAMES)
    assert verdict.resources == len(good_stack())


def test_broken_stack_breaks_every_rule_with_a_clear_message() -> None:
    verdict = offline.run_rules(broken_stack())
    assert not verdict.passed
    broken = {v.policy for v in verdict.violations}
    assert broken == set(r.ALL_RULE_NAMES), set(r.ALL_RULE_NAMES) - broken
    names = {n for _, n, _ in broken_stack()}
    for v in verdict.violations:
        assert v.urn_name in names
        assert v.urn_name in v.message, v  # the message names the resource
        assert "Fix:" in v.message, v  # and says how to fix it


def test_verdict_as_dict_is_json() -> None:
    doc = json.loads(json.dumps(offline.run_rules(broken_stack()).as_dict()))
    assert doc["passed"] is False
    assert {"policy", "urn_name", "message"} <= set(doc["violations"][0])


def test_offline_config_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev_p5 = [(t, n, p) for t, n, p in broken_stack() if t == r.ECS_SERVICE]
    cfg = {
        "guardrail-instance-families": {"allowedFamilies": {"dev": ["p5"]}},
        "guardrail-spot-outside-prod": {"spotRequiredEnvironments": []},
        "guardrail-team-hourly-ceiling": {"maxHourlyUsd": {"dev": 500}},
    }
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(cfg))
    monkeypatch.setenv(offline.CONFIG_ENV, str(path))
    loaded = offline.load_config()
    assert offline.run_rules(dev_p5, loaded).passed
    assert not offline.run_rules(dev_p5).passed


# --- CrossGuard wrappers ---------------------------------------------------------------------

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _resource_args(rtype: str, name: str, props: dict[str, Any]) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        rtype, props, f"urn:pulumi:prod::modelfleet::{rtype}::{name}", name, OPTS, None, {}
    )


def test_build_policies_are_mandatory_and_cover_every_rule() -> None:
    policies = pack.build_policies()
    assert [p.name for p in policies] == list(r.ALL_RULE_NAMES)
    assert all(p.enforcement_level is EnforcementLevel.MANDATORY for p in policies)
    assert pack.PACK_NAME == "modelfleet-policies"
    schemas = {p.name: p.config_schema for p in policies if p.config_schema is not None}
    assert set(schemas) == {
        "guardrail-instance-families",
        "guardrail-spot-outside-prod",
        "guardrail-team-hourly-ceiling",
    }


def test_resource_policies_report_like_the_offline_checker() -> None:
    policies = {p.name: p for p in pack.build_policies()}
    expected = offline.run_rules(broken_stack()).violations
    reported: list[tuple[str, str, str]] = []
    for rtype, name, props in broken_stack():
        for p in policies.values():
            if isinstance(p, ResourceValidationPolicy):

                def report(
                    msg: str, urn: str | None, policy: str = p.name, name: str = name
                ) -> None:
                    reported.append((policy, name, msg))

                p.validate(_resource_args(rtype, name, props), report)
    resource_level = {
        (v.policy, v.urn_name, v.message)
        for v in expected
        if v.policy not in {s.name for s in r.STACK_RULES}
    }
    assert set(reported) == resource_level


def test_stack_policies_report_with_urns_and_honour_config() -> None:
    resources = [
        PolicyResource(t, p, f"urn:pulumi:dev::modelfleet::{t}::{n}", n, OPTS, None, None, [], {})
        for t, n, p in broken_stack()
    ]
    policies = {p.name: p for p in pack.build_policies() if isinstance(p, StackValidationPolicy)}
    got: list[tuple[str, str | None]] = []
    ceiling = policies["guardrail-team-hourly-ceiling"]
    ceiling.validate(StackValidationArgs(resources, {}), lambda msg, urn: got.append((msg, urn)))
    assert len(got) == 1 and got[0][1] is not None and got[0][1].endswith("::bad-svc")
    got.clear()
    ceiling.validate(
        StackValidationArgs(resources, {"maxHourlyUsd": {"dev": 1000}}),
        lambda msg, urn: got.append((msg, urn)),
    )
    assert got == []
    policies["s3-bucket-public-access-block"].validate(
        StackValidationArgs(resources, {}), lambda msg, urn: got.append((msg, urn))
    )
    assert len(got) == 1 and "bad-bucket" in got[0][0]


def test_policy_pack_manifest() -> None:
    import yaml

    manifest = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    venv = (ROOT / "policies" / manifest["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (ROOT / ".venv").resolve()
    main = (ROOT / "policies" / "__main__.py").read_text()
    assert "PolicyPack(" in main and "build_policies()" in main


def test_unknown_inputs_are_unchecked_not_passed_or_failed() -> None:
    from pulumi.output import Unknown

    stack: list[tuple[str, str, dict[str, Any]]] = [
        ("aws:efs/fileSystem:FileSystem", "fs", {"encrypted": True, "kmsKeyId": Unknown()}),
        ("aws:s3/bucket:Bucket", "logs", {"bucket": Unknown()}),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "logs-pab",
            {"bucket": Unknown()},
        ),
    ]
    verdict = offline.run_rules(stack)
    unchecked = {(u.policy, u.urn_name) for u in verdict.unchecked}
    assert ("efs-encrypted-cmk", "fs") in unchecked
    assert "kmsKeyId" in verdict.unchecked[0].message
    # The bucket is matched to its block by name, so the unknown bucket id does not matter.
    assert "s3-bucket-public-access-block" not in {v.policy for v in verdict.violations}
    # efs-not-bursting never reads kmsKeyId and still fails on the absent throughputMode.
    assert {v.policy for v in verdict.violations} >= {"efs-not-bursting"}


def test_policy_pack_boots_and_serves() -> None:
    """`policies/__main__.py` starts the analyzer gRPC server as the engine would run it."""
    import select
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-u", "__main__.py"],
        cwd=ROOT / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the policy pack printed no port within 30 s"
        port = proc.stdout.readline().strip()
        assert port.isdigit(), proc.stderr.read() if proc.stderr else port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_readme_documents_every_rule() -> None:
    readme = (ROOT / "policies" / "README.md").read_text()
    missing = [name for name in r.ALL_RULE_NAMES if f"`{name}`" not in readme]
    assert missing == []

"""Rules register themselves next to their bodies; a new rule module needs no other edit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policies import rules as r
from policies.rules import _registry

ROOT = Path(__file__).resolve().parents[2]


def test_every_rule_is_registered_by_the_module_that_holds_its_body() -> None:
    every: list[r.ResourceRule | r.StackRule] = [*r.RESOURCE_RULES, *r.STACK_RULES]
    for rule in every:
        module = sys.modules[rule.check.__module__]
        assert module.__name__.startswith("policies.rules."), rule.name
        assert getattr(module, rule.check.__name__) is rule.check, rule.name


def test_rule_names_are_unique_and_a_second_registration_is_refused() -> None:
    assert len(set(r.ALL_RULE_NAMES)) == len(r.ALL_RULE_NAMES)
    with pytest.raises(ValueError, match="'efs-encrypted-cmk' is registered twice"):
        r.resource_rule("efs-encrypted-cmk", "again", (r.EFS_FILE_SYSTEM,))(r.efs_encrypted_cmk)
    assert len(_registry.RESOURCE_REGISTRY) == len(r.RESOURCE_RULES)


NEW_RULE = """
from collections.abc import Mapping
from typing import Any

from policies.rules._registry import RuleContext, resource_rule


@resource_rule("eks-probe", "A rule in a file of its own.", ("kubernetes:example.com/v1:Probe",))
def eks_probe(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    return [] if props.get("ok") else [f"{ctx.name}: not ok"]
"""


def test_a_new_rule_module_is_picked_up_without_touching_any_other_file(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "policies" / "rules" / "eks_probe.py").write_text(NEW_RULE)
    script = (
        "import json; from policies import rules as r; from policies import offline; "
        "v = offline.run_rules([('kubernetes:example.com/v1:Probe', 'web', {'ok': False})]); "
        "print(json.dumps({'names': list(r.ALL_RULE_NAMES), "
        "'violations': [x.policy for x in v.violations]}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert "eks-probe" in seen["names"]
    assert [n for n in seen["names"] if n != "eks-probe"] == list(r.ALL_RULE_NAMES)
    assert seen["violations"] == ["eks-probe"]

"""The pull-request comment of an EKS stack summarises its Kubernetes objects per model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from serving_support import eks_plan_for, two_model_config

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    path = REPO / "scripts" / "ci_preview_comment.py"
    spec = importlib.util.spec_from_file_location("ci_preview_comment_eks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_comment_lists_objects_and_what_a_new_revision_changes(tmp_path: Path) -> None:
    cfg = two_model_config()
    head = eks_plan_for(tmp_path / "head", cfg).to_dict()
    cfg["modelfleet:models"][1]["source"] = cfg["modelfleet:models"][1]["source"][:-4] + "beef"
    base = eks_plan_for(tmp_path / "base", cfg).to_dict()
    out = tmp_path / "report"
    out.mkdir()
    (out / "plan-head.json").write_text(json.dumps(head))
    (out / "plan-base.json").write_text(json.dumps(base))
    md = _script().render("eks", out)
    assert "**Kubernetes objects**" in md
    assert "modelfleet render" in md
    section = md.split("**Kubernetes objects**", 1)[1].splitlines()
    row = next(line for line in section if line.startswith("| llama-8b | "))
    new_job = next(n for n in head["kubernetes_objects"]["llama-8b"] if n.startswith("Job/"))
    old_job = next(n for n in base["kubernetes_objects"]["llama-8b"] if n.startswith("Job/"))
    assert new_job != old_job
    assert f"+{new_job}" in row and f"-{old_job}" in row
    unchanged = next(line for line in section if line.startswith("| custom-7b | "))
    assert unchanged.rstrip().endswith("|  |")


def test_ecs_comment_has_no_kubernetes_section(tmp_path: Path) -> None:
    cfg = two_model_config()
    cfg["modelfleet:platform"] = "ecs"
    head = eks_plan_for(tmp_path / "head", cfg).to_dict()
    (tmp_path / "plan-head.json").write_text(json.dumps(head))
    assert "Kubernetes objects" not in _script().render("ecs", tmp_path)

"""`modelfleet render` as a user runs it: files per kind and model that re-validate with the
same schemas, secrets redacted; and `modelfleet plan` listing the objects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from serving_support import eks_plan_for, two_model_config, validate
from unit_stacks import FULL, write_stack

from modelfleet.kube.manifest import REDACTED, planned_resources
from modelfleet.kube.render import render_files

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_render_writes_valid_redacted_files_per_kind_and_model(tmp_path: Path) -> None:
    cfg = two_model_config()
    stack = write_stack(tmp_path, cfg, "eks")
    out = tmp_path / "rendered"
    proc = _cli("render", str(stack), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert "custom-7b.deployment.yaml" in files
    assert "llama-8b.scaledobject.yaml" in files
    assert "stack.networkpolicy.yaml" in files
    assert "custom-7b.poddisruptionbudget.yaml" not in files  # replicas.min 0
    docs = [d for p in out.iterdir() for d in yaml.safe_load_all(p.read_text())]
    assert len(docs) == len(planned_resources(eks_plan_for(tmp_path / "p", cfg)))
    for doc in docs:
        validate(doc, "1.35")
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert set(secret["stringData"].values()) == {REDACTED}
    text = "".join(p.read_text() for p in out.iterdir())
    for ciphertext in ("apikeys-ciphertext", "fallback-ciphertext"):
        assert ciphertext not in text
    assert "<redacted" in proc.stdout


def test_render_is_the_same_objects_the_program_applies(tmp_path: Path) -> None:
    plan = eks_plan_for(tmp_path, two_model_config())
    files = render_files(plan)
    kinds = {
        (d["kind"], d["metadata"]["name"]) for t in files.values() for d in yaml.safe_load_all(t)
    }
    planned = {(token.rsplit(":", 1)[-1], name) for token, name in planned_resources(plan)}
    assert {k for k, _ in kinds} == {k for k, _ in planned}
    assert len(kinds) == len(planned)


def test_render_refuses_an_ecs_stack(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, FULL, "ecs")
    proc = _cli("render", str(stack), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "platform: eks" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_plan_lists_the_objects_per_model(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, two_model_config(), "eks")
    proc = _cli("plan", str(stack), "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json.loads(proc.stdout)["kubernetes_objects"]
    assert set(objs) == {"stack", "custom-7b", "llama-8b"}
    assert "Deployment/llama-8b" in objs["llama-8b"]
    assert "PodDisruptionBudget/llama-8b" in objs["llama-8b"]
    text = _cli("plan", str(stack))
    assert text.returncode == 0, text.stderr
    assert "Kubernetes objects per model" in text.stdout


def test_every_shipped_eks_stack_renders_valid_objects(tmp_path: Path) -> None:
    shipped = [
        p
        for p in sorted((REPO / "stacks").glob("Pulumi.*.yaml"))
        if yaml.safe_load(p.read_text())["config"].get("modelfleet:platform") == "eks"
    ]
    assert shipped
    for path in shipped:
        out = tmp_path / path.stem
        proc = _cli("render", str(path), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        for f in out.iterdir():
            for doc in yaml.safe_load_all(f.read_text()):
                validate(
                    doc,
                    str(
                        yaml.safe_load(path.read_text())["config"]
                        .get("modelfleet:eks", {})
                        .get("kubernetesVersion", "1.35")
                    ),
                )

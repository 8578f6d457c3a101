"""The scripts behind the workflows, run as the workflows run them (no network, no GitHub)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ci_stacks = load_script("ci_stacks")
ci_comment = load_script("ci_preview_comment")


# --- ci_stacks.py ----------------------------------------------------------------------------

EXISTING = ["dev", "prod", "search-staging"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["stacks/Pulumi.dev.yaml"], ["dev"]),
        (["stacks/Pulumi.dev.yaml", "README.md"], ["dev"]),
        (["README.md", "tests/unit/test_x.py"], []),
        (["stacks/Pulumi.gone.yaml"], []),  # deleted by the change: nothing to preview
        (["components/fleet.py"], EXISTING),
        (["policies/rules.py"], EXISTING),
        (["docker/sidecar/Dockerfile"], EXISTING),
        (["modelfleet/plan.py"], EXISTING),
        (["__main__.py"], EXISTING),
        (["pyproject.toml"], EXISTING),
        (["Pulumi.yaml"], EXISTING),
        (["stacks/Pulumi.bad name;rm.yaml"], []),  # not a matrix-safe name
    ],
)
def test_select_stacks(files: list[str], expected: list[str]) -> None:
    assert ci_stacks.select_stacks(files, EXISTING) == expected


def test_shipped_stacks_by_environment() -> None:
    out = subprocess.run(
        ["python3", str(SCRIPTS / "ci_stacks.py"), "all", "--by-environment"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    stacks = json.loads(values["stacks"])
    assert set(stacks) == {p.name[7:-5] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")}
    assert json.loads(values["dev"]) == ["dev"]
    assert sorted(json.loads(values["prod"])) == ["prod", "prod-eks"]
    assert "search-staging" in json.loads(values["staging"])
    assert values["any"] == "true"


def test_changed_stacks_from_git(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "ci")
    (tmp_path / "stacks").mkdir()
    for name, env in (("dev", "dev"), ("team-prod", "prod")):
        (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text(
            f"config:\n  aws:region: eu-west-1\n  modelfleet:environment: {env}\n"
        )
    git("add", ".")
    git("commit", "-q", "-m", "base")
    base = git("rev-parse", "HEAD")
    with (tmp_path / "stacks" / "Pulumi.team-prod.yaml").open("a") as f:
        f.write("  modelfleet:team: search\n")
    git("commit", "-q", "-am", "change prod")

    def run(*args: str) -> dict[str, str]:
        out = subprocess.run(
            ["python3", str(SCRIPTS / "ci_stacks.py"), *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    changed = run("changed", base, "HEAD", "--by-environment")
    assert changed["stacks"] == '["team-prod"]'
    assert changed["prod"] == '["team-prod"]' and changed["dev"] == "[]"
    assert run("region", "team-prod") == {"region": "eu-west-1"}


# --- ci_preview_comment.py -------------------------------------------------------------------


def plan(total: float, models: list[tuple[str, float]]) -> dict[str, Any]:
    return {
        "environment": "prod",
        "team": "platform",
        "region": "us-east-1",
        "https": True,
        "monthly_usd": total,
        "shared_monthly_usd": {"efs_usd": 10.0, "alb_usd": 20.0},
        "models": [
            {
                "name": n,
                "instance_type": "g6e.xlarge",
                "tensor_parallel": 1,
                "replicas_min": 1,
                "replicas_max": 3,
                "capacity": "mixed",
                "fits": True,
                "monthly_usd": usd,
            }
            for n, usd in models
        ],
    }


def write(out: Path, **files: Any) -> None:
    out.mkdir(exist_ok=True)
    for name, content in files.items():
        path = out / name.replace("_", "-").replace("-json", ".json").replace("-txt", ".txt")
        path.write_text(content if isinstance(content, str) else json.dumps(content))


def test_comment_cost_delta_models_and_verdict(tmp_path: Path) -> None:
    write(
        tmp_path,
        plan_head_json=plan(1130.0, [("a", 600.0), ("c", 500.0)]),
        plan_base_json=plan(1030.0, [("a", 500.0), ("b", 500.0)]),
        check_json={
            "passed": False,
            "rules": 23,
            "resources": 90,
            "violations": [{"policy": "alb-tls-1-2", "urn_name": "lb|x", "message": "m|n"}],
        },
        preview_txt="Resources:\n    + 2 to create\n    88 unchanged\n",
        preview_outcome_txt="success",
    )
    md = ci_comment.render("prod", tmp_path)
    assert "### Stack `prod`" in md
    assert "**Monthly cost: $1,130.00**, was $1,030.00: **+$100.00** (+9.7%)" in md
    assert "| a | g6e.xlarge | 1 | 1-3 | mixed | yes | $600.00 | +$100.00 |" in md
    assert "| c |" in md and "| new |" in md
    assert "~~b~~" in md and "-$500.00" in md
    assert ":x: 1 violation(s)" in md and "lb\\|x" in md and "m\\|n" in md
    assert "+ 2 to create, 88 unchanged" in md


def test_comment_new_stack_passed_and_fork_without_preview(tmp_path: Path) -> None:
    write(
        tmp_path,
        plan_head_json=plan(100.0, [("a", 70.0)]),
        check_json={"passed": True, "rules": 23, "resources": 90, "violations": []},
        preview_outcome_txt="skipped",
    )
    md = ci_comment.render("dev", tmp_path)
    assert "new stack" in md
    assert ":white_check_mark: passed, 23 rules on 90 resources" in md
    assert "**pulumi preview** (skipped): skipped." in md


def test_comment_truncates_long_previews(tmp_path: Path) -> None:
    long = "\n".join(f"    + aws:x:Y r{i} create" for i in range(5000))
    write(tmp_path, preview_txt=long, preview_outcome_txt="failure")
    md = ci_comment.render("dev", tmp_path)
    assert "modelfleet plan` failed" in md and "did not produce a verdict" in md
    assert "truncated" in md and len(md) < ci_comment.PREVIEW_LIMIT + 2000


# --- ci-gate.sh ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_ok", "check_rc", "outcome", "passes"),
    [
        (True, "0", "success", True),
        (True, "0", "skipped", True),
        (True, "1", "success", False),
        (True, "0", "failure", False),
        (False, "0", "success", False),
        (True, None, "success", False),
    ],
)
def test_gate(
    tmp_path: Path, plan_ok: bool, check_rc: str | None, outcome: str, passes: bool
) -> None:
    if plan_ok:
        (tmp_path / "plan-head.json").write_text("{}")
    if check_rc is not None:
        (tmp_path / "check-rc.txt").write_text(check_rc + "\n")
    rc = subprocess.run(
        ["bash", str(SCRIPTS / "ci-gate.sh"), str(tmp_path), outcome], capture_output=True
    ).returncode
    assert (rc == 0) is passes


# --- ci-sticky-comment.sh, with a fake `gh` -------------------------------------------------

FAKE_GH = """#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$FAKE_GH_LOG"
if [[ $1 == api && $2 == --paginate ]]; then
  # the --jq filter is applied by gh itself; emulate it with jq on the canned list
  jq -r "$5" "$FAKE_GH_COMMENTS"
elif [[ $1 == api && $2 == --method ]]; then
  cp "$6" "$FAKE_GH_LOG.payload"
fi
"""


def run_sticky(tmp_path: Path, comments: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    for stack in ("dev", "prod"):
        (tmp_path / "in" / f"comment-{stack}").mkdir(parents=True)
        (tmp_path / "in" / f"comment-{stack}" / "comment.md").write_text(f"### Stack `{stack}`\n")
    log = tmp_path / "gh.log"
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_GH_LOG": str(log),
        "FAKE_GH_COMMENTS": str(tmp_path / "comments.json"),
        "PR_NUMBER": "42",
        "GITHUB_REPOSITORY": "acme/modelfleet",
        "HEAD_SHA": "abc123",
    }
    subprocess.run(
        ["bash", str(SCRIPTS / "ci-sticky-comment.sh"), str(tmp_path / "in")],
        env=env,
        check=True,
        capture_output=True,
    )
    payload = json.loads(Path(f"{log}.payload").read_text())
    return log.read_text(), payload


def test_sticky_comment_created_once(tmp_path: Path) -> None:
    calls, payload = run_sticky(tmp_path, [{"id": 1, "user": {"login": "me"}, "body": "hi"}])
    assert "--method POST repos/acme/modelfleet/issues/42/comments" in calls
    body = payload["body"]
    assert body.startswith("<!-- modelfleet-preview -->")
    assert body.index("Stack `dev`") < body.index("Stack `prod`")
    assert "commit abc123" in body


def test_sticky_comment_updated_in_place(tmp_path: Path) -> None:
    comments = [
        {"id": 7, "user": {"login": "someone"}, "body": "<!-- modelfleet-preview --> quoted"},
        {"id": 9, "user": {"login": "github-actions[bot]"}, "body": "<!-- modelfleet-preview -->"},
    ]
    calls, _ = run_sticky(tmp_path, comments)
    assert "--method PATCH repos/acme/modelfleet/issues/comments/9" in calls
    assert "POST" not in calls

"""The workflows keep their security properties: pinned actions, least privilege, no injection.

check-jsonschema and zizmor run in `make lint` (scripts/lint-artifacts.sh); these tests pin the
project's own rules, which neither tool enforces (e.g. `id-token: write` only next to OIDC).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: \S+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$")
OIDC_ACTION = "aws-actions/configure-aws-credentials@"


def load(path: Path) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    # PyYAML reads the bare key `on` as True (YAML 1.1).
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(job: dict[str, Any]) -> list[str]:
    return [s["uses"] for s in steps(job) if "uses" in s]


@pytest.fixture(params=WORKFLOWS, ids=lambda p: p.name)
def workflow(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    path: Path = request.param
    return path, load(path)


def test_both_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"preview.yml", "deploy.yml"}


def test_actions_pinned_to_full_shas_with_version_comment(
    workflow: tuple[Path, dict[str, Any]],
) -> None:
    path, doc = workflow
    for job in doc["jobs"].values():
        for ref in uses(job):
            assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a commit SHA"
    for line in path.read_text().splitlines():
        if "uses:" in line and not line.strip().startswith("#"):
            assert VERSION_COMMENT.search(line), f"{path.name}: no '# vX.Y.Z' comment: {line}"


def test_same_action_same_sha_everywhere() -> None:
    seen: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for ref in uses(job):
                name, sha = ref.split("@")
                seen.setdefault(name, set()).add(sha)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def test_least_privilege_permissions(workflow: tuple[Path, dict[str, Any]]) -> None:
    path, doc = workflow
    assert doc["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{name} must declare its permissions"
        assert set(perms.values()) <= {"read", "write"}
        oidc = any(ref.startswith(OIDC_ACTION) for ref in uses(job))
        assert (perms.get("id-token") == "write") is oidc, f"{path.name}:{name} id-token"
        writes = {k for k, v in perms.items() if v == "write"} - {"id-token"}
        if writes:
            assert writes == {"pull-requests"} and name == "comment", (path.name, name, writes)


def test_checkout_never_persists_credentials(workflow: tuple[Path, dict[str, Any]]) -> None:
    path, doc = workflow
    for name, job in doc["jobs"].items():
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (path.name, name)


def test_no_expressions_inside_run_blocks(workflow: tuple[Path, dict[str, Any]]) -> None:
    path, doc = workflow
    for name, job in doc["jobs"].items():
        for step in steps(job):
            assert "${{" not in step.get("run", ""), f"{path.name}:{name}: pass it through env"


def test_preview_runs_pulumi_with_policy_pack_and_one_comment() -> None:
    doc = load(ROOT / ".github/workflows/preview.yml")
    assert list(doc["on"]) == ["pull_request"]
    preview = doc["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.changes.outputs.stacks) }}"
    pulumi = next(s for s in steps(preview) if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"
    oidc = next(s for s in steps(preview) if s.get("uses", "").startswith(OIDC_ACTION))
    assert oidc["with"]["role-to-assume"].startswith("${{ vars.")
    assert not any("aws-access-key-id" in s.get("with", {}) for s in steps(preview))
    runs = "\n".join(s.get("run", "") for s in steps(preview))
    assert "make setup" in runs and "ci-plan-report.sh" in runs and "ci_preview_comment.py" in runs
    comment = doc["jobs"]["comment"]
    assert "ci-sticky-comment.sh" in "\n".join(s.get("run", "") for s in steps(comment))


def test_deploy_order_environments_and_concurrency() -> None:
    doc = load(ROOT / ".github/workflows/deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert [jobs[e]["environment"] for e in ("dev", "staging", "prod")] == [
        "dev",
        "staging",
        "prod",
    ]
    assert "dev" in jobs["staging"]["needs"] and "staging" in jobs["prod"]["needs"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    for env in ("dev", "staging", "prod"):
        job = jobs[env]
        assert job["concurrency"]["group"] == "deploy-${{ matrix.stack }}"
        assert job["concurrency"]["cancel-in-progress"] is False
        pulumi = next(s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["policyPacks"] == "policies"
    assert "required reviewers" in (ROOT / ".github/workflows/deploy.yml").read_text().lower()


def test_scripts_the_workflows_call_exist(workflow: tuple[Path, dict[str, Any]]) -> None:
    path, doc = workflow
    for job in doc["jobs"].values():
        for step in steps(job):
            for script in re.findall(r"scripts/[\w.-]+", step.get("run", "")):
                assert (ROOT / script).is_file(), f"{path.name}: {script} is missing"

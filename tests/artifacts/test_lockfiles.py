"""The lock: uv.lock satisfies pyproject.toml, and each image's requirements.txt is cut from it.

When one of these fails, the message names the fix: `make lock` (then commit uv.lock and
docker/*/requirements.txt).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_lockfiles() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockfiles", ROOT / "scripts" / "lockfiles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


lockfiles = load_lockfiles()
UV = str(Path(sys.executable).with_name("uv"))


def test_uv_lock_satisfies_pyproject() -> None:
    # `--check` compares pyproject.toml's requirements with the ones uv.lock was resolved from;
    # when they agree it needs no index, so `--offline` keeps the test off the network.
    result = subprocess.run(
        [UV, "lock", "--check", "--offline", "--project", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "uv.lock does not satisfy pyproject.toml: run `make lock` and commit uv.lock and "
        f"docker/*/requirements.txt\n{result.stderr}"
    )


def test_image_requirements_match_the_lock() -> None:
    problems = lockfiles.stale()
    assert not problems, "\n".join(problems)


def test_a_stale_image_pin_is_reported_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    for relative in lockfiles.IMAGE_EXTRAS:
        (tmp_path / relative).parent.mkdir(parents=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    sidecar = tmp_path / "docker/sidecar/requirements.txt"
    text = sidecar.read_text()
    pinned = re.search(r"^fastapi==(\S+)", text, re.M)
    assert pinned is not None
    sidecar.write_text(text.replace(pinned.group(0), "fastapi==0.115.0"))

    assert lockfiles.stale(tmp_path) == [
        "docker/sidecar/requirements.txt does not match uv.lock (the `sidecar` extra): "
        "run `make lock` and commit uv.lock and docker/sidecar/requirements.txt"
    ]


def test_each_image_gets_its_extra_and_nothing_of_the_deployer() -> None:
    packages = lockfiles.load_lock()
    sidecar = lockfiles.closure(packages, "sidecar")
    fetcher = lockfiles.closure(packages, "fetcher")
    # uvloop and httptools come through `uvicorn[standard]`, an extra of a dependency.
    assert {"fastapi", "uvicorn", "uvloop", "httptools", "aiohttp", "pydantic"} <= sidecar
    assert {"huggingface-hub", "hf-xet", "boto3", "botocore", "s3transfer"} <= fetcher
    deployer = {"pulumi", "pulumi-aws", "pulumi-docker-build", "typer", "rich", "pytest"}
    assert not deployer & (sidecar | fetcher)


def test_every_image_requirement_is_pinned_with_hashes() -> None:
    for relative in lockfiles.IMAGE_EXTRAS:
        blocks = lockfiles.requirement_blocks((ROOT / relative).read_text())
        assert blocks, relative
        for name, block in blocks:
            assert re.match(rf"{re.escape(name)}==[\w.+!-]+[ ;\\]", block, re.I), block
            assert "--hash=sha256:" in block, block


def test_pulumi_is_pinned_exactly_and_the_lock_agrees() -> None:
    # components/harness.py drives pulumi's private runtime API; a range would let it move.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(r"pulumi\s*[=<>!~]", d)]
    assert len(pins) == 1 and re.fullmatch(r"pulumi==\d+\.\d+\.\d+", pins[0]), pins
    locked = {p["name"]: p["version"] for p in lockfiles.load_lock()}
    assert pins[0] == f"pulumi=={locked['pulumi']}"

"""The files generated from uv.lock, and the check that they still match it.

uv.lock (written by `uv lock` from pyproject.toml) is the one lock of the project: `make setup`
installs the dev environment from it, and each image's requirements.txt is the closure of one
extra of pyproject.toml, cut out of it with the same versions and hashes:

    docker/sidecar/requirements.txt   the `sidecar` extra
    docker/fetcher/requirements.txt   the `fetcher` extra

    python scripts/lockfiles.py write    regenerate them (`make lock` runs this after `uv lock`)
    python scripts/lockfiles.py check    exit 1, naming `make lock`, when a file is stale
    python scripts/lockfiles.py uv-pin   uv's own pin with hashes, for `make setup`'s bootstrap

Standard library only (Python 3.11+), so `make setup` can run it before .venv has anything.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
PROJECT = "modelfleet"
FIX = "make lock"

# Image requirements file -> the pyproject.toml extra whose closure it holds.
IMAGE_EXTRAS: dict[str, str] = {
    "docker/sidecar/requirements.txt": "sidecar",
    "docker/fetcher/requirements.txt": "fetcher",
}

HEADER = """\
# Generated from uv.lock by `make lock` (scripts/lockfiles.py): the `{extra}` extra of
# pyproject.toml and everything it pulls in, at the versions the tests ran against, with hashes
# (pip then installs nothing else). Do not edit: change pyproject.toml and run `make lock`.
"""


def normalize(name: str) -> str:
    """PEP 503 name normalization, as uv.lock and `uv export` spell names."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Edge:
    name: str
    extras: tuple[str, ...] = ()


def _edges(items: Iterable[dict[str, Any]]) -> list[Edge]:
    return [Edge(normalize(d["name"]), tuple(d.get("extra", ()))) for d in items]


def load_lock(path: Path = LOCK) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        packages: list[dict[str, Any]] = tomllib.load(f)["package"]
    return packages


def closure(packages: list[dict[str, Any]], extra: str) -> set[str]:
    """Names of every package the project's `extra` needs, on any platform (markers are kept by
    `uv export`, so a package only some platforms need is listed with its marker)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        by_name.setdefault(normalize(package["name"]), []).append(package)
    (project,) = by_name[PROJECT]
    todo = _edges(project.get("optional-dependencies", {}).get(extra, []))
    if not todo:
        raise SystemExit(f"lockfiles: uv.lock has no `{extra}` extra of {PROJECT}; run `{FIX}`")
    seen: set[Edge] = set()
    names: set[str] = set()
    while todo:
        edge = todo.pop()
        if edge in seen:
            continue
        seen.add(edge)
        names.add(edge.name)
        # A universal lock may hold several versions of one name (forked by Python version).
        for package in by_name.get(edge.name, []):
            todo.extend(_edges(package.get("dependencies", [])))
            for wanted in edge.extras:
                todo.extend(_edges(package.get("optional-dependencies", {}).get(wanted, [])))
    return names


def uv_binary() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise SystemExit(
            f"lockfiles: uv not found; run `make setup` (it installs uv), then `{FIX}`"
        )
    return found


def exported(extra: str) -> str:
    """`uv export` of the project's base dependencies plus `extra`: pins, markers and hashes."""
    result = subprocess.run(
        [
            uv_binary(),
            "export",
            "--frozen",
            "--offline",
            "--project",
            str(ROOT),
            "--extra",
            extra,
            "--no-emit-project",
            "--no-annotate",
            "--no-header",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"lockfiles: uv export failed:\n{result.stderr}")
    return result.stdout


def requirement_blocks(text: str) -> list[tuple[str, str]]:
    """(normalized name, block) per requirement of a requirements file, continuation lines kept."""
    blocks: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and blocks:
            name, block = blocks[-1]
            blocks[-1] = (name, block + "\n" + line)
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not match:
            raise SystemExit(f"lockfiles: unexpected line in uv export output: {line!r}")
        blocks.append((normalize(match.group(0)), line))
    return blocks


def render(extra: str, packages: list[dict[str, Any]] | None = None) -> str:
    """The requirements file of `extra`: the lines of `uv export` for its closure only."""
    wanted = closure(packages if packages is not None else load_lock(), extra)
    kept = [block for name, block in requirement_blocks(exported(extra)) if name in wanted]
    return HEADER.format(extra=extra) + "\n".join(kept) + "\n"


def stale(root: Path = ROOT) -> list[str]:
    """One message per generated file under `root` that differs from what uv.lock gives."""
    packages = load_lock()
    problems = []
    for relative, extra in IMAGE_EXTRAS.items():
        path = root / relative
        current = path.read_text() if path.exists() else ""
        if current != render(extra, packages):
            problems.append(
                f"{relative} does not match uv.lock (the `{extra}` extra): run `{FIX}` "
                f"and commit uv.lock and {relative}"
            )
    return problems


def uv_pin(packages: list[dict[str, Any]] | None = None) -> str:
    """uv's own requirement line as uv.lock pins it, with every wheel and sdist hash."""
    for package in packages if packages is not None else load_lock():
        if normalize(package["name"]) == "uv":
            files = [
                *package.get("wheels", []),
                *([package["sdist"]] if "sdist" in package else []),
            ]
            hashes = " ".join(f"--hash={f['hash']}" for f in files)
            return f"uv=={package['version']} {hashes}\n"
    raise SystemExit(f"lockfiles: uv.lock does not pin uv (a dev dependency); run `{FIX}`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["write", "check", "uv-pin"])
    args = parser.parse_args(argv)
    if args.command == "uv-pin":
        sys.stdout.write(uv_pin())
        return 0
    if args.command == "check":
        problems = stale()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    packages = load_lock()
    for relative, extra in IMAGE_EXTRAS.items():
        (ROOT / relative).write_text(render(extra, packages))
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

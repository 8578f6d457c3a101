"""Stack selection for the workflows (standard library only: runs before `make setup`).

  python scripts/ci_stacks.py changed BASE HEAD [--by-environment]   stacks a change touches
  python scripts/ci_stacks.py all [--by-environment]                 every stack
  python scripts/ci_stacks.py region STACK                           the stack's aws:region

Prints `key=value` lines for "$GITHUB_OUTPUT": `stacks=<JSON list>` and `any=true|false`, or with
--by-environment one JSON list per environment (`dev=[...]`, `staging=[...]`, `prod=[...]`).
A change to shared code (SHARED_PREFIXES, SHARED_FILES) touches every stack. Stacks deleted by
the change are left out (nothing to preview or deploy); names are checked to be matrix-safe.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SHARED_PREFIXES = ("modelfleet/", "components/", "docker/", "policies/")
SHARED_FILES = ("__main__.py", "pyproject.toml", "Pulumi.yaml")
STACK_FILE = re.compile(r"^stacks/Pulumi\.([A-Za-z0-9][A-Za-z0-9._-]*)\.yaml$")
ENVIRONMENTS = ("dev", "staging", "prod")
# Flat top-level keys of a stack file; the schema default environment is dev (modelfleet/config.py).
ENV_KEY = re.compile(r"^\s+modelfleet:environment:\s*[\"']?([A-Za-z]+)", re.MULTILINE)
REGION_KEY = re.compile(r"^\s+aws:region:\s*[\"']?([a-z0-9-]+)", re.MULTILINE)


def changed_files(base: str, head: str, cwd: Path) -> list[str]:
    out = subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", f"{base}...{head}"],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def stacks_in(stacks_dir: Path) -> list[str]:
    names = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        m = STACK_FILE.match(f"stacks/{path.name}")
        if m:
            names.append(m.group(1))
    return names


def select_stacks(files: Iterable[str], existing: list[str]) -> list[str]:
    files = list(files)
    if any(f.startswith(SHARED_PREFIXES) or f in SHARED_FILES for f in files):
        return list(existing)
    touched = {m.group(1) for f in files if (m := STACK_FILE.match(f))}
    return [s for s in existing if s in touched]


def stack_environment(stacks_dir: Path, stack: str) -> str:
    m = ENV_KEY.search((stacks_dir / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    env = m.group(1).lower() if m else "dev"
    if env not in ENVIRONMENTS:
        raise SystemExit(
            f"stacks/Pulumi.{stack}.yaml: environment {env!r} is not one of {ENVIRONMENTS}"
        )
    return env


def stack_region(stacks_dir: Path, stack: str) -> str:
    m = REGION_KEY.search((stacks_dir / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    return m.group(1) if m else "us-east-1"


def outputs(stacks: list[str], stacks_dir: Path, by_environment: bool) -> list[str]:
    def js(items: list[str]) -> str:
        return json.dumps(items, separators=(",", ":"))

    lines = [f"stacks={js(stacks)}", f"any={'true' if stacks else 'false'}"]
    if by_environment:
        for env in ENVIRONMENTS:
            in_env = [s for s in stacks if stack_environment(stacks_dir, s) == env]
            lines.append(f"{env}={js(in_env)}")
    return lines


def main(argv: list[str]) -> int:
    root = Path.cwd()
    stacks_dir = root / "stacks"
    args = [a for a in argv[1:] if a != "--by-environment"]
    by_env = "--by-environment" in argv
    if args[:1] == ["changed"] and len(args) == 3:
        stacks = select_stacks(changed_files(args[1], args[2], root), stacks_in(stacks_dir))
    elif args == ["all"]:
        stacks = stacks_in(stacks_dir)
    elif args[:1] == ["region"] and len(args) == 2 and args[1] in stacks_in(stacks_dir):
        print(f"region={stack_region(stacks_dir, args[1])}")
        return 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(outputs(stacks, stacks_dir, by_env)))
    print(f"stacks: {', '.join(stacks) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The pre-commit hooks are the linters of `make lint`, run with the same tools from .venv."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _command(line: str) -> str:
    """A lint command without where its tool lives or which files it was handed."""
    line = re.sub(
        r"\$\(VENV\)/bin/|\.venv/bin/|\$\(MAKE\) --no-print-directory |make --no-print-directory ",
        "",
        line,
    )
    line = line.replace(" --force-exclude", "")
    return line.removesuffix(" .").strip()


def make_lint_commands() -> list[str]:
    recipe = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    return [_command(line) for line in recipe.splitlines()[1:] if line.startswith("\t")]


def hooks() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "local hooks only: no fetch"
    found: list[dict[str, Any]] = config["repos"][0]["hooks"]
    return found


def test_every_hook_is_a_local_tool_from_the_venv() -> None:
    for hook in hooks():
        assert hook["language"] == "system", hook["id"]
        tool = hook["entry"].split()[0]
        assert tool in {"make", "bash"} or tool.startswith(".venv/bin/"), hook["entry"]


def test_the_hooks_run_what_make_lint_runs() -> None:
    lint = make_lint_commands()
    assert lint, "no `lint:` recipe found in the Makefile"
    assert sorted(_command(hook["entry"]) for hook in hooks()) == sorted(lint)

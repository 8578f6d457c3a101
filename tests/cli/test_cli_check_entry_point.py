"""`modelfleet check` reaches the program through an entry point, since modelfleet/ never imports
components or policies (import-linter in `make lint`)."""

from __future__ import annotations

from importlib.metadata import EntryPoints, entry_points

import pytest
from typer.testing import CliRunner

from modelfleet import cli


def test_the_installed_project_declares_the_check_runner() -> None:
    (entry,) = entry_points(group=cli.CHECK_ENTRY_POINTS, name="policy-pack")
    assert entry.value == "components.check:run_check"


def test_without_the_entry_point_check_says_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda **_: EntryPoints(()))
    result = CliRunner().invoke(cli.app, ["check", "dev"])
    assert result.exit_code == cli.EXIT_BAD_INPUT
    assert "needs the project installed (`make setup`)" in result.output
    assert "Traceback" not in result.output

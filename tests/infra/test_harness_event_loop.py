"""The harness runs the program whatever event-loop state an earlier caller left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from components.harness import run_stack

pytestmark = pytest.mark.xdist_group("infra")

DEV = Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.dev.yaml"


@pytest.mark.parametrize("state", ["cleared", "closed"])
def test_runs_after_an_async_caller_cleared_or_closed_the_loop(state: str) -> None:
    # What pytest-asyncio leaves after an async test: the loop closed and unset.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.close()
    if state == "cleared":
        asyncio.set_event_loop(None)

    run = run_stack(DEV)

    assert run.resources

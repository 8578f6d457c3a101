"""Shared fixtures: the Pulumi program under mocks, and the shipped stacks.

`run_stack` (components/harness.py) runs `__main__.py` unmodified under
`pulumi.runtime.set_mocks`, with a stack file's config handed over as `pulumi preview` hands
it, and records every registered resource: its type, name, inputs, dependencies and the
stack's outputs. Component tests assert on those recorded inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.harness import Run, run_stack

ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = ROOT / "stacks"
SHIPPED_STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml")
)


@pytest.fixture(scope="session")
def stacks_dir() -> Path:
    return STACKS_DIR


@pytest.fixture
def pulumi_run() -> Callable[[Path], Run]:
    """Run the program for any stack file (e.g. one a test wrote to tmp_path)."""
    return run_stack

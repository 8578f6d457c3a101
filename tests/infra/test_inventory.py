"""`modelfleet plan` lists exactly the resources the program creates (issue 3, "Done when"):
the plan's identities are what the components create, so this holds by construction and the
tests guard the construction."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_support import SHIPPED, plan_of

from components.harness import Run, run_stack
from modelfleet.monitoring import alarm_count

pytestmark = pytest.mark.xdist_group("infra")

# Session runs for the shipped stacks, by file name.
FIXTURE_OF = {
    "Pulumi.dev.yaml": "dev",
    "Pulumi.prod.yaml": "prod",
    "Pulumi.search-staging.yaml": "staging",
}
STACK_FILE = {name: next(p for p in SHIPPED if p.name == f) for f, name in FIXTURE_OF.items()}


def _recorded(run: Run) -> list[tuple[str, str]]:
    return sorted((r.type, r.name) for r in run.resources if not r.type.startswith("modelfleet:"))


def _diff(recorded: list[tuple[str, str]], planned: list[tuple[str, str]]) -> str:
    made, listed = set(recorded), set(planned)
    return (
        f"created but not in the inventory: {sorted(made - listed)}\n"
        f"in the inventory but not created: {sorted(listed - made)}"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_inventory_matches_the_program(request: pytest.FixtureRequest, path: Path) -> None:
    name = FIXTURE_OF.get(path.name)
    run = request.getfixturevalue(name) if name else run_stack(path)
    recorded = _recorded(run)
    planned = sorted((r.type, r.name) for r in plan_of(path).resources)
    assert recorded == planned, _diff(recorded, planned)
    assert len(set(planned)) == len(planned), "duplicate logical names"


@pytest.mark.parametrize("variant", ["zero_stack", "given_stack"])
def test_inventory_matches_variants(request: pytest.FixtureRequest, variant: str) -> None:
    path, run = request.getfixturevalue(variant)
    recorded = _recorded(run)
    planned = sorted((r.type, r.name) for r in plan_of(path).resources)
    assert recorded == planned, _diff(recorded, planned)


def test_variants_exercise_the_optional_branches(
    zero_stack: tuple[Path, Run], given_stack: tuple[Path, Run]
) -> None:
    """The variants above would prove nothing if they did not reach the branches they name."""
    types = {r.type for r in given_stack[1].resources}
    assert "docker-build:index:Image" not in types
    assert "aws:ecr/repository:Repository" not in types
    names = {r.name for r in given_stack[1].resources}
    assert any(n.endswith("-secrets-fallback-api-key") for n in names)
    assert any(n.endswith("-secrets-hf-token") for n in names)
    assert any(n.endswith("-from-zero-alarm") for n in (r.name for r in zero_stack[1].resources))


@pytest.mark.parametrize("variant", ["dev", "prod", "staging", "zero_stack"])
def test_priced_alarms_are_the_created_alarms(request: pytest.FixtureRequest, variant: str) -> None:
    """The plan's CloudWatch bill counts exactly the alarms the program creates."""
    value = request.getfixturevalue(variant)
    path, run = value if isinstance(value, tuple) else (None, value)
    plan = plan_of(path) if path else plan_of(STACK_FILE[variant])
    created = len(run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    assert alarm_count(plan.config, plan.models, list(plan.capacity)) == created

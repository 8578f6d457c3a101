"""The resources `pulumi up` creates for a plan, by type and logical name (filled in below)."""

from __future__ import annotations

from modelfleet.plan import FleetPlan


def inventory(plan: FleetPlan) -> list[tuple[str, str]]:
    return []

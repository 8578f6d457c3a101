"""EKS stack files for the platform tests, built from the unit tests' minimal stack."""

from __future__ import annotations

import copy
import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from unit_stacks import MINIMAL, write_stack

from modelfleet.config import load_stack_file
from modelfleet.plan import FleetPlan, build_plan

# The day these tests price: 1.34's standard support ends the next day (2026-12-02).
TODAY = dt.date(2026, 12, 1)
QWEN_SOURCE = "hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28"
ADMIN = "arn:aws:iam::123456789012:role/platform-admins"
ADMIN_2 = "arn:aws:iam::123456789012:role/path/sre"


def eks_config(**eks: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(MINIMAL)
    cfg["modelfleet:platform"] = "eks"
    if eks:
        cfg["modelfleet:eks"] = eks
    return cfg


def model(name: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = copy.deepcopy(MINIMAL["modelfleet:models"][0])
    base["name"] = name
    base.update(changes)
    return base


def plan_for(tmp: Path, cfg: dict[str, Any], as_of: dt.date = TODAY) -> FleetPlan:
    return build_plan(load_stack_file(write_stack(tmp, cfg, "eks")), as_of=as_of)

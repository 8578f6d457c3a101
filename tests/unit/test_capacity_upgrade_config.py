"""`keepCapacityProviders` (issue 13, upgrading from a `capacity: mixed` group): which groups it
may name, and the one message naming the key when it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from unit_stacks import LLAMA_8B_SOURCE, config, write_stack

from modelfleet.config import ConfigError, load_stack_file
from modelfleet.plan import build_plan


def _stack(keep: Any, **extra: Any) -> dict[str, Any]:
    cfg = config()
    cfg["modelfleet:models"] = [
        {
            "name": "llama-8b",
            "source": LLAMA_8B_SOURCE,
            "model": "llama-3.1-8b",
            "maxModelLen": 8192,
            "instanceType": "g6e.xlarge",
            "replicas": {"min": 1, "max": 3},
            "capacity": "mixed",
        }
    ]
    cfg["modelfleet:keepCapacityProviders"] = keep
    cfg.update({f"modelfleet:{k}": v for k, v in extra.items()})
    return cfg


def _problems(tmp_path: Path, cfg: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        build_plan(load_stack_file(write_stack(tmp_path, cfg)))
    assert "Traceback" not in str(err.value)
    return str(err.value)


def test_a_legacy_mixed_group_is_kept_for_one_run(tmp_path: Path) -> None:
    plan = build_plan(load_stack_file(write_stack(tmp_path, _stack(["g6e-xlarge-mixed"]))))
    assert list(plan.capacity) == ["g6e-xlarge-on-demand", "g6e-xlarge-spot"]
    kept = plan.kept_capacity["g6e-xlarge-mixed"]
    assert kept.moved_to == ("g6e-xlarge-on-demand", "g6e-xlarge-spot")
    assert plan.ids.gpu is not None
    assert plan.ids.gpu.kept["g6e-xlarge-mixed"].capacity_provider.name == (
        f"{plan.config.prefix}-gpu-g6e-xlarge-mixed-cp"
    )
    assert kept.step in plan.notes


def test_a_group_of_another_instance_type_moves_off_it(tmp_path: Path) -> None:
    """A model that changed instance type leaves its old group to keep; nothing replaces it."""
    plan = build_plan(load_stack_file(write_stack(tmp_path, _stack(["g5-xlarge-on-demand"]))))
    kept = plan.kept_capacity["g5-xlarge-on-demand"]
    assert kept.instance_type == "g5.xlarge" and kept.moved_to == ()
    assert "off this instance type" in kept.step


@pytest.mark.parametrize(
    ("keep", "extra", "message"),
    [
        (
            ["g6e-xlarge-on-demand"],
            {},
            "modelfleet:keepCapacityProviders[0] (g6e-xlarge-on-demand): a capacity group this "
            "stack builds (models llama-8b)",
        ),
        (["g6e.xlarge-mixed"], {}, "modelfleet:keepCapacityProviders[0]: not a capacity group"),
        (["g6e-xlarge-reserved"], {}, "modelfleet:keepCapacityProviders[0]: not a capacity group"),
        (["z9-xlarge-mixed"], {}, "modelfleet:keepCapacityProviders[0]: not a capacity group"),
        ("g6e-xlarge-mixed", {}, "modelfleet:keepCapacityProviders: "),
        (
            ["g6e-xlarge-mixed", "g6e-xlarge-mixed"],
            {},
            "modelfleet:keepCapacityProviders: ['g6e-xlarge-mixed'] listed more than once",
        ),
        (
            ["g6e-xlarge-mixed"],
            {"platform": "eks"},
            "modelfleet:keepCapacityProviders: ECS only",
        ),
    ],
)
def test_rejections_name_the_key(
    tmp_path: Path, keep: Any, extra: dict[str, Any], message: str
) -> None:
    assert message in _problems(tmp_path, _stack(keep, **extra))


def test_absent_key_keeps_nothing(tmp_path: Path) -> None:
    cfg = _stack([])
    del cfg["modelfleet:keepCapacityProviders"]
    plan = build_plan(load_stack_file(write_stack(tmp_path, cfg)))
    assert plan.kept_capacity == {}
    assert plan.ids.gpu is not None and not plan.ids.gpu.kept

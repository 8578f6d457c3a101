"""The `eks:` section: every key lands where the plan reads it; the engine form agrees."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from eks_stacks import ADMIN, ADMIN_2, eks_config, plan_for
from pydantic import BaseModel

from modelfleet.config import ConfigError, EksConfig, load_config_mapping
from modelfleet.eks_versions import Support

EKS_FULL = {
    "kubernetesVersion": "1.34",
    "supportType": "EXTENDED",
    "adminRoleArns": [ADMIN, ADMIN_2],
    "publicAccessCidrs": ["203.0.113.0/24"],
    "systemNodes": {"instanceType": "m7i.xlarge", "count": 3},
    "addonVersions": {"vpc-cni": "v1.21.1-eksbuild.8"},
    "imageCache": {"enabled": True, "initialization": "rate", "initializationRate": 200},
}
# Keys whose value is a mapping of the user's own keys, not a section.
MAPS = {"addonVersions"}


def _aliases(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, f in model.model_fields.items():
        key = prefix + (f.alias or name)
        out.add(key)
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out |= _aliases(f.annotation, key + ".")
    return out


def _keys(value: Mapping[str, object], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in value.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in MAPS:
            out |= _keys(v, prefix + k + ".")
    return out


def test_full_eks_example_sets_every_key() -> None:
    assert _aliases(EksConfig) == _keys(EKS_FULL)


def test_every_eks_key_lands(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, eks_config(**EKS_FULL))
    e = plan.eks
    assert e is not None
    assert e.kubernetes_version == "1.34"
    assert e.support_type is Support.EXTENDED
    assert {a.principal_arn for a in e.access_entries.values()} == {None, ADMIN, ADMIN_2}
    assert e.public_access_cidrs == ("203.0.113.0/24",)
    assert (e.system_instance_type, e.system_node_count) == ("m7i.xlarge", 3)
    assert e.addons["vpc-cni"].version == "v1.21.1-eksbuild.8"
    assert e.image_cache is not None and e.image_cache.rate_mibps == 200
    assert e.cost.system_nodes_usd == 3 * 730 * 0.2016


def test_engine_form_gives_the_same_eks_section(tmp_path: Path) -> None:
    import json

    cfg = eks_config(**EKS_FULL)
    engine = {
        k: (json.dumps(v) if isinstance(v, dict | list) else str(v).lower())
        if isinstance(v, bool | dict | list)
        else str(v)
        for k, v in cfg.items()
    }
    from_engine = load_config_mapping(engine, stack="eks")
    plan = plan_for(tmp_path, cfg)
    assert from_engine.eks == plan.config.eks


def test_an_ecs_only_key_on_an_eks_stack_names_the_key(tmp_path: Path) -> None:
    """Warm pools are ECS Auto Scaling's; an EKS stack that sets them is told so."""
    cfg = eks_config()
    cfg["modelfleet:coldStart"] = {"warmPool": False}
    with pytest.raises(ConfigError) as info:
        plan_for(tmp_path, cfg)
    assert "coldStart: ECS only" in str(info.value)

"""`modelfleet render`: the serving slice's Kubernetes objects as YAML files, for review and
`kubectl diff`, with secrets redacted and references not yet known as `<placeholders>`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import yaml

from modelfleet.kube.manifest import (
    KubeObject,
    all_objects,
    placeholder_refs,
    redacted_secrets,
)
from modelfleet.plan import FleetPlan

STACK_SCOPE = "stack"  # file prefix of the objects every model shares


def rendered_objects(plan: FleetPlan) -> list[KubeObject]:
    refs, model_refs = placeholder_refs(plan)
    return all_objects(plan, refs, model_refs, redacted_secrets(plan))


def file_name(obj: KubeObject) -> str:
    return f"{obj.model or STACK_SCOPE}.{obj.kind.lower()}.yaml"


def render_files(plan: FleetPlan) -> dict[str, str]:
    """File name -> YAML text: one file per object kind and model (several documents when a
    kind has several objects, such as the two NetworkPolicies), in apply order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in rendered_objects(plan):
        grouped[file_name(obj)].append(obj.body)
    return {
        name: yaml.safe_dump_all(bodies, sort_keys=False, default_flow_style=False)
        for name, bodies in grouped.items()
    }


def object_summary(plan: FleetPlan) -> dict[str, list[str]]:
    """`Kind/name` of every object, per model (and `stack`), for `modelfleet plan` and CI."""
    out: dict[str, list[str]] = defaultdict(list)
    for obj in rendered_objects(plan):
        out[obj.model or STACK_SCOPE].append(f"{obj.kind}/{obj.name}")
    return dict(out)

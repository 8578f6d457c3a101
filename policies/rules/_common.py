"""Helpers the rule modules share: naming a resource in a message, reading tags and loosely typed
inputs (CrossGuard hands lists over as read-only proxies, booleans sometimes as strings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies import guardrails as g
from policies.rules._registry import RuleContext


def _short(resource_type: str) -> str:
    """`aws:efs/fileSystem:FileSystem` -> `FileSystem` (for messages)."""
    return resource_type.rsplit(":", 1)[-1]


def _who(resource_type: str, ctx: RuleContext) -> str:
    return f"{_short(resource_type)} '{ctx.name}'"


def _tags(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """AWS tags; for a Kubernetes object, its `modelfleet.io/<key>` annotations read as the
    `modelfleet:<key>` tags (a colon is not allowed in an annotation key)."""
    tags = props.get("tags")
    if isinstance(tags, Mapping):
        return tags
    metadata = props.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return {}
    prefix = g.ANNOTATION_PREFIX
    return {
        "modelfleet:" + k.removeprefix(prefix): v
        for k, v in annotations.items()
        if isinstance(k, str) and k.startswith(prefix)
    }


def is_ephemeral(props: Mapping[str, Any]) -> bool:
    return str(_tags(props).get(g.TAG_EPHEMERAL, "")).strip().lower() == "true"


def _true(value: Any) -> bool:
    """Booleans arrive as bools, and as "true" where the provider types them as strings."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _list(value: Any) -> list[Any]:
    """A list input as a list (CrossGuard hands lists over as read-only Sequence proxies)."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

"""What a rule is, and the registry that each rule module adds its rules to.

A rule module decorates its check with `@resource_rule(name, description, resource_types)` (or
`@stack_rule(name, description)`); importing the module registers the rule, and
`policies/rules/__init__.py` imports every module of the package. The decorated function stays a
plain function, so tests call it with dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleContext:
    """What a rule knows besides the props: the resource's logical name and the policy config."""

    name: str = "resource"
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackResource:
    """A resource as a stack rule sees it. `deps` are logical names its inputs refer to."""

    type: str
    name: str
    props: Mapping[str, Any]
    deps: tuple[str, ...] = ()


ResourceCheck = Callable[[str, Mapping[str, Any], RuleContext], list[str]]
StackCheck = Callable[[Sequence[StackResource], RuleContext], list[tuple[str, str]]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    resource_types: tuple[str, ...]
    check: ResourceCheck
    config_schema: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck
    config_schema: Mapping[str, Mapping[str, Any]] | None = None


# Every rule, in the order the modules registered them; names are unique across both kinds.
RESOURCE_REGISTRY: list[ResourceRule] = []
STACK_REGISTRY: list[StackRule] = []


def _claim(name: str) -> None:
    taken = {r.name for r in RESOURCE_REGISTRY} | {r.name for r in STACK_REGISTRY}
    if name in taken:
        raise ValueError(f"policy rule {name!r} is registered twice")


def resource_rule(
    name: str,
    description: str,
    resource_types: Iterable[str],
    config_schema: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register the decorated `(resource_type, props, ctx) -> messages` check as a policy."""

    def register(check: ResourceCheck) -> ResourceCheck:
        _claim(name)
        types = tuple(resource_types)
        if not types:
            raise ValueError(f"policy rule {name!r} names no resource type")
        RESOURCE_REGISTRY.append(ResourceRule(name, description, types, check, config_schema))
        return check

    return register


def stack_rule(
    name: str,
    description: str,
    config_schema: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[StackCheck], StackCheck]:
    """Register the decorated `(resources, ctx) -> [(name, message)]` check as a stack policy."""

    def register(check: StackCheck) -> StackCheck:
        _claim(name)
        STACK_REGISTRY.append(StackRule(name, description, check, config_schema))
        return check

    return register


def default_config(rule: ResourceRule | StackRule) -> dict[str, Any]:
    """The config a rule sees when the pack's config sets nothing (the schema defaults)."""
    return {k: v["default"] for k, v in (rule.config_schema or {}).items() if "default" in v}

"""CrossGuard wrappers around the plain rules in `policies.rules`.

`policies/__main__.py` hands `build_policies()` to `PolicyPack`, which serves them to the Pulumi
engine (and blocks), so everything testable lives here instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import rules as r

PACK_NAME = "modelfleet-policies"
ENFORCEMENT = EnforcementLevel.MANDATORY


def _merged_config(rule: r.ResourceRule | r.StackRule, config: Mapping[str, Any]) -> dict[str, Any]:
    merged = r.default_config(rule)
    merged.update({k: v for k, v in config.items() if k != "enforcementLevel"})
    return merged


def _schema(rule: r.ResourceRule | r.StackRule) -> PolicyConfigSchema | None:
    if not rule.config_schema:
        return None
    return PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})


def resource_policy(rule: r.ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.resource_types:
            return
        ctx = r.RuleContext(name=args.name, config=_merged_config(rule, args.get_config()))
        # args.props is pulumi_policy's unknown-checking proxy: reading a value that is not known
        # yet at preview raises, and the engine skips this policy for the resource until `up`.
        for message in rule.check(args.resource_type, args.props, ctx):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=ENFORCEMENT,
        config_schema=_schema(rule),
    )


def stack_policy(rule: r.StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        by_urn = {res.urn: res.name for res in args.resources}
        resources = [
            r.StackResource(
                type=res.resource_type,
                name=res.name,
                props=res.props,
                deps=tuple(
                    by_urn.get(d.urn, d.name)
                    for deps in res.property_dependencies.values()
                    for d in deps
                ),
            )
            for res in args.resources
        ]
        urns = {res.name: res.urn for res in args.resources}
        ctx = r.RuleContext(name="stack", config=_merged_config(rule, args.get_config()))
        for name, message in rule.check(resources, ctx):
            report_violation(message, urns.get(name))

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=ENFORCEMENT,
        config_schema=_schema(rule),
    )


def build_policies() -> list[Policy]:
    policies: list[Policy] = [resource_policy(rule) for rule in r.RESOURCE_RULES]
    policies += [stack_policy(rule) for rule in r.STACK_RULES]
    return policies

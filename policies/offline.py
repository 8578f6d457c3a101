"""The policy pack without the Pulumi engine: `modelfleet check STACK`.

`run_rules` applies every rule of the pack to a list of recorded resources (type, name, inputs),
so a pull request gets a verdict even where no cloud credentials exist; components/check.py feeds
it the program run under Pulumi mocks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies import rules as r

# Same shape as a CrossGuard policy-pack config file: {"<policy name>": {<key>: <value>}}.
CONFIG_ENV = "MODELFLEET_POLICY_CONFIG"


@dataclass(frozen=True)
class Violation:
    policy: str
    urn_name: str
    message: str


@dataclass
class Verdict:
    passed: bool
    rules: int
    resources: int
    violations: list[Violation] = field(default_factory=list)
    # Rule/resource pairs skipped because an input was unknown (as CrossGuard does at preview).
    unchecked: list[Violation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rules": self.rules,
            "resources": self.resources,
            "violations": [asdict(v) for v in self.violations],
            "unchecked": [asdict(v) for v in self.unchecked],
        }


def _unknowns_to_sentinels(value: Any) -> Any:
    """pulumi's preview-time `Unknown` -> the sentinel pulumi_policy's proxy raises on."""
    if isinstance(value, Mapping):
        return {k: _unknowns_to_sentinels(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unknowns_to_sentinels(v) for v in value]
    if type(value).__name__ == "Unknown" and type(value).__module__ == "pulumi.output":
        return UNKNOWN_STRING_VALUE
    return value


def guarded_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inputs wrapped exactly as CrossGuard wraps them (read-only proxies raising on unknowns)."""
    proxied: Mapping[str, Any] = unknown_checking_proxy(_unknowns_to_sentinels(props))
    return proxied


def _rule_config(
    rule: r.ResourceRule | r.StackRule, config: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    merged = r.default_config(rule)
    merged.update((config or {}).get(rule.name, {}))
    return merged


def run_rules(
    resources: Sequence[tuple[str, str, Mapping[str, Any]]],
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> Verdict:
    """Apply every resource and stack rule to (type token, logical name, inputs) triples."""
    violations: list[Violation] = []
    unchecked: list[Violation] = []
    guarded = [(t, n, guarded_props(p)) for t, n, p in resources]
    for rule in r.RESOURCE_RULES:
        ctx_config = _rule_config(rule, config)
        for rtype, name, props in guarded:
            if rtype not in rule.resource_types:
                continue
            ctx = r.RuleContext(name=name, config=ctx_config)
            try:
                messages = rule.check(rtype, props, ctx)
            except UnknownValueError as exc:
                unchecked.append(Violation(rule.name, name, exc.message))
                continue
            violations += [Violation(rule.name, name, m) for m in messages]
    stack = [r.StackResource(type=t, name=n, props=p) for t, n, p in guarded]
    for srule in r.STACK_RULES:
        ctx = r.RuleContext(name="stack", config=_rule_config(srule, config))
        try:
            found = srule.check(stack, ctx)
        except UnknownValueError as exc:
            unchecked.append(Violation(srule.name, "stack", exc.message))
            continue
        violations += [Violation(srule.name, n, m) for n, m in found]
    return Verdict(
        passed=not violations,
        rules=len(r.RESOURCE_RULES) + len(r.STACK_RULES),
        resources=len(resources),
        violations=violations,
        unchecked=unchecked,
    )


def load_config(path: Path | None = None) -> dict[str, dict[str, Any]] | None:
    """Policy config from `path` or $MODELFLEET_POLICY_CONFIG (a policy-pack config JSON)."""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if not env:
            return None
        path = Path(env)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a policy config is a JSON object keyed by policy name")
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}

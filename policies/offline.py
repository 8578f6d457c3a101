"""The policy pack without the Pulumi engine: `modelfleet check STACK`.

`run_check` runs the Pulumi program under mocks (components/harness.py) and applies every rule
of the pack to the recorded resource inputs, so a pull request gets a verdict even where no cloud
credentials exist. `run_rules` is the same on any list of (type, name, inputs).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies import rules as r

# Same shape as a CrossGuard policy-pack config file: {"<policy name>": {<key>: <value>}}.
CONFIG_ENV = "MODELFLEET_POLICY_CONFIG"


class Recorded(Protocol):
    """What components.harness records per resource (type token, logical name, inputs)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...


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


def run_check(stack_file_path: Path, plan: Any = None) -> Verdict:
    """Run the program for `stack_file_path` under Pulumi mocks, then every rule on its inputs.

    `plan` (the FleetPlan the CLI already built) is accepted for the CLI's convenience; the
    verdict is computed from what the program actually declares, not from the plan.
    """
    # Imported here: the harness imports pulumi and the components, which `run_rules` never needs.
    harness = importlib.import_module("components.harness")
    run_program = harness.run_program
    # Run as an update (preview=False) when the harness allows it, so that every input the mocks
    # can resolve is known and checked; anything still unknown is reported as unchecked.
    kwargs = {"preview": False} if "preview" in inspect.signature(run_program).parameters else {}
    recorded: Sequence[Recorded] = run_program(Path(stack_file_path), **kwargs)
    resources = [(rec.type, rec.name, dict(rec.inputs)) for rec in recorded]
    return run_rules(resources, load_config())

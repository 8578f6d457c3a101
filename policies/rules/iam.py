"""IAM: no wildcard actions in any policy document."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from policies.rules._common import _list, _mapping, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import IAM_POLICY_TYPES, IAM_ROLE


def _policy_document(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            doc = json.loads(value)
        except json.JSONDecodeError:
            return None
        return doc if isinstance(doc, Mapping) else None
    return None


def wildcard_actions(document: Mapping[str, Any]) -> list[str]:
    """Allow-statement actions that grant every action (`*`) or a whole service (`svc:*`)."""
    found: list[str] = []
    for stmt in _list(document.get("Statement")):
        s = _mapping(stmt)
        if str(s.get("Effect", "")) != "Allow":
            continue
        if "NotAction" in s:
            found.append(f"NotAction {s['NotAction']!r}")
        for action in _list(s.get("Action")):
            a = str(action).strip()
            if a == "*" or a.endswith(":*"):
                found.append(a)
    return found


@resource_rule(
    "iam-no-wildcard-actions",
    "Inline and managed IAM policies allow no '*' or 'service:*' actions.",
    (*IAM_POLICY_TYPES, IAM_ROLE),
)
def iam_no_wildcard_actions(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    documents: list[tuple[str, Any]] = []
    if resource_type == IAM_ROLE:
        for i, inline in enumerate(_list(props.get("inlinePolicies"))):
            documents.append((f"inlinePolicies[{i}].policy", _mapping(inline).get("policy")))
    else:
        documents.append(("policy", props.get("policy")))
    out = []
    for where, raw in documents:
        if raw is None:
            continue
        doc = _policy_document(raw)
        if doc is None:
            out.append(
                f"{_who(resource_type, ctx)}: {where} is not a JSON policy document, so its "
                "actions cannot be checked. Fix: pass the document through json.dumps / "
                "pulumi.Output.json_dumps."
            )
            continue
        wild = wildcard_actions(doc)
        if wild:
            out.append(
                f"{_who(resource_type, ctx)}: {where} allows wildcard action(s) "
                f"{', '.join(repr(w) for w in wild)}; the limit is named actions only. Fix: "
                "list the exact actions the task needs (e.g. 's3:GetObject', "
                "'elasticfilesystem:ClientMount')."
            )
    return out

"""The load balancer: HTTPS only (TLS 1.2+), invalid headers dropped, deletion protection and
access logs unless the stack is ephemeral."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.rules._common import _list, _mapping, _true, _who, is_ephemeral
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import LISTENERS, LOAD_BALANCERS

# Security policies whose minimum protocol is TLS 1.2 (ELB docs, "Security policies for your
# Application Load Balancer"). ELBSecurityPolicy-2016-08, the default, still allows TLS 1.0.
TLS_POLICY_PATTERNS = (
    re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-[A-Za-z0-9-]+$"),
    re.compile(r"^ELBSecurityPolicy-TLS-1-2-[A-Za-z0-9-]+$"),
    re.compile(r"^ELBSecurityPolicy-FS-1-2-[A-Za-z0-9-]+$"),
)
RECOMMENDED_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def tls_policy_allowed(policy: str) -> bool:
    return any(p.match(policy) for p in TLS_POLICY_PATTERNS)


def _listener_protocol(props: Mapping[str, Any]) -> str:
    # An ALB listener without a protocol is HTTP (provider docs: "Defaults to HTTP").
    return str(props.get("protocol") or "HTTP").upper()


@resource_rule(
    "alb-http-redirects-to-https",
    "HTTP listeners only redirect to HTTPS, unless the stack is ephemeral.",
    LISTENERS,
)
def alb_http_redirects_to_https(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if _listener_protocol(props) != "HTTP" or is_ephemeral(props):
        return []
    actions = [_mapping(a) for a in _list(props.get("defaultActions"))]
    redirects = [
        a
        for a in actions
        if a.get("type") == "redirect"
        and str(_mapping(a.get("redirect")).get("protocol", "")).upper() == "HTTPS"
    ]
    if actions and len(redirects) == len(actions):
        return []
    kinds = ", ".join(str(a.get("type")) for a in actions) or "none"
    return [
        f"{_who(resource_type, ctx)}: plain-HTTP listener on port {props.get('port')!r} serves "
        f"traffic (default actions: {kinds}) on a non-ephemeral stack; only a redirect to HTTPS "
        "is allowed. Fix: make the default action type='redirect' with protocol='HTTPS', "
        "port='443', status_code='HTTP_301', or mark the stack ephemeral."
    ]


@resource_rule("alb-tls-1-2", "HTTPS/TLS listeners use a TLS 1.2+ security policy.", LISTENERS)
def alb_tls_policy(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if _listener_protocol(props) not in ("HTTPS", "TLS"):
        return []
    policy = props.get("sslPolicy")
    if isinstance(policy, str) and tls_policy_allowed(policy):
        return []
    shown = (
        "absent (AWS default ELBSecurityPolicy-2016-08, allows TLS 1.0)"
        if policy is None
        else (repr(policy))
    )
    return [
        f"{_who(resource_type, ctx)}: sslPolicy is {shown}; the minimum is TLS 1.2 "
        "(ELBSecurityPolicy-TLS13-1-2-*, -TLS13-1-3-*, -TLS-1-2-* or -FS-1-2-*). Fix: set "
        f"ssl_policy='{RECOMMENDED_TLS_POLICY}'."
    ]


def _is_application_lb(props: Mapping[str, Any]) -> bool:
    return str(props.get("loadBalancerType") or "application") == "application"


@resource_rule(
    "alb-drop-invalid-headers",
    "Application load balancers drop invalid header fields.",
    LOAD_BALANCERS,
)
def alb_drop_invalid_headers(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if not _is_application_lb(props) or _true(props.get("dropInvalidHeaderFields")):
        return []
    return [
        f"{_who(resource_type, ctx)}: dropInvalidHeaderFields is "
        f"{props.get('dropInvalidHeaderFields')!r}; headers with invalid names reach the gateway "
        "(request smuggling surface). Fix: set drop_invalid_header_fields=True."
    ]


@resource_rule(
    "alb-deletion-protection",
    "Load balancers have deletion protection, unless the stack is ephemeral.",
    LOAD_BALANCERS,
)
def alb_deletion_protection(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    if is_ephemeral(props) or _true(props.get("enableDeletionProtection")):
        return []
    return [
        f"{_who(resource_type, ctx)}: enableDeletionProtection is "
        f"{props.get('enableDeletionProtection')!r} on a non-ephemeral stack; a stray "
        "`pulumi destroy` or replace would drop the endpoint. Fix: set "
        "enable_deletion_protection=True (only ephemeral stacks may omit it)."
    ]


@resource_rule(
    "alb-access-logs",
    "Load balancers write access logs, unless the stack is ephemeral.",
    LOAD_BALANCERS,
)
def alb_access_logs(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if is_ephemeral(props):
        return []
    logs = _mapping(props.get("accessLogs"))
    if _true(logs.get("enabled")) and str(logs.get("bucket") or "").strip():
        return []
    shown = (
        "absent" if not logs else f"enabled={logs.get('enabled')!r}, bucket={logs.get('bucket')!r}"
    )
    return [
        f"{_who(resource_type, ctx)}: accessLogs is {shown} on a non-ephemeral stack. Fix: set "
        "access_logs={'bucket': <log bucket>, 'enabled': True} (only ephemeral stacks may omit it)."
    ]

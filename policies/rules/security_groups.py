"""Security groups: only the web ports are open to the internet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.rules._common import _int, _list, _mapping, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import SECURITY_GROUP, SG_INGRESS_RULE, SG_RULE

WORLD_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
PUBLIC_PORTS = frozenset({80, 443})


def _open_to_world_problem(
    protocol: Any, from_port: Any, to_port: Any, cidrs: Iterable[Any]
) -> str | None:
    """Why an ingress permission is not allowed, or None if it is."""
    world = sorted({str(c) for c in cidrs if str(c) in WORLD_CIDRS})
    if not world:
        return None
    proto = str(protocol if protocol is not None else "").strip().lower()
    lo, hi = _int(from_port), _int(to_port)
    if proto in ("-1", "all"):
        return f"all protocols and ports open to {', '.join(world)}"
    if proto not in ("tcp", "6"):
        return f"protocol {protocol!r} ports {from_port!r}-{to_port!r} open to {', '.join(world)}"
    if lo is None or hi is None or lo != hi or lo not in PUBLIC_PORTS:
        return f"tcp ports {from_port!r}-{to_port!r} open to {', '.join(world)}"
    return None


_SG_FIX = (
    "only tcp 80 and 443 (from_port == to_port) may be open to 0.0.0.0/0 or ::/0. Fix: restrict "
    "the source to a security group or a private CIDR, or narrow it to port 80/443."
)


@resource_rule(
    "sg-only-web-ports-public",
    "Only tcp 80/443 are open to 0.0.0.0/0 or ::/0.",
    (SECURITY_GROUP, SG_INGRESS_RULE, SG_RULE),
)
def sg_ingress_internet(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    out = []
    if resource_type == SECURITY_GROUP:
        for i, rule in enumerate(_list(props.get("ingress"))):
            r = _mapping(rule)
            cidrs = _list(r.get("cidrBlocks")) + _list(r.get("ipv6CidrBlocks"))
            why = _open_to_world_problem(
                r.get("protocol"), r.get("fromPort"), r.get("toPort"), cidrs
            )
            if why:
                out.append(f"{_who(resource_type, ctx)}: ingress[{i}] has {why}; {_SG_FIX}")
    elif resource_type == SG_INGRESS_RULE:
        cidrs = _list(props.get("cidrIpv4")) + _list(props.get("cidrIpv6"))
        why = _open_to_world_problem(
            props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"), cidrs
        )
        if why:
            out.append(f"{_who(resource_type, ctx)}: {why}; {_SG_FIX}")
    elif resource_type == SG_RULE and str(props.get("type") or "") == "ingress":
        cidrs = _list(props.get("cidrBlocks")) + _list(props.get("ipv6CidrBlocks"))
        why = _open_to_world_problem(
            props.get("protocol"), props.get("fromPort"), props.get("toPort"), cidrs
        )
        if why:
            out.append(f"{_who(resource_type, ctx)}: {why}; {_SG_FIX}")
    return out

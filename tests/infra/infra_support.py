"""Helpers for the infra tests: recorded payloads as AWS API requests, checked against botocore.

botocore's `ParamValidator` checks types, required members and minimums. It does not check
enums nor maximum lengths/values, which AWS does; `validate` adds both from the same model.
Pulumi serializes every number as a float and some booleans as strings ("true"); `coerce`
turns them into what the provider sends, guided by the shape, and leaves anything else alone
so a wrong type still shows up.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.validate import ParamValidator

from components.harness import Recorded, Run
from modelfleet.config import load_stack_file
from modelfleet.plan import FleetPlan, build_plan

pattern_engine: ModuleType
try:  # AWS tag patterns use \p{L}; `regex` understands them, `re` does not
    import regex as pattern_engine
except ImportError:  # pragma: no cover - then those patterns are skipped
    pattern_engine = re

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
DEV = STACKS / "Pulumi.dev.yaml"
PROD = STACKS / "Pulumi.prod.yaml"
STAGING = STACKS / "Pulumi.search-staging.yaml"
SHIPPED = sorted(STACKS.glob("Pulumi.*.yaml"))
FALLBACK_URL = "https://api.example.com/v1"


def plan_of(path: Path) -> FleetPlan:
    return build_plan(load_stack_file(path))


@cache
def _session() -> Any:
    return botocore.session.get_session()


def input_shape(service: str, operation: str) -> Shape:
    shape: Shape = _session().get_service_model(service).operation_model(operation).input_shape
    return shape


def coerce(value: Any, shape: Shape) -> Any:
    t = shape.type_name
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {
            k: (coerce(v, shape.members[k]) if k in shape.members else v) for k, v in value.items()
        }
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [coerce(v, shape.member) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: coerce(v, shape.value) for k, v in value.items()}
    if t in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    if t == "double" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if t == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


@cache
def _compiled(pattern: str) -> Any:
    try:
        return pattern_engine.compile(pattern)
    except Exception:  # a Java-only construct: not checked here
        return None


def _limits(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    """What ParamValidator leaves out: enums, patterns, maximum lengths and values."""
    t = shape.type_name
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                _limits(v, shape.members[k], f"{path}.{k}", out)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{path}: {len(value)} items, at most {meta['max']}")
        for i, v in enumerate(value):
            _limits(v, shape.member, f"{path}[{i}]", out)
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for k, v in value.items():
            _limits(v, shape.value, f"{path}.{k}", out)
    elif isinstance(shape, StringShape) and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            out.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{path}: {len(value)} characters, at most {meta['max']}")
        compiled = _compiled(meta["pattern"]) if "pattern" in meta else None
        if compiled is not None and not compiled.fullmatch(value):
            out.append(f"{path}: {value!r} does not match {meta['pattern']!r}")
    elif (
        t in ("integer", "long", "double")
        and isinstance(value, int | float)
        and "max" in meta
        and value > meta["max"]
    ):
        out.append(f"{path}: {value} above the maximum {meta['max']}")


def validate(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Problems AWS would report for this request; empty when it is well-formed."""
    shape = input_shape(service, operation)
    params = coerce(params, shape)
    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    _limits(params, shape, operation, problems)
    return problems


def assert_valid(service: str, operation: str, params: dict[str, Any], what: str) -> None:
    problems = validate(service, operation, params)
    assert not problems, f"{what}: {service} {operation} would be rejected:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Recorded resources as API requests
# ---------------------------------------------------------------------------------------------

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
DYNAMIC = "pulumi-python:dynamic:Resource"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def containers(td: Recorded) -> list[dict[str, Any]]:
    return list(json.loads(td.inputs["containerDefinitions"]))


def container(td: Recorded, name: str) -> dict[str, Any]:
    return next(c for c in containers(td) if c["name"] == name)


def serving_task(run: Run, model: str) -> Recorded:
    return run.one(TASK_DEFINITION, f"-{model}-task")


def fetcher_task(run: Run, model: str) -> Recorded:
    return run.one(TASK_DEFINITION, f"-{model}-fetcher")


def register_task_definition(td: Recorded) -> dict[str, Any]:
    i = td.inputs
    req: dict[str, Any] = {
        "family": i["family"],
        "containerDefinitions": containers(td),
        "networkMode": i["networkMode"],
        "requiresCompatibilities": i["requiresCompatibilities"],
        "cpu": i["cpu"],
        "memory": i["memory"],
        "taskRoleArn": i["taskRoleArn"],
        "executionRoleArn": i["executionRoleArn"],
        "volumes": i.get("volumes", []),
    }
    for key in ("placementConstraints", "runtimePlatform"):
        if key in i:
            req[key] = i[key]
    return req


def create_service(svc: Recorded) -> dict[str, Any]:
    i = svc.inputs
    net = i["networkConfiguration"]
    return {
        "cluster": i["cluster"],
        "serviceName": i["name"],
        "taskDefinition": i["taskDefinition"],
        "desiredCount": i["desiredCount"],
        "capacityProviderStrategy": i["capacityProviderStrategies"],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": net["subnets"],
                "securityGroups": net["securityGroups"],
                "assignPublicIp": "ENABLED" if net.get("assignPublicIp") else "DISABLED",
            }
        },
        "loadBalancers": i["loadBalancers"],
        "healthCheckGracePeriodSeconds": i["healthCheckGracePeriodSeconds"],
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": i["deploymentCircuitBreaker"],
            "maximumPercent": i["deploymentMaximumPercent"],
            "minimumHealthyPercent": i["deploymentMinimumHealthyPercent"],
        },
        "placementStrategy": i.get("orderedPlacementStrategies", []),
        "enableECSManagedTags": i["enableEcsManagedTags"],
        "propagateTags": i["propagateTags"],
        "enableExecuteCommand": i["enableExecuteCommand"],
    }


def ecs_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def pascal(value: Any) -> Any:
    """camelCase keys (as Pulumi records them) to the PascalCase of Query/JSON 1.1 APIs."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def period_pairs(alarm: Recorded) -> list[tuple[int, int]]:
    """(period, evaluation periods) of every metric a recorded alarm reads."""
    i = alarm.inputs
    evaluations = int(i["evaluationPeriods"])
    if "metricQueries" in i:
        return [
            (int(q["metric"]["period"]), evaluations) for q in i["metricQueries"] if "metric" in q
        ]
    return [(int(i["period"]), evaluations)]


def dependency_names(run: Run, start: Recorded) -> set[str]:
    """Logical names of every resource `start` waits for, directly or through others."""
    by_name = {r.name: r for r in run.resources}
    seen: set[str] = set()
    todo = [start]
    while todo:
        r = todo.pop()
        for urn in r.dependencies:
            name = urn.rsplit("::", 1)[-1]
            if name not in seen:
                seen.add(name)
                if name in by_name:
                    todo.append(by_name[name])
    return seen


def expected_groups(m: Any) -> dict[str, tuple[int, int]]:
    """The capacity groups a model's tasks land on, with (base, weight), worked out from the
    issue's rule rather than the plan: on-demand and spot use one group each; mixed keeps
    replicas.min as base on an on-demand group (which can have a warm pool) and bursts on a
    spot group."""
    itype = m.instance_type.replace(".", "-")
    if m.capacity != "mixed":
        return {f"{itype}-{m.capacity}": (0, 1)}
    out: dict[str, tuple[int, int]] = {}
    burst = m.replicas_max > m.replicas_min
    if m.replicas_min > 0:
        out[f"{itype}-on-demand"] = (m.replicas_min, 0 if burst else 1)
    if burst or not out:
        out[f"{itype}-spot"] = (0, 1)
    return out


def urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def policy_statements(run: Run, name_part: str) -> list[dict[str, Any]]:
    doc = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", name_part).inputs["policy"])
    return list(doc["Statement"])

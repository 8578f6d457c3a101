"""ECS task definitions: no secret in plain environment, every image pinned."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from policies.rules._common import _list, _mapping, _who
from policies.rules._registry import RuleContext, resource_rule
from policies.rules.tokens import TASK_DEFINITION

SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEYS?|KEY|KEYS|TOKEN|SECRET|SECRETS|PASSWORD|PASSWD|PASSPHRASE|PWD|"
    r"CREDENTIALS?|PRIVATE_KEY|ACCESS_KEY)(?:_|$)"
)
# Names that hold a reference to a secret, not the secret itself.
NOT_SECRET_SUFFIXES = ("_ARN", "_FILE", "_PATH", "_NAME", "_HEADER", "_ENABLED")


def looks_secret(name: str, value: Any) -> bool:
    upper = name.upper()
    if not SECRET_NAME.search(upper) or upper.endswith(NOT_SECRET_SUFFIXES):
        return False
    text = "" if value is None else str(value).strip()
    # Flags and references are not secrets: SIDECAR_ALLOW_NO_AUTH=true, *_KEY_ID=arn:...
    return bool(text) and not text.startswith("arn:") and text.lower() not in ("true", "false")


def _container_definitions(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> tuple[list[Mapping[str, Any]], list[str]]:
    raw = props.get("containerDefinitions")
    if raw is None:
        return [], []
    data: Any = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return [], [
                f"{_who(resource_type, ctx)}: containerDefinitions is not valid JSON ({exc.msg} "
                f"at {exc.pos}). Fix: build it with json.dumps / pulumi.Output.json_dumps."
            ]
    if not isinstance(data, list):
        return [], [f"{_who(resource_type, ctx)}: containerDefinitions is not a JSON list."]
    return [_mapping(c) for c in data], []


@resource_rule(
    "ecs-no-plain-secrets",
    "Container definitions pass secret-looking values through 'secrets', not 'environment'.",
    (TASK_DEFINITION,),
)
def ecs_no_plain_secrets(
    resource_type: str, props: Mapping[str, Any], ctx: RuleContext
) -> list[str]:
    containers, out = _container_definitions(resource_type, props, ctx)
    for c in containers:
        for env in _list(c.get("environment")):
            e = _mapping(env)
            name = str(e.get("name") or "")
            if looks_secret(name, e.get("value")):
                out.append(
                    f"{_who(resource_type, ctx)}: container {c.get('name')!r} passes "
                    f"{name!r} as a plain environment value (visible in the task definition, "
                    "DescribeTaskDefinition and the console). Fix: store it in Secrets Manager "
                    f"and reference it under 'secrets': [{{'name': '{name}', 'valueFrom': "
                    "<secret ARN>}]."
                )
    return out


def image_pin_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (Docker resolves it to :latest)"
    tag = last.split(":", 1)[1]
    if not tag or tag.lower() == "latest":
        return f"uses the moving tag {tag!r}"
    return None


@resource_rule(
    "ecs-images-pinned",
    "Container images are pinned to a version tag or digest, never latest.",
    (TASK_DEFINITION,),
)
def ecs_images_pinned(resource_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    containers, out = _container_definitions(resource_type, props, ctx)
    for c in containers:
        image = c.get("image")
        if not isinstance(image, str) or not image.strip():
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} has no image. Fix: "
                "set image to a pinned reference (repo:version or repo@sha256:<digest>)."
            )
            continue
        why = image_pin_problem(image.strip())
        if why:
            out.append(
                f"{_who(resource_type, ctx)}: container {c.get('name')!r} image {image!r} {why}; "
                "a restart could pull a different engine than the one previewed. Fix: pin a "
                "version tag (e.g. vllm/vllm-openai:v0.6.3) or a digest (@sha256:...)."
            )
    return out

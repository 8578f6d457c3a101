"""Request validation: bad input is answered with 400 here and never reaches vLLM.

Checks types and ranges of the fields that vLLM would otherwise turn into a 500 or an
engine-side error. Messages name the parameter and never include its value, so a
prompt is never echoed back (or into a log line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .errors import ApiError

__all__ = ["RequestInfo", "validate"]

_INT64: Final = 2**63 - 1
_INT32: Final = 2**31 - 1
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(slots=True)
class RequestInfo:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, "invalid_value", param=param)


Check = Callable[[str, Any], None]


def _integer(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"'{name}' must be an integer", name)
        if value < low or value > high:
            raise _bad(f"'{name}' must be between {low} and {high}", name)

    return check


def _number(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(f"'{name}' must be a number", name)
        if value > high or value < low or (low_open and value == low):
            raise _bad(f"'{name}' must be in {'(' if low_open else '['}{low}, {high}]", name)

    return check


def _of_type(kinds: type | tuple[type, ...], what: str) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, kinds):
            raise _bad(f"'{name}' must be {what}", name)

    return check


def _stop(name: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if (
        not isinstance(value, list)
        or len(value) > 64
        or not all(isinstance(item, str) for item in value)
    ):
        raise _bad(f"'{name}' must be a string or an array of at most 64 strings", name)


_BOOL: Final = _of_type(bool, "a boolean")

# Checked by walking the body's own keys, so a typical three-key request costs three
# lookups rather than one per known parameter.
_COMMON: Final[dict[str, Check]] = {
    "stream": _BOOL,
    "stream_options": _of_type(dict, "an object"),
    "max_tokens": _integer(1, _INT32),
    "max_completion_tokens": _integer(1, _INT32),
    "n": _integer(1, 128),
    "temperature": _number(0.0, 2.0),
    "top_p": _number(0.0, 1.0, low_open=True),
    "top_k": _integer(-1, _INT32),
    "min_p": _number(0.0, 1.0),
    "presence_penalty": _number(-2.0, 2.0),
    "frequency_penalty": _number(-2.0, 2.0),
    "repetition_penalty": _number(0.0, 10.0, low_open=True),
    "seed": _integer(-_INT64 - 1, _INT64),
    "user": _of_type(str, "a string"),
    "logit_bias": _of_type(dict, "an object"),
    "stop": _stop,
}
_CHAT: Final[dict[str, Check]] = {
    **_COMMON,
    "logprobs": _BOOL,
    "top_logprobs": _integer(0, 20),
    "tools": _of_type(list, "an array"),
    "tool_choice": _of_type((str, dict), "a string or an object"),
    "response_format": _of_type(dict, "an object"),
}
_COMPLETIONS: Final[dict[str, Check]] = {
    **_COMMON,
    "echo": _BOOL,
    "logprobs": _integer(0, 20),
    "suffix": _of_type(str, "a string"),
    "best_of": _integer(1, 128),
}
_EMBEDDINGS: Final[dict[str, Check]] = {
    **_COMMON,
    "dimensions": _integer(1, 65536),
}


def _common(body: dict[str, Any], checks: dict[str, Check]) -> RequestInfo:
    for name, value in body.items():
        if value is not None:
            check = checks.get(name)
            if check is not None:
                check(name, value)
    model = body.get("model")
    if model is None:
        raise _bad("'model' is required", "model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise _bad("'model' must be a non-empty string of at most 256 characters", "model")
    stream = body.get("stream") is True
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise _bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        usage = options.get("include_usage")
        if usage is not None:
            _BOOL("stream_options.include_usage", usage)
            include_usage = usage
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_completion_tokens")
    return RequestInfo(
        model=model, stream=stream, include_usage=include_usage, max_tokens=max_tokens
    )


def _chat(body: dict[str, Any]) -> RequestInfo:
    messages = body.get("messages")
    if messages is None:
        raise _bad("'messages' is required", "messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"'messages[{index}]' must be an object", f"messages[{index}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(
                f"'messages[{index}].role' must be one of {', '.join(sorted(_ROLES))}",
                f"messages[{index}].role",
            )
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list) or not all(
            isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
        ):
            raise _bad(
                f"'messages[{index}].content' must be a string or an array of content parts",
                f"messages[{index}].content",
            )
    return _common(body, _CHAT)


def _token_lists(value: object) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    if isinstance(first, str):
        return all(isinstance(item, str) for item in value)
    if isinstance(first, int) and not isinstance(first, bool):
        return all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    return all(
        isinstance(item, list)
        and item
        and all(isinstance(tok, int) and not isinstance(tok, bool) for tok in item)
        for item in value
    )


def _completions(body: dict[str, Any]) -> RequestInfo:
    if "prompt" not in body:
        raise _bad("'prompt' is required", "prompt")
    if not _token_lists(body["prompt"]):
        raise _bad("'prompt' must be a string, an array of strings, or token arrays", "prompt")
    info = _common(body, _COMPLETIONS)
    best_of = body.get("best_of")
    if best_of is not None and best_of < (body.get("n") or 1):
        raise _bad("'best_of' must be at least 'n'", "best_of")
    return info


def _embeddings(body: dict[str, Any]) -> RequestInfo:
    if "input" not in body:
        raise _bad("'input' is required", "input")
    if not _token_lists(body["input"]):
        raise _bad("'input' must be a string, an array of strings, or token arrays", "input")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    info = _common(body, _EMBEDDINGS)
    if info.stream:
        raise _bad("'stream' is not supported for embeddings", "stream")
    return info


_VALIDATORS: Final = {"chat": _chat, "completions": _completions, "embeddings": _embeddings}


def validate(kind: str, raw: bytes) -> tuple[dict[str, Any], RequestInfo]:
    """Parse ``raw`` once and check it; raises ApiError(400) for anything vLLM should not see."""
    if not raw:
        raise ApiError(400, "The request body is empty; expected a JSON object", "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson's message quotes the offending text, which may be part of the prompt.
        raise ApiError(400, "The request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object", "invalid_json")
    return body, _VALIDATORS[kind](body)

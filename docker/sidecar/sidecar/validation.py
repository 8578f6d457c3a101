"""Request validation: bad input is answered with 400 here and never reaches vLLM.

Checks types and ranges of the fields that vLLM would otherwise turn into a 500 or an
engine-side error. Messages name the parameter and never include its value, so a
prompt is never echoed back (or into a log line).
"""

from __future__ import annotations

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


def _bad(message: str, param: str | None) -> ApiError:
    return ApiError(
        400, message, "invalid_request_error" if param is None else "invalid_value", param=param
    )


def _number(
    body: dict[str, Any], name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"'{name}' must be a number", name)
    if value > high or value < low or (low_open and value == low):
        bound = "(" if low_open else "["
        raise _bad(f"'{name}' must be in {bound}{low}, {high}]", name)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"'{name}' must be an integer", name)
    if value < low or value > high:
        raise _bad(f"'{name}' must be between {low} and {high}", name)
    return value


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(f"'{name}' must be a boolean", name)
    return value


def _optional_type(
    body: dict[str, Any], name: str, kinds: type | tuple[type, ...], what: str
) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kinds):
        raise _bad(f"'{name}' must be {what}", name)


def _common(body: dict[str, Any]) -> RequestInfo:
    model = body.get("model")
    if model is None:
        raise _bad("'model' is required", "model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise _bad("'model' must be a non-empty string of at most 256 characters", "model")
    stream = _boolean(body, "stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object", "stream_options")
        if not stream:
            raise _bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        include_usage = _boolean(options, "include_usage")
    max_tokens = _integer(body, "max_tokens", 1, _INT32)
    max_completion = _integer(body, "max_completion_tokens", 1, _INT32)
    _integer(body, "n", 1, 128)
    _number(body, "temperature", 0.0, 2.0)
    _number(body, "top_p", 0.0, 1.0, low_open=True)
    _integer(body, "top_k", -1, _INT32)
    _number(body, "min_p", 0.0, 1.0)
    _number(body, "presence_penalty", -2.0, 2.0)
    _number(body, "frequency_penalty", -2.0, 2.0)
    _number(body, "repetition_penalty", 0.0, 10.0, low_open=True)
    _integer(body, "seed", -_INT64 - 1, _INT64)
    _optional_type(body, "user", str, "a string")
    _optional_type(body, "logit_bias", dict, "an object")
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and (
            not isinstance(stop, list)
            or len(stop) > 64
            or not all(isinstance(item, str) for item in stop)
        )
    ):
        raise _bad("'stop' must be a string or an array of at most 64 strings", "stop")
    return RequestInfo(
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens if max_tokens is not None else max_completion,
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
    _boolean(body, "logprobs")
    _integer(body, "top_logprobs", 0, 20)
    _optional_type(body, "tools", list, "an array")
    _optional_type(body, "tool_choice", (str, dict), "a string or an object")
    _optional_type(body, "response_format", dict, "an object")
    return _common(body)


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
    _boolean(body, "echo")
    _integer(body, "logprobs", 0, 20)
    _optional_type(body, "suffix", str, "a string")
    info = _common(body)
    best_of = _integer(body, "best_of", 1, 128)
    n = body.get("n") or 1
    if best_of is not None and best_of < n:
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
    _integer(body, "dimensions", 1, 65536)
    info = _common(body)
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

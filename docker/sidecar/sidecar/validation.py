"""What the gateway reads from a request body, and the little it refuses itself.

The gateway validates only what its own job needs: a body that is a JSON object (it is
parsed once to read the fields below), whether the answer is a stream (and whether the
stream carries usage), and the model name for the log line. Everything else — roles,
content parts, sampling parameters and their bounds, tools, structured outputs, vendor
fields — is forwarded byte for byte, and vLLM answers it: a request the pinned vLLM
accepts must pass, and one it rejects comes back with vLLM's own status and message.
Messages here never include a value, so a prompt is never echoed back or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from .errors import ApiError

__all__ = ["RequestInfo", "lax_bool", "validate"]


@dataclass(slots=True)
class RequestInfo:
    model: str | None
    stream: bool
    include_usage: bool


# vLLM's request models are pydantic models in lax mode, so a boolean field such as
# `stream` also accepts these strings and 0/1 (pydantic's bool coercion table:
# https://docs.pydantic.dev/latest/concepts/conversion_table/). The gateway must read
# `stream` exactly as vLLM will, or it would relay a stream as a plain body.
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


def lax_bool(value: Any) -> bool | None:
    """``value`` as pydantic's lax bool reads it; None when pydantic would refuse it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def validate(kind: str, raw: bytes) -> tuple[dict[str, Any], RequestInfo]:
    """Parse ``raw`` once; ApiError(400) only when it is not a JSON object."""
    if not raw:
        raise ApiError(400, "The request body is empty; expected a JSON object", "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson's message quotes the offending text, which may be part of the prompt.
        raise ApiError(400, "The request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object", "invalid_json")
    model = body.get("model")
    stream = False
    include_usage = False
    # Embeddings have no streaming in vLLM (an unknown `stream` field is ignored there).
    if kind != "embeddings":
        stream = lax_bool(body.get("stream")) is True
        options = body.get("stream_options")
        if stream and isinstance(options, dict):
            # vLLM's StreamOptions.include_usage defaults to True when the object is sent.
            include_usage = (
                "include_usage" not in options or lax_bool(options["include_usage"]) is True
            )
    return body, RequestInfo(
        model=model if isinstance(model, str) and len(model) <= 256 else None,
        stream=stream,
        include_usage=include_usage,
    )

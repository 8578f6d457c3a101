"""Upstream policy: what is retried, when the fallback serves, how engine errors are reshaped.

The gateway asks this module three things: open a response for one attempt (the engine
through the pooled client, retried on connect errors and 429/502/503/504 before any byte
was sent; or the fallback API, once), whether a failure may go to the fallback, and how
an engine's error body is relayed in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from .errors import error_body
from .settings import Settings
from .upstream import AiohttpResponse, ConnectFailed, EnginePool, Response, UpstreamBroken

__all__ = [
    "FALLBACK_STATUSES",
    "MAX_RETRIES",
    "RETRY_STATUSES",
    "EngineState",
    "Fallback",
    "Target",
    "UpstreamFailure",
    "backoff",
    "open_response",
    "retry_after",
    "upstream_error",
]

MAX_RETRIES: Final = 2
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
FALLBACK_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Failures that may be answered by the fallback, if nothing reached the client yet.
_FALLBACK_KINDS: Final = frozenset({"connect", "timeout", "status", "protocol", "starting"})


class UpstreamFailure(Exception):
    """The engine could not answer; may be retried on the fallback if nothing was sent."""

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        code: str,
        body: bytes | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        # The engine's own Retry-After (whole seconds), relayed as it was sent.
        self.retry_after = retry_after


@dataclass(slots=True)
class Target:
    """Where one attempt goes: the engine (raw head bytes) or the fallback API (aiohttp)."""

    body: bytes
    head: bytes = b""
    url: URL | None = None
    headers: dict[str, str] | None = None


class Fallback:
    """The external OpenAI-compatible API used when the engine cannot answer."""

    def __init__(self, settings: Settings, paths: Mapping[str, bool]) -> None:
        self.model = settings.fallback_model
        # The fallback base URL already ends in /v1, like an OpenAI SDK base_url.
        self._urls = {
            path: URL(settings.fallback_url + path.removeprefix("/v1"), encoded=True)
            for path, allowed in paths.items()
            if allowed and settings.fallback_enabled
        }
        self._auth = "Bearer " + settings.fallback_api_key.get_secret_value()

    def serves(self, path: str) -> bool:
        return path in self._urls

    def allowed(self, path: str, failure: UpstreamFailure, *, forwarded: bool) -> bool:
        return (
            path in self._urls
            and not forwarded
            and failure.kind in _FALLBACK_KINDS
            and (failure.kind != "status" or failure.status in FALLBACK_STATUSES)
        )

    def target(self, path: str, parsed: dict[str, Any], request_id: bytes) -> Target:
        return Target(
            body=orjson.dumps({**parsed, "model": self.model}),
            url=self._urls[path],
            headers={
                "Content-Type": "application/json",
                "Authorization": self._auth,
                "X-Request-Id": request_id.decode(),
            },
        )


def backoff(attempt: int) -> float:
    # Full jitter (production-stack's retry module): spreads retries of many requests.
    return random.uniform(0.025, 0.1 * 2**attempt)  # noqa: S311 - jitter, not security


def retry_after(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Retry-After header in whole seconds (delta-seconds form), or None."""
    for name, value in headers:
        if name.lower() == b"retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None  # an HTTP date: not relayed
            if not math.isfinite(seconds) or seconds < 0:
                return None
            return min(math.ceil(seconds), 86400)
    return None


async def _send_fallback(session: aiohttp.ClientSession, target: Target) -> Response:
    assert target.url is not None
    try:
        raw = await session.request("POST", target.url, data=target.body, headers=target.headers)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        raise ConnectFailed from None
    except aiohttp.ClientError:
        raise UpstreamBroken from None
    return AiohttpResponse(raw)


async def open_response(
    target: Target,
    *,
    pool: EnginePool | None,
    session: aiohttp.ClientSession | None,
    retry: bool,
    on_retry: Callable[[], None],
    first: Response | None = None,
) -> Response:
    """One attempt, with the engine's retries; ``on_retry()`` is called before each retry.

    ``first`` is the engine's answer to this attempt when it was already sent (by
    ``Gateway.serve_direct``); it is judged as the first try's answer would be.
    """
    attempt = 0
    while True:
        try:
            if first is not None:
                resp: Response = first
                first = None
            elif target.url is None:
                assert pool is not None
                resp = await pool.request(target.head, target.body)
            else:
                assert session is not None
                resp = await _send_fallback(session, target)
        except ConnectFailed:
            if retry and attempt < MAX_RETRIES:
                on_retry()
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                continue
            raise UpstreamFailure(
                "connect", 503, "The model engine is unavailable", "upstream_unavailable"
            ) from None
        except UpstreamBroken:
            raise UpstreamFailure(
                "protocol", 502, "The model engine closed the connection", "upstream_error"
            ) from None
        if retry and resp.status in RETRY_STATUSES and attempt < MAX_RETRIES:
            delay = max(backoff(attempt), min(float(retry_after(resp.headers) or 0), 1.0))
            resp.release()
            on_retry()
            await asyncio.sleep(delay)
            attempt += 1
            continue
        return resp


_PROMPT_DUMP_RE: Final = re.compile(r"input_value=|'input':|\"input\":")


def upstream_error(status: int, raw: bytes) -> bytes:
    """Relay an engine error in OpenAI's nested form: its message, type, param and code.

    vLLM 0.31 answers ``{"error": {"message", "type", "param", "code": <int>}}``
    (``ErrorInfo``/``ErrorResponse`` in ``vllm/entrypoints/openai/engine/protocol.py``);
    older releases sent the same fields flat with ``"object": "error"``. Both are read.
    A message that quotes the request (pydantic's dumps carry ``input_value=``) is
    replaced by a generic one, so a prompt never comes back in an error.
    """
    message: str | None = None
    kind: str | None = None
    code: str | int | None = None
    param: str | None = None
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        nested = parsed.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else parsed
        if isinstance(inner.get("message"), str):
            message = inner["message"]
        if isinstance(inner.get("type"), str) and len(inner["type"]) <= 100:
            kind = inner["type"]
        value = inner.get("code")
        if isinstance(value, str | int) and not isinstance(value, bool):
            code = value
        if isinstance(inner.get("param"), str):
            param = inner["param"]
    if message is None or _PROMPT_DUMP_RE.search(message) or len(message) > 1000:
        message = f"The model engine returned HTTP {status}"
    body = orjson.loads(error_body(status, message, "upstream_error", param))
    if kind is not None:
        body["error"]["type"] = kind
    body["error"]["code"] = code if code is not None else "upstream_error"
    return orjson.dumps(body)


class EngineState:
    """Whether the engine next door is ready, and when it is expected to be.

    The engine starts with the task (a cold start, or a restart after it died). Until its
    /health answers, the gateway does not send it requests (they would wait in a socket
    backlog or on a half-loaded server until the load balancer gave up): it answers 503
    with ``Retry-After`` counted down from the plan's start estimate, or sends them to
    the fallback.
    """

    __slots__ = ("estimate", "ready", "since")

    # Once the estimate has passed, the engine is late and nobody knows by how much:
    # clients come back every few seconds rather than every second.
    LATE_RETRY_AFTER: Final = 5

    def __init__(self, estimate: float) -> None:
        self.estimate = estimate
        self.ready = False
        self.since = 0.0

    def starting(self, now: float) -> None:
        self.since = now

    def retry_after(self, now: float) -> int:
        remaining = self.since + self.estimate - now
        if remaining <= 0:
            return self.LATE_RETRY_AFTER
        return max(1, math.ceil(remaining))

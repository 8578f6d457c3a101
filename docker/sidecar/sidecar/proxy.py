"""The hot path: a pure ASGI app that proxies ``/v1/*`` to vLLM and hands the rest to FastAPI.

Request bodies are parsed once (to validate them and read ``stream``/``model``) and the
original bytes are forwarded; responses pass through as received, chunk by chunk for
streams. Deadlines of all requests are checked by one shared clock tick, and the task
that watches for a client disconnect is only started for requests that outlive a tick,
so a fast request costs neither a timer nor an extra task.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from .errors import ApiError, error_body, sse_error_event
from .limits import Authenticator, KeyLimits
from .observability import EmfPublisher, LineWriter, Metrics
from .settings import Settings
from .upstream import AiohttpResponse, ConnectFailed, EnginePool, Response, UpstreamBroken
from .usage import SseUsageScanner, usage_from_json
from .validation import validate

__all__ = ["ROUTES", "Gateway", "Route"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    method: str
    path: str
    kind: str | None
    fallback: bool


ROUTES: Final[dict[str, Route]] = {
    route.path: route
    for route in (
        Route("chat", "POST", "/v1/chat/completions", "chat", True),
        Route("completions", "POST", "/v1/completions", "completions", True),
        # Vectors from another model are not comparable, so embeddings never fall back.
        Route("embeddings", "POST", "/v1/embeddings", "embeddings", False),
        Route("models", "GET", "/v1/models", None, False),
    )
}

MAX_RETRIES: Final = 2
_WATCH_AFTER: Final = 0.02
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_FALLBACK_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Response headers that describe one hop, or that this proxy sets itself.
_DROP_RESPONSE_HEADERS: Final = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"content-length",
        b"date", b"server", b"x-request-id", b"set-cookie",
    }
)  # fmt: skip
_REQUEST_ID_RE: Final = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_JSON: Final = (b"content-type", b"application/json")
_KEEPALIVE_COMMENT: Final = b": keep-alive\n\n"
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_MAX_ERROR_BODY: Final = 64 * 1024


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


class UpstreamFailure(Exception):
    """The engine could not answer; may be retried on the fallback if nothing was sent."""

    def __init__(
        self, kind: str, status: int, message: str, code: str, body: bytes | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.code = code
        self.body = body


@dataclass(slots=True)
class Exchange:
    """What one request did, for its metrics and its log line."""

    route: Route
    request_id: bytes
    start: float
    t0: float
    team: str = "-"
    status: int = 0
    model: str | None = None
    stream: bool = False
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage: str | None = None
    fallback: bool = False
    forwarded: bool = False
    retries: int = 0
    error: str | None = None


@dataclass(slots=True)
class _Target:
    """Where one attempt goes: the engine (raw head bytes) or the fallback API (aiohttp)."""

    body: bytes
    head: bytes = b""
    url: URL | None = None
    headers: dict[str, str] | None = None


class _Clock:
    """One periodic tick that checks every in-flight request's deadlines.

    A timer per request (arm, then cancel) costs more than the rest of the bookkeeping
    of a fast request; a shared tick costs a set insertion and removal. Deadlines are
    seconds long, so a tick of a few tens of milliseconds is precise enough.
    """

    TICK: Final = 0.025

    def __init__(
        self, loop: asyncio.AbstractEventLoop, housekeeping: Callable[[], None] | None = None
    ) -> None:
        self.loop = loop
        self.active: set[_Guard] = set()
        self._housekeeping = housekeeping
        self._ticks = 0
        self._handle: asyncio.TimerHandle | None = loop.call_later(self.TICK, self._tick)

    def _tick(self) -> None:
        if self.active:
            now = self.loop.time()
            for guard in list(self.active):
                guard.check(now)
        self._ticks += 1
        if self._housekeeping is not None and self._ticks % 40 == 0:
            self._housekeeping()
        self._handle = self.loop.call_later(self.TICK, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Guard:
    """Deadlines, SSE keep-alives and the client-disconnect signal for one request.

    Checked on every clock tick; moving a deadline later (every chunk does) costs an
    attribute write. Expiry cancels the request task; the handler turns that into an error.
    """

    __slots__ = (
        "_clock", "_idle", "_keepalive", "_receive", "_send", "_task", "_watch_at", "_watcher",
        "awaiting_first", "committed", "done", "headers", "keepalive_at", "last", "pending",
        "phase", "phase_at", "reading", "reason", "streaming", "total_at",
    )  # fmt: skip

    def __init__(
        self,
        clock: _Clock,
        task: asyncio.Task[Any],
        now: float,
        settings: Settings,
        *,
        streaming: bool,
        send: Send,
        receive: Receive,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._clock = clock
        self._task = task
        self._send = send
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        # Most requests through a busy proxy finish within milliseconds; the disconnect
        # watcher (a task per request) is only started for those that take longer. A
        # client that left earlier is still noticed, at that moment.
        self._watch_at = now + _WATCH_AFTER
        self.headers = headers
        self._idle = settings.idle_timeout
        self._keepalive = settings.keepalive_seconds
        self.total_at = now + settings.total_timeout
        self.phase = "first_byte"
        self.phase_at = now + settings.first_byte_timeout
        self.streaming = streaming
        self.awaiting_first = streaming
        self.keepalive_at = now + settings.keepalive_seconds
        self.last = now
        self.reading = False
        self.committed = False
        self.pending: asyncio.Task[None] | None = None
        self.reason: str | None = None
        self.done = False
        clock.active.add(self)

    def check(self, now: float) -> None:
        if self.done or self.reason is not None:
            return
        loop = self._clock.loop
        if self._watcher is None and now >= self._watch_at:
            self._watcher = loop.create_task(self._watch())
        if now >= self.total_at:
            self.trip("total")
            return
        if self.phase == "idle":
            if not self.reading:
                # Blocked on a slow client, not on the engine: not idle.
                self.last = now
            elif now >= self.last + self._idle:
                self.trip("idle")
                return
        elif now >= self.phase_at:
            self.trip(self.phase)
            return
        if self.awaiting_first and now >= self.keepalive_at:
            self.keepalive_at = now + self._keepalive
            start = not self.committed
            self.committed = True
            previous = self.pending
            self.pending = loop.create_task(self._send_keepalive(start, previous))

    async def _send_keepalive(self, start: bool, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous
        if start:
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": self.headers}
            )
        await self._send(
            {"type": "http.response.body", "body": _KEEPALIVE_COMMENT, "more_body": True}
        )

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.trip("client")
                return

    async def settle(self) -> None:
        """Wait for a keep-alive write in progress, so writes never interleave."""
        while self.pending is not None:
            pending = self.pending
            await pending
            if self.pending is pending:
                self.pending = None

    def enter_first_byte(self, now: float, first_byte_timeout: float) -> None:
        self.phase = "first_byte"
        self.phase_at = min(now + first_byte_timeout, self.total_at)

    def enter_idle(self, now: float) -> None:
        self.phase = "idle"
        self.last = now

    def first_chunk(self) -> None:
        self.awaiting_first = False

    def trip(self, reason: str) -> None:
        if self.reason is None and not self.done:
            self.reason = reason
            self._task.cancel()

    def take_reason(self) -> str | None:
        reason, self.reason = self.reason, None
        if reason is not None:
            self._task.uncancel()
        return reason

    def close(self) -> None:
        self.done = True
        self._clock.active.discard(self)
        if self._watcher is not None:
            self._watcher.cancel()
        if self.pending is not None and not self.pending.done():
            self.pending.cancel()


def _backoff(attempt: int) -> float:
    # Full jitter (production-stack's retry module): spreads retries of many requests.
    return random.uniform(0.025, 0.1 * 2**attempt)  # noqa: S311 - jitter, not security


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float:
    for name, value in headers:
        if name.lower() == b"retry-after":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0


_PROMPT_DUMP_RE: Final = re.compile(r"input_value=|'input':|\"input\":")


def _upstream_error(status: int, raw: bytes) -> bytes:
    """Re-shape an engine error into OpenAI's nested form, dropping anything that quotes input."""
    message: str | None = None
    code: str = "upstream_error"
    param: str | None = None
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        # vLLM has used both {"error": {...}} and a flat {"object": "error", ...}.
        nested = parsed.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else parsed
        if isinstance(inner.get("message"), str):
            message = inner["message"]
        if isinstance(inner.get("code"), str):
            code = inner["code"]
        if isinstance(inner.get("param"), str):
            param = inner["param"]
    # Validation errors from pydantic quote the request (and so the prompt); never relay them.
    if message is None or _PROMPT_DUMP_RE.search(message) or len(message) > 1000:
        message = f"The model engine returned HTTP {status}"
    return error_body(status, message, code, param)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body exceeds {limit} bytes", "request_too_large")


def _json_headers(body: bytes, request_id: bytes) -> list[tuple[bytes, bytes]]:
    return [_JSON, (b"content-length", str(len(body)).encode()), (b"x-request-id", request_id)]


class Gateway:
    """ASGI entry point: proxies the OpenAI routes, delegates everything else to ``app``."""

    def __init__(
        self,
        settings: Settings,
        app: ASGIApp,
        *,
        metrics: Metrics,
        writer: LineWriter,
        emf: EmfPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.metrics = metrics
        self.writer = writer
        self.emf = emf
        self.draining = False
        self.inflight = 0
        self._idle_event: asyncio.Event | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pool: EnginePool | None = None
        self._clock: _Clock | None = None
        keys = settings.keys()
        self._auth = Authenticator(keys) if keys else None
        self._limits = KeyLimits(settings.rpm, settings.tpm)
        self._prefix = settings.route_prefix
        base = settings.upstream_url
        self._heads: dict[str, bytes] = {}
        self.health_url = URL(base + "/health", encoded=True)
        self.metrics_url = URL(base + "/metrics", encoded=True)
        self._fallback_urls: dict[str, URL] = {}
        self._fallback_auth = ""
        if settings.fallback_enabled:
            fb = settings.fallback_url
            # The fallback base URL already ends in /v1, like an OpenAI SDK base_url.
            self._fallback_urls = {
                path: URL(fb + path.removeprefix("/v1"), encoded=True)
                for path, route in ROUTES.items()
                if route.fallback
            }
            self._fallback_auth = "Bearer " + settings.fallback_api_key.get_secret_value()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        # For the fallback API and the engine probes; the engine hot path uses self.pool.
        connector = aiohttp.TCPConnector(
            limit=s.max_inflight * 2 if s.max_inflight else 0,
            keepalive_timeout=4.0,
            ttl_dns_cache=300,
        )
        self.pool = EnginePool(
            s.upstream_url,
            connect_timeout=s.connect_timeout,
            # vLLM's uvicorn drops idle connections after 5 s; retiring ours first avoids
            # sending a request on a socket the engine is closing.
            idle_timeout=4.0,
        )
        self._clock = _Clock(asyncio.get_running_loop(), housekeeping=self.pool.prune)
        for path, route in ROUTES.items():
            extra = b"Content-Type: application/json\r\n" if route.kind else b""
            self._heads[path] = self.pool.head(route.method.encode(), path.encode(), extra)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def wait_idle(self, budget: float) -> bool:
        """Wait until nothing is in flight (True) or ``budget`` seconds pass (False)."""
        if self.inflight == 0:
            return True
        self._idle_event = asyncio.Event()
        try:
            async with asyncio.timeout(budget):
                await self._idle_event.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.stop()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        prefix = self._prefix
        if prefix and path.startswith(prefix):
            rest = path[len(prefix) :]
            if not rest or rest[0] == "/":
                path = rest or "/"
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = path.encode()
        route = ROUTES.get(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        await self._proxy(route, scope, receive, send)

    async def _proxy(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        authorization: bytes | None = None
        request_id: bytes | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                length = value
        if request_id is None or not _REQUEST_ID_RE.match(request_id):
            # Unique, not secret: getrandbits avoids uuid4's getrandom() syscall.
            request_id = b"%032x" % random.getrandbits(128)
        ex = Exchange(route=route, request_id=request_id, start=loop.time(), t0=time.perf_counter())
        try:
            await self._handle(ex, scope, receive, send, authorization, length, loop)
        except ApiError as err:
            ex.status = err.status
            ex.error = err.code
            await self._send_error(send, ex, err)
        except ClientGone:
            ex.status = 499
            ex.error = "client_disconnected"
            self.metrics.disconnects.labels(route.name).inc()
        finally:
            self._finish(ex, loop.time())

    async def _handle(
        self,
        ex: Exchange,
        scope: Scope,
        receive: Receive,
        send: Send,
        authorization: bytes | None,
        length: bytes | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        route = ex.route
        s = self.settings
        if scope["method"] != route.method:
            raise ApiError(405, f"Use {route.method} for {route.path}", "method_not_allowed")
        if self._auth is not None:
            team = self._auth.team_for(authorization)
            if team is None:
                raise ApiError(401, "Invalid or missing API key", "invalid_api_key")
            ex.team = team
        else:
            ex.team = "anonymous"
        if s.max_inflight and self.inflight >= s.max_inflight:
            self.metrics.rate_limited.labels(ex.team, "inflight").inc()
            raise ApiError(
                429, "Too many requests in flight; retry shortly", "too_many_inflight",
                retry_after=1,
            )  # fmt: skip
        if self._limits.enabled:
            refused = self._limits.admit(ex.team, ex.start)
            if refused is not None:
                limit, wait = refused
                self.metrics.rate_limited.labels(ex.team, limit).inc()
                raise ApiError(
                    429, f"Rate limit reached for {limit} per minute", "rate_limit_exceeded",
                    retry_after=wait,
                )  # fmt: skip
        self.inflight += 1
        self.metrics.inflight_add(ex.team, 1)
        try:
            body = b""
            parsed: dict[str, Any] | None = None
            if route.kind is not None:
                body = await self._read_body(ex, receive, length)
                parsed, info = validate(route.kind, body)
                ex.model = info.model
                ex.stream = info.stream
            await self._forward(ex, send, receive, body, parsed, loop)
        finally:
            self.inflight -= 1
            self.metrics.inflight_add(ex.team, -1)
            if self.inflight == 0 and self._idle_event is not None:
                self._idle_event.set()

    async def _read_body(self, ex: Exchange, receive: Receive, length: bytes | None) -> bytes:
        limit = self.settings.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "Invalid Content-Length", "invalid_request_error") from None
            if declared > limit:
                raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                # Checked as it arrives, so a chunked upload without Content-Length is
                # refused before it is buffered.
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- upstream --------------------------------------------------------------------

    async def _forward(
        self,
        ex: Exchange,
        send: Send,
        receive: Receive,
        body: bytes,
        parsed: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        s = self.settings
        route = ex.route
        stream_headers = [*_SSE_HEADERS, (b"x-request-id", ex.request_id)]
        clock = self._clock
        assert clock is not None
        guard = _Guard(
            clock, task, ex.start, s, streaming=ex.stream, send=send, receive=receive,
            headers=stream_headers,
        )  # fmt: skip
        try:
            head = self._heads[route.path] + b"X-Request-Id: " + ex.request_id + b"\r\n"
            try:
                await self._attempt(ex, guard, send, _Target(head=head, body=body), retry=True)
                return
            except UpstreamFailure as failure:
                can_fallback = (
                    route.fallback
                    and bool(self._fallback_urls)
                    and not ex.forwarded
                    and failure.kind in ("connect", "timeout", "status", "protocol")
                    and (failure.kind != "status" or failure.status in _FALLBACK_STATUSES)
                )
                if not can_fallback:
                    await self._fail(ex, guard, send, failure)
                    return
                if failure.kind != "status":
                    self.metrics.upstream_errors.labels(failure.kind).inc()
            ex.fallback = True
            self.metrics.fallbacks.labels(route.name).inc()
            assert parsed is not None
            fb_body = orjson.dumps({**parsed, "model": s.fallback_model})
            target = _Target(
                body=fb_body,
                url=self._fallback_urls[route.path],
                headers={
                    "Content-Type": "application/json",
                    "Authorization": self._fallback_auth,
                    "X-Request-Id": ex.request_id.decode(),
                },
            )
            guard.enter_first_byte(loop.time(), s.first_byte_timeout)
            try:
                await self._attempt(ex, guard, send, target, retry=False)
            except UpstreamFailure as failure:
                await self._fail(ex, guard, send, failure)
        except ClientGone:
            ex.status = 499
            ex.error = "client_disconnected"
            self.metrics.disconnects.labels(route.name).inc()
        finally:
            guard.close()

    async def _attempt(
        self, ex: Exchange, guard: _Guard, send: Send, target: _Target, *, retry: bool
    ) -> None:
        resp: Response | None = None
        try:
            resp = await self._open(ex, target, retry=retry)
            if ex.stream and resp.status == 200 and resp.content_type == b"text/event-stream":
                await self._relay_stream(ex, guard, send, resp)
            else:
                await self._relay_body(ex, guard, send, resp)
        except asyncio.CancelledError:
            reason = guard.take_reason()
            if reason is None:
                raise
            if reason == "client":
                raise ClientGone from None
            raise UpstreamFailure(
                "timeout", 504, f"The model engine did not answer in time ({reason} timeout)",
                f"upstream_{reason}_timeout",
            ) from None  # fmt: skip
        finally:
            if resp is not None:
                # Pools the connection if the response was read to its end; otherwise
                # drops it, so the engine sees the disconnect and aborts the request.
                resp.release()

    async def _send_fallback(self, target: _Target) -> Response:
        session = self.session
        assert session is not None and target.url is not None
        try:
            raw = await session.request(
                "POST", target.url, data=target.body, headers=target.headers
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            raise ConnectFailed from None
        except aiohttp.ClientError:
            raise UpstreamBroken from None
        return AiohttpResponse(raw)

    async def _open(self, ex: Exchange, target: _Target, *, retry: bool) -> Response:
        attempt = 0
        while True:
            try:
                if target.url is None:
                    pool = self.pool
                    assert pool is not None
                    resp: Response = await pool.request(target.head, target.body)
                else:
                    resp = await self._send_fallback(target)
            except ConnectFailed:
                if retry and attempt < MAX_RETRIES:
                    ex.retries += 1
                    await asyncio.sleep(_backoff(attempt))
                    attempt += 1
                    continue
                raise UpstreamFailure(
                    "connect", 503, "The model engine is unavailable", "upstream_unavailable"
                ) from None
            except UpstreamBroken:
                raise UpstreamFailure(
                    "protocol", 502, "The model engine closed the connection", "upstream_error"
                ) from None
            if retry and resp.status in _RETRY_STATUSES and attempt < MAX_RETRIES:
                delay = max(_backoff(attempt), min(_retry_after(resp.headers), 1.0))
                resp.release()
                ex.retries += 1
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return resp

    async def _relay_body(self, ex: Exchange, guard: _Guard, send: Send, resp: Response) -> None:
        loop = asyncio.get_running_loop()
        guard.enter_idle(loop.time())
        status = resp.status
        guard.reading = True
        try:
            raw = await resp.read_all(_MAX_ERROR_BODY if status >= 400 else None)
        except UpstreamBroken:
            raise UpstreamFailure(
                "protocol", 502, "The model engine closed the connection", "upstream_error"
            ) from None
        finally:
            guard.reading = False
        if status >= 400:
            if status in _FALLBACK_STATUSES:
                self.metrics.upstream_errors.labels(f"status_{status}").inc()
                raise UpstreamFailure(
                    "status", status, "", "upstream_error", body=_upstream_error(status, raw)
                )
            body = _upstream_error(status, raw)
            headers = [_JSON]
        else:
            body = raw
            usage = usage_from_json(raw)
            if usage is not None:
                ex.prompt_tokens = usage.prompt_tokens
                ex.completion_tokens = usage.completion_tokens
                ex.usage = "reported"
            headers = []
            for name, value in resp.headers:
                lowered = name.lower()
                if lowered not in _DROP_RESPONSE_HEADERS:
                    headers.append((lowered, value))
        ex.status = status
        if guard.committed:
            # A stream request answered without a stream, after keep-alives went out.
            await guard.settle()
            guard.done = True
            if status >= 400:
                await self._end_stream(
                    send, sse_error_event(status, "The request failed", "upstream_error")
                )
            else:
                await self._end_stream(send, raw)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"x-request-id", ex.request_id))
        if ex.fallback:
            headers.append((b"x-modelfleet-fallback", b"1"))
        guard.done = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        ex.forwarded = True

    async def _relay_stream(self, ex: Exchange, guard: _Guard, send: Send, resp: Response) -> None:
        loop = asyncio.get_running_loop()
        ex.status = 200
        if not guard.committed:
            guard.committed = True
            headers = guard.headers
            if ex.fallback:
                headers = [*headers, (b"x-modelfleet-fallback", b"1")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        read = resp.read_chunk
        scanner = SseUsageScanner()
        first = True
        try:
            while True:
                guard.reading = True
                chunk = await read()
                guard.reading = False
                if not chunk:
                    break
                if first:
                    first = False
                    guard.first_chunk()
                    await guard.settle()
                    now = loop.time()
                    # loop.time() has millisecond resolution under uvloop; TTFT needs better.
                    ex.ttft = time.perf_counter() - ex.t0
                    ex.forwarded = True
                    guard.enter_idle(now)
                scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                guard.last = loop.time()
        except UpstreamBroken:
            guard.reading = False
            if not ex.forwarded:
                raise UpstreamFailure(
                    "protocol", 502, "The model engine closed the stream", "upstream_error"
                ) from None
            self.metrics.upstream_errors.labels("stream_broken").inc()
            ex.error = "upstream_stream_broken"
            guard.done = True
            await self._end_stream(
                send, sse_error_event(502, "The model engine closed the stream", "upstream_error")
            )
            self._stream_usage(ex, scanner)
            return
        if first:
            await guard.settle()
        guard.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._stream_usage(ex, scanner)

    def _stream_usage(self, ex: Exchange, scanner: SseUsageScanner) -> None:
        usage = scanner.usage
        if usage is not None:
            ex.prompt_tokens = usage.prompt_tokens
            ex.completion_tokens = usage.completion_tokens
            ex.usage = "reported"
        elif scanner.events:
            # Without stream_options.include_usage the stream carries no counts; an
            # estimate (one token per content event) keeps TPM limits meaningful.
            ex.completion_tokens = max(0, scanner.events - 1)
            ex.usage = "estimated"

    async def _end_stream(self, send: Send, tail: bytes) -> None:
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _fail(
        self, ex: Exchange, guard: _Guard, send: Send, failure: UpstreamFailure
    ) -> None:
        if failure.kind != "status":
            self.metrics.upstream_errors.labels(failure.kind).inc()
        ex.error = failure.code
        guard.done = True
        await guard.settle()
        if guard.committed:
            ex.status = 200 if ex.forwarded else failure.status
            message = failure.message or f"The model engine returned HTTP {failure.status}"
            await self._end_stream(send, sse_error_event(failure.status, message, failure.code))
            return
        ex.status = failure.status
        body = failure.body or error_body(failure.status, failure.message, failure.code)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ex.request_id),
        ]
        if failure.status in (429, 503):
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- responses and bookkeeping ---------------------------------------------------

    async def _send_error(self, send: Send, ex: Exchange, err: ApiError) -> None:
        body = err.body()
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ex.request_id),
        ]
        if err.retry_after is not None:
            headers.append((b"retry-after", str(err.retry_after).encode()))
        if err.status == 413:
            # The rest of an oversized upload is not worth reading; drop the connection.
            headers.append((b"connection", b"close"))
        if err.status == 405:
            headers.append((b"allow", ex.route.method.encode()))
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _finish(self, ex: Exchange, now: float) -> None:
        elapsed = time.perf_counter() - ex.t0
        route = ex.route.name
        team = ex.team
        metrics = self.metrics
        metrics.observe_request(route, team, ex.status, elapsed)
        if ex.ttft is not None:
            metrics.observe_ttft(route, team, ex.ttft)
            if self.emf is not None:
                self.emf.record_ttft(ex.ttft)
        tokens = ex.prompt_tokens + ex.completion_tokens
        if tokens:
            metrics.observe_tokens(team, ex.prompt_tokens, ex.completion_tokens)
            self._limits.spend_tokens(team, tokens, now)
        record: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": "info",
            "msg": "request",
            "request_id": ex.request_id.decode(),
            "team": team,
            "route": route,
            "status": ex.status,
            "latency_ms": round(elapsed * 1000.0, 2),
        }
        if ex.model is not None:
            record["model"] = ex.model
            record["stream"] = ex.stream
        if ex.ttft is not None:
            record["ttft_ms"] = round(ex.ttft * 1000.0, 2)
        if ex.usage is not None:
            record["prompt_tokens"] = ex.prompt_tokens
            record["completion_tokens"] = ex.completion_tokens
            record["usage"] = ex.usage
        if ex.retries:
            record["retries"] = ex.retries
        if ex.fallback:
            record["fallback"] = True
        if ex.error is not None:
            record["error"] = ex.error
        self.writer.write(record)

"""The gateway: a pure ASGI app that proxies ``/v1/*`` to vLLM and hands the rest to FastAPI.

Request bodies are parsed once (for the few fields the gateway itself needs: see
``validation``) and the original bytes are forwarded; responses pass through as received,
chunk by chunk for streams. Deadlines live in ``deadlines`` (one shared clock tick for
all requests), retries, fallback and error reshaping in ``policy``, the engine client in
``upstream``; this module ties them to one request's life: read, admit, forward, relay,
account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
from yarl import URL

from .deadlines import Clock, Deadline, Guard
from .errors import ApiError, error_body, sse_error_event
from .limits import Authenticator, KeyLimits
from .observability import EmfPublisher, LineWriter, Metrics
from .policy import (
    FALLBACK_STATUSES,
    EngineState,
    Fallback,
    Target,
    UpstreamFailure,
    open_response,
    retry_after,
    upstream_error,
)
from .settings import Settings
from .upstream import EngineConnection, EnginePool, Response, UpstreamBroken
from .usage import SseUsageScanner, usage_from_json
from .validation import validate

__all__ = ["ROUTES", "DirectCycle", "DirectRequest", "Gateway", "Route"]

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
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_MAX_ERROR_BODY: Final = 64 * 1024
# A non-streamed answer up to this size is sent in one write; a larger one is passed on
# as it arrives (memory stays bounded whatever the engine sends).
_BUFFER_LIMIT: Final = 1024 * 1024
# An SSE event is held until its blank line arrives; one larger than this is malformed.
_MAX_EVENT_BYTES: Final = 8 * 1024 * 1024
# How often a starting engine's /health is asked.
_PROBE_INTERVAL: Final = 1.0

log = logging.getLogger("sidecar")


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


class _Abort(Exception):
    """A response whose head went out cannot be completed; the connection is dropped."""


def _event_end(chunk: bytes) -> int:
    """Where the last complete SSE event of ``chunk`` ends (0 if none does)."""
    lf = chunk.rfind(b"\n\n")
    crlf = chunk.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


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
    # The head of a passed-through (large, non-SSE) body went out: no error can follow.
    head_sent: bool = False
    retries: int = 0
    error: str | None = None

    def count_retry(self) -> None:
        self.retries += 1


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body exceeds {limit} bytes", "request_too_large")


def _read_headers(scope: Scope) -> tuple[bytes | None, bytes, bytes | None]:
    """The request's Authorization, its request id (given if well formed, else a new one)
    and its Content-Length."""
    # The last of a repeated header wins, in the dict as in a scan.
    headers: dict[bytes, bytes] = dict(scope["headers"])
    request_id = headers.get(b"x-request-id")
    if request_id is None or not _REQUEST_ID_RE.match(request_id):
        # Unique, not secret: getrandbits avoids uuid4's getrandom() syscall.
        request_id = b"%032x" % random.getrandbits(128)
    return headers.get(b"authorization"), request_id, headers.get(b"content-length")


def _cut_by(reason: str) -> Exception:
    """What ends a request whose deadline ran out, or that the drain or the client cut."""
    if reason == "client":
        return ClientGone()
    if reason == "drain":
        return UpstreamFailure(
            "drain", 503, "The server is shutting down; retry the request",
            "server_shutting_down", retry_after=1,
        )  # fmt: skip
    return UpstreamFailure(
        "timeout", 504, f"The model engine did not answer in time ({reason} timeout)",
        f"upstream_{reason}_timeout",
    )  # fmt: skip


def _relay_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The engine's response headers that are passed on, lowercased."""
    relayed = []
    for name, value in headers:
        lowered = name.lower()
        if lowered not in _DROP_RESPONSE_HEADERS:
            relayed.append((lowered, value))
    return relayed


def _json_usage(ex: Exchange, raw: bytes) -> None:
    usage = usage_from_json(raw)
    if usage is not None:
        ex.prompt_tokens = usage.prompt_tokens
        ex.completion_tokens = usage.completion_tokens
        ex.usage = "reported"


class DirectCycle(Protocol):
    """What ``Gateway.serve_direct`` needs of the serving protocol's request cycle."""

    # uvicorn's own types for these (HTTPScope, its receive events) are narrower.
    scope: Any
    direct: DirectRequest | None

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Write a whole response (head and body) and complete the cycle."""
        ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Go on in a task, as the cycle's own ASGI task would (same error handling)."""
        ...

    async def send(self, message: Message) -> None: ...

    async def receive(self) -> Any: ...


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
        # Requests past their body (what SIDECAR_MAX_INFLIGHT bounds), and all requests
        # on a proxied route, body still arriving included (what the drain waits for).
        self.inflight = 0
        self.open_requests = 0
        self._idle_event: asyncio.Event | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pool: EnginePool | None = None
        self._clock: Clock | None = None
        # The serving loop, kept once: asyncio.get_running_loop() costs a getpid() system
        # call per use on CPython 3.11, three times per request on the hot path.
        self._loop: asyncio.AbstractEventLoop | None = None
        keys = settings.keys()
        self._auth = Authenticator(keys) if keys else None
        self._limits = KeyLimits(settings.rpm, settings.tpm)
        self._prefix = settings.route_prefix
        base = settings.upstream_url
        self._heads: dict[str, bytes] = {}
        self.health_url = URL(base + "/health", encoded=True)
        self.metrics_url = URL(base + "/metrics", encoded=True)
        self._fallback = Fallback(settings, {path: r.fallback for path, r in ROUTES.items()})
        self.engine = EngineState(settings.engine_start_seconds)
        self._probe_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = self._loop = asyncio.get_running_loop()
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
        self._clock = Clock(loop, housekeeping=self.pool.prune)
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
        # The engine starts with this task; until it answers /health, requests get the
        # wake-up answer. One probe before serving, so a ready engine is never refused.
        self.engine.starting(loop.time())
        if not await self.probe_engine():
            self._watch_engine()

    async def probe_engine(self) -> bool:
        """Ask the engine's /health once; a ready engine marks the gateway ready."""
        session = self.session
        assert session is not None
        try:
            async with session.get(self.health_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                # 404: an OpenAI-compatible server without a health route (Ollama).
                ok = resp.status in (200, 404)
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok and not self.engine.ready:
            self.engine.ready = True
            log.info("engine is ready")
        return ok

    def _watch_engine(self) -> None:
        if self._probe_task is not None and not self._probe_task.done():
            return

        async def watch() -> None:
            while not self.engine.ready:
                await asyncio.sleep(_PROBE_INTERVAL)
                await self.probe_engine()

        self._probe_task = asyncio.get_running_loop().create_task(watch())

    def _engine_lost(self, now: float) -> None:
        """Connections refused after retries: the engine is restarting."""
        if self.engine.ready:
            log.warning("engine refused connections; answering as starting until it is ready")
            self.engine.ready = False
            self.engine.starting(now)
            self._watch_engine()

    async def wait_idle(self, budget: float) -> bool:
        """Wait until nothing is open (True) or ``budget`` seconds pass (False)."""
        if self.open_requests == 0:
            return True
        self._idle_event = asyncio.Event()
        try:
            async with asyncio.timeout(budget):
                await self._idle_event.wait()
        except TimeoutError:
            return False
        return True

    def cut(self, reason: str) -> int:
        """End every proxied request with an error (the drain budget is spent)."""
        return self._clock.trip_all(reason) if self._clock is not None else 0

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        if self._clock is not None:
            self._clock.stop()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- ASGI ----------------------------------------------------------------------

    def route_for(self, path: str) -> Route | None:
        """The proxied route ``path`` names, with or without the route prefix; else None."""
        prefix = self._prefix
        if prefix and path.startswith(prefix):
            rest = path[len(prefix) :]
            if not rest or rest[0] == "/":
                return ROUTES.get(rest or "/")
        return ROUTES.get(path)

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
        await self.proxy(route, scope, receive, send)

    async def proxy(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        """One request on a proxied route; ``scope`` needs only ``method`` and ``headers``.

        The serving protocol calls this directly for the proxied routes (see
        ``serving``); any other ASGI server reaches it through ``__call__``.
        """
        loop = self._loop or asyncio.get_running_loop()
        authorization, request_id, length = _read_headers(scope)
        ex = Exchange(route=route, request_id=request_id, start=loop.time(), t0=time.perf_counter())
        self.open_requests += 1
        await self._serve(
            ex, send, self._handle(ex, scope, receive, send, authorization, length, loop), loop
        )

    def serve_direct(self, route: Route, cycle: DirectCycle, body: bytes) -> bool:
        """Serve a request whose body has arrived by callbacks, with no task; or say no.

        Why (measured, docker/sidecar/README.md "Speed"): the task, its coroutines and
        uvicorn's receive/send messages were 14 % of the user-space instructions of a
        proxied JSON request (callgrind under wrk: 304 k before this path, 262 k with
        it). This path takes the common case only: a non-streamed JSON request, an
        engine that is ready, an idle pooled connection to it, and a request every check
        admits. Each check
        below has no side effect until the last (the rate limiter's admission), so False
        leaves the request untouched and the protocol serves it the usual way, where the
        same checks give their errors. A stream that authenticates and parses is taken
        too, and so is a request with no idle connection to send it on: each is handed at
        once to a task that goes on from there (``_admit_and_forward``), so its checks
        are not run twice.

        Once the request is sent, whatever is not a complete answer of known length
        below 400 arriving in time (an engine error, a retryable status, a large body, a
        broken connection, a deadline, the drain, the client leaving) hands the request
        to a task that goes on from that point through ``_forward``: the same retries,
        fallback, error shapes, accounting and log line as a request served by a task.
        """
        pool = self.pool
        if route.kind is None or pool is None or not self.engine.ready:
            return False
        s = self.settings
        scope = cycle.scope
        if scope["method"] != route.method or len(body) > s.max_body_bytes:
            return False
        if s.max_inflight and self.inflight >= s.max_inflight:
            return False
        authorization, request_id, _ = _read_headers(scope)
        if self._auth is not None:
            team = self._auth.team_for(authorization)
            if team is None:
                return False
        else:
            team = "anonymous"
        try:
            parsed, info = validate(route.kind, body)
        except ApiError:
            return False
        loop = self._loop
        assert loop is not None and self._clock is not None
        conn = None if info.stream else pool.take_idle()
        if conn is None:
            # A stream (it lasts; its events are relayed as they come), or no idle engine
            # connection to send on: a task goes on from here (and connects), rather than
            # authenticating and parsing again.
            ex = Exchange(
                route=route, request_id=request_id, start=loop.time(), t0=time.perf_counter(),
                team=team, model=info.model, stream=info.stream,
            )  # fmt: skip
            self.open_requests += 1
            send, receive = cycle.send, cycle.receive
            cycle.spawn(
                self._serve(
                    ex, send, self._admit_and_forward(ex, send, receive, body, parsed, loop), loop
                )
            )
            return True
        now = loop.time()
        if self._limits.enabled and self._limits.admit(team, now) is not None:
            pool.give_back(conn)
            return False
        ex = Exchange(
            route=route, request_id=request_id, start=now, t0=time.perf_counter(), team=team,
            model=info.model,
        )  # fmt: skip
        self.open_requests += 1
        self._take_slot(ex)
        head = self._engine_head(ex)
        DirectRequest(self, ex, cycle, conn, body, parsed, self._clock, now)
        conn.send(pool.encode(head, body))
        return True

    async def _resume(
        self,
        ex: Exchange,
        cycle: DirectCycle,
        body: bytes,
        parsed: dict[str, Any],
        *,
        opened: Response | None = None,
        cut: Exception | None = None,
    ) -> None:
        """Go on with a request ``serve_direct`` began, in the task ``cycle.spawn`` made."""
        loop = self._loop or asyncio.get_running_loop()
        send, receive = cycle.send, cycle.receive

        async def forward() -> None:
            try:
                await self._forward(ex, send, receive, body, parsed, loop, opened=opened, cut=cut)
            finally:
                self._free_slot(ex)

        await self._serve(ex, send, forward(), loop)

    async def _serve(
        self,
        ex: Exchange,
        send: Send,
        work: Coroutine[Any, Any, None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Run one request's ``work`` to its end: errors answered, the request closed."""
        route = ex.route
        try:
            await work
        except ApiError as err:
            ex.status = err.status
            ex.error = err.code
            await self._send_error(send, ex, err)
        except ClientGone:
            ex.status = 499
            ex.error = "client_disconnected"
            self.metrics.disconnects.labels(route.name).inc()
        except _Abort:
            pass  # uvicorn closes a connection whose response was left unfinished
        except asyncio.CancelledError:
            # uvicorn cancels what is left when it shuts down (a second SIGTERM, or the
            # drain's final close): an error, whatever status line already went out.
            ex.status = 503
            ex.error = "cancelled_at_shutdown"
            raise
        finally:
            self._close_request(ex, loop.time())

    def _close_request(self, ex: Exchange, now: float) -> None:
        self.open_requests -= 1
        if self.open_requests == 0 and self._idle_event is not None:
            self._idle_event.set()
        self._finish(ex, now)

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
        if scope["method"] != route.method:
            raise ApiError(405, f"Use {route.method} for {route.path}", "method_not_allowed")
        if self._auth is not None:
            team = self._auth.team_for(authorization)
            if team is None:
                raise ApiError(401, "Invalid or missing API key", "invalid_api_key")
            ex.team = team
        else:
            ex.team = "anonymous"
        self._admit(ex)
        body = b""
        parsed: dict[str, Any] | None = None
        if route.kind is not None:
            # Read under its own deadline, and before the request takes an in-flight slot:
            # a client that stalls its upload holds a connection, never a slot.
            body = await self._read_body(ex, receive, length, loop)
            parsed, info = validate(route.kind, body)
            ex.model = info.model
            ex.stream = info.stream
        await self._forward_admitted(ex, send, receive, body, parsed, loop)

    def _admit(self, ex: Exchange) -> None:
        """Take the request from its team's budgets, or refuse it with 429."""
        if self._limits.enabled:
            refused = self._limits.admit(ex.team, ex.start)
            if refused is not None:
                limit, wait = refused
                self.metrics.rate_limited.labels(ex.team, limit).inc()
                raise ApiError(
                    429, f"Rate limit reached for {limit} per minute", "rate_limit_exceeded",
                    retry_after=wait,
                )  # fmt: skip

    async def _forward_admitted(
        self,
        ex: Exchange,
        send: Send,
        receive: Receive,
        body: bytes,
        parsed: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """An admitted request whose body is read: an in-flight slot, then the engine."""
        s = self.settings
        if s.max_inflight and self.inflight >= s.max_inflight:
            self.metrics.rate_limited.labels(ex.team, "inflight").inc()
            raise ApiError(
                429, "Too many requests in flight; retry shortly", "too_many_inflight",
                retry_after=1,
            )  # fmt: skip
        self._take_slot(ex)
        try:
            await self._forward(ex, send, receive, body, parsed, loop)
        finally:
            self._free_slot(ex)

    async def _admit_and_forward(
        self,
        ex: Exchange,
        send: Send,
        receive: Receive,
        body: bytes,
        parsed: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """A request ``serve_direct`` authenticated and validated but does not send itself
        (a stream, or no idle engine connection): the rest of ``_handle``, without reading
        and checking it again."""
        self._admit(ex)
        await self._forward_admitted(ex, send, receive, body, parsed, loop)

    def _take_slot(self, ex: Exchange) -> None:
        self.inflight += 1
        self.metrics.inflight_add(ex.team, 1)

    def _free_slot(self, ex: Exchange) -> None:
        self.inflight -= 1
        self.metrics.inflight_add(ex.team, -1)

    async def _read_body(
        self,
        ex: Exchange,
        receive: Receive,
        length: bytes | None,
        loop: asyncio.AbstractEventLoop,
    ) -> bytes:
        limit = self.settings.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "Invalid Content-Length", "invalid_request_error") from None
            if declared > limit:
                raise _too_large(limit)
        # Usually the whole body came with the head and the first receive() returns it at
        # once; only a body still arriving is read under a deadline (a timer costs more
        # than the rest of a fast request's bookkeeping).
        message = await receive()
        first = self._body_part(message, 0, limit)
        if not message.get("more_body", False):
            return first
        chunks = [first]
        size = len(first)
        deadline = ex.start + self.settings.body_timeout
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    message = await receive()
                    chunk = self._body_part(message, size, limit)
                    if chunk:
                        size += len(chunk)
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise ApiError(
                408,
                f"The request body did not arrive within {self.settings.body_timeout:g} seconds",
                "request_timeout",
                close=True,
            ) from None
        return b"".join(chunks)

    @staticmethod
    def _body_part(message: Message, size: int, limit: int) -> bytes:
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        # Checked as it arrives, so a chunked upload without Content-Length is refused
        # before it is buffered.
        if size + len(chunk) > limit:
            raise _too_large(limit)
        return chunk

    # -- upstream --------------------------------------------------------------------

    async def _forward(
        self,
        ex: Exchange,
        send: Send,
        receive: Receive,
        body: bytes,
        parsed: dict[str, Any] | None,
        loop: asyncio.AbstractEventLoop,
        *,
        opened: Response | None = None,
        cut: Exception | None = None,
    ) -> None:
        """Send the request to the engine (or the fallback) and relay the answer.

        ``opened`` and ``cut`` continue a request that ``serve_direct`` began: the
        engine's answer that arrived, or what ended the attempt (an ``UpstreamFailure`` or
        ``ClientGone``). Either way the request goes on exactly as if this coroutine had
        sent it.
        """
        task = asyncio.current_task(loop)
        assert task is not None
        s = self.settings
        route = ex.route
        # Only a stream's head (or its first keep-alive) uses these.
        stream_headers = [*_SSE_HEADERS, (b"x-request-id", ex.request_id)] if ex.stream else []
        clock = self._clock
        assert clock is not None
        guard = Guard(
            clock, task, ex.start, s, streaming=ex.stream, send=send, receive=receive,
            headers=stream_headers,
        )  # fmt: skip
        try:
            if opened is not None or cut is not None or self.engine.ready:
                target = Target(head=self._engine_head(ex), body=body)
                try:
                    if cut is not None:
                        raise cut
                    await self._attempt(ex, guard, send, target, retry=True, opened=opened)
                    return
                except UpstreamFailure as failure:
                    if failure.kind == "connect":
                        self._engine_lost(loop.time())
                    if not self._fallback.allowed(route.path, failure, forwarded=ex.forwarded):
                        await self._fail(ex, guard, send, failure)
                        return
                    if failure.kind != "status":
                        self.metrics.upstream_errors.labels(failure.kind).inc()
            else:
                wait = self.engine.retry_after(loop.time())
                starting = UpstreamFailure(
                    "starting", 503,
                    f"The model engine is starting; retry in {wait} seconds",
                    "engine_starting", retry_after=wait,
                )  # fmt: skip
                if not self._fallback.allowed(route.path, starting, forwarded=False):
                    await self._fail(ex, guard, send, starting)
                    return
            ex.fallback = True
            self.metrics.fallbacks.labels(route.name).inc()
            assert parsed is not None
            guard.enter_first_byte(loop.time(), s.first_byte_timeout)
            try:
                await self._attempt(
                    ex, guard, send, self._fallback.target(route.path, parsed, ex.request_id),
                    retry=False,
                )  # fmt: skip
            except UpstreamFailure as failure:
                await self._fail(ex, guard, send, failure)
        except ClientGone:
            ex.status = 499
            ex.error = "client_disconnected"
            self.metrics.disconnects.labels(route.name).inc()
        finally:
            guard.close()

    def _engine_head(self, ex: Exchange) -> bytes:
        return self._heads[ex.route.path] + b"X-Request-Id: " + ex.request_id + b"\r\n"

    async def _attempt(
        self,
        ex: Exchange,
        guard: Guard,
        send: Send,
        target: Target,
        *,
        retry: bool,
        opened: Response | None = None,
    ) -> None:
        resp: Response | None = None
        try:
            resp = await open_response(
                target, pool=self.pool, session=self.session, retry=retry,
                on_retry=ex.count_retry, first=opened,
            )  # fmt: skip
            if ex.stream and resp.status == 200 and resp.content_type == b"text/event-stream":
                await self._relay_stream(ex, guard, send, resp)
            else:
                await self._relay_body(ex, guard, send, resp)
        except asyncio.CancelledError:
            reason = guard.take_reason()
            if reason is None:
                raise
            raise _cut_by(reason) from None
        finally:
            if resp is not None:
                # Pools the connection if the response was read to its end; otherwise
                # drops it, so the engine sees the disconnect and aborts the request.
                resp.release()

    async def _relay_body(self, ex: Exchange, guard: Guard, send: Send, resp: Response) -> None:
        """A whole (non-SSE) answer: buffered when small, streamed through when large.

        The idle timeout applies between two reads from the engine, never to the whole
        body; past ``_BUFFER_LIMIT`` the body is passed on as it arrives, so a huge answer
        costs a bounded amount of memory.
        """
        loop = self._loop or asyncio.get_running_loop()
        guard.enter_idle(loop.time())
        status = resp.status
        read = resp.read_chunk
        parts: list[bytes] = []
        size = 0
        limit = _MAX_ERROR_BODY if status >= 400 else _BUFFER_LIMIT
        complete = False
        try:
            while size <= limit:
                guard.reading = True
                chunk = await read()
                guard.reading = False
                if not chunk:
                    complete = True
                    break
                guard.last = loop.time()
                parts.append(chunk)
                size += len(chunk)
        except UpstreamBroken:
            raise UpstreamFailure(
                "protocol", 502, "The model engine closed the connection", "upstream_error"
            ) from None
        finally:
            guard.reading = False
        raw = parts[0] if len(parts) == 1 else b"".join(parts)
        if status >= 400:
            if not complete:
                resp.close()
            body = upstream_error(status, raw)
            if status in FALLBACK_STATUSES:
                self.metrics.upstream_errors.labels(f"status_{status}").inc()
                raise UpstreamFailure(
                    "status", status, "", "upstream_error", body=body,
                    retry_after=retry_after(resp.headers),
                )  # fmt: skip
            headers = [_JSON]
            after = retry_after(resp.headers)
            if after is not None:
                headers.append((b"retry-after", str(after).encode()))
        else:
            body = raw
            headers = _relay_headers(resp.headers)
        ex.status = status
        if guard.committed:
            # A stream request answered without a stream, after keep-alives went out.
            await guard.settle()
            if status >= 400:
                guard.done = True
                await self._end_stream(
                    send, sse_error_event(status, "The request failed", "upstream_error")
                )
                return
            await self._pass_through(ex, guard, send, resp, raw, complete, loop)
            return
        if ex.fallback:
            headers.append((b"x-modelfleet-fallback", b"1"))
        headers.append((b"x-request-id", ex.request_id))
        if complete:
            if status < 400:
                _json_usage(ex, raw)
            headers.append((b"content-length", str(len(body)).encode()))
            guard.done = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            ex.forwarded = True
            return
        for name, value in resp.headers:
            if name.lower() == b"content-length":
                headers.append((b"content-length", value))
        ex.head_sent = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await self._pass_through(ex, guard, send, resp, raw, complete, loop)

    async def _pass_through(
        self,
        ex: Exchange,
        guard: Guard,
        send: Send,
        resp: Response,
        first: bytes,
        complete: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Relay the rest of a large body as it arrives; usage is read from its tail."""
        tail = SseUsageScanner()
        ex.forwarded = True
        chunk = first
        try:
            while chunk:
                tail.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if complete:
                    break
                guard.reading = True
                chunk = await resp.read_chunk()
                guard.reading = False
                guard.last = loop.time()
        except UpstreamBroken:
            # The head is gone; ending without the final chunk (or short of the declared
            # length) makes the client see a broken body, never a complete one.
            self.metrics.upstream_errors.labels("body_broken").inc()
            ex.status = 502
            ex.error = "upstream_body_broken"
            guard.done = True
            resp.close()
            raise _Abort from None
        finally:
            guard.reading = False
            usage = tail.usage
            if usage is not None:
                ex.prompt_tokens = usage.prompt_tokens
                ex.completion_tokens = usage.completion_tokens
                ex.usage = "reported"
        guard.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_stream(self, ex: Exchange, guard: Guard, send: Send, resp: Response) -> None:
        """Relay SSE events as they arrive, whole events only.

        A chunk may end inside an event; the unfinished part is held until its blank line
        arrives, so whatever ends the stream (the engine breaking, a timeout, the drain)
        leaves the client at an event boundary, where an error event can follow. What
        was relayed is charged however the stream ends.
        """
        loop = self._loop or asyncio.get_running_loop()
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
        held = b""
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
                    guard.enter_idle(now)
                if held:
                    chunk = held + chunk
                    held = b""
                if chunk[-2:] != b"\n\n":
                    end = _event_end(chunk)
                    if end < len(chunk):
                        held = chunk[end:]
                        if len(held) > _MAX_EVENT_BYTES:
                            raise UpstreamBroken("an SSE event without an end")
                        chunk = chunk[:end]
                        if not chunk:
                            guard.last = loop.time()
                            continue
                ex.forwarded = True
                scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                guard.last = loop.time()
        except UpstreamBroken:
            guard.reading = False
            self._stream_usage(ex, scanner)
            if not ex.forwarded:
                raise UpstreamFailure(
                    "protocol", 502, "The model engine closed the stream", "upstream_error"
                ) from None
            self.metrics.upstream_errors.labels("stream_broken").inc()
            ex.status = 502
            ex.error = "upstream_stream_broken"
            guard.done = True
            await self._end_stream(
                send, sse_error_event(502, "The model engine closed the stream", "upstream_error")
            )
            return
        except BaseException:
            # Cut by the client, a deadline, the drain or shutdown: charge what was sent.
            self._stream_usage(ex, scanner)
            raise
        if first:
            await guard.settle()
        guard.done = True
        # An engine that ended without a final blank line: pass its last bytes as sent.
        await send({"type": "http.response.body", "body": held, "more_body": False})
        self._stream_usage(ex, scanner)

    def _stream_usage(self, ex: Exchange, scanner: SseUsageScanner) -> None:
        usage = scanner.usage
        if usage is not None:
            ex.prompt_tokens = usage.prompt_tokens
            ex.completion_tokens = usage.completion_tokens
            ex.usage = "reported"
        elif scanner.events > scanner.done:
            # Without stream_options.include_usage (or a stream cut before its usage
            # event) there are no counts; one token per relayed event keeps the budgets
            # meaningful.
            ex.completion_tokens = scanner.events - scanner.done
            ex.usage = "estimated"

    async def _end_stream(self, send: Send, tail: bytes) -> None:
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _fail(self, ex: Exchange, guard: Guard, send: Send, failure: UpstreamFailure) -> None:
        if failure.kind not in ("status", "starting"):
            self.metrics.upstream_errors.labels(failure.kind).inc()
        ex.error = failure.code
        ex.status = failure.status
        guard.done = True
        await guard.settle()
        if ex.head_sent and not guard.committed:
            # A large body was being passed through: its head is gone and no error can
            # follow; the connection closes short of the body, which the client sees.
            raise _Abort
        if guard.committed:
            message = failure.message or f"The model engine returned HTTP {failure.status}"
            await self._end_stream(send, sse_error_event(failure.status, message, failure.code))
            return
        body = failure.body or error_body(failure.status, failure.message, failure.code)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ex.request_id),
        ]
        wait = failure.retry_after
        if wait is None and failure.status in (429, 503):
            wait = 1
        if wait is not None:
            headers.append((b"retry-after", str(wait).encode()))
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
        if err.status == 413 or err.close:
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


class DirectRequest:
    """One request ``Gateway.serve_direct`` sent to the engine, while its answer arrives."""

    __slots__ = ("_body", "_conn", "_cycle", "_deadline", "_ex", "_gateway", "_parsed")

    def __init__(
        self,
        gateway: Gateway,
        ex: Exchange,
        cycle: DirectCycle,
        conn: EngineConnection,
        body: bytes,
        parsed: dict[str, Any],
        clock: Clock,
        now: float,
    ) -> None:
        self._gateway = gateway
        self._ex = ex
        self._cycle = cycle
        self._conn = conn
        self._body = body
        self._parsed = parsed
        self._deadline = Deadline(clock, now, gateway.settings, self._expire)
        conn.listener = self._upstream
        cycle.direct = self

    def _upstream(self) -> None:
        """Called after every read from the engine, and when its connection is lost."""
        conn = self._conn
        if not conn.headers_done:
            if conn.lost:
                self._hand_off(
                    cut=UpstreamFailure(
                        "protocol", 502, "The model engine closed the connection",
                        "upstream_error",
                    )
                )  # fmt: skip
            return
        status = conn.status
        if not conn.complete:
            if conn.lost or status >= 400 or conn.buffered > _BUFFER_LIMIT:
                # A broken body, an error, or a body too large to buffer: the task path
                # reads what is buffered and the rest, and relays or reshapes it.
                self._hand_off(opened=conn)
                return
            gateway = self._gateway
            assert gateway._loop is not None
            self._deadline.enter_idle(gateway._loop.time())
            return
        if status >= 400:
            self._hand_off(opened=conn)
            return
        self._deadline.close()
        conn.listener = None
        gateway = self._gateway
        ex = self._ex
        cycle = self._cycle
        cycle.direct = None
        raw = conn.take_body()
        headers = _relay_headers(conn.headers)
        conn.release()
        _json_usage(ex, raw)
        headers.append((b"x-request-id", ex.request_id))
        headers.append((b"content-length", str(len(raw)).encode()))
        ex.status = status
        ex.forwarded = True
        cycle.respond(status, headers, raw)
        gateway._free_slot(ex)
        assert gateway._loop is not None
        gateway._close_request(ex, gateway._loop.time())

    def _expire(self, reason: str) -> None:
        """A deadline ran out, or the drain cut the request: end it as a Guard's would
        (the engine's connection is dropped, so the engine aborts the request)."""
        self._hand_off(cut=_cut_by(reason))

    def client_gone(self) -> None:
        """The client's connection was lost: drop the engine's too."""
        self._hand_off(cut=ClientGone())

    def _hand_off(self, *, opened: Response | None = None, cut: Exception | None = None) -> None:
        self._deadline.close()
        self._conn.listener = None
        if opened is None:
            # Nothing of the engine's answer is used: the connection is dropped.
            self._conn.close()
        cycle = self._cycle
        cycle.direct = None
        cycle.spawn(
            self._gateway._resume(self._ex, cycle, self._body, self._parsed, opened=opened, cut=cut)
        )

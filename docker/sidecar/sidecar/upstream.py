"""A lean HTTP/1.1 client for the engine next door, and an adapter for aiohttp.

The engine is one host on loopback speaking plain HTTP/1.1, and every request through the
sidecar pays for the client. aiohttp's general-purpose request path (cookies, redirects,
tracing, multidicts) costs several times more per request than this whole proxy's own
logic; measured here, a minimal uvicorn + pooled aiohttp proxy reached about 12 % of
nginx's requests per second, below the 20 % the sidecar must reach. So the hot path uses
a pooled asyncio protocol with httptools' response parser (the parser uvicorn already
uses), and aiohttp stays for the rare paths: the external fallback API (TLS, proxies)
and the health and metrics probes.

Both clients present the same small response interface to the proxy.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import httptools

__all__ = [
    "AiohttpResponse",
    "ConnectFailed",
    "EngineConnection",
    "EnginePool",
    "Response",
    "UpstreamBroken",
]

# Pause reading from the engine when this much response is buffered (a slow client).
_HIGH_WATER: Final = 1024 * 1024


class ConnectFailed(Exception):
    """No connection could be made; the request certainly did not reach the engine."""


class UpstreamBroken(Exception):
    """The connection failed after the request was sent, or the response was malformed."""


class Response(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    @property
    def content_type(self) -> bytes: ...

    async def read_chunk(self) -> bytes:
        """The next part of the body (what has arrived), or b"" at the end."""
        ...

    async def read_all(self, limit: int | None = None) -> bytes: ...

    def close(self) -> None:
        """Drop the connection: the engine sees the disconnect and aborts the request."""
        ...

    def release(self) -> None:
        """The body was read to the end; keep the connection for the next request."""
        ...


class EngineConnection(asyncio.Protocol):
    """One keep-alive connection to the engine, and the response currently on it."""

    def __init__(self, pool: EnginePool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self._paused = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._content_type = b""
        self.headers_done = False
        self.complete = False
        self.lost = False
        self._error: str | None = None
        self._keep_alive = True
        # True while a request owns the connection. Bytes that arrive while it sits in the
        # pool, or after its response ended, belong to no request: the connection is
        # dropped, never handed on (a stale answer would reach the next team).
        self.in_use = True
        self._stray = False
        # Called after each read from the engine and when the connection is lost, while a
        # request served by callbacks owns the connection (``Gateway.serve_direct``);
        # requests served by a task wait on ``_waiter`` instead.
        self.listener: Callable[[], None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use or self.complete:
            self._discard("bytes from the engine outside a response")
        else:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self._fail("unexpected upgrade")
            except httptools.HttpParserError:
                self._fail("malformed response")
        # After the parser, never from inside its callbacks: a listener that finishes the
        # request pools the connection, and a stray response later in the same read must
        # still find it marked complete.
        listener = self.listener
        if listener is not None:
            listener()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        listener = self.listener
        if listener is not None:
            listener()

    def pause_writing(self) -> None:
        """Request bodies are bounded (max body size); the kernel buffer absorbs them."""

    def resume_writing(self) -> None:
        """See pause_writing."""

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response in the same read as the first: nobody asked for it.
            self._stray = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._stray:
            return
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._stray:
            return
        self._chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._stray:
            return
        self.complete = True
        self._wake()

    # -- internals -------------------------------------------------------------------

    def _discard(self, reason: str) -> None:
        self._stray = True
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        self._error = reason
        if self.transport is not None:
            self.transport.abort()
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _reset(self) -> None:
        # The parser carries on with the next response on the same connection.
        self.status = 0
        self.headers = []
        self._content_type = b""
        self.headers_done = False
        self.complete = False
        self._chunks.clear()
        self.buffered = 0

    @property
    def usable(self) -> bool:
        return (
            not self.lost
            and not self._stray
            and self.transport is not None
            and not self.transport.is_closing()
        )

    # -- Response --------------------------------------------------------------------

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def take_body(self) -> bytes:
        """Everything buffered of the body (all of it, once ``complete``)."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def start(self, request: bytes) -> None:
        self.send(request)
        while not self.headers_done:
            if self.lost:
                raise UpstreamBroken(self._error or "engine closed the connection")
            await self._wait()

    @property
    def content_type(self) -> bytes:
        if not self._content_type:
            for name, value in self.headers:
                if name.lower() == b"content-type":
                    self._content_type = value.split(b";", 1)[0].strip().lower()
                    break
        return self._content_type

    async def read_chunk(self) -> bytes:
        while True:
            if self._chunks:
                return self.take_body()
            if self.complete:
                return b""
            if self.lost:
                raise UpstreamBroken(self._error or "engine closed the connection mid-response")
            await self._wait()

    async def read_all(self, limit: int | None = None) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()

    def release(self) -> None:
        if self.complete and self._keep_alive and self.usable:
            self._reset()
            self.in_use = False
            self._pool.put(self)
        else:
            self.close()


class EnginePool:
    """Keep-alive connections to one engine, reused most-recent first."""

    def __init__(self, base_url: str, *, connect_timeout: float, idle_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("engine URL must be http(s)://host[:port][/path]")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._base_path = parts.path.rstrip("/").encode()
        self._host_header = parts.netloc.encode()
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._idle: list[EngineConnection] = []
        self.loop = asyncio.get_running_loop()

    def head(self, method: bytes, path: bytes, extra: bytes) -> bytes:
        return b"%s %s%s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method, self._base_path, path, self._host_header, extra,
        )  # fmt: skip

    async def _connect(self) -> EngineConnection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: EngineConnection(self), self._host, self._port, ssl=self._ssl
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(type(exc).__name__) from None
        return protocol

    def take_idle(self) -> EngineConnection | None:
        """The most recently used live connection, now owned by the caller; else None."""
        now = self.loop.time()
        idle = self._idle
        while idle:
            candidate = idle.pop()
            if candidate.usable and now - candidate.idle_since < self._idle_timeout:
                candidate.in_use = True
                return candidate
            candidate.close()
        return None

    def give_back(self, conn: EngineConnection) -> None:
        """Return a connection from ``take_idle`` unused, keeping its idle time."""
        conn.in_use = False
        self._idle.append(conn)

    @staticmethod
    def encode(head: bytes, body: bytes) -> bytes:
        """The request bytes for ``head`` (request line and headers, unterminated)."""
        if body:
            return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        return head + b"\r\n"

    async def request(self, head: bytes, body: bytes) -> EngineConnection:
        """Send ``head`` and ``body`` on a pooled or new connection; await the headers."""
        conn = self.take_idle()
        if conn is None:
            conn = await self._connect()
        try:
            await conn.start(self.encode(head, body))
        except BaseException:
            conn.close()
            raise
        return conn

    def prune(self) -> None:
        """Close connections idle for too long; new ones are taken from the other end."""
        cutoff = self.loop.time() - self._idle_timeout
        idle = self._idle
        while idle and (idle[0].idle_since < cutoff or not idle[0].usable):
            idle.pop(0).close()

    def put(self, conn: EngineConnection) -> None:
        conn.idle_since = self.loop.time()
        self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class AiohttpResponse:
    """The same interface over an aiohttp response (fallback API)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = [(name, value) for name, value in resp.raw_headers]

    @property
    def content_type(self) -> bytes:
        return self._resp.content_type.encode()

    async def read_chunk(self) -> bytes:
        try:
            return await self._resp.content.readany()
        except aiohttp.ClientError as exc:
            raise UpstreamBroken(type(exc).__name__) from None

    async def read_all(self, limit: int | None = None) -> bytes:
        try:
            if limit is not None:
                return await self._resp.content.read(limit)
            return await self._resp.read()
        except aiohttp.ClientError as exc:
            raise UpstreamBroken(type(exc).__name__) from None

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()

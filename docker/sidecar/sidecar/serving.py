"""uvicorn's httptools protocol, with each response head sent together with its body.

ASGI delivers a response as two messages (start, then body) and uvicorn writes each to
the socket as it comes: two send() calls and two TCP segments per response. On loopback a
send() also runs the receiver's TCP processing, so the second one costs about as much as
a third of this proxy's own per-request logic (measured: a bare uvloop server answers
~50 % more requests per second with one write per response than with two). The head is
held until the first body write, or until the connection closes; heads of streamed
(chunked) responses are not held.

uvicorn has no deadline for reading a request head, and its keep-alive timeout starts
only after a first response. Both are added here: a new connection that sends nothing
is closed after the keep-alive timeout, and a request head that has begun must be
complete within ``SIDECAR_HEADER_TIMEOUT`` (the timer is only armed when a head spans
several reads, so a normal request costs nothing). The body's deadline is the gateway's
(``SIDECAR_BODY_TIMEOUT``, answered with 408).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Coroutine
from typing import Any, Final, cast

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from .errors import error_body
from .proxy import DirectRequest, Gateway, Receive, Route, Scope

__all__ = ["SidecarHttpProtocol", "configure"]

# Above this the head goes out alone, rather than copying a large body to join them.
_JOIN_LIMIT: Final = 64 * 1024
# How long a proxied request whose head has arrived may wait for the rest of its body
# before a task takes it over (and reads the body under SIDECAR_BODY_TIMEOUT). Clients
# that write the head and the body separately (httpx, so the OpenAI SDK, does) deliver
# both within microseconds on loopback and within a round trip behind a load balancer.
_BODY_GRACE: Final = 0.02
_HEAD_TIMEOUT_RESPONSE: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_settings: dict[str, float] = {"header_timeout": 10.0}


def configure(*, header_timeout: float) -> None:
    """Set from the app factory, which runs in every worker process before it serves."""
    _settings["header_timeout"] = header_timeout


class _CoalescingTransport:
    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(head + data)
                return
            self._transport.write(head)
        # Only the head of a response with a known length is held back: a stream's head
        # must reach the client at once (it shows the request was accepted, long before
        # the first token), and so must "100 Continue", which the client waits for.
        elif (
            data[:9] == b"HTTP/1.1 "
            and data[9:10] != b"1"
            and b"\r\ntransfer-encoding: chunked\r\n" not in data
        ):
            self._head = data
            return
        self._transport.write(data)

    def close(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    def is_closing(self) -> bool:
        # Asked after every response; spelled out rather than found by __getattr__.
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Signal:
    """A cycle's ``message_event``, without asyncio.Event's cost.

    uvicorn's protocol calls ``set()`` for every body part, at the end of the request and
    at a disconnect, and the cycle's ``receive()`` waits on it; asyncio.Event is a Python
    class that keeps a deque of waiter futures. Here a future exists only while somebody
    waits (a body still arriving, or the disconnect watcher of a long request).
    """

    __slots__ = ("_loop", "_set", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = self._waiter
        if waiter is None or waiter.done():
            # A waiter cancelled with its task leaves a done future behind; never reuse it.
            waiter = self._waiter = self._loop.create_future()
        await waiter
        return True


class _ProxyCycle(RequestResponseCycle):
    """uvicorn's request-response cycle for the proxied routes, at a fraction of its cost.

    Why (measured, docker/sidecar/README.md "Speed"): of the ~95-140 us of CPU a proxied
    JSON request cost, uvicorn's per-request ASGI machinery took ~22-25 us (a fixed
    answer from a trivial ASGI app under uvicorn: 35-43 us/request; the same answer from
    a bare uvloop + httptools protocol: 10-13 us). This class removes the part of it
    that the proxied routes do not need, and nothing else:

    - ``message_event`` is a ``_Signal``, not an asyncio.Event;
    - ``send()`` validates header names and values with uvicorn's own expressions, once
      over all names and once over all values instead of twice per header, and writes a
      response of known length as one ``write()`` (head and body together; what
      ``_CoalescingTransport`` does for uvicorn's own cycles);
    - it calls ``Gateway.proxy`` with the route already resolved.

    Everything else stays uvicorn's: the protocol (httptools parsing and its 400 for
    malformed or smuggled requests, keep-alive and its timeout, pipelining, flow control,
    ``Expect: 100-continue``, shutdown and the task set it drains), ``receive()``, the
    HEAD, 204/304, chunked and Content-Length rules of ``send()`` (the same code paths,
    the same errors), and the handling of an application error in ``run_asgi``.
    """

    # The state every request starts from, as RequestResponseCycle.__init__ sets it;
    # held by the class, so a request writes only what it changes.
    access_log = False
    disconnected = False
    more_body = True
    response_started = False
    response_complete = False
    chunked_encoding: bool | None = None
    expected_content_length = 0
    # The head of a response with a known length, until its first body part.
    _head: bytes | None = None
    # A request the gateway serves by callbacks (Gateway.serve_direct), while it is at
    # the engine; and the coroutine a task goes on with, when it hands over.
    direct: DirectRequest | None = None
    _work: Coroutine[Any, Any, None] | None = None

    def __init__(
        self,
        scope: Any,
        transport: asyncio.Transport,
        flow: FlowControl,
        protocol: SidecarHttpProtocol,
        keep_alive: bool,
        gateway: Gateway,
        route: Route,
    ) -> None:
        # RequestResponseCycle.__init__ is not called: it takes an asyncio.Event and sets
        # the same attributes, which are set here or by the class.
        self.scope = scope
        self.transport = transport
        self.flow = flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.default_headers = protocol.server_state.default_headers
        # Duck-typed: uvicorn only calls set(), clear() and wait() on it.
        self.message_event = cast(asyncio.Event, _Signal(protocol.loop))
        self.on_response = protocol.on_response_complete
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.body = bytearray()
        self._gateway = gateway
        self._route = route
        self._protocol = protocol

    def _flush_head(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    async def run_asgi(self, app: Any) -> None:
        # uvicorn's run_asgi (httptools_impl.py), calling the gateway directly; a held
        # head is sent before the connection is closed, as _CoalescingTransport does.
        work, self._work = self._work, None
        if work is None:
            work = self._gateway.proxy(
                self._route, cast(Scope, self.scope), cast(Receive, self.receive), self.send
            )
        try:
            await work
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self._flush_head()
                self.transport.close()
        else:
            if not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self._flush_head()
                self.transport.close()
        finally:
            self.on_response = lambda: None

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self._start(message["status"], message.get("headers", ()))
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
                )
            self._write_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, "
                "after response already completed."
            )

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response of known length, for a request served by callbacks.

        Writes what ``send()`` writes for a start message and a final body message, and
        does what ``run_asgi`` does when that fails; no flow-control wait (the body is
        at most ``proxy._BUFFER_LIMIT`` and the connection reads nothing meanwhile).
        """
        try:
            if not self.disconnected:
                self._start(status, headers)
                self._write_body(body, False)
        except Exception as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self._flush_head()
            self.transport.close()
        finally:
            # As run_asgi's: nothing after this response reaches the protocol.
            self.on_response = _nothing

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Go on in a task with a request served by callbacks, as uvicorn starts one
        (it joins the task set that shutdown waits for)."""
        self._work = work
        protocol = self._protocol
        protocol._start_asgi_task(self, protocol.app)

    def _start(self, status: int, headers: Any) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        content = [STATUS_LINE[status]]
        for name, value in self.default_headers:
            content += (name, b": ", value, b"\r\n")
        names: list[bytes] = []
        values: list[bytes] = []
        has_connection_close = False
        for name, value in headers:
            names.append(name)
            values.append(value)
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection" and b"close" in [
                token.lower().strip() for token in value.split(b",")
            ]:
                self.keep_alive = False
                has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        # The expressions match single bytes, so one search over the joined names
        # (values) finds exactly what a search per name (value) would.
        if HEADER_RE.search(b"".join(names)):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        head = b"".join(content)
        if self.chunked_encoding:
            # A stream's head leaves at once: it tells the client the request was
            # accepted, long before the first token.
            self.transport.write(head)
        else:
            self._head = head

    def _write_body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        held = self._head
        if held is not None:
            self._head = None
            if len(data) <= _JOIN_LIMIT:
                data = held + data
            else:
                self.transport.write(held)
        if data:
            self.transport.write(data)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


def _nothing() -> None:
    pass


class SidecarHttpProtocol(HttpToolsProtocol):
    _in_head = False
    _head_timer: asyncio.TimerHandle | None = None
    # The gateway, when the proxied routes can take the lean cycle (see _ProxyCycle).
    _gateway: Gateway | None = None
    _raw: asyncio.Transport
    # A proxied request whose head has arrived: offered to Gateway.serve_direct when its
    # body is complete, or started as a task if that takes longer than _BODY_GRACE.
    _pending: _ProxyCycle | None = None
    _pending_timer: asyncio.TimerHandle | None = None
    # When the connection last went idle (its last response complete), or None while a
    # request is arriving or being answered. See timeout_keep_alive_handler.
    _idle_since: float | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        self._raw = transport
        super().connection_made(cast(asyncio.Transport, _CoalescingTransport(transport)))
        app = self.app
        if (
            isinstance(app, Gateway)
            and not self.root_path
            and self.limit_concurrency is None
            and not self.access_log
        ):
            # uvicorn handed the app over unwrapped (no proxy-headers or trace-logging
            # middleware), and none of the options the lean cycle leaves out is on.
            self._gateway = app
        # A connection that never sends a request is treated as an idle keep-alive one.
        self._went_idle()

    # -- keep-alive ------------------------------------------------------------------
    # uvicorn arms a timer after every response and cancels it at the next read: a
    # call_later and a cancel per request (~1.5 us under uvloop, measured). Here a
    # connection keeps at most one timer; reads and responses only note the time, and
    # the timer, when it fires, closes the connection if it has been idle for the whole
    # keep-alive timeout or waits out the rest. The timeout itself is uvicorn's.

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this on every read, at each response and when the connection is
        # lost: the connection is busy (or gone), not idle.
        self._idle_since = None

    def _went_idle(self) -> None:
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # busy: the next response arms it again
        remaining = since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                remaining, self.timeout_keep_alive_handler
            )
        else:
            self.transport.close()

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive noted rather than a timer armed.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._went_idle()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._pending is not None and self._pending_timer is None:
            # The body is still arriving; a task takes the request if it is slow.
            self._pending_timer = self.loop.call_later(_BODY_GRACE, self._start_pending)
        if self._in_head and self._head_timer is None:
            self._head_timer = self.loop.call_later(_settings["header_timeout"], self._head_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        timer, self._head_timer = self._head_timer, None
        if timer is not None:
            timer.cancel()
        gateway = self._gateway
        parser = self.parser
        if gateway is None or parser.should_upgrade():
            super().on_headers_complete()
            return
        # uvicorn's on_headers_complete (httptools_impl.py), up to the cycle it builds:
        # the path is read the same way, and a path that is not a proxied route goes
        # through uvicorn's own code unchanged.
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        route = gateway.route_for(path)
        if route is None:
            super().on_headers_complete()
            return
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = parsed_url.query or b""
        existing_cycle = self.cycle
        self.cycle = cycle = _ProxyCycle(
            scope,
            self._raw,
            self.flow,
            self,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            gateway=gateway,
            route=route,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            if route.kind is not None and not cycle.waiting_for_100_continue:
                # (A client that expects "100 Continue" sends no body until a task's
                # first receive() answers it.)
                self._pending = cycle
            else:
                self._start_asgi_task(cycle, self.app)
        else:
            # Pipelined requests wait for the one before them, as in uvicorn.
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def _start_pending(self) -> None:
        self._pending_timer = None
        cycle, self._pending = self._pending, None
        if cycle is not None:
            self._start_asgi_task(cycle, self.app)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self._pending
        if cycle is not None:
            self._pending = None
            timer, self._pending_timer = self._pending_timer, None
            if timer is not None:
                timer.cancel()
            body = bytes(cycle.body)
            cycle.body.clear()
            gateway = self._gateway
            assert gateway is not None
            if not gateway.serve_direct(cycle._route, cycle, body):
                cycle.body += body
                self._start_asgi_task(cycle, self.app)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            body = error_body(408, "The request head did not arrive in time", "request_timeout")
            self.transport.write(_HEAD_TIMEOUT_RESPONSE % (len(body), body))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        timer, self._head_timer = self._head_timer, None
        if timer is not None:
            timer.cancel()
        keep_alive, self.timeout_keep_alive_task = self.timeout_keep_alive_task, None
        if keep_alive is not None:
            keep_alive.cancel()
        pending = self._pending_timer
        if pending is not None:
            pending.cancel()
            # Lost during its upload: the task sees the disconnect and logs it, as ever.
            self._start_pending()
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(cycle, _ProxyCycle) and cycle.direct is not None:
            cycle.direct.client_gone()

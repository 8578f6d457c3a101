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
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import error_body

__all__ = ["SidecarHttpProtocol", "configure"]

# Above this the head goes out alone, rather than copying a large body to join them.
_JOIN_LIMIT: Final = 64 * 1024
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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class SidecarHttpProtocol(HttpToolsProtocol):
    _in_head = False
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(cast(asyncio.Transport, _CoalescingTransport(transport)))
        # A connection that never sends a request is treated as an idle keep-alive one
        # (data_received cancels this timer, as it does after every response).
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
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
        super().on_headers_complete()

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
        super().connection_lost(exc)

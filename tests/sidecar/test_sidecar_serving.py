"""The lean cycle of the proxied routes (``sidecar.serving._ProxyCycle``).

Two kinds of test: the real sidecar under uvicorn spoken to over raw sockets (pipelining,
smuggling, HTTP/1.0, ``Connection: close``, HEAD, ``Expect: 100-continue``), and the
cycle side by side with uvicorn's own ``RequestResponseCycle``, fed the same ASGI
messages: the bytes on the wire, the errors and the connection handling must be the same,
and a response of known length must leave in one write.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httptools
import pytest
from sidecar.proxy import ROUTES
from sidecar.serving import _ProxyCycle, _Signal
from sidecar_harness import KEY_A, Sidecar
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

MakeSidecar = Callable[..., Sidecar]
BODY = b'{"model": "fake-model", "messages": [{"role": "user", "content": "Hello!"}]}'


def chat_request(request_id: str, *, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/" + version + b"\r\nHost: x\r\n"
        b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
        b"X-Request-Id: " + request_id.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(BODY)
        + BODY
    )  # fmt: skip


class Replies:
    """Responses read off one connection in order, with httptools' response parser."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.done: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False

    def on_message_begin(self) -> None:
        self._current = {"headers": {}, "body": b""}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current["headers"][name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self._current["status"] = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current["body"] += body

    def on_message_complete(self) -> None:
        self.done.append(self._current)

    def read(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.done) < count and time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            self._parser.feed_data(data)
        return self.done


def test_pipelined_requests_are_answered_in_order_across_both_cycles(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as sock:
        # Three requests in one segment: proxied, FastAPI's /health, proxied again.
        sock.sendall(
            chat_request("pipe-1")
            + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + chat_request("pipe-3")
        )
        replies = Replies(sock).read(3)
    assert [reply["status"] for reply in replies] == [200, 200, 200]
    assert replies[0]["headers"]["x-request-id"] == "pipe-1"
    assert json.loads(replies[1]["body"]) == {"status": "ok"}
    assert replies[2]["headers"]["x-request-id"] == "pipe-3"
    for reply in (replies[0], replies[2]):
        assert json.loads(reply["body"])["object"] == "chat.completion"
        assert int(reply["headers"]["content-length"]) == len(reply["body"])
        assert "date" in reply["headers"]


def test_a_smuggling_attempt_is_refused_by_the_parser(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as sock:
        # Content-Length and Transfer-Encoding together: the classic desync.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        replies = Replies(sock)
        done = replies.read(2, timeout=5)
    assert [reply["status"] for reply in done] == [400]
    assert replies.closed


@pytest.mark.parametrize(
    ("version", "extra"),
    [(b"1.0", b""), (b"1.1", b"Connection: close\r\n")],
    ids=["http-1.0", "connection-close"],
)
def test_a_request_without_keep_alive_gets_its_answer_then_the_close(
    sidecar: Sidecar, version: bytes, extra: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as sock:
        sock.sendall(chat_request("no-keepalive", extra=extra, version=version))
        replies = Replies(sock)
        done = replies.read(2, timeout=5)
    assert [reply["status"] for reply in done] == [200]
    assert done[0]["headers"]["connection"] == "close"
    assert json.loads(done[0]["body"])["object"] == "chat.completion"
    assert replies.closed


def test_head_on_a_proxied_route_has_no_body(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as sock:
        sock.sendall(
            b"HEAD /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + KEY_A.encode() + b"\r\n\r\n"
            # The next request proves no stray body bytes were sent after the head.
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + KEY_A.encode() + b"\r\n\r\n"
        )
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            part = sock.recv(65536)
            assert part, data
            data += part
    # httptools cannot be told that a reply answers HEAD, so the bytes are read as sent:
    # the 405's head with its Content-Length, then at once the next reply.
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nallow: POST" in first and b"\r\ncontent-length: " in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["object"] == "list"


def test_expect_100_continue_is_answered_before_the_body(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as sock:
        request = chat_request("expect", extra=b"Expect: 100-continue\r\n")
        head, _, body = request.partition(b"\r\n\r\n")
        sock.sendall(head + b"\r\n\r\n")
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        done = Replies(sock).read(1)
    assert done[0]["status"] == 200
    assert done[0]["headers"]["x-request-id"] == "expect"


# -- the cycle beside uvicorn's ------------------------------------------------------------


class Wire:
    """A transport that records what is written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        """Flow control is not exercised here."""

    def resume_reading(self) -> None:
        """Flow control is not exercised here."""


DATE = [(b"date", b"Wed, 02 Dec 2026 02:00:00 GMT")]
JSON_BODY = b'{"ok":true}'
CASES: dict[str, tuple[str, bool, list[dict[str, Any]]]] = {
    "json": ("POST", True, [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(JSON_BODY)).encode())]},
        {"type": "http.response.body", "body": JSON_BODY, "more_body": False},
    ]),
    "stream": ("POST", True, [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]},
        {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": True},
        {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False},
    ]),
    "large": ("POST", True, [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-length", b"200000")]},
        {"type": "http.response.body", "body": b"x" * 100000, "more_body": True},
        {"type": "http.response.body", "body": b"y" * 100000, "more_body": False},
    ]),
    "head": ("HEAD", True, [
        {"type": "http.response.start", "status": 405,
         "headers": [(b"content-length", b"2"), (b"allow", b"POST")]},
        {"type": "http.response.body", "body": b"no", "more_body": False},
    ]),
    "no-content": ("POST", True, [
        {"type": "http.response.start", "status": 204, "headers": []},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]),
    "close-asked": ("POST", True, [
        {"type": "http.response.start", "status": 413,
         "headers": [(b"content-length", b"2"), (b"Connection", b"close")]},
        {"type": "http.response.body", "body": b"no", "more_body": False},
    ]),
    "http-1.0": ("POST", False, [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]},
        {"type": "http.response.body", "body": b"ok", "more_body": False},
    ]),
    "too-long": ("POST", True, [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]},
        {"type": "http.response.body", "body": b"ok", "more_body": False},
    ]),
    "too-short": ("POST", True, [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]},
        {"type": "http.response.body", "body": b"ok", "more_body": False},
    ]),
    "bad-value": ("POST", True, [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"x-a", b"1\r\nset-cookie: stolen=1"), (b"content-length", b"0")]},
    ]),
    "bad-name": ("POST", True, [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"x a", b"1"), (b"content-length", b"0")]},
    ]),
    "body-first": ("POST", True, [
        {"type": "http.response.body", "body": b"ok", "more_body": False},
    ]),
    "after-the-end": ("POST", True, [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]},
        {"type": "http.response.body", "body": b"", "more_body": False},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]),
}  # fmt: skip


def _play(cycle: Any, messages: list[dict[str, Any]]) -> str | None:
    async def run() -> str | None:
        try:
            for message in messages:
                await cycle.send(message)
        except RuntimeError as exc:
            return str(exc)
        return None

    return asyncio.run(run())


def _uvicorn_cycle(method: str, keep_alive: bool, wire: Wire, done: list[int]) -> Any:
    return RequestResponseCycle(
        scope={"type": "http", "method": method},  # type: ignore[typeddict-item]
        transport=wire,  # type: ignore[arg-type]
        flow=FlowControl(wire),  # type: ignore[arg-type]
        logger=None,  # type: ignore[arg-type]
        access_logger=None,  # type: ignore[arg-type]
        access_log=False,
        default_headers=DATE,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: done.append(1),
    )


def _lean_cycle(method: str, keep_alive: bool, wire: Wire, done: list[int]) -> Any:
    protocol = SimpleNamespace(
        logger=None,
        access_logger=None,
        server_state=SimpleNamespace(default_headers=DATE),
        loop=None,
        on_response_complete=lambda: done.append(1),
        expect_100_continue=False,
    )
    return _ProxyCycle(
        {"type": "http", "method": method},
        wire,  # type: ignore[arg-type]
        FlowControl(wire),  # type: ignore[arg-type]
        protocol,  # type: ignore[arg-type]
        keep_alive=keep_alive,
        gateway=None,  # type: ignore[arg-type]
        route=ROUTES["/v1/chat/completions"],
    )


@pytest.mark.parametrize("case", list(CASES))
def test_the_lean_cycle_writes_what_uvicorns_cycle_writes(case: str) -> None:
    method, keep_alive, messages = CASES[case]
    results = []
    for make in (_uvicorn_cycle, _lean_cycle):
        wire = Wire()
        done: list[int] = []
        cycle = make(method, keep_alive, wire, done)
        error = _play(cycle, messages)
        if error is not None and not cycle.response_complete and make is _lean_cycle:
            # run_asgi closes a connection whose response was left unfinished; the lean
            # cycle first sends a head it was holding, so the bytes end up the same.
            cycle._flush_head()
        results.append(
            (
                b"".join(wire.writes),
                error,
                wire.closed,
                cycle.response_complete,
                cycle.keep_alive,
                len(done),
            )
        )
        if case in ("json", "head", "http-1.0", "close-asked") and make is _lean_cycle:
            # Head and body of a response of known length leave in one write.
            assert len(wire.writes) == 1, wire.writes
    assert results[0] == results[1]
    if case in ("bad-value", "bad-name"):
        assert results[1][0] == b""  # nothing of a refused head reaches the wire


def test_signal_survives_a_cancelled_waiter() -> None:
    async def run() -> None:
        signal = _Signal(asyncio.get_running_loop())
        waiter = asyncio.ensure_future(signal.wait())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # A new wait after the cancelled one still wakes on set().
        again = asyncio.ensure_future(signal.wait())
        await asyncio.sleep(0)
        assert not again.done()
        signal.set()
        assert await asyncio.wait_for(again, 1) is True
        # Set: wait() returns at once; cleared: it waits again.
        assert await signal.wait() is True
        signal.clear()
        assert not signal.is_set()
        pending = asyncio.ensure_future(signal.wait())
        await asyncio.sleep(0)
        assert not pending.done()
        signal.set()
        await asyncio.wait_for(pending, 1)

    asyncio.run(run())


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"application/json"), (b"x-request-id", b"abc")],
        [(b"content-type", b"application/json"), (b"connection", b"close")],
        [(b"x-bad", b"a\r\nb")],
    ],
    ids=["json", "close-asked", "bad-value"],
)
def test_respond_writes_what_send_writes(
    keep_alive: bool, headers: list[tuple[bytes, bytes]]
) -> None:
    """``respond()`` (requests served by callbacks) against uvicorn's own cycle given the
    same response as two ASGI messages: the same bytes, closing and completion."""
    full = [*headers, (b"content-length", str(len(JSON_BODY)).encode())]
    messages = [
        {"type": "http.response.start", "status": 200, "headers": full},
        {"type": "http.response.body", "body": JSON_BODY, "more_body": False},
    ]
    wire = Wire()
    done: list[int] = []
    reference = _uvicorn_cycle("POST", keep_alive, wire, done)
    error = _play(reference, messages)
    expected = (b"".join(wire.writes), wire.closed, reference.response_complete, len(done))

    wire = Wire()
    done = []
    cycle = _lean_cycle("POST", keep_alive, wire, done)
    cycle.logger = SimpleNamespace(error=lambda *args, **kwargs: None)
    cycle.respond(200, full, JSON_BODY)
    if error is not None:
        # run_asgi closes the connection of a response that failed; respond() does too.
        expected = (expected[0], True, expected[2], expected[3])
    assert (b"".join(wire.writes), wire.closed, cycle.response_complete, len(done)) == expected
    assert len(wire.writes) <= 1  # head and body in one write
    cycle.on_response()  # told once: a late call reaches nobody
    assert len(done) == expected[3]

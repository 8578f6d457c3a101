"""Requests served by callbacks (``Gateway.serve_direct``), and every way they hand over.

A non-streamed request whose engine is ready and has an idle pooled connection is served
without a task; anything else that happens once it is at the engine hands it to a task
that goes on from there. These tests run ``spy_sidecar.py`` (``python -m sidecar`` with a
record of which path served each request) against the scripted engine, warm the pool
with one request first (a request on an empty pool takes the task path), and check the
outcome is the one a task-served request gets: status, OpenAI-shaped error, retries,
log line, and the engine told when the request is dropped.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from sidecar_harness import HELLO, KEY_A, Sidecar, Upstream, fault

MakeSidecar = Callable[..., Sidecar]


def rid(prefix: str = "direct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def started(make_sidecar: MakeSidecar, **env: str) -> Sidecar:
    """A spied sidecar with one pooled engine connection."""
    proc = make_sidecar(spy=True, **env)
    proc.client().chat.completions.create(model="fake-model", messages=HELLO)
    return proc


def spied(proc: Sidecar, request_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The spy's records of a request, once its log line is out."""
    proc.request_log(request_id, timeout=timeout)
    return [{k: v for k, v in line.items() if k != "request_id"} for line in proc.spied(request_id)]


def post(proc: Sidecar, request_id: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{proc.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
        **kwargs,
    )


def test_a_json_request_is_served_without_a_task(make_sidecar: MakeSidecar) -> None:
    proc = started(make_sidecar)
    request_id = rid()
    resp = post(proc, request_id, {"model": "fake-model", "messages": fault("hop_headers")})
    assert resp.status_code == 200
    assert resp.json()["id"] == f"cmpl-{request_id}"
    assert resp.headers["x-request-id"] == request_id
    assert resp.headers["x-engine"] == "fake"  # the engine's own headers pass
    assert "keep-alive" not in resp.headers  # hop-by-hop ones do not
    assert spied(proc, request_id) == [{"msg": "spy", "direct": True}]
    line = proc.request_log(request_id)
    assert line["status"] == 200 and line["team"] == "alpha"
    assert line["usage"] == "reported" and line["completion_tokens"] == 16
    assert "error" not in line


@pytest.mark.parametrize(
    ("spec", "env", "status", "code", "handed"),
    [
        # Retried by the task, as a first answer of 503 always is.
        ("status=503 times=1", {}, 200, None, {"resume": "opened", "status": 503}),
        # vLLM's nested error, relayed with its integer code.
        ("status=500", {}, 500, 500, {"resume": "opened", "status": 500}),
        ("close", {}, 502, "upstream_error", {"resume": "UpstreamFailure"}),
        (
            "hang",
            {"SIDECAR_FIRST_BYTE_TIMEOUT": "1"},
            504,
            "upstream_first_byte_timeout",
            {"resume": "UpstreamFailure", "code": "upstream_first_byte_timeout"},
        ),
        # Larger than the sidecar buffers: passed through as it arrives.
        ("big=2", {}, 200, None, {"resume": "opened", "status": 200}),
    ],
    ids=["retryable-status", "engine-error", "engine-closes", "first-byte-timeout", "large-body"],
)
def test_what_a_direct_request_cannot_finish_goes_on_in_a_task(
    make_sidecar: MakeSidecar,
    upstream: Upstream,
    spec: str,
    env: dict[str, str],
    status: int,
    code: str | int | None,
    handed: dict[str, Any],
) -> None:
    proc = started(make_sidecar, **env)
    request_id = rid()
    resp = post(proc, request_id, {"model": "fake-model", "messages": fault(spec)}, timeout=20)
    assert resp.status_code == status, resp.text
    if code is not None:
        assert resp.json()["error"]["code"] == code
    records = spied(proc, request_id)
    assert records[0] == {"msg": "spy", "direct": True}
    assert len(records) == 2, records
    assert all(records[1].get(k) == v for k, v in handed.items()), records
    line = proc.request_log(request_id)
    assert line["status"] == status
    if spec.startswith("status=503"):
        assert line["retries"] == 1
    if spec == "big=2":
        assert len(resp.content) == 2 * 1024 * 1024
        assert resp.json()["id"] == f"cmpl-{request_id}"
        assert line["usage"] == "reported"
    if spec == "hang":
        upstream.wait_event(request_id, "disconnect", timeout=5)


def test_a_client_leaving_a_direct_request_frees_the_engine(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = started(make_sidecar)
    request_id = rid()
    with pytest.raises(httpx.ReadTimeout):
        post(
            proc,
            request_id,
            {"model": "fake-model", "messages": fault("hang")},
            timeout=httpx.Timeout(5, read=0.5),
        )
    left_at = time.time()
    event = upstream.wait_event(request_id, "disconnect", timeout=5)
    assert event["t"] - left_at < 3.0
    assert spied(proc, request_id) == [
        {"msg": "spy", "direct": True},
        {"msg": "spy", "resume": "ClientGone", "code": None, "status": None},
    ]
    line = proc.request_log(request_id)
    assert line["status"] == 499 and line["error"] == "client_disconnected"


def _sigterm_during(
    proc: Sidecar, upstream: Upstream, request_id: str, spec: str
) -> tuple[httpx.Response, int]:
    """SIGTERM once the engine has the request; its answer and the exit status."""
    result: dict[str, httpx.Response] = {}

    def run() -> None:
        body = {"model": "fake-model", "messages": fault(spec)}
        result["resp"] = post(proc, request_id, body, timeout=30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    upstream.wait_event(request_id, "start")
    proc.popen.send_signal(signal.SIGTERM)
    thread.join(timeout=15)
    return result["resp"], proc.popen.wait(timeout=15)


def test_the_drain_budget_cuts_a_direct_request_with_503(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = started(make_sidecar, SIDECAR_DRAIN_SECONDS="1")
    request_id = rid()
    resp, _ = _sigterm_during(proc, upstream, request_id, "hang")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "server_shutting_down"
    assert resp.headers["retry-after"] == "1"
    assert spied(proc, request_id)[1]["code"] == "server_shutting_down"
    upstream.wait_event(request_id, "disconnect", timeout=5)


def _raw_request(request_id: str, body: bytes) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
        b"X-Request-Id: " + request_id.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )


class _Reader:
    """Responses read one at a time from a socket (a read may hold the next one too)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _more(self) -> None:
        part = self._sock.recv(65536)
        assert part, self._buffer
        self._buffer += part

    def response(self) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in self._buffer:
            self._more()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(self._buffer) < length:
            self._more()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return head, body


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response, on a socket that has no other in flight."""
    return _Reader(sock).response()


def test_a_body_that_arrives_after_its_head_is_served_either_way(
    make_sidecar: MakeSidecar,
) -> None:
    """A body in the head's read, or a read after it (as httpx writes), goes direct; one
    that arrives later than the grace goes to a task, which reads it under its deadline."""
    proc = started(make_sidecar)
    body = json.dumps({"model": "fake-model", "messages": HELLO}).encode()
    ids = {"together": rid("together"), "next-read": rid("next"), "late": rid("late")}
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_raw_request(ids["together"], body) + body)
        assert _read_response(sock)[0].startswith(b"HTTP/1.1 200")
        sock.sendall(_raw_request(ids["next-read"], body))
        time.sleep(0.002)
        sock.sendall(body)
        assert _read_response(sock)[0].startswith(b"HTTP/1.1 200")
        sock.sendall(_raw_request(ids["late"], body) + body[:10])
        time.sleep(0.2)
        sock.sendall(body[10:])
        head, answer = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(answer)["id"] == f"cmpl-{ids['late']}"
    assert spied(proc, ids["together"]) == [{"msg": "spy", "direct": True}]
    assert spied(proc, ids["late"]) == []  # never offered to the callback path
    assert proc.request_log(ids["late"])["status"] == 200


def test_a_busy_connection_outlives_the_keepalive_timeout_and_an_idle_one_does_not(
    make_sidecar: MakeSidecar,
) -> None:
    proc = started(make_sidecar, SIDECAR_HTTP_KEEPALIVE_SECONDS="1")
    body = json.dumps({"model": "fake-model", "messages": HELLO}).encode()
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        opened = time.monotonic()
        while time.monotonic() - opened < 2.5:
            sock.sendall(_raw_request(rid("busy"), body) + body)
            assert _read_response(sock)[0].startswith(b"HTTP/1.1 200")
            time.sleep(0.4)
        last = time.monotonic()
        assert sock.recv(1) == b""  # closed once idle for the whole timeout
        idle = time.monotonic() - last
    assert 0.5 <= idle <= 2.5, idle


class _StrayEngine:
    """An engine that writes an unrequested second answer in the same write as the first,
    for requests whose id starts with "stray": it reaches the sidecar in the same read."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(request_id: str) -> bytes:
        body = json.dumps(
            {"id": f"cmpl-{request_id}", "object": "chat.completion", "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        ).encode()  # fmt: skip
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + (
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    part = conn.recv(65536)
                    if not part:
                        return
                    data += part
                head, _, data = data.partition(b"\r\n\r\n")
                fields = dict(
                    line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
                )
                length = int(fields.get(b"Content-Length", b"0"))
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                if head.startswith(b"GET /health"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    continue
                request_id = fields.get(b"X-Request-Id", b"-").decode()
                answer = self._answer(request_id)
                if request_id.startswith("stray"):
                    answer += self._answer("stale-" + request_id)
                conn.sendall(answer)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def stray_engine() -> Iterator[_StrayEngine]:
    engine = _StrayEngine()
    yield engine
    engine.close()


def test_an_unrequested_answer_in_the_same_read_never_reaches_the_next_request(
    make_sidecar: MakeSidecar, stray_engine: _StrayEngine
) -> None:
    proc = make_sidecar(f"http://127.0.0.1:{stray_engine.port}", spy=True)
    client = proc.client()
    client.chat.completions.create(model="m", messages=HELLO)  # pools a connection
    stray = rid("stray")
    answer = client.chat.completions.create(
        model="m", messages=HELLO, extra_headers={"X-Request-Id": stray}
    )
    assert answer.id == f"cmpl-{stray}"
    assert spied(proc, stray) == [{"msg": "spy", "direct": True}]
    for _ in range(3):
        request_id = rid("next")
        try:
            answer = client.chat.completions.create(
                model="m", messages=HELLO, extra_headers={"X-Request-Id": request_id}
            )
        except openai.APIStatusError as err:  # pragma: no cover - shown on failure
            raise AssertionError(err.response.text) from err
        assert answer.id == f"cmpl-{request_id}"


def test_pipelined_requests_are_answered_in_order(make_sidecar: MakeSidecar) -> None:
    """The first goes direct; the one behind it waits for it, then takes the task path."""
    proc = started(make_sidecar)
    body = json.dumps({"model": "fake-model", "messages": HELLO}).encode()
    first, second = rid("first"), rid("second")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(_raw_request(first, body) + body + _raw_request(second, body) + body)
        reader = _Reader(sock)
        for request_id in (first, second):
            head, answer = reader.response()
            assert head.startswith(b"HTTP/1.1 200")
            assert json.loads(answer)["id"] == f"cmpl-{request_id}"
    assert spied(proc, first) == [{"msg": "spy", "direct": True}]
    assert spied(proc, second) == []  # it waited behind the first, then took a task


def test_the_drain_waits_for_a_direct_request_to_finish(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = started(make_sidecar, SIDECAR_DRAIN_SECONDS="10")
    request_id = rid()
    resp, status = _sigterm_during(proc, upstream, request_id, "slow_first=1")
    # uvicorn raises the SIGTERM it captured again once it has shut down (README).
    assert status == -signal.SIGTERM
    assert resp.status_code == 200
    assert resp.json()["id"] == f"cmpl-{request_id}"
    assert spied(proc, request_id) == [{"msg": "spy", "direct": True}]


def test_a_stream_is_checked_once_and_relayed_by_a_task(make_sidecar: MakeSidecar) -> None:
    """serve_direct takes a stream that authenticates and parses, and hands it straight to
    a task; a stream it cannot admit is left to the task path's own checks."""
    proc = started(make_sidecar, SIDECAR_RPM="3")
    client = proc.client()
    request_id = rid("stream")
    chunks = list(
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Request-Id": request_id},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    assert spied(proc, request_id) == [{"msg": "spy", "direct": True}]
    line = proc.request_log(request_id)
    assert line["status"] == 200 and line["stream"] is True and line["usage"] == "reported"
    # The third request of the minute (warm-up, stream, this) is the last one allowed.
    client.chat.completions.create(model="fake-model", messages=HELLO, stream=True)
    refused = rid("refused")
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True,
            extra_headers={"X-Request-Id": refused},
        )  # fmt: skip
    assert err.value.response.headers["x-request-id"] == refused
    assert proc.request_log(refused)["error"] == "rate_limit_exceeded"


def test_a_body_above_the_read_high_water_mark_is_served(make_sidecar: MakeSidecar) -> None:
    """uvicorn stops reading a request past 64 KiB of body until someone receives it; a
    request waiting for serve_direct is handed to a task, whose receive() reads on."""
    proc = started(make_sidecar)
    request_id = rid("large")
    messages = [{"role": "user", "content": "x" * (600 * 1024)}]
    resp = post(proc, request_id, {"model": "fake-model", "messages": messages}, timeout=20)
    assert resp.status_code == 200
    assert resp.json()["id"] == f"cmpl-{request_id}"
    assert proc.request_log(request_id)["status"] == 200


def test_a_request_with_no_idle_engine_connection_goes_on_in_a_task(
    make_sidecar: MakeSidecar,
) -> None:
    """The pool is empty at start: the checked request is handed to a task, which
    connects, rather than refused by serve_direct and checked again."""
    proc = make_sidecar(spy=True)
    request_id = rid("first")
    resp = post(proc, request_id, {"model": "fake-model", "messages": HELLO}, timeout=20)
    assert resp.status_code == 200
    assert resp.json()["id"] == f"cmpl-{request_id}"
    assert spied(proc, request_id) == [{"msg": "spy", "direct": True}]
    assert proc.request_log(request_id)["usage"] == "reported"

"""Bad input: 400/413 in OpenAI's shape, never a 5xx, never echoed, never sent to the engine."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sidecar_harness import KEY_A, Sidecar, Upstream, make_sidecar, upstream

__all__ = ["make_sidecar", "upstream"]

PROMPT = "confidential-prompt-text-42"


@pytest.fixture(scope="module")
def small(upstream: Upstream) -> Iterator[Sidecar]:
    proc = Sidecar(upstream.url, SIDECAR_MAX_BODY_BYTES="4096")
    yield proc
    proc.stop()


def post(proc: Sidecar, path: str, content: bytes, **headers: str) -> tuple[httpx.Response, str]:
    request_id = f"bad-{uuid.uuid4().hex[:12]}"
    resp = httpx.post(
        f"{proc.url}{path}",
        content=content,
        headers={
            "Authorization": f"Bearer {KEY_A}",
            "Content-Type": "application/json",
            "X-Request-Id": request_id,
            **headers,
        },
        timeout=10,
    )
    return resp, request_id


def chat(**fields: Any) -> bytes:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": PROMPT}], **fields}
    return json.dumps(body).encode()


# What the gateway itself refuses: bodies it cannot read as a JSON object. Everything
# else is vLLM's to judge (test_sidecar_conformance.py).
CASES = [
    ("/v1/chat/completions", b'{"model": "fake-model", "messages": [' + PROMPT.encode()),
    ("/v1/chat/completions", b""),
    ("/v1/chat/completions", b'["' + PROMPT.encode() + b'"]'),
    ("/v1/completions", b'"' + PROMPT.encode() + b'"'),
    ("/v1/embeddings", b"\xff\xfe" + PROMPT.encode()),
]


@pytest.mark.parametrize(("path", "content"), CASES)
def test_a_body_that_is_not_a_json_object_is_400_and_never_reaches_the_engine(
    small: Sidecar, upstream: Upstream, path: str, content: bytes
) -> None:
    resp, request_id = post(small, path, content)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"
    assert PROMPT not in resp.text
    assert upstream.events(request_id) == []


# Requests the gateway used to refuse although vLLM 0.31 serves them (issue 12, item 7):
# now forwarded. The engine's own verdict comes back unchanged.
FORMERLY_REFUSED = [
    chat(messages=[{"role": "ipython", "content": PROMPT}]),
    chat(messages=[{"role": "user", "content": [PROMPT]}]),
    chat(stop=[f"s{i}" for i in range(65)]),
    chat(repetition_penalty=12.0),
    chat(n=1000),
    json.dumps({"messages": [{"role": "user", "content": PROMPT}]}).encode(),
]


@pytest.mark.parametrize("content", FORMERLY_REFUSED)
def test_requests_the_gateway_used_to_refuse_reach_the_engine(
    small: Sidecar, upstream: Upstream, content: bytes
) -> None:
    resp, request_id = post(small, "/v1/chat/completions", content)
    assert resp.status_code == 200, resp.text
    assert upstream.events(request_id)[0]["size"] == len(content)


def test_body_over_the_limit_is_413(small: Sidecar, upstream: Upstream) -> None:
    resp, request_id = post(small, "/v1/chat/completions", chat(messages=[
        {"role": "user", "content": "x" * 5000}
    ]))  # fmt: skip
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    assert upstream.events(request_id) == []


def test_chunked_body_over_the_limit_is_413(small: Sidecar, upstream: Upstream) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}]}'

    request_id = f"chunked-{uuid.uuid4().hex[:12]}"
    resp = httpx.post(
        f"{small.url}/v1/chat/completions",
        content=pieces(),
        headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
        timeout=10,
    )
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413
    assert upstream.events(request_id) == []


def test_declared_length_over_the_limit_is_refused_before_reading(small: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in reply.lower()


def test_a_small_body_is_still_accepted(small: Sidecar) -> None:
    resp, _ = post(small, "/v1/chat/completions", chat(max_tokens=5, temperature=0.2))
    assert resp.status_code == 200

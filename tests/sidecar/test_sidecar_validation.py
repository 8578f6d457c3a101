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


CASES = [
    ("/v1/chat/completions", b'{"model": "fake-model", "messages": [' + PROMPT.encode(), None),
    ("/v1/chat/completions", b"", None),
    ("/v1/chat/completions", b'["' + PROMPT.encode() + b'"]', None),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "user"}]}).encode(), "model"),
    ("/v1/chat/completions", json.dumps({"model": "fake-model"}).encode(), "messages"),
    ("/v1/chat/completions", chat(messages=[]), "messages"),
    ("/v1/chat/completions", chat(messages=PROMPT), "messages"),
    ("/v1/chat/completions", chat(messages=[{"role": "wizard", "content": PROMPT}]), None),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": 42}]), None),
    ("/v1/chat/completions", chat(model=7), "model"),
    ("/v1/chat/completions", chat(stream="yes"), "stream"),
    ("/v1/chat/completions", chat(max_tokens=0), "max_tokens"),
    ("/v1/chat/completions", chat(max_tokens="12"), "max_tokens"),
    ("/v1/chat/completions", chat(max_tokens=2**40), "max_tokens"),
    ("/v1/chat/completions", chat(temperature=2.5), "temperature"),
    ("/v1/chat/completions", chat(temperature=True), "temperature"),
    ("/v1/chat/completions", chat(top_p=0), "top_p"),
    ("/v1/chat/completions", chat(n=1000), "n"),
    ("/v1/chat/completions", chat(presence_penalty=-3), "presence_penalty"),
    ("/v1/chat/completions", chat(top_logprobs=99), "top_logprobs"),
    ("/v1/chat/completions", chat(stop=[PROMPT, 3]), "stop"),
    ("/v1/chat/completions", chat(stream_options={"include_usage": True}), "stream_options"),
    ("/v1/chat/completions", chat(seed=2**70), "seed"),
    ("/v1/completions", json.dumps({"model": "fake-model"}).encode(), "prompt"),
    ("/v1/completions", json.dumps({"model": "fake-model", "prompt": [PROMPT, 1]}).encode(), None),
    (
        "/v1/completions",
        json.dumps({"model": "fake-model", "prompt": PROMPT, "n": 3, "best_of": 2}).encode(),
        "best_of",
    ),
    ("/v1/embeddings", json.dumps({"model": "fake-model", "input": []}).encode(), "input"),
    (
        "/v1/embeddings",
        json.dumps({"model": "fake-model", "input": PROMPT, "encoding_format": "hex"}).encode(),
        "encoding_format",
    ),
]


@pytest.mark.parametrize(("path", "content", "param"), CASES)
def test_bad_input_is_400_and_never_reaches_the_engine(
    small: Sidecar, upstream: Upstream, path: str, content: bytes, param: str | None
) -> None:
    resp, request_id = post(small, path, content)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert PROMPT not in resp.text
    assert upstream.events(request_id) == []


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

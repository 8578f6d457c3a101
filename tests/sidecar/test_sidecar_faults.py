"""Engine faults, timeouts, retries, disconnects, keep-alives and the fallback API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from sidecar_harness import HELLO, KEY_A, Sidecar, Upstream, fault, free_port

MakeSidecar = Callable[..., Sidecar]


def rid() -> str:
    return f"fault-{uuid.uuid4().hex[:12]}"


def starts(upstream: Upstream, request_id: str) -> int:
    return sum(1 for event in upstream.events(request_id) if event["event"] == "start")


def test_engine_down_answers_503_quickly(make_sidecar: MakeSidecar) -> None:
    # An engine that never answered since the sidecar started is one that is starting:
    # the answer comes at once, with Retry-After from the start estimate.
    proc = make_sidecar(f"http://127.0.0.1:{free_port()}", SIDECAR_ENGINE_START_SECONDS="30")
    began = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        proc.client().chat.completions.create(model="fake-model", messages=HELLO)
    # The bound: "within a second or two" (retries included).
    assert time.monotonic() - began < 2.0
    assert err.value.status_code == 503
    assert err.value.response.json()["error"]["code"] == "engine_starting"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 30


def test_retries_a_503_before_the_first_byte(sidecar: Sidecar, upstream: Upstream) -> None:
    request_id = rid()
    result = sidecar.client().chat.completions.create(
        model="fake-model",
        messages=fault("status=503 times=1"),
        extra_headers={"X-Request-Id": request_id},
    )
    assert result.choices[0].message.content
    assert starts(upstream, request_id) == 2
    assert sidecar.request_log(request_id)["retries"] == 1


def test_retries_are_bounded_and_honour_429(sidecar: Sidecar, upstream: Upstream) -> None:
    request_id = rid()
    with pytest.raises(openai.RateLimitError) as err:
        sidecar.client().chat.completions.create(
            model="fake-model",
            messages=fault("status=429 retry_after=0.1"),
            extra_headers={"X-Request-Id": request_id},
        )
    assert err.value.status_code == 429
    assert "retry-after" in err.value.response.headers
    assert starts(upstream, request_id) == 3


def test_a_500_is_not_retried_and_keeps_openai_shape(sidecar: Sidecar, upstream: Upstream) -> None:
    request_id = rid()
    with pytest.raises(openai.InternalServerError) as err:
        sidecar.client().chat.completions.create(
            model="fake-model",
            messages=fault("status=500"),
            extra_headers={"X-Request-Id": request_id},
        )
    assert err.value.status_code == 500
    assert set(err.value.response.json()["error"]) == {"message", "type", "code", "param"}
    assert starts(upstream, request_id) == 1


def test_engine_closing_the_connection_is_502(sidecar: Sidecar) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        sidecar.client().chat.completions.create(model="fake-model", messages=fault("close"))
    assert err.value.status_code == 502
    assert err.value.response.json()["error"]["type"] == "upstream_error"


def test_stream_broken_mid_way_ends_with_an_error_event(sidecar: Sidecar) -> None:
    stream = sidecar.client().chat.completions.create(
        model="fake-model", messages=fault("close_mid=3 delay=0.02"), stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["tok0 ", "tok1 ", "tok2 "]
    assert "closed the stream" in str(err.value)


def _disconnect_then_check(
    sidecar: Sidecar, upstream: Upstream, body: dict[str, Any], read_chunks: int
) -> None:
    request_id = rid()
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{sidecar.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
        ) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        seen = 0
        while seen < read_chunks:
            if next(lines).startswith("data:"):
                seen += 1
        upstream.wait_event(request_id, "start")
        left_at = time.time()
    # The client is gone; the engine must see its request closed (KV cache freed). The
    # issue asks for "within a second"; a few seconds bounds a busy test machine.
    event = upstream.wait_event(request_id, "disconnect", timeout=5)
    assert event["t"] - left_at < 3.0
    assert sidecar.request_log(request_id)["status"] == 499


def test_client_leaving_before_the_first_token_frees_the_engine(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    body = {"model": "fake-model", "messages": fault("slow_first=30"), "stream": True}
    _disconnect_then_check(sidecar, upstream, body, read_chunks=0)


def test_client_leaving_mid_stream_frees_the_engine(sidecar: Sidecar, upstream: Upstream) -> None:
    body = {"model": "fake-model", "messages": fault("chunks=500 delay=0.05"), "stream": True}
    _disconnect_then_check(sidecar, upstream, body, read_chunks=3)


def test_client_leaving_a_non_streaming_call_frees_the_engine(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    request_id = rid()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{sidecar.url}/v1/chat/completions",
            json={"model": "fake-model", "messages": fault("hang")},
            headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
            timeout=httpx.Timeout(5, read=0.5),
        )
    left_at = time.time()
    event = upstream.wait_event(request_id, "disconnect", timeout=5)
    assert event["t"] - left_at < 3.0


def test_first_byte_timeout_is_504_and_closes_upstream(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = make_sidecar(SIDECAR_FIRST_BYTE_TIMEOUT="1", SIDECAR_TOTAL_TIMEOUT="5")
    request_id = rid()
    with pytest.raises(openai.APIStatusError) as err:
        proc.client().chat.completions.create(
            model="fake-model", messages=fault("hang"), extra_headers={"X-Request-Id": request_id}
        )
    assert err.value.status_code == 504
    assert err.value.response.json()["error"]["code"] == "upstream_first_byte_timeout"
    upstream.wait_event(request_id, "disconnect", timeout=5)


def test_idle_and_total_timeouts_end_a_stream_with_an_error_event(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar(
        SIDECAR_IDLE_TIMEOUT="0.5", SIDECAR_FIRST_BYTE_TIMEOUT="10", SIDECAR_TOTAL_TIMEOUT="30"
    )
    stream = proc.client().chat.completions.create(
        model="fake-model", messages=fault("chunks=3 delay=2"), stream=True
    )
    with pytest.raises(openai.APIError, match="idle timeout"):
        for _ in stream:
            pass
    total = make_sidecar(SIDECAR_FIRST_BYTE_TIMEOUT="1", SIDECAR_TOTAL_TIMEOUT="1.5")
    received = 0
    with pytest.raises(openai.APIError, match="total timeout"):
        for _ in total.client().chat.completions.create(
            model="fake-model", messages=fault("chunks=100 delay=0.1"), stream=True
        ):
            received += 1
    assert 3 <= received < 100


def test_keepalive_comments_while_the_first_token_is_slow(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_KEEPALIVE_SECONDS="0.2")
    for spec in ("slow_first=1.2 chunks=2", "slow_headers=1.2 chunks=2"):
        with httpx.stream(
            "POST",
            f"{proc.url}/v1/chat/completions",
            json={"model": "fake-model", "messages": fault(spec), "stream": True},
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=10,
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in resp.iter_lines() if line]
        first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
        assert first_data >= 2, lines
        assert all(line == ": keep-alive" for line in lines[:first_data])
        assert lines[-1] == "data: [DONE]"
    # The SDK ignores the comments.
    chunks = list(
        proc.client().chat.completions.create(
            model="fake-model", messages=fault("slow_first=0.7 chunks=2"), stream=True
        )
    )
    assert [c.choices[0].delta.content for c in chunks] == ["tok0 ", "tok1 "]


def test_error_after_keepalives_arrives_as_an_error_event(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_KEEPALIVE_SECONDS="0.2", SIDECAR_FIRST_BYTE_TIMEOUT="1")
    with pytest.raises(openai.APIError, match="first_byte timeout"):
        for _ in proc.client().chat.completions.create(
            model="fake-model", messages=fault("slow_first=30"), stream=True
        ):
            pass


@pytest.fixture
def fallback(make_sidecar: MakeSidecar) -> Any:
    fb = Upstream()
    fb.control(models=["external-model"])
    yield fb
    fb.stop()


def test_fallback_serves_when_the_engine_is_down(
    make_sidecar: MakeSidecar, fallback: Upstream
) -> None:
    proc = make_sidecar(
        f"http://127.0.0.1:{free_port()}",
        SIDECAR_FALLBACK_URL=f"{fallback.url}/v1",
        SIDECAR_FALLBACK_API_KEY="sk-fallback-key-123",
        SIDECAR_FALLBACK_MODEL="external-model",
    )
    request_id = rid()
    raw = proc.client().chat.completions.with_raw_response.create(
        model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-modelfleet-fallback"] == "1"
    seen = fallback.wait_event(request_id, "start")
    assert seen["headers"]["authorization"] == "Bearer sk-fallback-key-123"
    assert seen["model"] == "external-model"
    assert sidecar_log(proc, request_id)["fallback"] is True
    stream = proc.client().chat.completions.create(model="fake-model", messages=HELLO, stream=True)
    assert len([chunk for chunk in stream]) == 16
    # Embeddings from another model are not comparable: no fallback.
    with pytest.raises(openai.InternalServerError):
        proc.client().embeddings.create(model="fake-model", input="hi")
    assert KEY_A not in json.dumps(fallback.events(request_id))


def test_fallback_serves_when_the_engine_is_saturated(
    make_sidecar: MakeSidecar, fallback: Upstream
) -> None:
    primary = Upstream()
    try:
        primary.control(force_status=503)
        proc = make_sidecar(
            primary.url,
            SIDECAR_FALLBACK_URL=f"{fallback.url}/v1",
            SIDECAR_FALLBACK_MODEL="external-model",
        )
        request_id = rid()
        result = proc.client().completions.create(
            model="fake-model", prompt="hi", extra_headers={"X-Request-Id": request_id}
        )
        assert result.choices[0].text
        assert starts(primary, request_id) == 3
        fallback.wait_event(request_id, "start")
    finally:
        primary.stop()


def test_fallback_after_a_first_byte_timeout_even_once_keepalives_went_out(
    make_sidecar: MakeSidecar, fallback: Upstream
) -> None:
    primary = Upstream()
    try:
        primary.control(force_fault="slow_first=30")
        proc = make_sidecar(
            primary.url,
            SIDECAR_FIRST_BYTE_TIMEOUT="1",
            SIDECAR_KEEPALIVE_SECONDS="0.3",
            SIDECAR_FALLBACK_URL=f"{fallback.url}/v1",
            SIDECAR_FALLBACK_MODEL="external-model",
        )
        request_id = rid()
        with httpx.stream(
            "POST",
            f"{proc.url}/v1/chat/completions",
            json={"model": "fake-model", "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
            timeout=10,
        ) as resp:
            lines = [line for line in resp.iter_lines() if line]
        assert lines[0] == ": keep-alive"
        assert sum(1 for line in lines if line.startswith("data: {")) == 16
        assert lines[-1] == "data: [DONE]"
        primary.wait_event(request_id, "disconnect")
        fallback.wait_event(request_id, "done")
        primary.control(force_fault="hang")
        result = proc.client().chat.completions.create(model="fake-model", messages=HELLO)
        assert result.choices[0].message.content
    finally:
        primary.stop()


def test_without_fallback_nothing_leaves_the_host(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(openai.InternalServerError):
        proc.client().chat.completions.create(model="fake-model", messages=HELLO)
    assert not any(line.get("fallback") for line in proc.requests())


def sidecar_log(proc: Sidecar, request_id: str) -> dict[str, Any]:
    return proc.request_log(request_id)

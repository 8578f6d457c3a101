"""Issue 13 item 6: while the engine is starting, the gateway answers at once.

A request that reaches the sidecar before the engine is ready gets an OpenAI-shaped 503
with ``Retry-After`` counted down from ``SIDECAR_ENGINE_START_SECONDS`` (or the fallback
answers), never a wait until the load balancer times out; ``/ready`` stays 503.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from sidecar_harness import HELLO, Sidecar, Upstream

MakeSidecar = Callable[..., Sidecar]


@pytest.fixture
def starting() -> Iterator[Upstream]:
    engine = Upstream()
    engine.control(ready=False)
    yield engine
    engine.stop()


def rid() -> str:
    return f"wake-{uuid.uuid4().hex[:12]}"


def until_served(proc: Sidecar, attempts: int = 50) -> openai.types.chat.ChatCompletion:
    for _ in range(attempts):
        try:
            return proc.client(timeout=5).chat.completions.create(
                model="fake-model", messages=HELLO
            )
        except openai.InternalServerError as exc:
            assert exc.status_code == 503
            time.sleep(0.2)
    raise AssertionError("the engine became ready but the sidecar never served")


def test_a_starting_engine_gets_a_503_with_retry_after_from_the_estimate(
    make_sidecar: MakeSidecar, starting: Upstream
) -> None:
    proc = make_sidecar(starting.url, SIDECAR_ENGINE_START_SECONDS="120")
    request_id = rid()
    with pytest.raises(openai.InternalServerError) as err:
        # A client timeout far below the estimate: the answer comes at once.
        proc.client(timeout=5).chat.completions.create(
            model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
        )
    assert err.value.status_code == 503
    error = err.value.response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == "engine_starting"
    assert 100 <= int(err.value.response.headers["retry-after"]) <= 120
    assert starting.events(request_id) == []
    assert httpx.get(f"{proc.url}/ready", timeout=5).status_code == 503
    assert proc.request_log(request_id)["error"] == "engine_starting"
    # Streams get the same answer before any byte of a stream.
    with pytest.raises(openai.InternalServerError):
        proc.client(timeout=5).chat.completions.create(
            model="fake-model", messages=HELLO, stream=True
        )
    starting.control(ready=True)
    assert until_served(proc).choices
    assert httpx.get(f"{proc.url}/ready", timeout=5).status_code == 200


def test_past_the_estimate_retry_after_stays_small(
    make_sidecar: MakeSidecar, starting: Upstream
) -> None:
    proc = make_sidecar(starting.url, SIDECAR_ENGINE_START_SECONDS="0")
    with pytest.raises(openai.InternalServerError) as err:
        proc.client(timeout=5).chat.completions.create(model="fake-model", messages=HELLO)
    assert err.value.response.headers["retry-after"] == "5"


def test_the_fallback_answers_while_the_engine_starts(
    make_sidecar: MakeSidecar, starting: Upstream
) -> None:
    fallback = Upstream()
    try:
        fallback.control(models=["external-model"])
        proc = make_sidecar(
            starting.url,
            SIDECAR_FALLBACK_URL=f"{fallback.url}/v1",
            SIDECAR_FALLBACK_API_KEY="sk-fallback-key-123",
            SIDECAR_FALLBACK_MODEL="external-model",
        )
        request_id = rid()
        raw = proc.client(timeout=5).chat.completions.with_raw_response.create(
            model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-modelfleet-fallback"] == "1"
        assert fallback.wait_event(request_id, "start")["model"] == "external-model"
        assert starting.events(request_id) == []
    finally:
        fallback.stop()


def test_an_engine_that_restarts_is_answered_as_starting(make_sidecar: MakeSidecar) -> None:
    engine = Upstream()
    try:
        proc = make_sidecar(engine.url, SIDECAR_ENGINE_START_SECONDS="60")
        assert proc.client().chat.completions.create(model="fake-model", messages=HELLO).choices
        engine.stop()
        with pytest.raises(openai.InternalServerError) as err:
            proc.client(timeout=5).chat.completions.create(model="fake-model", messages=HELLO)
        assert err.value.response.json()["error"]["code"] == "upstream_unavailable"
        with pytest.raises(openai.InternalServerError) as err:
            proc.client(timeout=5).chat.completions.create(model="fake-model", messages=HELLO)
        assert err.value.response.json()["error"]["code"] == "engine_starting"
        assert 50 <= int(err.value.response.headers["retry-after"]) <= 60
    finally:
        engine.stop()

"""Per-key request and token budgets, and the in-flight bound."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import openai
import pytest
from sidecar.limits import Bucket, KeyLimits
from sidecar_harness import HELLO, KEY_A, KEY_B, Sidecar, Upstream, fault

MakeSidecar = Callable[..., Sidecar]


def test_requests_per_minute_per_key(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_RPM="3")
    alpha = proc.client(KEY_A)
    for _ in range(3):
        alpha.chat.completions.create(model="fake-model", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as err:
        alpha.chat.completions.create(model="fake-model", messages=HELLO)
    assert err.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(err.value.response.headers["retry-after"]) >= 1
    # Another team's key has its own budget.
    proc.client(KEY_B).chat.completions.create(model="fake-model", messages=HELLO)


def test_tokens_per_minute_counted_from_usage_including_streams(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar(SIDECAR_TPM="30")
    client = proc.client(KEY_A)
    # 23 tokens each (the engine reports 7 prompt + 16 completion).
    stream = client.chat.completions.create(
        model="fake-model", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert sum(1 for _ in stream) == 17
    client.chat.completions.create(model="fake-model", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="fake-model", messages=HELLO)
    assert "tokens" in err.value.response.json()["error"]["message"]
    # 16 tokens of debt refill at 0.5 token/s: the client is told to wait about 32 s.
    assert 25 <= int(err.value.response.headers["retry-after"]) <= 40
    proc.client(KEY_B).chat.completions.create(model="fake-model", messages=HELLO)


def test_in_flight_bound_refuses_at_once(make_sidecar: MakeSidecar, upstream: Upstream) -> None:
    proc = make_sidecar(SIDECAR_MAX_INFLIGHT="2")
    results: list[object] = []

    def slow(request_id: str) -> None:
        results.append(
            proc.client().chat.completions.create(
                model="fake-model",
                messages=fault("slow_first=5"),
                extra_headers={"X-Request-Id": request_id},
            )
        )

    threads = []
    for index in range(2):
        request_id = f"inflight-{index}-{uuid.uuid4().hex[:8]}"
        thread = threading.Thread(target=slow, args=(request_id,), daemon=True)
        thread.start()
        threads.append(thread)
        # Each slow request is in flight once the engine has it.
        upstream.wait_event(request_id, "start")
    # Refused, not queued: a queued request would succeed once a slot frees (after 5 s).
    with pytest.raises(openai.RateLimitError) as err:
        proc.client().models.list()
    assert err.value.response.json()["error"]["code"] == "too_many_inflight"
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 2


def test_bucket_goes_into_debt_and_refills() -> None:
    bucket = Bucket(60, now=0.0)
    assert bucket.wait_for(60, 0.0) == 0.0
    bucket.take(90, 0.0)
    assert bucket.wait_for(1e-9, 0.0) == pytest.approx(30.0)
    assert bucket.wait_for(1e-9, 31.0) == 0.0
    limits = KeyLimits(rpm=0, tpm=0)
    assert not limits.enabled
    assert limits.admit("team", 0.0) is None


def test_try_take_takes_only_what_is_there() -> None:
    bucket = Bucket(60, now=0.0)  # 60 per minute: one a second
    assert bucket.try_take(60, 0.0) == 0.0
    assert bucket.try_take(1, 0.0) == pytest.approx(1.0)  # refused: nothing taken
    assert bucket.try_take(1, 1.0) == 0.0  # the second's refill
    assert bucket.wait_for(1, 1.0) == pytest.approx(1.0)
    limits = KeyLimits(rpm=2, tpm=0)
    assert limits.admit("team", 0.0) is None
    assert limits.admit("team", 0.0) is None
    assert limits.admit("team", 0.0) == ("requests", 30)
    assert limits.admit("other", 0.0) is None  # per team

"""Issue 15, gateway items 1-6: clients, engines and shutdowns that misbehave on purpose.

Each test drives the real sidecar (``python -m sidecar`` under uvicorn) against the
scripted engine (``fake_vllm.py``), with the stock ``openai`` SDK or raw sockets.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from sidecar_harness import HELLO, KEY_A, Sidecar, Upstream, fault

MakeSidecar = Callable[..., Sidecar]


def rid(prefix: str = "hostile") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def metric(proc: Sidecar, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(f"{proc.url}/metrics", timeout=5).text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def sse_events(text: str) -> list[str]:
    return [event for event in text.split("\n\n") if event.strip()]


def stalled_upload(port: int, declared: int = 67, sent: int = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % declared
        + b'{"model": "fake-model", "messages": []}'[:sent]
    )
    return sock


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        if not part:
            break
        data += part
    return data


# -- 1. stalled uploads --------------------------------------------------------------------


def test_stalled_uploads_hold_no_inflight_slot_and_time_out_with_408(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar(SIDECAR_MAX_INFLIGHT="4", SIDECAR_BODY_TIMEOUT="2")
    stalled = [stalled_upload(proc.port) for _ in range(4)]
    try:
        time.sleep(0.3)
        # Four clients sit in the middle of their bodies; everyone else is still served.
        for _ in range(3):
            answer = proc.client().chat.completions.create(model="fake-model", messages=HELLO)
            assert answer.choices[0].message.content
        for sock in stalled:
            reply = read_reply(sock)
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), reply[:200]
            assert b"connection: close" in head.lower()
            error = json.loads(body)["error"]
            assert set(error) == {"message", "type", "code", "param"}
            assert error["code"] == "request_timeout"
    finally:
        for sock in stalled:
            sock.close()
    for _ in range(100):  # log lines are flushed in batches
        logged = [line for line in proc.requests() if line["status"] == 408]
        if len(logged) == 4:
            break
        time.sleep(0.05)
    assert len(logged) == 4


def test_a_request_head_that_stalls_is_closed(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_HEADER_TIMEOUT="1")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=8) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    # Heads that arrive whole are unaffected.
    assert proc.client().chat.completions.create(model="fake-model", messages=HELLO).choices


def test_a_connection_that_never_sends_a_request_is_closed(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_HTTP_KEEPALIVE_SECONDS="1")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=8) as sock:
        # uvicorn's keep-alive timer starts only after a first response; the sidecar's
        # starts with the connection.
        assert sock.recv(1) == b""


# -- 2. abandoned streams are charged ------------------------------------------------------


def test_a_stream_abandoned_by_its_client_is_charged(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = make_sidecar(SIDECAR_TPM="60")
    request_id = rid("abandon")
    before = metric(proc, "sidecar_tokens_total", team="alpha", kind="completion")
    with httpx.stream(
        "POST",
        f"{proc.url}/v1/chat/completions",
        json={"model": "fake-model", "messages": fault("chunks=100 delay=0.02"), "stream": True},
        headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
        timeout=20,
    ) as resp:
        seen = 0
        for line in resp.iter_lines():
            if line.startswith("data:"):
                seen += 1
                if seen == 90:
                    break
    upstream.wait_event(request_id, "disconnect")
    logged = proc.request_log(request_id)
    assert logged["status"] == 499
    assert logged["usage"] == "estimated"
    assert 90 <= logged["completion_tokens"] < 100
    after = metric(proc, "sidecar_tokens_total", team="alpha", kind="completion")
    assert after - before == logged["completion_tokens"]
    # 90 tokens against a budget of 60 per minute: the next request waits.
    with pytest.raises(openai.RateLimitError):
        proc.client().chat.completions.create(model="fake-model", messages=HELLO)


# -- 3. stale bytes on a pooled connection -------------------------------------------------


def test_an_unrequested_answer_on_a_pooled_connection_never_reaches_the_next_request(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar()
    client = proc.client()
    first = client.chat.completions.create(model="fake-model", messages=fault("stale_extra"))
    assert not first.id.startswith("stale-")
    time.sleep(0.5)  # the engine writes its extra answer 0.1 s after the first one
    for _ in range(3):
        request_id = rid("next")
        answer = client.chat.completions.create(
            model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
        )
        assert answer.id == f"cmpl-{request_id}"


# -- 4. an engine dying or stalling in the middle of an event ------------------------------


@pytest.mark.parametrize(
    ("spec", "env", "code"),
    [
        ("cut_mid_event=3", {}, "upstream_error"),
        ("stall_mid_event=3", {"SIDECAR_IDLE_TIMEOUT": "1"}, "upstream_idle_timeout"),
    ],
)
def test_a_half_event_never_reaches_the_client(
    make_sidecar: MakeSidecar, spec: str, env: dict[str, str], code: str
) -> None:
    proc = make_sidecar(**env)
    request_id = rid("midevent")
    with httpx.stream(
        "POST",
        f"{proc.url}/v1/chat/completions",
        json={"model": "fake-model", "messages": fault(spec), "stream": True},
        headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
        timeout=20,
    ) as resp:
        text = resp.read().decode()
    events = sse_events(text)
    assert "[DONE]" not in text
    assert all(event.startswith("data: ") for event in events), events
    payloads = [json.loads(event.removeprefix("data: ")) for event in events]
    assert len(payloads) == 4
    assert payloads[-1]["error"]["code"] == code
    assert proc.request_log(request_id)["completion_tokens"] == 3
    # The stock SDK raises an API error (not a JSON decoding error) after three tokens.
    received = []
    with pytest.raises(openai.APIError):
        for chunk in proc.client().chat.completions.create(
            model="fake-model", messages=fault(spec), stream=True
        ):
            received.append(chunk.choices[0].delta.content)
    assert received == ["tok0 ", "tok1 ", "tok2 "]


@pytest.mark.parametrize("spec", ["split_events chunks=5", "sse_comments chunks=5"])
def test_events_split_across_reads_or_among_comments_arrive_whole(
    sidecar: Sidecar, spec: str
) -> None:
    request_id = rid("split")
    chunks = list(
        sidecar.client().chat.completions.create(
            model="fake-model", messages=fault(spec), stream=True,
            extra_headers={"X-Request-Id": request_id},
        )
    )  # fmt: skip
    assert [c.choices[0].delta.content for c in chunks] == [f"tok{i} " for i in range(5)]
    assert sidecar.request_log(request_id)["completion_tokens"] == 5


# -- 5. large non-streamed answers ---------------------------------------------------------


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_large_answer_is_passed_through_with_bounded_memory(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar()
    client = proc.client(timeout=60)
    client.chat.completions.create(model="fake-model", messages=HELLO)
    before = _peak_rss_kib(proc.popen.pid)
    request_id = rid("big")
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=fault("big=64 pieces=16"),
        extra_headers={"X-Request-Id": request_id},
    )  # fmt: skip
    answer = raw.parse()
    assert len(answer.choices[0].message.content or "") > 63 * 1024 * 1024
    grown_mib = (_peak_rss_kib(proc.popen.pid) - before) / 1024
    # Buffered whole, the answer alone would take 64 MiB (twice that while joined).
    assert grown_mib < 24, grown_mib
    line = proc.request_log(request_id)
    assert line["status"] == 200
    assert line["prompt_tokens"] == 7


def test_the_idle_timeout_is_not_a_deadline_for_a_whole_body(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_IDLE_TIMEOUT="1")
    # Eight pieces 0.4 s apart: 2.8 s in all, never 1 s without a byte.
    for spec in ("big=0.25 pieces=8 gap=0.4", "big=4 pieces=8 gap=0.4"):
        answer = proc.client().chat.completions.create(model="fake-model", messages=fault(spec))
        assert answer.usage is not None and answer.usage.completion_tokens == 16


def test_a_large_answer_cut_by_the_idle_timeout_arrives_incomplete(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar(SIDECAR_IDLE_TIMEOUT="1")
    request_id = rid("bigcut")
    with pytest.raises(httpx.HTTPError):
        httpx.post(
            f"{proc.url}/v1/chat/completions",
            json={"model": "fake-model", "messages": fault("big=4 pieces=4 gap=3")},
            headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
            timeout=20,
        )
    line = proc.request_log(request_id)
    assert line["status"] == 504
    assert line["error"] == "upstream_idle_timeout"


# -- 6. drain, Retry-After, negative usage -------------------------------------------------


def test_a_stream_cut_by_the_drain_budget_ends_with_an_error_and_is_charged(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = make_sidecar(SIDECAR_DRAIN_SECONDS="1")
    request_id = rid("drain")
    result: dict[str, str] = {}

    def run() -> None:
        with httpx.stream(
            "POST",
            f"{proc.url}/v1/chat/completions",
            json={
                "model": "fake-model",
                "messages": fault("chunks=300 delay=0.05"),
                "stream": True,
            },
            headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
            timeout=30,
        ) as resp:
            result["text"] = resp.read().decode()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    upstream.wait_event(request_id, "start")
    time.sleep(0.3)
    proc.popen.send_signal(signal.SIGTERM)
    thread.join(timeout=15)
    proc.popen.wait(timeout=15)
    text = result["text"]
    assert "[DONE]" not in text
    last = json.loads(sse_events(text)[-1].removeprefix("data: "))
    assert last["error"]["code"] == "server_shutting_down"
    line = proc.request_log(request_id)
    assert line["status"] == 503
    assert line["error"] == "server_shutting_down"
    assert line["usage"] == "estimated" and line["completion_tokens"] > 0


def test_the_engines_retry_after_reaches_the_client(sidecar: Sidecar) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        sidecar.client().chat.completions.create(
            model="fake-model", messages=fault("status=503 retry_after=7")
        )
    assert err.value.status_code == 503
    assert err.value.response.headers["retry-after"] == "7"


def test_negative_usage_from_the_engine_never_drives_counters_down(
    make_sidecar: MakeSidecar,
) -> None:
    proc = make_sidecar(SIDECAR_TPM="100000")
    client = proc.client()
    client.chat.completions.create(model="fake-model", messages=HELLO)
    prompt = metric(proc, "sidecar_tokens_total", team="alpha", kind="prompt")
    completion = metric(proc, "sidecar_tokens_total", team="alpha", kind="completion")
    request_id = rid("neg")
    client.chat.completions.create(
        model="fake-model", messages=fault("neg_usage"), extra_headers={"X-Request-Id": request_id}
    )
    for _ in client.chat.completions.create(
        model="fake-model", messages=fault("neg_usage"), stream=True,
        stream_options={"include_usage": True},
    ):  # fmt: skip
        pass
    assert metric(proc, "sidecar_tokens_total", team="alpha", kind="prompt") == prompt
    assert metric(proc, "sidecar_tokens_total", team="alpha", kind="completion") == completion
    line = proc.request_log(request_id)
    assert line["prompt_tokens"] == 0 and line["completion_tokens"] == 0

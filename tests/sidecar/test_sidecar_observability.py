"""Prometheus metrics, CloudWatch EMF lines, several workers, and a bounded load test."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sidecar.observability import EmfPublisher, LineWriter, Metrics, parse_queue_depth
from sidecar.usage import SseUsageScanner, usage_from_json
from sidecar_harness import HELLO, Sidecar, Upstream, fault, free_port

MakeSidecar = Callable[..., Sidecar]


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_prometheus_metrics_per_team(sidecar: Sidecar) -> None:
    client = sidecar.client()
    before = httpx.get(f"{sidecar.url}/metrics").text
    base = metric_value(before, "sidecar_requests_total", route="chat", team="alpha", status="200")
    client.chat.completions.create(model="fake-model", messages=HELLO)
    for _ in client.chat.completions.create(model="fake-model", messages=HELLO, stream=True):
        pass
    text = httpx.get(f"{sidecar.url}/metrics").text
    count = metric_value(text, "sidecar_requests_total", route="chat", team="alpha", status="200")
    assert count == base + 2
    assert metric_value(text, "sidecar_request_duration_seconds_count", route="chat") >= 2
    assert metric_value(text, "sidecar_time_to_first_token_seconds_count", team="alpha") >= 1
    assert metric_value(text, "sidecar_tokens_total", team="alpha", kind="completion") >= 32
    assert "sidecar_inflight_requests" in text
    assert "sidecar_upstream_errors_total" in text or "sidecar_upstream_errors" in text


def emf_lines(proc: Sidecar, metric: str) -> list[dict[str, Any]]:
    return [line for line in proc.json_lines() if "_aws" in line and metric in line]


def test_emf_queue_depth_and_time_to_first_token(make_sidecar: MakeSidecar) -> None:
    engine = Upstream()
    try:
        engine.control(waiting=4)
        proc = make_sidecar(
            engine.url,
            SIDECAR_EMF_INTERVAL="0.3",
            SIDECAR_SERVICE_NAME="modelfleet-dev-llama-8b",
            SIDECAR_MODEL_NAME="llama-8b",
            SIDECAR_EMF_NAMESPACE="modelfleet/test",
        )
        for _ in proc.client().chat.completions.create(
            model="fake-model", messages=fault("slow_first=0.05 chunks=2"), stream=True
        ):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            emf_lines(proc, "QueueDepth") and emf_lines(proc, "TimeToFirstToken")
        ):
            time.sleep(0.1)
        depth = emf_lines(proc, "QueueDepth")[-1]
        spec = depth["_aws"]["CloudWatchMetrics"][0]
        assert spec["Namespace"] == "modelfleet/test"
        assert spec["Dimensions"] == [["Service"]]
        assert spec["Metrics"] == [{"Name": "QueueDepth", "Unit": "Count"}]
        assert depth["Service"] == "modelfleet-dev-llama-8b"
        assert depth["QueueDepth"] == 4.0
        assert isinstance(depth["_aws"]["Timestamp"], int)
        ttft = emf_lines(proc, "TimeToFirstToken")[-1]
        assert ttft["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
            {"Name": "TimeToFirstToken", "Unit": "Milliseconds"}
        ]
        assert ttft["Service"] == "modelfleet-dev-llama-8b"
        assert all(value >= 50 for value in ttft["TimeToFirstToken"])
        text = httpx.get(f"{proc.url}/metrics").text
        assert metric_value(text, "sidecar_upstream_queue_depth") == 4.0
    finally:
        engine.stop()


def test_two_workers_share_the_port_and_aggregate_metrics(make_sidecar: MakeSidecar) -> None:
    port = free_port()
    proc = make_sidecar(SIDECAR_WORKERS="2", SIDECAR_PORT=str(port))
    client = proc.client()
    for _ in range(20):
        client.chat.completions.create(model="fake-model", messages=HELLO)
    # Every scrape lands on one worker, yet reports both.
    for _ in range(3):
        text = httpx.get(f"{proc.url}/metrics").text
        assert metric_value(text, "sidecar_requests_total", route="chat", status="200") == 20


async def test_a_few_hundred_concurrent_streams_all_complete(sidecar: Sidecar) -> None:
    client = sidecar.async_client()
    streams = 300

    async def one(index: int) -> int:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=fault("chunks=16 delay=0.01"),
            stream=True,
            extra_headers={"X-Request-Id": f"load-{index}-{uuid.uuid4().hex[:6]}"},
        )
        return sum(1 for _ in [chunk async for chunk in stream])

    async with asyncio.timeout(60):
        counts = await asyncio.gather(*(one(i) for i in range(streams)))
    await client.close()
    assert counts == [16] * streams


def test_usage_is_read_without_parsing_the_whole_body() -> None:
    body = b'{"data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":3,"total_tokens":3}}'
    usage = usage_from_json(body)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 0)
    assert usage_from_json(b'{"choices":[],"usage":null}') is None
    details = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1}}}'  # noqa: E501
    parsed = usage_from_json(details)
    assert parsed is not None and parsed.total == 7


@pytest.mark.parametrize("split", [1, 7, 40, 1000])
def test_sse_usage_scanner_handles_any_chunking(split: int) -> None:
    events = [b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'] * 3 + [
        b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}\n\n',
        b"data: [DONE]\n\n",
    ]
    stream = b"".join(events)
    scanner = SseUsageScanner()
    for start in range(0, len(stream), split):
        scanner.feed(stream[start : start + split])
    assert scanner.usage is not None
    assert (scanner.usage.prompt_tokens, scanner.usage.completion_tokens) == (4, 3)


def test_queue_depth_is_summed_over_label_sets() -> None:
    text = (
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{engine="0",model_name="a"} 3.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="a"} 2.0\n'
        'vllm:num_requests_waiting_total{model_name="a"} 99.0\n'
        'vllm:num_requests_running{model_name="a"} 7.0\n'
    )
    assert parse_queue_depth(text) == 5.0
    assert parse_queue_depth("vllm:num_requests_running 1\n") is None
    assert re.search(r"\d", "x") is None


class _Capture(LineWriter):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


async def _engine_metrics() -> str:
    return 'vllm:num_requests_waiting{model_name="m"} 2.0\n'


async def test_emf_batches_ttft_and_only_one_worker_publishes_queue_depth(tmp_path: Path) -> None:
    lock = str(tmp_path / "emf.lock")
    writers = [_Capture(), _Capture()]
    publishers = [
        EmfPublisher(
            namespace="modelfleet", service="svc", model="m", writer=writer,
            fetch_metrics=_engine_metrics, metrics=Metrics(), lock_path=lock,
        )
        for writer in writers
    ]  # fmt: skip
    for index in range(250):
        publishers[0].record_ttft(index / 1000)
    for publisher in publishers:
        await publisher.publish_once()
    ttft = [r for r in writers[0].records if "TimeToFirstToken" in r]
    assert [len(r["TimeToFirstToken"]) for r in ttft] == [100, 100, 50]
    depth = [r for w in writers for r in w.records if "QueueDepth" in r]
    assert len(depth) == 1 and depth[0]["QueueDepth"] == 2.0
    # The lock passes on when its holder goes away.
    publishers[0].close()
    await publishers[1].publish_once()
    assert any("QueueDepth" in r for r in writers[1].records)
    publishers[1].close()

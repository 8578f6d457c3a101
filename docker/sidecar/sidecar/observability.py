"""Prometheus metrics, JSON log lines and CloudWatch embedded-metric-format (EMF) lines.

Everything here is on the request path or feeds the autoscaler, so it is built to be
cheap: labelled children are cached, and log lines are batched into one write per
event-loop turn instead of one syscall per line.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import logging
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "DatagramWriter",
    "EmfPublisher",
    "JsonLogFormatter",
    "LineWriter",
    "Metrics",
    "parse_queue_depth",
]

_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
_BUCKET_LABELS: Final = (*(str(bound) for bound in _LATENCY_BUCKETS), "+Inf")
_MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class LineWriter:
    """Newline-delimited JSON to a file descriptor, written in batches.

    A write() system call per log line would cost more than the rest of a fast request's
    bookkeeping; lines are collected and written together at most every FLUSH_SECONDS
    (or sooner when many are waiting), which CloudWatch cannot tell apart.
    """

    FLUSH_SECONDS: Final = 0.05
    MAX_PENDING: Final = 512

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, record: dict[str, Any]) -> None:
        pending = self._pending
        pending.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if self._scheduled:
            if len(pending) >= self.MAX_PENDING:
                self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(self.FLUSH_SECONDS, self._flush_later)

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                # A closed stdout must not take the proxy down with it.
                return
            view = view[written:]


class DatagramWriter:
    """EMF documents to the CloudWatch agent's EMF listener, one UDP datagram each.

    On EKS the container's stdout reaches CloudWatch through Fluent Bit, which nests JSON
    lines under `log_processed`, where CloudWatch finds no EMF; the node's CloudWatch agent
    (amazon-cloudwatch-observability, `logs.metrics_collected.emf`) extracts them instead
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_CloudWatch_Agent.html).
    UDP never blocks the event loop and a missing agent costs nothing but the sample.
    """

    def __init__(self, endpoint: str) -> None:
        host, _, port = endpoint.removeprefix("udp://").rpartition(":")
        self._addr = (host, int(port))
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._sock.sendto(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE), self._addr)
        except OSError:
            # Agent restarting, buffer full: drop this sample, never the request path.
            return

    def close(self) -> None:
        self._sock.close()


class JsonLogFormatter(logging.Formatter):
    """Server and application logs as JSON lines, in the same stream as request logs."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            # Type and code locations only: an exception's message (and so a formatted
            # traceback) could carry request content.
            entry["exc"] = record.exc_info[0].__name__
            entry["at"] = [
                f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}:{frame.name}"
                for frame in traceback.extract_tb(record.exc_info[2])[-5:]
            ]
        return orjson.dumps(entry).decode()


class _Series:
    """Counters and histograms as plain dicts, turned into metric families at scrape time.

    prometheus_client takes a lock and walks its buckets in Python on every update, which
    is several microseconds per request on the hot path; here an update is a dict lookup
    and an integer add. The event loop is single-threaded, so no lock is needed.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.ttft: dict[tuple[str, str], list[float]] = {}
        self.tokens: dict[tuple[str, str], int] = {}
        self.inflight: dict[str, int] = {}

    @staticmethod
    def observe(
        table: dict[tuple[str, str], list[float]], key: tuple[str, str], value: float
    ) -> None:
        # Layout: one count per bucket (the last is +Inf), then the sum.
        row = table.get(key)
        if row is None:
            row = table[key] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        row[bisect.bisect_left(_LATENCY_BUCKETS, value)] += 1
        row[-1] += value

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "sidecar_requests", "Proxied requests by route, team and status.",
            labels=["route", "team", "status"],
        )  # fmt: skip
        for (route, team, status), count in self.requests.items():
            requests.add_metric([route, team, str(status)], count)
        yield requests
        for name, doc, table in (
            ("sidecar_request_duration_seconds", "Time from request to last byte.", self.latency),
            ("sidecar_time_to_first_token_seconds",
             "Time from request to the first streamed chunk.", self.ttft),
        ):  # fmt: skip
            family = HistogramMetricFamily(name, doc, labels=["route", "team"])
            for key, row in table.items():
                cumulative = 0.0
                buckets = []
                for bound, hits in zip(_BUCKET_LABELS, row[:-1], strict=True):
                    cumulative += hits
                    buckets.append((bound, cumulative))
                family.add_metric(list(key), buckets, sum_value=row[-1])
            yield family
        tokens = CounterMetricFamily(
            "sidecar_tokens", "Tokens by team and kind (prompt, completion).",
            labels=["team", "kind"],
        )  # fmt: skip
        for (team, kind), count in self.tokens.items():
            tokens.add_metric([team, kind], count)
        yield tokens
        inflight = GaugeMetricFamily(
            "sidecar_inflight_requests", "Requests being proxied now.", labels=["team"]
        )
        for team, count in self.inflight.items():
            inflight.add_metric([team], count)
        yield inflight


class Metrics:
    """The sidecar's Prometheus metrics.

    With one worker the hot-path series live in plain dicts (see _Series). With several
    workers every process must write to prometheus_client's shared files so that a scrape
    of any worker reports all of them; that mode keeps the library's own collectors.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._fast: _Series | None = None
        if os.environ.get(_MULTIPROC_ENV):
            self._requests = Counter(
                "sidecar_requests", "Proxied requests by route, team and status.",
                ["route", "team", "status"], registry=reg,
            )  # fmt: skip
            self._latency = Histogram(
                "sidecar_request_duration_seconds", "Time from request to last byte.",
                ["route", "team"], buckets=_LATENCY_BUCKETS, registry=reg,
            )  # fmt: skip
            self._ttft = Histogram(
                "sidecar_time_to_first_token_seconds",
                "Time from request to the first streamed chunk.",
                ["route", "team"], buckets=_LATENCY_BUCKETS, registry=reg,
            )  # fmt: skip
            self._tokens = Counter(
                "sidecar_tokens", "Tokens by team and kind (prompt, completion).",
                ["team", "kind"], registry=reg,
            )  # fmt: skip
            self._inflight = Gauge(
                "sidecar_inflight_requests", "Requests being proxied now.", ["team"],
                registry=reg, multiprocess_mode="livesum",
            )  # fmt: skip
        else:
            self._fast = _Series()
            reg.register(self._fast)
        self.upstream_errors = Counter(
            "sidecar_upstream_errors", "Upstream failures by kind.", ["kind"], registry=reg
        )
        self.rate_limited = Counter(
            "sidecar_rate_limited", "Requests refused by a limit.", ["team", "limit"], registry=reg
        )
        self.fallbacks = Counter(
            "sidecar_fallback", "Requests served by the fallback API.", ["route"], registry=reg
        )
        self.disconnects = Counter(
            "sidecar_client_disconnects", "Clients that left before the response ended.",
            ["route"], registry=reg,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "sidecar_upstream_queue_depth", "vLLM num_requests_waiting, last sample.",
            registry=reg, multiprocess_mode="max",
        )  # fmt: skip

    def observe_request(self, route: str, team: str, status: int, seconds: float) -> None:
        fast = self._fast
        if fast is not None:
            key = (route, team, status)
            fast.requests[key] = fast.requests.get(key, 0) + 1
            fast.observe(fast.latency, (route, team), seconds)
            return
        self._requests.labels(route, team, str(status)).inc()
        self._latency.labels(route, team).observe(seconds)

    def observe_ttft(self, route: str, team: str, seconds: float) -> None:
        if self._fast is not None:
            self._fast.observe(self._fast.ttft, (route, team), seconds)
            return
        self._ttft.labels(route, team).observe(seconds)

    def observe_tokens(self, team: str, prompt: int, completion: int) -> None:
        fast = self._fast
        if fast is not None:
            tokens = fast.tokens
            for key, count in (((team, "prompt"), prompt), ((team, "completion"), completion)):
                tokens[key] = tokens.get(key, 0) + count
            return
        self._tokens.labels(team, "prompt").inc(prompt)
        self._tokens.labels(team, "completion").inc(completion)

    def inflight_add(self, team: str, delta: int) -> None:
        fast = self._fast
        if fast is not None:
            fast.inflight[team] = fast.inflight.get(team, 0) + delta
            return
        self._inflight.labels(team).inc(delta)

    def exposition(self) -> bytes:
        path = os.environ.get(_MULTIPROC_ENV)
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def parse_queue_depth(text: str) -> float | None:
    """Sum of ``vllm:num_requests_waiting`` over all label sets, or None if absent."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith("vllm:num_requests_waiting"):
            continue
        rest = line[len("vllm:num_requests_waiting") :]
        if rest and rest[0] not in "{ ":
            continue
        value = rest.rsplit("}", 1)[1] if rest.startswith("{") else rest
        try:
            total += float(value.split()[0])
        except (ValueError, IndexError):
            continue
        found = True
    return total if found else None


class EmfPublisher:
    """Periodic EMF lines: QueueDepth (one worker) and TimeToFirstToken samples (every worker).

    The metric names and the ``Service`` dimension are what the ECS autoscaling policy and
    alarms key on; change them only together.
    """

    # CloudWatch accepts at most 100 values per metric in one EMF document.
    _MAX_VALUES: Final = 100
    _MAX_SAMPLES: Final = 1000

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        model: str,
        writer: LineWriter | DatagramWriter,
        fetch_metrics: Callable[[], Any],
        metrics: Metrics,
        lock_path: str | None = None,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._model = model
        self._writer = writer
        self._fetch = fetch_metrics
        self._metrics = metrics
        self._ttft: list[float] = []
        self._seen = 0
        # None means a single worker, which is always the publisher.
        self._lock_path = lock_path
        self._lock_fd: int | None = None

    def record_ttft(self, seconds: float) -> None:
        # Reservoir sampling keeps percentiles honest under load without unbounded memory.
        self._seen += 1
        if len(self._ttft) < self._MAX_SAMPLES:
            self._ttft.append(round(seconds * 1000.0, 3))
            return
        slot = random.randrange(self._seen)  # noqa: S311 - statistics, not security
        if slot < self._MAX_SAMPLES:
            self._ttft[slot] = round(seconds * 1000.0, 3)

    def _document(self, metric: str, unit: str, values: float | list[float]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": metric, "Unit": unit}],
                    }
                ],
            },
            "Service": self._service,
            metric: values,
        }
        if self._model:
            doc["Model"] = self._model
        return doc

    def _is_leader(self) -> bool:
        # With several workers only one may publish QueueDepth, or the scaling metric would
        # be multiplied by the worker count; an exclusive flock picks it, and passes on
        # automatically when that worker exits.
        if self._lock_path is None or self._lock_fd is not None:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def publish_once(self) -> None:
        if self._ttft:
            samples, self._ttft, self._seen = self._ttft, [], 0
            for start in range(0, len(samples), self._MAX_VALUES):
                chunk = samples[start : start + self._MAX_VALUES]
                self._writer.write(self._document("TimeToFirstToken", "Milliseconds", chunk))
        if not self._is_leader():
            return
        try:
            text = await self._fetch()
        except Exception:
            # An absent engine means no sample, not a crashed publisher.
            return
        depth = parse_queue_depth(text) if isinstance(text, str) else None
        if depth is None:
            return
        self._metrics.queue_depth.set(depth)
        self._writer.write(self._document("QueueDepth", "Count", depth))

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.publish_once()

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

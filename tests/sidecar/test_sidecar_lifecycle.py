"""Health, readiness, draining on SIGTERM, and the process contract of ``python -m sidecar``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sidecar_harness import HELLO, KEY_A, Sidecar, Upstream, fault, free_port

MakeSidecar = Callable[..., Sidecar]


def test_health_and_ready_follow_the_engine(make_sidecar: MakeSidecar) -> None:
    engine = Upstream()
    try:
        proc = make_sidecar(engine.url)
        assert httpx.get(f"{proc.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{proc.url}/ready").status_code == 200
        engine.control(healthy=False)
        ready = httpx.get(f"{proc.url}/ready")
        assert ready.status_code == 503
        assert httpx.get(f"{proc.url}/health").status_code == 200
        engine.control(healthy=True)
        assert httpx.get(f"{proc.url}/ready").status_code == 200
        engine.stop()
        began = time.monotonic()
        assert httpx.get(f"{proc.url}/ready", timeout=10).status_code == 503
        assert time.monotonic() - began < 3
        assert httpx.get(f"{proc.url}/health").status_code == 200
    finally:
        engine.stop()


def _stream_in_thread(proc: Sidecar, spec: str, out: dict[str, object]) -> threading.Thread:
    def run() -> None:
        try:
            stream = proc.client(timeout=30).chat.completions.create(
                model="fake-model", messages=fault(spec), stream=True
            )
            for count, _ in enumerate(stream, start=1):
                out["chunks"] = count
            out["done"] = True
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sigterm_turns_unready_and_lets_streams_finish(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_DRAIN_SECONDS="20")
    out: dict[str, object] = {}
    thread = _stream_in_thread(proc, "chunks=30 delay=0.1", out)
    deadline = time.monotonic() + 10
    while not out.get("chunks") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.get("chunks"), out
    proc.popen.send_signal(signal.SIGTERM)
    proc.wait_line("draining")
    ready = httpx.get(f"{proc.url}/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "draining"}
    # A request the load balancer sends while it notices is still served.
    late = proc.client().chat.completions.create(model="fake-model", messages=HELLO)
    assert late.choices
    thread.join(timeout=15)
    assert out.get("done") is True, out
    assert out["chunks"] == 30
    # The exit status after a drain is the SIGTERM's own (143), as the README says:
    # uvicorn raises the signal it captured again once it has shut down.
    assert proc.popen.wait(timeout=10) == -signal.SIGTERM


def test_drain_budget_bounds_the_wait_and_closes_upstream(
    make_sidecar: MakeSidecar, upstream: Upstream
) -> None:
    proc = make_sidecar(SIDECAR_DRAIN_SECONDS="1")
    request_id = f"drain-{uuid.uuid4().hex[:12]}"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with httpx.stream(
                "POST",
                f"{proc.url}/v1/chat/completions",
                json={
                    "model": "fake-model",
                    "messages": fault("chunks=300 delay=0.1"),
                    "stream": True,
                },
                headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": request_id},
                timeout=30,
            ) as resp:
                result["lines"] = sum(1 for line in resp.iter_lines() if line.startswith("data"))
        except httpx.HTTPError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    upstream.wait_event(request_id, "start")
    began = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    proc.popen.wait(timeout=15)
    # Drain budget (1 s) plus the server's final close (2 s), with room for a busy machine.
    assert time.monotonic() - began < 8
    upstream.wait_event(request_id, "disconnect", timeout=5)
    thread.join(timeout=10)
    assert result.get("lines", 300) < 300 or "error" in result


def test_idle_sidecar_exits_promptly_on_sigterm(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_DRAIN_SECONDS="30")
    began = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    proc.popen.wait(timeout=10)
    assert time.monotonic() - began < 5


def _run_main(**env: str) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if not key.startswith("SIDECAR_")}
    full.update({"SIDECAR_PORT": str(free_port()), "SIDECAR_HOST": "127.0.0.1"})
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sidecar"], env=full, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "SIDECAR_API_KEYS"),
        ({"SIDECAR_API_KEYS": "team-without-key"}, "SIDECAR_API_KEYS"),
        ({"SIDECAR_API_KEYS": "a:short"}, "SIDECAR_API_KEYS"),
        ({"SIDECAR_ALLOW_NO_AUTH": "maybe"}, "SIDECAR_ALLOW_NO_AUTH"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_RPM": "fast"}, "SIDECAR_RPM"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_PORT": "70000"}, "SIDECAR_PORT"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_UPSTREAM_URL": "localhost:8000"},
         "SIDECAR_UPSTREAM_URL"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_IDLE_TIMEOUT": "-1"}, "SIDECAR_IDLE_TIMEOUT"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_FALLBACK_URL": "https://api.example.com/v1"},
         "SIDECAR_FALLBACK_MODEL"),
        ({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_ROUTE_PREFIX": "/a/b"}, "SIDECAR_ROUTE_PREFIX"),
    ],
)  # fmt: skip
def test_bad_configuration_exits_2_naming_the_variable(env: dict[str, str], variable: str) -> None:
    result = _run_main(**env)
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1


def test_key_values_never_appear_in_configuration_errors() -> None:
    result = _run_main(SIDECAR_API_KEYS="alpha:sk-a-very-secret-1,beta:sk-a-very-secret-1")
    assert result.returncode == 2
    assert "repeats a key" in result.stderr
    assert "sk-a-very-secret" not in result.stderr


def test_allow_no_auth_serves_without_keys(make_sidecar: MakeSidecar) -> None:
    proc = make_sidecar(SIDECAR_API_KEYS="", SIDECAR_ALLOW_NO_AUTH="1")
    result = proc.client(key="anything").chat.completions.create(model="fake-model", messages=HELLO)
    assert result.choices

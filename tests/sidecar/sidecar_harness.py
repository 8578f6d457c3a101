"""Real processes for the sidecar tests: a scripted engine and ``python -m sidecar``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

HERE = Path(__file__).parent
KEY_A = "sk-team-a-0123456789"
KEY_B = "sk-team-b-9876543210"
API_KEYS = f"alpha:{KEY_A},beta:{KEY_B}"


class Proc:
    """A child process whose stdout lines are collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(f"{needle!r} not seen; output:\n" + "\n".join(self.lines))
                self._cond.wait(min(remaining, 0.2))

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        with self._cond:
            lines = list(self.lines)
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def stop(self) -> None:
        # The child leads its own process group (start_new_session), which also holds any
        # uvicorn workers it spawned: signal the group, politely first.
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


class Upstream(Proc):
    def __init__(self) -> None:
        super().__init__([sys.executable, str(HERE / "fake_vllm.py")], dict(os.environ))
        self.port = int(self.wait_line("PORT ").split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, **values: Any) -> None:
        httpx.post(f"{self.url}/_control", json=values, timeout=5).raise_for_status()

    def events(self, rid: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/_events/{rid}", timeout=5)
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()
        return result

    def wait_event(self, rid: str, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(rid):
                if event["event"] == kind:
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"engine never saw {kind!r} for {rid}: {self.events(rid)}")
            time.sleep(0.05)


class Sidecar(Proc):
    def __init__(self, upstream_url: str, *, spy: bool = False, **env: str) -> None:
        full = dict(os.environ)
        full.update(
            SIDECAR_HOST="127.0.0.1",
            SIDECAR_PORT=env.pop("SIDECAR_PORT", "0"),
            SIDECAR_UPSTREAM_URL=upstream_url,
            SIDECAR_API_KEYS=API_KEYS,
            SIDECAR_EMF_INTERVAL="0",
        )
        full.update(env)
        # spy_sidecar.py is the same server, printing how each request was served.
        command = [str(HERE / "spy_sidecar.py")] if spy else ["-m", "sidecar"]
        super().__init__([sys.executable, *command], full)
        message = json.loads(self.wait_line("running on http://"))["msg"]
        match = re.search(r"http://[^:]+:(\d+)", message)
        assert match is not None, message
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        # With several workers the parent binds and logs before the workers accept.
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("sidecar never became healthy:\n" + "\n".join(self.lines))
            time.sleep(0.05)

    def client(self, key: str = KEY_A, prefix: str = "", **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("timeout", 20.0)
        return openai.OpenAI(
            base_url=f"{self.url}{prefix}/v1", api_key=key, max_retries=0, **kwargs
        )

    def async_client(self, key: str = KEY_A, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("timeout", 30.0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **kwargs)

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.json_lines() if line.get("msg") == "request"]

    def spied(self, rid: str) -> list[dict[str, Any]]:
        """What spy_sidecar.py recorded of request ``rid`` (a sidecar started with spy)."""
        return [
            line
            for line in self.json_lines()
            if line.get("msg") == "spy" and line.get("request_id") == rid
        ]

    def request_log(self, rid: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.requests():
                if line.get("request_id") == rid:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line for {rid}")
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    proc = Upstream()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sidecar(upstream: Upstream) -> Iterator[Sidecar]:
    proc = Sidecar(upstream.url)
    yield proc
    proc.stop()


@pytest.fixture
def make_sidecar(upstream: Upstream) -> Iterator[Any]:
    started: list[Sidecar] = []

    def make(upstream_url: str | None = None, *, spy: bool = False, **env: str) -> Sidecar:
        proc = Sidecar(upstream_url or upstream.url, spy=spy, **env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def fault(spec: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": f"#fault {spec}"}]


HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]

"""EKS: the sidecar's EMF metrics to the node's CloudWatch agent over UDP (SIDECAR_EMF_ENDPOINT),
since Fluent Bit's container-log path nests JSON lines where CloudWatch finds no EMF."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from sidecar.settings import Settings, SettingsError
from sidecar_harness import Sidecar, Upstream

MakeSidecar = Callable[..., Sidecar]


def test_queue_depth_reaches_a_udp_listener_not_stdout(make_sidecar: MakeSidecar) -> None:
    """A real UDP socket on 127.0.0.1 stands in for the agent's `emf` listener."""
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent.bind(("127.0.0.1", 0))
    agent.settimeout(0.5)
    engine = Upstream()
    try:
        engine.control(waiting=3)
        proc = make_sidecar(
            engine.url,
            SIDECAR_EMF_INTERVAL="0.2",
            SIDECAR_SERVICE_NAME="mf-search-eks-llama-8b",
            SIDECAR_EMF_ENDPOINT=f"udp://127.0.0.1:{agent.getsockname()[1]}",
        )
        docs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("QueueDepth" in d for d in docs):
            with contextlib.suppress(TimeoutError):
                data = agent.recv(65535)
                # One EMF document per datagram, newline-terminated.
                assert data.endswith(b"\n") and data.count(b"\n") == 1
                docs.append(json.loads(data))
        depth = next(d for d in docs if "QueueDepth" in d)
        assert depth["QueueDepth"] == 3.0
        assert depth["Service"] == "mf-search-eks-llama-8b"
        assert depth["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]
        # Not on stdout as well: CloudWatch would count the samples twice on ECS-style paths.
        assert not [line for line in proc.json_lines() if "_aws" in line]
    finally:
        engine.stop()
        agent.close()


@pytest.mark.parametrize("bad", ["tcp://10.0.0.1:25888", "udp://10.0.0.1", "10.0.0.1:25888"])
def test_emf_endpoint_must_be_udp_host_port(bad: str) -> None:
    with pytest.raises(SettingsError, match="SIDECAR_EMF_ENDPOINT"):
        Settings.from_env({"SIDECAR_ALLOW_NO_AUTH": "1", "SIDECAR_EMF_ENDPOINT": bad})

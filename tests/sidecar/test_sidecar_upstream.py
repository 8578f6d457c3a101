"""The lean engine client (pooling, chunked bodies, failures) and the coalescing writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sidecar.serving import _CoalescingTransport
from sidecar.upstream import ConnectFailed, EnginePool, UpstreamBroken
from sidecar_harness import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int, list[int]]:
    connections: list[int] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@pytest.fixture
async def keepalive_server() -> AsyncIterator[tuple[int, list[int]]]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            if b"/chunked" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                    b"7\r\ndata: a\r\n6\r\n\n\ndata\r\n4\r\n: b\n\r\n0\r\n\r\n"
                )
            elif b"/cut" in request:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                await writer.drain()
                return
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    server, port, connections = await _serve(handler)
    yield port, connections
    server.close()


async def test_connections_are_reused_and_pruned(keepalive_server: tuple[int, list[int]]) -> None:
    port, connections = keepalive_server
    pool = EnginePool(f"http://127.0.0.1:{port}", connect_timeout=2, idle_timeout=0.3)
    head = pool.head(b"POST", b"/v1/x", b"Content-Type: application/json\r\n")
    for _ in range(5):
        conn = await pool.request(head, b"{}")
        assert conn.status == 200
        assert await conn.read_all() == b"ok"
        conn.release()
    assert len(connections) == 1
    await asyncio.sleep(0.4)
    pool.prune()
    conn = await pool.request(head, b"{}")
    assert await conn.read_all() == b"ok"
    conn.release()
    assert len(connections) == 2
    pool.close()


async def test_chunked_body_arrives_decoded(keepalive_server: tuple[int, list[int]]) -> None:
    port, _ = keepalive_server
    pool = EnginePool(f"http://127.0.0.1:{port}", connect_timeout=2, idle_timeout=5)
    conn = await pool.request(pool.head(b"GET", b"/chunked", b""), b"")
    assert conn.content_type == b"text/event-stream"
    assert await conn.read_all() == b"data: a\n\ndata: b\n"
    conn.release()
    pool.close()


async def test_failures_surface_as_typed_errors(keepalive_server: tuple[int, list[int]]) -> None:
    port, _ = keepalive_server
    pool = EnginePool(f"http://127.0.0.1:{port}", connect_timeout=2, idle_timeout=5)
    conn = await pool.request(pool.head(b"GET", b"/cut", b""), b"")
    with pytest.raises(UpstreamBroken):
        await conn.read_all()
    conn.release()
    refused = EnginePool(f"http://127.0.0.1:{free_port()}", connect_timeout=2, idle_timeout=5)
    with pytest.raises(ConnectFailed):
        await refused.request(refused.head(b"GET", b"/", b""), b"")
    pool.close()


class _RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_response_head_leaves_with_its_body_in_one_write() -> None:
    raw = _RecordingTransport()
    transport = _CoalescingTransport(raw)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert len(raw.writes) == 1
    transport.write(b"ok")
    assert raw.writes[-1] == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    # A stream's head goes out at once.
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: x\r\ntransfer-encoding: chunked\r\n\r\n")
    assert raw.writes[-1].endswith(b"chunked\r\n\r\n")
    # Closing never loses a held head.
    transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    transport.close()
    assert raw.writes[-1].startswith(b"HTTP/1.1 400") and raw.closed
    assert transport.is_closing()

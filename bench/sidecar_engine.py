"""A stand-in engine that answers at once, for ``bench/sidecar_bench.py``.

It has to be much faster than the proxies it is used to compare, or the benchmark
would measure the engine: a bare asyncio protocol on uvloop with httptools parsing,
canned vLLM-shaped responses, keep-alive, no framework.

    python bench/sidecar_engine.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final

import httptools
import orjson
import uvloop

CHUNKS: Final = 16

_JSON_BODY: Final = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)
JSON_RESPONSE: Final = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_JSON_BODY)).encode() + b"\r\n\r\n" + _JSON_BODY
)


def _event(index: int) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": {"content": f"tok{index} "}, "finish_reason": None}],
    }
    data = b"data: " + orjson.dumps(chunk) + b"\n\n"
    if index == CHUNKS - 1:
        data += b"data: [DONE]\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
STREAM_EVENTS: Final = [_event(i) for i in range(CHUNKS)]
STREAM_END: Final = b"0\r\n\r\n"
HEALTH: Final = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
METRICS_BODY: Final = b'vllm:num_requests_waiting{model_name="bench-model"} 0.0\n'
METRICS: Final = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
    + str(len(METRICS_BODY)).encode()
    + b"\r\n\r\n"
    + METRICS_BODY
)


class Engine(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport, but quacks like one.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        assert transport is not None
        body = b"".join(self.body)
        self.body.clear()
        if self.url == b"/health":
            transport.write(HEALTH)
        elif self.url == b"/metrics":
            transport.write(METRICS)
        elif b'"stream":true' in body or b'"stream": true' in body:
            # One write (one send() on the socket) per event, as a token-by-token engine
            # does, but all at once: the engine must not be what limits the proxies.
            transport.write(STREAM_HEAD)
            for event in STREAM_EVENTS:
                transport.write(event)
            transport.write(STREAM_END)
        else:
            transport.write(JSON_RESPONSE)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Engine, "127.0.0.1", port, backlog=4096)
    async with server:
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

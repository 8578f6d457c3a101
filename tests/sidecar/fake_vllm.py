"""A scripted stand-in for vLLM's OpenAI server, run as a separate process by the tests.

It speaks vLLM's wire format (JSON bodies, ``data:`` SSE chunks ending in ``[DONE]``,
``/health``, ``/metrics`` with ``vllm:num_requests_waiting``, ``/v1/models``) and misbehaves
on demand. A request picks its fault with a directive as its last message (or prompt),
e.g. ``"#fault slow_first=3"`` or ``"#fault status=503 times=1"``, so one engine process
serves many tests at once. Every request is recorded by its ``X-Request-Id`` and can be
read back from ``/_events/{request_id}``: what headers arrived, whether the client (the
sidecar) went away, and when.

    python tests/sidecar/fake_vllm.py   # prints "PORT <n>" once listening
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

MODEL = "fake-model"
state: dict[str, Any] = {"healthy": True, "waiting": 0.0}
events: dict[str, list[dict[str, Any]]] = defaultdict(list)
attempts: dict[str, int] = defaultdict(int)


def record(rid: str, kind: str, **extra: Any) -> None:
    events[rid].append({"event": kind, "t": time.time(), **extra})


def lowered(request: web.Request) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


def directive(body: dict[str, Any]) -> dict[str, str]:
    text = ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        content = messages[-1].get("content")
        text = content if isinstance(content, str) else ""
    elif isinstance(body.get("prompt"), str):
        text = body["prompt"]
    elif isinstance(body.get("input"), str):
        text = body["input"]
    if not text.startswith("#fault"):
        return {}
    out: dict[str, str] = {}
    for part in text.split()[1:]:
        key, _, value = part.partition("=")
        out[key] = value or "1"
    return out


def error_json(status: int, message: str) -> web.Response:
    # vLLM's flat ErrorResponse shape; the sidecar re-shapes it to OpenAI's nested form.
    body = {"object": "error", "message": message, "type": "BadRequestError", "param": None,
            "code": status}  # fmt: skip
    return web.json_response(body, status=status)


def usage_for(body: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = 7
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


async def health(_: web.Request) -> web.Response:
    if not state["healthy"]:
        return web.Response(status=503)
    return web.Response(status=200)


async def metrics(_: web.Request) -> web.Response:
    text = (
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{engine="0",model_name="{MODEL}"}} {state["waiting"]}\n'
        f'vllm:num_requests_running{{engine="0",model_name="{MODEL}"}} 1.0\n'
    )
    return web.Response(text=text, content_type="text/plain")


async def models(request: web.Request) -> web.Response:
    record(request.headers.get("X-Request-Id", "-"), "start", headers=lowered(request))
    return web.json_response(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                     "owned_by": "vllm", "root": MODEL, "max_model_len": 4096}]}
    )  # fmt: skip


async def control(request: web.Request) -> web.Response:
    state.update(await request.json())
    return web.json_response(state)


async def get_events(request: web.Request) -> web.Response:
    return web.json_response(events.get(request.match_info["rid"], []))


async def generate(request: web.Request) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id", "-")
    raw = await request.read()
    attempts[rid] += 1
    try:
        body = json.loads(raw)
    except ValueError:
        record(rid, "start", headers=lowered(request), size=len(raw))
        record(rid, "bad_json")
        return error_json(400, "invalid JSON reached the engine")
    record(rid, "start", headers=lowered(request), size=len(raw), model=body.get("model"))
    fault = directive(body)
    if state.get("force_status"):
        fault = {"status": str(state["force_status"])}
    if state.get("force_fault"):
        fault = directive({"prompt": "#fault " + state["force_fault"]})
    try:
        return await _generate(request, rid, body, fault)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the peer disconnects (handler_cancellation).
        record(rid, "disconnect")
        raise
    except ConnectionResetError:
        record(rid, "disconnect")
        raise


async def _generate(
    request: web.Request, rid: str, body: dict[str, Any], fault: dict[str, str]
) -> web.StreamResponse:
    if "status" in fault and attempts[rid] <= int(fault.get("times", "1000")):
        record(rid, "status", status=int(fault["status"]))
        headers = {"Retry-After": fault["retry_after"]} if "retry_after" in fault else None
        resp: web.StreamResponse = error_json(int(fault["status"]), "engine says no")
        if headers:
            resp.headers.update(headers)
        return resp
    if "close" in fault:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.5)
        return web.Response()
    if "slow_headers" in fault:
        await asyncio.sleep(float(fault["slow_headers"]))
    if "hang" in fault:
        await asyncio.sleep(3600)
    kind = request.path.rsplit("/", 1)[-1]
    if kind == "embeddings":
        return web.json_response({
            "id": "embd-1", "object": "list", "created": int(time.time()), "model": MODEL,
            "data": [{"index": 0, "object": "embedding", "embedding": [0.1, 0.2, 0.3]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0},
        })  # fmt: skip
    chunks = int(fault.get("chunks", "16"))
    delay = float(fault.get("delay", "0"))
    first_delay = float(fault.get("slow_first", "0"))
    chat = kind == "completions" and "/chat/" in request.path
    created = int(time.time())
    if not body.get("stream"):
        if first_delay:
            await asyncio.sleep(first_delay)
        text = " ".join(f"tok{i}" for i in range(chunks))
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": text, "finish_reason": "stop"}
        )  # fmt: skip
        record(rid, "done")
        # Hop-by-hop and engine-specific headers, to check what the sidecar passes on.
        extra = {"Keep-Alive": "timeout=5", "X-Engine": "fake"} if "hop_headers" in fault else {}
        return web.json_response({
            "id": f"cmpl-{rid}", "object": "chat.completion" if chat else "text_completion",
            "created": created, "model": MODEL, "choices": [choice],
            "usage": usage_for(body, chunks),
        }, headers=extra)  # fmt: skip
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    if first_delay:
        await asyncio.sleep(first_delay)
    obj = "chat.completion.chunk" if chat else "text_completion"
    for i in range(chunks):
        if "close_mid" in fault and i == int(fault["close_mid"]):
            record(rid, "abort")
            assert request.transport is not None
            request.transport.abort()
            return resp
        piece = f"tok{i} "
        choice = (
            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            if chat
            else {"index": 0, "text": piece, "finish_reason": None}
        )
        chunk = {"id": f"c-{rid}", "object": obj, "created": created, "model": MODEL,
                 "choices": [choice]}  # fmt: skip
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if delay:
            await asyncio.sleep(delay)
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        final = {"id": f"c-{rid}", "object": obj, "created": created, "model": MODEL,
                 "choices": [], "usage": usage_for(body, chunks)}  # fmt: skip
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    record(rid, "done")
    return resp


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", generate)
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/embeddings", generate)
    app.router.add_post("/_control", control)
    app.router.add_get("/_events/{rid}", get_events)
    return app


async def main(port: int) -> None:
    runner = web.AppRunner(make_app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server) and server.sockets
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

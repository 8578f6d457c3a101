"""A scripted stand-in for vLLM 0.31's OpenAI server, run as a separate process by the tests.

It speaks vLLM's wire format: JSON bodies; ``data:`` SSE chunks ending in ``[DONE]``,
with a usage chunk (``choices: []``) when ``stream_options`` asks for it; errors nested
as ``{"error": {"message", "type", "param", "code": <int>}}`` (``ErrorInfo`` and
``ErrorResponse`` in ``vllm/entrypoints/openai/engine/protocol.py``); HTTP keep-alive
connections closed after 5 idle seconds (uvicorn's ``timeout_keep_alive``, set from
``VLLM_HTTP_TIMEOUT_KEEP_ALIVE``, default 5, in ``vllm/envs.py``); ``/health``,
``/metrics`` with ``vllm:num_requests_waiting``, ``/v1/models``. It applies two of
vLLM's own request checks, with vLLM's messages, so tests can see an engine refusal
travel back: ``stream_options`` without ``stream`` (``validate_stream_options`` in the
request models) and an unknown model (``The model `x` does not exist.``, 404).

It misbehaves on demand. A request picks its fault with a directive as its last message
(or prompt), e.g. ``"#fault slow_first=3"`` or ``"#fault status=503 times=1"``, so one
engine process serves many tests at once. Every request is recorded by its
``X-Request-Id`` and can be read back from ``/_events/{request_id}``: what headers and
body bytes arrived, whether the client (the sidecar) went away, and when. ``/_control``
sets ``ready`` false to play an engine that is still starting (``/health`` 503, requests
wait until it is ready).

    python tests/sidecar/fake_vllm.py   # prints "PORT <n>" once listening
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

MODEL = "fake-model"
state: dict[str, Any] = {"healthy": True, "waiting": 0.0, "ready": True, "models": [MODEL]}
ready_event = asyncio.Event()
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


def error_json(
    status: int, message: str, kind: str = "BadRequestError", param: str | None = None
) -> web.Response:
    # vLLM 0.31's ErrorResponse: the OpenAI nesting, with the HTTP status as an int code.
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return web.json_response(body, status=status)


def engine_checks(body: dict[str, Any]) -> web.Response | None:
    """Two of vLLM's own refusals, with its messages (see the module docstring)."""
    if body.get("stream_options") and not body.get("stream"):
        return error_json(400, "Stream options can only be defined when `stream=True`.",
                          param="stream_options")  # fmt: skip
    model = body.get("model")
    if model is not None and model not in state["models"]:
        return error_json(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    return None


def usage_for(fault: dict[str, str], completion: int) -> dict[str, int]:
    prompt = 7
    if "neg_usage" in fault:
        # A broken engine: counts below zero must not drive budgets or metrics backwards.
        prompt, completion = -1000, -500
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


async def health(_: web.Request) -> web.Response:
    if not state["healthy"] or not state["ready"]:
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
    if state["ready"]:
        ready_event.set()
    else:
        ready_event.clear()
    return web.json_response(state)


async def get_events(request: web.Request) -> web.Response:
    return web.json_response(events.get(request.match_info["rid"], []))


async def generate(request: web.Request) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id", "-")
    raw = await request.read()
    attempts[rid] += 1
    sent = base64.b64encode(raw).decode()
    try:
        body = json.loads(raw)
    except ValueError:
        record(rid, "start", headers=lowered(request), size=len(raw), body=sent)
        record(rid, "bad_json")
        return error_json(400, "invalid JSON reached the engine")
    if not isinstance(body, dict):
        record(rid, "start", headers=lowered(request), size=len(raw), body=sent)
        return error_json(400, "the body must be a JSON object")
    record(rid, "start", headers=lowered(request), size=len(raw), body=sent,
           model=body.get("model"))  # fmt: skip
    if not state["ready"]:
        # Still loading: a real engine would hold the request (or not listen yet).
        record(rid, "waiting_for_ready")
        await ready_event.wait()
    refusal = engine_checks(body)
    if refusal is not None:
        record(rid, "refused", status=refusal.status)
        return refusal
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
        message = "engine says no"
        if "echo" in fault:
            # What a pydantic validation error looks like: it quotes the request.
            message = ("1 validation error for ChatCompletionRequest\n  Value error "
                       f"[type=value_error, input_value={body!r}, input_type=dict]")  # fmt: skip
        resp: web.StreamResponse = error_json(int(fault["status"]), message)
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
        if "big" in fault:
            return await _big_answer(request, rid, fault, chunks)
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
        if "stale_extra" in fault:
            # A broken engine writes a second, unrequested answer on the kept-alive
            # connection once this one is done: it must never reach the next request.
            stale = json.dumps({"id": f"stale-{rid}", "object": "chat.completion",
                                "created": created, "model": MODEL, "choices": [choice],
                                "usage": usage_for(fault, chunks)}).encode()  # fmt: skip
            transport = request.transport
            assert transport is not None
            asyncio.get_running_loop().call_later(0.1, transport.write, (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(stale), stale)
            ))  # fmt: skip
        return web.json_response({
            "id": f"cmpl-{rid}", "object": "chat.completion" if chat else "text_completion",
            "created": created, "model": MODEL, "choices": [choice],
            "usage": usage_for(fault, chunks),
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
        event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        for name in ("cut_mid_event", "stall_mid_event"):
            if name in fault and i == int(fault[name]):
                # 40 bytes of an event, then a reset (or silence): the half event must
                # never reach the client.
                await resp.write(event[:40])
                await asyncio.sleep(0.2)
                record(rid, "abort" if name == "cut_mid_event" else "stall")
                if name == "stall_mid_event":
                    await asyncio.sleep(3600)
                assert request.transport is not None
                request.transport.abort()
                return resp
        if "sse_comments" in fault:
            # SSE comment lines between events (a keep-alive, as proxies and some
            # servers send): the SDK skips them, and they are not tokens.
            await resp.write(b": ping\n\n")
        if "split_events" in fault:
            # Event boundaries that do not match reads: halves with a pause between.
            await resp.write(event[:25])
            await asyncio.sleep(0.01)
            event = event[25:]
        await resp.write(event)
        if delay:
            await asyncio.sleep(delay)
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        final = {"id": f"c-{rid}", "object": obj, "created": created, "model": MODEL,
                 "choices": [], "usage": usage_for(fault, chunks)}  # fmt: skip
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    record(rid, "done")
    return resp


async def _big_answer(
    request: web.Request, rid: str, fault: dict[str, str], chunks: int
) -> web.StreamResponse:
    """A non-streamed answer of ``big`` MiB, written in ``pieces`` with ``gap`` seconds between."""
    size = int(float(fault["big"]) * 1024 * 1024)
    pieces = int(fault.get("pieces", "8"))
    gap = float(fault.get("gap", "0"))
    head = json.dumps(
        {
            "id": f"cmpl-{rid}",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "@"},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    prefix, _, _ = head.rpartition('"@"')
    tail = '"}, "finish_reason": "stop"}], "usage": ' + json.dumps(usage_for(fault, chunks)) + "}"
    opening = (prefix + '"').encode()
    filler = size - len(opening) - len(tail)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(opening) + filler + len(tail)
    await resp.prepare(request)
    await resp.write(opening)
    step = max(1, filler // pieces)
    left = filler
    while left > 0:
        n = min(step, left)
        await resp.write(b"x" * n)
        left -= n
        if gap:
            await asyncio.sleep(gap)
    await resp.write(tail.encode())
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
    ready_event.set()
    # keepalive_timeout: vLLM's uvicorn closes idle connections after 5 s.
    runner = web.AppRunner(
        make_app(), handler_cancellation=True, access_log=None, keepalive_timeout=5.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server) and server.sockets
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

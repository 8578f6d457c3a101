"""Issue 12: every request vLLM 0.31 accepts passes through byte for byte.

The gateway reads only what its own job needs (see ``sidecar/validation.py``) and
forwards the original bytes; the scripted engine records what it received. The table is
taken from vLLM's request models: ``ChatCompletionRequest`` (messages of any role string,
since ``CustomChatCompletionMessageParam.role`` is a plain ``str``; content as a string
or a list of parts; ``top_k``, ``min_p``, ``repetition_penalty``; ``structured_outputs``;
``response_format`` of type ``json_schema``; ``tools``/``tool_choice``;
``chat_template_kwargs``; ``logprobs``/``top_logprobs``; ``n``;
``max_completion_tokens``), ``CompletionRequest`` (token-id prompts, ``logprobs``) and
``EmbeddingCompletionRequest`` (``encoding_format: base64``, token-id input), all of them
``OpenAIBaseModel`` with ``extra="allow"`` (unknown fields are accepted and ignored).

Source: the pinned tag could not be brought here (``fetch github:vllm-project/vllm``
refused a 1.1 GB snapshot, above its 500 MB limit), so the files were read from the
stored versions of the vLLM repository: ``vllm/entrypoints/openai/engine/protocol.py``
(commit 040a2cc2a6295ea9c313d86526ff90a103eacb3e: ``OpenAIBaseModel`` with
``extra="allow"``, ``ErrorInfo.code: int``, ``StreamOptions.include_usage`` default
True) and ``vllm/entrypoints/openai/chat_completion/protocol.py`` (commit
002032ee2b18e1f7bd924ec47b62504ba3866063: the ``ChatCompletionRequest`` fields above).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sidecar_harness import KEY_A, Sidecar, Upstream

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
USER: ChatCompletionMessageParam = {"role": "user", "content": "hi"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [USER], **fields}


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}  # fmt: skip

TABLE: list[tuple[str, str, Any]] = [
    (
        "role ipython",
        CHAT,
        chat(
            messages=[
                {"role": "system", "content": "s"},
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "ipython", "content": '{"result": 1}'},
            ]
        ),
    ),
    ("any role string", CHAT, chat(messages=[{"role": "narrator", "content": "x"}, USER])),
    (
        "developer and tool roles",
        CHAT,
        chat(
            messages=[
                {"role": "developer", "content": "d"},
                USER,
                {"role": "tool", "content": "r", "tool_call_id": "c1"},
            ]
        ),
    ),
    ("string content parts", CHAT, chat(messages=[{"role": "user", "content": ["a", "b"]}])),
    (
        "dict content parts",
        CHAT,
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "describe"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                }
            ]
        ),
    ),
    (
        "mixed content parts",
        CHAT,
        chat(messages=[{"role": "user", "content": ["plain", {"type": "text", "text": "typed"}]}]),
    ),
    (
        "sampling extras",
        CHAT,
        chat(
            top_k=-1,
            min_p=0.05,
            repetition_penalty=1.15,
            length_penalty=1.0,
            min_tokens=2,
            ignore_eos=False,
            stop_token_ids=[2],
            bad_words=["x"],
        ),
    ),
    ("repetition_penalty above 2", CHAT, chat(repetition_penalty=2.5)),
    ("long stop list", CHAT, chat(stop=[f"s{i}" for i in range(100)])),
    ("structured_outputs json", CHAT, chat(structured_outputs={"json": SCHEMA})),
    ("structured_outputs choice", CHAT, chat(structured_outputs={"choice": ["yes", "no"]})),
    ("structured_outputs regex", CHAT, chat(structured_outputs={"regex": "[0-9]+"})),
    (
        "response_format json_schema",
        CHAT,
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": SCHEMA, "strict": True},
            }
        ),
    ),
    ("response_format json_object", CHAT, chat(response_format={"type": "json_object"})),
    (
        "tools and named tool_choice",
        CHAT,
        chat(
            tools=[TOOL],
            tool_choice={"type": "function", "function": {"name": "lookup"}},
            parallel_tool_calls=False,
        ),
    ),
    ("tool_choice required", CHAT, chat(tools=[TOOL], tool_choice="required")),
    (
        "chat_template_kwargs",
        CHAT,
        chat(
            chat_template_kwargs={"enable_thinking": False},
            add_generation_prompt=True,
            continue_final_message=False,
        ),
    ),
    ("logprobs", CHAT, chat(logprobs=True, top_logprobs=5)),
    ("top_logprobs -1", CHAT, chat(logprobs=True, top_logprobs=-1)),
    ("n", CHAT, chat(n=3, temperature=0.7)),
    ("max_completion_tokens", CHAT, chat(max_completion_tokens=64)),
    ("model omitted", CHAT, {"messages": [USER]}),
    ("reasoning_effort", CHAT, chat(reasoning_effort="low", include_reasoning=True)),
    (
        "stream with continuous usage",
        CHAT,
        chat(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True}),
    ),
    ("stream as a lax boolean", CHAT, chat(stream="true")),
    ("seed at int64 bounds", CHAT, chat(seed=-(2**63))),
    (
        "priority, request_id, cache_salt",
        CHAT,
        chat(priority=0, request_id="mine-1", cache_salt="c2FsdA=="),
    ),
    (
        "unknown vendor fields",
        CHAT,
        chat(
            x_vendor={"nested": [1, {"k": None}]},
            best_of=3,
            metadata={"team": "a"},
            service_tier="auto",
        ),
    ),
    ("completion token-id prompt", COMPLETIONS, {"model": "fake-model", "prompt": [1, 2, 3]}),
    (
        "completion token-id batch",
        COMPLETIONS,
        {"model": "fake-model", "prompt": [[1, 2], [3, 4, 5]]},
    ),
    (
        "completion logprobs -1 and echo",
        COMPLETIONS,
        {
            "model": "fake-model",
            "prompt": "p",
            "logprobs": -1,
            "echo": True,
            "suffix": None,
        },
    ),
    (
        "completion prompt_embeds-free extras",
        COMPLETIONS,
        {
            "model": "fake-model",
            "prompt": "p",
            "top_k": 40,
            "min_p": 0.1,
            "structured_outputs": {"grammar": 'root ::= "a"'},
            "return_tokens_as_token_ids": True,
        },
    ),
    (
        "embeddings base64",
        EMBEDDINGS,
        {"model": "fake-model", "input": "text", "encoding_format": "base64"},
    ),
    (
        "embeddings token ids",
        EMBEDDINGS,
        {
            "model": "fake-model",
            "input": [[1, 2, 3], [4]],
            "dimensions": 8,
            "truncate_prompt_tokens": -1,
        },
    ),
]


def encodings(body: Any) -> list[bytes]:
    """The same request as different clients write it: compact, spaced, escaped, unicode."""
    return [
        json.dumps(body, separators=(",", ":")).encode(),
        json.dumps(body, indent=2, ensure_ascii=True).encode() + b"\n",
        json.dumps(body, ensure_ascii=False).replace('"hi"', '"h\\u0069 \u00e9\U0001f600"')
        .encode(),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "body"), TABLE, ids=[row[0] for row in TABLE])
def test_a_request_vllm_accepts_reaches_the_engine_unchanged(
    sidecar: Sidecar, upstream: Upstream, name: str, path: str, body: Any
) -> None:
    for raw in encodings(body):
        request_id = f"conf-{uuid.uuid4().hex[:12]}"
        resp = httpx.post(
            f"{sidecar.url}{path}",
            content=raw,
            headers={
                "Authorization": f"Bearer {KEY_A}",
                "Content-Type": "application/json",
                "X-Request-Id": request_id,
            },
            timeout=20,
        )
        assert resp.status_code == 200, (name, resp.text)
        received = upstream.wait_event(request_id, "start")
        assert base64.b64decode(received["body"]) == raw, name
        if body.get("stream") is True or body.get("stream") == "true":
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.text.rstrip().endswith("data: [DONE]")


def test_a_request_vllm_refuses_comes_back_with_vllms_status_and_message(
    sidecar: Sidecar,
) -> None:
    client = sidecar.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="fake-model",
            messages=[USER],
            stream=False,
            stream_options={"include_usage": True},
        )
    error = err.value.response.json()["error"]
    assert error == {
        "message": "Stream options can only be defined when `stream=True`.",
        "type": "BadRequestError",
        "param": "stream_options",
        "code": 400,
    }
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=[USER])
    assert missing.value.response.json()["error"] == {
        "message": "The model `no-such-model` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }

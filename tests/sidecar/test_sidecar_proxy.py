"""Pass-through with the stock openai SDK: chat, streams, completions, embeddings, models."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from sidecar_harness import HELLO, KEY_A, KEY_B, Sidecar, Upstream, fault

SECRET_PROMPT = "the-launch-code-is-4711-do-not-log"


def rid() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_chat_completion_passes_through(sidecar: Sidecar, upstream: Upstream) -> None:
    request_id = rid()
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
    )
    result = raw.parse()
    assert result.choices[0].message.content is not None
    assert result.choices[0].message.content.startswith("tok0 tok1")
    assert result.usage is not None and result.usage.total_tokens == 23
    assert raw.headers["x-request-id"] == request_id
    # The engine saw the same id: one id follows the request through both logs.
    assert upstream.wait_event(request_id, "start")["headers"]["x-request-id"] == request_id


def test_stream_arrives_chunk_by_chunk_with_usage(sidecar: Sidecar) -> None:
    request_id = rid()
    stream = sidecar.client().chat.completions.create(
        model="fake-model",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": request_id},
    )
    pieces = []
    usage = None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert pieces == [f"tok{i} " for i in range(16)]
    assert usage is not None and usage.completion_tokens == 16
    line = sidecar.request_log(request_id)
    assert line["completion_tokens"] == 16
    assert line["prompt_tokens"] == 7
    assert line["usage"] == "reported"
    assert line["ttft_ms"] >= 0


def test_stream_without_usage_is_estimated(sidecar: Sidecar) -> None:
    request_id = rid()
    stream = sidecar.client().completions.create(
        model="fake-model",
        prompt="hi",
        stream=True,
        extra_headers={"X-Request-Id": request_id},
    )
    texts = [chunk.choices[0].text for chunk in stream]
    assert len(texts) == 16
    line = sidecar.request_log(request_id)
    assert line["usage"] == "estimated"
    assert line["completion_tokens"] == 16


def test_completions_embeddings_and_models(sidecar: Sidecar) -> None:
    client = sidecar.client()
    completion = client.completions.create(model="fake-model", prompt="Say hi", max_tokens=5)
    assert completion.choices[0].text.startswith("tok0")
    embedding = client.embeddings.create(model="fake-model", input="hello")
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]
    assert [model.id for model in client.models.list()] == ["fake-model"]


def test_generated_request_id_is_returned_and_forwarded(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    resp = httpx.post(
        f"{sidecar.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY_A}", "X-Request-Id": "bad id with spaces"},
        json={"model": "fake-model", "messages": HELLO},
    )
    assert resp.status_code == 200
    generated = resp.headers["x-request-id"]
    assert generated != "bad id with spaces" and len(generated) == 32
    assert upstream.wait_event(generated, "start")


def test_authorization_and_hop_by_hop_headers_are_not_forwarded(
    sidecar: Sidecar, upstream: Upstream
) -> None:
    request_id = rid()
    resp = httpx.post(
        f"{sidecar.url}/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {KEY_A}",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "Connection": "keep-alive, X-Hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "X-Hop": "1",
            "X-Request-Id": request_id,
        },
        json={"model": "fake-model", "messages": HELLO},
    )
    assert resp.status_code == 200
    seen = {name.lower() for name in upstream.wait_event(request_id, "start")["headers"]}
    for header in ("authorization", "proxy-authorization", "keep-alive", "te", "x-hop"):
        assert header not in seen
    assert "x-request-id" in seen
    assert "keep-alive" not in {name.lower() for name in resp.headers}
    hop = httpx.post(
        f"{sidecar.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY_A}"},
        json={"model": "fake-model", "messages": fault("hop_headers")},
    )
    assert hop.status_code == 200
    assert hop.headers["x-engine"] == "fake"
    assert "keep-alive" not in hop.headers


def test_teams_are_told_apart_and_bad_keys_refused(sidecar: Sidecar) -> None:
    request_id = rid()
    sidecar.client(key=KEY_B).chat.completions.create(
        model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": request_id}
    )
    assert sidecar.request_log(request_id)["team"] == "beta"
    with pytest.raises(openai.AuthenticationError) as err:
        sidecar.client(key="sk-wrong-key-000000").chat.completions.create(
            model="fake-model", messages=HELLO
        )
    assert err.value.status_code == 401
    body = err.value.response.json()
    assert body["error"]["code"] == "invalid_api_key"
    resp = httpx.get(f"{sidecar.url}/v1/models")
    assert resp.status_code == 401


def test_route_prefix_is_accepted_and_stripped(make_sidecar: object, upstream: Upstream) -> None:
    proc = make_sidecar(SIDECAR_ROUTE_PREFIX="/llama-8b")  # type: ignore[operator]
    prefixed = proc.client(prefix="/llama-8b")
    assert prefixed.chat.completions.create(model="fake-model", messages=HELLO).choices
    assert [m.id for m in prefixed.models.list()] == ["fake-model"]
    plain = proc.client()
    assert plain.chat.completions.create(model="fake-model", messages=HELLO).choices
    assert httpx.get(f"{proc.url}/llama-8b/health").status_code == 200
    assert httpx.get(f"{proc.url}/llama-8bx/v1/models").status_code == 404


def test_logs_never_contain_keys_prompts_or_completions(sidecar: Sidecar) -> None:
    request_id = rid()
    client = sidecar.client()
    client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": SECRET_PROMPT}],
        extra_headers={"X-Request-Id": request_id},
    )
    # An engine refusal that quotes the request (pydantic's dump) is not relayed as is.
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="fake-model",
            messages=[
                {"role": "user", "content": SECRET_PROMPT},
                {"role": "user", "content": "#fault status=400 echo"},
            ],
        )
    assert SECRET_PROMPT not in err.value.response.text
    assert err.value.response.json()["error"]["code"] == 400
    sidecar.request_log(request_id)
    output = "\n".join(sidecar.lines)
    for secret in (KEY_A, KEY_B, SECRET_PROMPT, "tok3 tok4"):
        assert secret not in output
    line = sidecar.request_log(request_id)
    assert {"request_id", "team", "status", "latency_ms", "prompt_tokens"} <= line.keys()


def test_unknown_path_and_wrong_method_in_openai_shape(sidecar: Sidecar) -> None:
    resp = httpx.get(f"{sidecar.url}/v2/nothing")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    resp = httpx.get(
        f"{sidecar.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_A}"}
    )
    assert resp.status_code == 405
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_upstream_client_error_is_reshaped_not_5xx(sidecar: Sidecar) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sidecar.client().chat.completions.create(model="fake-model", messages=fault("status=400"))
    body = err.value.response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["message"] == "engine says no"

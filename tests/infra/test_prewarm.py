"""The pre-warm run against real boto3 clients with botocore's Stubber.

The Stubber checks every request against botocore's ECS and CloudWatch Logs models (and our
expected parameters), so a malformed RunTask fails here rather than at `pulumi up`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from botocore.stub import ANY, Stubber

from components.ecs.prewarm import (
    LOG_TAIL_LINES,
    POLL_SECONDS,
    TRIGGERS,
    PrewarmError,
    PrewarmProvider,
    run_prewarm,
)
from modelfleet.containers import PREWARM_CONTAINER
from modelfleet.plan import prewarm_timeout_s

pytestmark = pytest.mark.xdist_group("infra")

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/mf-platform-dev-gpu-cluster"
TASK_DEF = "arn:aws:ecs:us-east-1:123456789012:task-definition/mf-platform-dev-llama-8b-prewarm:3"
MODEL = "hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659"
ADAPTER = "s3://acme-search-adapters/rerank-lora/v3/"
LOG_GROUP = "mf-platform-dev-prewarm-llama-8b-logs-a1b2c3d"
# What the plan passes per source: the fetcher's argv with the plan's expectations.
EXPECT = {
    MODEL: '{"key": "modelfleet:models[llama-8b]", "quant_method": null}',
    ADAPTER: '{"key": "modelfleet:models[llama-8b].loraAdapters[rerank]", "max_lora_rank": 16}',
}


def _command(source: str) -> list[str]:
    return [source, "/models", "--expect", EXPECT[source]]


def _task_arn(n: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task/mf-platform-dev-gpu-cluster/{n:032x}"


def _props(sources: list[str], timeout: int = 600) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "cluster": CLUSTER,
        "taskDefinition": TASK_DEF,
        "subnets": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
        "securityGroups": ["sg-0a1b2c3d4e5f60003"],
        "sources": sources,
        "commands": {s: _command(s) for s in sources},
        "destRoot": "/models",
        "accessPoint": "fsap-0a1b2c3d4e5f60004",
        "logGroup": LOG_GROUP,
        "logStreamPrefix": "fetcher",
        "timeoutSeconds": timeout,
    }


def _client(service: Literal["ecs", "logs"]) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture
def clients() -> Iterator[tuple[Any, Stubber, Any, Stubber]]:
    ecs, logs = _client("ecs"), _client("logs")
    with Stubber(ecs) as ecs_stub, Stubber(logs) as logs_stub:
        yield ecs, ecs_stub, logs, logs_stub
        ecs_stub.assert_no_pending_responses()
        logs_stub.assert_no_pending_responses()


def _expect_run_task(stub: Stubber, source: str, arn: str) -> None:
    stub.add_response(
        "run_task",
        {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []},
        {
            "cluster": CLUSTER,
            "taskDefinition": TASK_DEF,
            "count": 1,
            "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}],
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                    "securityGroups": ["sg-0a1b2c3d4e5f60003"],
                    "assignPublicIp": "DISABLED",
                }
            },
            "overrides": {
                "containerOverrides": [{"name": PREWARM_CONTAINER, "command": _command(source)}]
            },
            "startedBy": "modelfleet-prewarm",
            "propagateTags": "TASK_DEFINITION",
        },
    )


def _task(arn: str, status: str, exit_code: int | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": PREWARM_CONTAINER, "lastStatus": status}
    task: dict[str, Any] = {"taskArn": arn, "lastStatus": status, "containers": [container]}
    if exit_code is not None:
        container["exitCode"] = exit_code
        task["stoppedReason"] = "Essential container in task exited"
    return task


def _expect_describe(stub: Stubber, arns: list[str], tasks: list[dict[str, Any]]) -> None:
    stub.add_response(
        "describe_tasks", {"tasks": tasks, "failures": []}, {"cluster": CLUSTER, "tasks": arns}
    )


def test_success_waits_for_every_source(clients: tuple[Any, Stubber, Any, Stubber]) -> None:
    ecs, ecs_stub, logs, _ = clients
    a, b = _task_arn(1), _task_arn(2)
    _expect_run_task(ecs_stub, MODEL, a)
    _expect_run_task(ecs_stub, ADAPTER, b)
    _expect_describe(ecs_stub, [a, b], [_task(a, "RUNNING"), _task(b, "RUNNING")])
    _expect_describe(ecs_stub, [a, b], [_task(a, "RUNNING"), _task(b, "STOPPED", 0)])
    _expect_describe(ecs_stub, [a], [_task(a, "STOPPED", 0)])
    sleeps: list[float] = []
    runs = run_prewarm(ecs, logs, _props([MODEL, ADAPTER]), sleep=sleeps.append)
    assert [(r["source"], r["taskArn"], r["exitCode"]) for r in runs] == [
        (MODEL, a, 0),
        (ADAPTER, b, 0),
    ]
    assert sleeps == [POLL_SECONDS, POLL_SECONDS]


def test_failure_raises_with_the_log_tail(clients: tuple[Any, Stubber, Any, Stubber]) -> None:
    ecs, ecs_stub, logs, logs_stub = clients
    arn = _task_arn(7)
    task_id = arn.rsplit("/", 1)[1]
    stream = f"fetcher/{PREWARM_CONTAINER}/{task_id}"
    _expect_run_task(ecs_stub, MODEL, arn)
    _expect_describe(ecs_stub, [arn], [_task(arn, "STOPPED", 5)])
    logs_stub.add_response(
        "get_log_events",
        {
            "events": [
                {"timestamp": 1, "message": "fetching meta-llama/Llama-3.1-8B-Instruct\n"},
                {"timestamp": 2, "message": "error: 401 gated repo, set hfToken"},
            ]
        },
        {
            "logGroupName": LOG_GROUP,
            "logStreamName": stream,
            "limit": LOG_TAIL_LINES,
            "startFromHead": False,
        },
    )
    with pytest.raises(PrewarmError) as err:
        run_prewarm(ecs, logs, _props([MODEL]), sleep=lambda s: None)
    message = str(err.value)
    assert "exit 5" in message
    assert MODEL in message
    assert f"{LOG_GROUP}/{stream}" in message
    assert "error: 401 gated repo, set hfToken" in message
    assert "fetching meta-llama/Llama-3.1-8B-Instruct\nerror" in message  # lines, in order


def test_failure_without_logs_still_names_the_stream(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ecs, ecs_stub, logs, logs_stub = clients
    arn = _task_arn(8)
    _expect_run_task(ecs_stub, MODEL, arn)
    _expect_describe(ecs_stub, [arn], [_task(arn, "STOPPED", 1)])
    logs_stub.add_client_error(
        "get_log_events", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    with pytest.raises(PrewarmError, match="unavailable") as err:
        run_prewarm(ecs, logs, _props([MODEL]), sleep=lambda s: None)
    assert arn.rsplit("/", 1)[1] in str(err.value)


def test_run_task_failures_raise_with_the_reason(
    clients: tuple[Any, Stubber, Any, Stubber],
) -> None:
    ecs, ecs_stub, logs, _ = clients
    ecs_stub.add_response(
        "run_task",
        {"tasks": [], "failures": [{"arn": CLUSTER, "reason": "Capacity is unavailable"}]},
        {
            "cluster": CLUSTER,
            "taskDefinition": TASK_DEF,
            "count": 1,
            "capacityProviderStrategy": ANY,
            "networkConfiguration": ANY,
            "overrides": ANY,
            "startedBy": "modelfleet-prewarm",
            "propagateTags": "TASK_DEFINITION",
        },
    )
    with pytest.raises(PrewarmError, match=r"could not start: .*Capacity is unavailable"):
        run_prewarm(ecs, logs, _props([MODEL]), sleep=lambda s: None)


def test_run_task_client_error_propagates(clients: tuple[Any, Stubber, Any, Stubber]) -> None:
    ecs, ecs_stub, logs, _ = clients
    ecs_stub.add_client_error(
        "run_task",
        service_error_code="InvalidParameterException",
        service_message="capacity provider FARGATE is not associated with the cluster",
    )
    with pytest.raises(Exception, match="not associated"):
        run_prewarm(ecs, logs, _props([MODEL]), sleep=lambda s: None)


def test_timeout_stops_the_task(clients: tuple[Any, Stubber, Any, Stubber]) -> None:
    ecs, ecs_stub, logs, _ = clients
    arn = _task_arn(9)
    _expect_run_task(ecs_stub, MODEL, arn)
    _expect_describe(ecs_stub, [arn], [_task(arn, "RUNNING")])
    _expect_describe(ecs_stub, [arn], [_task(arn, "RUNNING")])
    ecs_stub.add_response(
        "stop_task",
        {"task": {"taskArn": arn, "lastStatus": "RUNNING"}},
        {"cluster": CLUSTER, "task": arn, "reason": "pre-warm timed out"},
    )
    ticks = iter([0.0, 10.0, 601.0])
    with pytest.raises(PrewarmError, match="timed out after 600 s"):
        run_prewarm(
            ecs, logs, _props([MODEL], timeout=600), sleep=lambda s: None, clock=lambda: next(ticks)
        )


def test_timeout_grows_with_the_checkpoint() -> None:
    assert prewarm_timeout_s(140) > prewarm_timeout_s(15) > 600  # the plan derives it
    # The prod 70B downloads its 131.41 GiB bf16 checkpoint (served as fp8): 3 x 131.41 x
    # 1024 / 100 MiB/s + 600 = 4637 s, where 1 byte a weight (67.66 GiB) allowed only 2679 s.
    assert prewarm_timeout_s(131.41) == 4637


def test_provider_create_returns_the_runs(
    clients: tuple[Any, Stubber, Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    ecs, ecs_stub, logs, _ = clients
    arn = _task_arn(3)
    _expect_run_task(ecs_stub, MODEL, arn)
    _expect_describe(ecs_stub, [arn], [_task(arn, "STOPPED", 0)])
    provider = PrewarmProvider()
    monkeypatch.setattr(provider, "_clients", lambda region: (ecs, logs))
    result = provider.create(_props([MODEL]))
    assert result.id == arn
    assert result.outs is not None
    assert result.outs["runs"][0]["exitCode"] == 0
    assert result.outs["sources"] == [MODEL]


@pytest.mark.parametrize(
    ("key", "value", "changes"),
    [
        ("sources", [MODEL, ADAPTER], True),
        ("destRoot", "/cache", True),
        ("accessPoint", "fsap-0ffffffffffffffff", True),
        # New expectations (e.g. a new LoRA rank) re-run the fetch, which verifies them.
        ("commands", {MODEL: [MODEL, "/models", "--expect", '{"key": "k"}']}, True),
        # A new fetcher image or a new task definition revision does not refill the cache.
        ("taskDefinition", TASK_DEF.replace(":3", ":4"), False),
        ("subnets", ["subnet-0ffffffffffffffff"], False),
        ("timeoutSeconds", 9999, False),
        ("logGroup", "other", False),
    ],
)
def test_diff_triggers_only_on_cache_inputs(key: str, value: Any, changes: bool) -> None:
    olds = {**_props([MODEL]), "runs": [{"exitCode": 0}], "seconds": 12.0}
    news = {**_props([MODEL]), key: value}
    result = PrewarmProvider().diff("id", olds, news)
    assert result.changes is changes
    assert not result.replaces
    assert set(TRIGGERS) == {"sources", "destRoot", "accessPoint", "commands"}


def test_diff_of_identical_inputs_is_no_change() -> None:
    olds = {**_props([MODEL]), "runs": [{"exitCode": 0}], "seconds": 12.0}
    assert PrewarmProvider().diff("id", olds, _props([MODEL])).changes is False

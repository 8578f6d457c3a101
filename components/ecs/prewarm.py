"""Pre-warm at `pulumi up`: fetch a model into the cache before its service starts.

Per model, a Fargate task definition runs the fetcher (no GPU is needed to download), and a
dynamic resource runs it once per source whenever a source (or the cache under it) changes,
waits for it, and fails `pulumi up` with the tail of the fetcher's log when it fails. The
model's ECS service depends on it, so a new revision is on EFS before any task loads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_aws as aws

from components._common import child, stack_tags
from components.model_cache import efs_volume
from components.stack_config import aws_session
from modelfleet.containers import TaskRefs, fetcher_command, fetcher_sources, prewarm_container
from modelfleet.contract import MODELS_MOUNT, PREWARM_CONTAINER
from modelfleet.plan_types import FleetPlan

FARGATE_CPU = "2048"  # hashing checksums of tens of GiB is CPU-bound at one vCPU
FARGATE_MEMORY = "8192"
POLL_SECONDS = 10.0
LOG_TAIL_LINES = 30


class PrewarmError(Exception):
    pass


def _log_tail(logs: Any, group: str, stream: str) -> str:
    try:
        events = logs.get_log_events(
            logGroupName=group, logStreamName=stream, limit=LOG_TAIL_LINES, startFromHead=False
        )["events"]
    except Exception as exc:
        return f"(log {group}/{stream} unavailable: {exc})"
    return "\n".join(e["message"].rstrip() for e in events) or "(no log lines)"


def run_prewarm(
    ecs: Any,
    logs: Any,
    props: dict[str, Any],
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> list[dict[str, Any]]:
    """Start one fetcher task per source, wait for all, raise with log tails on failure.

    `ecs` and `logs` are boto3 clients (tests pass stubbed ones).
    """
    started: list[tuple[str, str]] = []
    for source in props["sources"]:
        # SOURCE DEST_ROOT --expect JSON: the plan's expectations travel with every run.
        command = props["commands"][source]
        resp = ecs.run_task(
            cluster=props["cluster"],
            taskDefinition=props["taskDefinition"],
            count=1,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": props["subnets"],
                    "securityGroups": props["securityGroups"],
                    "assignPublicIp": "DISABLED",
                }
            },
            overrides={"containerOverrides": [{"name": PREWARM_CONTAINER, "command": command}]},
            startedBy="modelfleet-prewarm",
            propagateTags="TASK_DEFINITION",
        )
        if resp.get("failures") or not resp.get("tasks"):
            reasons = "; ".join(
                f"{f.get('arn', '')} {f.get('reason', '')}".strip()
                for f in resp.get("failures", [])
            )
            raise PrewarmError(f"pre-warm of {source} could not start: {reasons or 'no task'}")
        started.append((source, resp["tasks"][0]["taskArn"]))

    deadline = clock() + float(props["timeoutSeconds"])
    pending = dict((arn, src) for src, arn in started)
    results: dict[str, dict[str, Any]] = {}
    while pending:
        desc = ecs.describe_tasks(cluster=props["cluster"], tasks=list(pending))
        for task in desc.get("tasks", []):
            if task.get("lastStatus") != "STOPPED":
                continue
            arn = task["taskArn"]
            source = pending.pop(arn)
            container: dict[str, Any] = next(
                (c for c in task.get("containers", []) if c.get("name") == PREWARM_CONTAINER), {}
            )
            results[source] = {
                "source": source,
                "taskArn": arn,
                "exitCode": container.get("exitCode"),
                "stoppedReason": task.get("stoppedReason", ""),
            }
        if not pending:
            break
        if clock() > deadline:
            for arn in pending:
                ecs.stop_task(cluster=props["cluster"], task=arn, reason="pre-warm timed out")
            raise PrewarmError(
                f"pre-warm timed out after {props['timeoutSeconds']} s: "
                + ", ".join(pending.values())
            )
        sleep(POLL_SECONDS)

    failures = []
    for source, _arn in started:
        r = results[source]
        if r["exitCode"] == 0:
            continue
        task_id = r["taskArn"].rsplit("/", 1)[-1]
        stream = f"{props['logStreamPrefix']}/{PREWARM_CONTAINER}/{task_id}"
        failures.append(
            f"pre-warm of {source} failed (exit {r['exitCode']}, {r['stoppedReason']}); "
            f"last lines of {props['logGroup']}/{stream}:\n"
            + _log_tail(logs, props["logGroup"], stream)
        )
    if failures:
        raise PrewarmError("\n\n".join(failures))
    return [results[s] for s, _ in started]


# Inputs whose change means the cache must be (re)filled; a new fetcher image does not.
# `commands` carries what the fetcher verifies: a changed expectation re-runs the check.
TRIGGERS = ("sources", "destRoot", "accessPoint", "commands")


class PrewarmProvider(pulumi.dynamic.ResourceProvider):
    """Runs in the Pulumi engine's Python host with the deployer's AWS credentials."""

    def _clients(self, props: dict[str, Any]) -> tuple[Any, Any]:
        session = aws_session(props)
        return session.client("ecs"), session.client("logs")

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        ecs, logs = self._clients(props)
        started = time.time()
        runs = run_prewarm(ecs, logs, props)
        return {**props, "runs": runs, "seconds": round(time.time() - started, 1)}

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._run(props)
        return pulumi.dynamic.CreateResult(id_=outs["runs"][0]["taskArn"], outs=outs)

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        changed = [k for k in TRIGGERS if olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed), replaces=[], delete_before_replace=False
        )

    def update(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=self._run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The weights stay in the cache: deleting the file system is what removes them.
        return None


class PrewarmRun(pulumi.dynamic.Resource):
    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(PrewarmProvider(), name, {**props, "runs": None, "seconds": None}, opts)


@dataclass(frozen=True)
class PrewarmArgs:
    plan: FleetPlan
    region: str
    cluster_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    file_system_id: pulumi.Input[str]
    access_point_ids: Mapping[str, pulumi.Input[str]]
    execution_role_arn: Mapping[str, pulumi.Input[str]]
    task_role_arn: Mapping[str, pulumi.Input[str]]
    fetcher_image: pulumi.Input[str]
    secret_arns: Mapping[str, pulumi.Input[str]]
    # The `aws` provider's profile and roles (components.stack_config.aws_session_settings).
    session: Mapping[str, Any]


class Prewarm(pulumi.ComponentResource):
    task_definition_arn: dict[str, pulumi.Output[str]]
    runs: dict[str, PrewarmRun]

    def __init__(
        self, name: str, args: PrewarmArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:prewarm:Prewarm", name, None, opts)
        plan = args.plan
        tags = stack_tags(plan.config)
        self.task_definition_arn = {}
        self.runs = {}
        for m in plan.models:
            ids = plan.ids.prewarm.models[m.name]
            log_group = aws.cloudwatch.LogGroup(
                ids.log_group.name,
                retention_in_days=plan.config.retention_days,
                tags=tags,
                opts=child(self),
            )
            keys = sorted(args.secret_arns)
            containers = pulumi.Output.all(
                log_group.name, args.fetcher_image, *[args.secret_arns[k] for k in keys]
            ).apply(partial(self._containers_json, plan, args, keys))
            task_def = aws.ecs.TaskDefinition(
                ids.task_definition.name,
                family=m.prewarm_family,
                requires_compatibilities=["FARGATE"],
                network_mode="awsvpc",
                cpu=FARGATE_CPU,
                memory=FARGATE_MEMORY,
                runtime_platform={
                    "operating_system_family": "LINUX",
                    "cpu_architecture": "X86_64",
                },
                execution_role_arn=args.execution_role_arn[m.name],
                task_role_arn=args.task_role_arn[m.name],
                container_definitions=containers,
                volumes=[efs_volume(args.file_system_id, args.access_point_ids[m.name])],
                tags=tags,
                opts=child(self),
            )
            self.task_definition_arn[m.name] = task_def.arn
            self.runs[m.name] = PrewarmRun(
                ids.run.name,
                {
                    "region": args.region,
                    "profile": args.session.get("profile"),
                    "roles": list(args.session.get("roles") or []),
                    "cluster": args.cluster_arn,
                    "taskDefinition": task_def.arn,
                    "subnets": args.subnet_ids,
                    "securityGroups": [args.security_group_id],
                    "sources": [s for _, s in fetcher_sources(m, plan)],
                    # Per source: SOURCE DEST_ROOT --expect JSON, as in the serving task.
                    "commands": {s: fetcher_command(m, s) for _, s in fetcher_sources(m, plan)},
                    "destRoot": MODELS_MOUNT,
                    "accessPoint": args.access_point_ids[m.name],
                    "logGroup": log_group.name,
                    "logStreamPrefix": "fetcher",
                    # From the checkpoint as stored (the plan's figure).
                    "timeoutSeconds": m.prewarm_timeout_s,
                },
                opts=child(self),
            )
        self.register_outputs({"task_definitions": self.task_definition_arn})

    @staticmethod
    def _containers_json(plan: FleetPlan, args: PrewarmArgs, keys: list[str], v: list[Any]) -> str:
        log_group, image, *arns = v
        refs = TaskRefs(
            region=args.region,
            log_group=log_group,
            vllm_image=plan.config.images.vllm,
            sidecar_image="",
            fetcher_image=image,
            secret_arns=dict(zip(keys, arns, strict=True)),
        )
        return json.dumps(prewarm_container(plan, refs))

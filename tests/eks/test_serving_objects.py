"""The serving slice's manifests, built from the plan without Pulumi: schema-valid, and each
point of the design (issue 11) held."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from serving_support import (
    SLICE_KINDS,
    eks_plan_for,
    placeholder_objects,
    two_model_config,
    unscheduled_config,
    validate,
)

from modelfleet.containers import TaskRefs, container_definitions, sidecar_env
from modelfleet.kube import scaling
from modelfleet.kube.manifest import KubeObject
from modelfleet.kube.serving import serving_plan
from modelfleet.plan import FleetPlan

CONFIGS = {"scheduled": two_model_config, "unscheduled": unscheduled_config}


@pytest.fixture(params=sorted(CONFIGS))
def plan(request: pytest.FixtureRequest, tmp_path: Path) -> FleetPlan:
    return eks_plan_for(tmp_path, CONFIGS[request.param]())


def _one(objs: list[KubeObject], kind: str, model: str | None) -> dict[str, Any]:
    found = [o.body for o in objs if o.kind == kind and o.model == model]
    assert len(found) == 1, (kind, model, [o.name for o in objs if o.kind == kind])
    return found[0]


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def _walk(value: Any, key: str) -> list[Any]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == key]
        return found + [x for v in value.values() for x in _walk(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v, key)]
    return []


def test_every_object_is_schema_valid_at_the_stacks_kubernetes_version(plan: FleetPlan) -> None:
    assert plan.eks is not None
    objs = placeholder_objects(plan)
    kinds = {o.kind for o in objs}
    assert kinds >= SLICE_KINDS
    for o in objs:
        validate(o.body, plan.eks.kubernetes_version)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", ("spec", "template", "spec")),
        ("ScaledObject", ("spec", "advanced")),
        ("TargetGroupBinding", ("spec",)),
        ("TriggerAuthentication", ("spec", "podIdentity")),
    ],
)
def test_validation_rejects_a_misspelt_field(
    plan: FleetPlan, kind: str, path: tuple[str, ...]
) -> None:
    assert plan.eks is not None
    body = copy.deepcopy(next(o.body for o in placeholder_objects(plan) if o.kind == kind))
    node = body
    for key in path:
        node = node[key]
    node["terminationGracePeriod"] = 30  # a near-miss of real field names
    with pytest.raises(Exception, match="terminationGracePeriod"):
        validate(body, plan.eks.kubernetes_version)


def test_deployment_leaves_replicas_to_the_autoscaler(plan: FleetPlan) -> None:
    for m in plan.models:
        d = _one(placeholder_objects(plan), "Deployment", m.name)
        assert "replicas" not in d["spec"]
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_engine_matches_the_ecs_task_for_the_same_model(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    sp = serving_plan(plan)
    refs = TaskRefs(
        "us-east-1",
        "lg",
        "vllm",
        "sidecar",
        "fetcher",
        {
            s.key: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{s.key}"
            for s in plan.secrets
        },
    )
    for m in plan.models:
        sm = sp.models[m.name]
        c = _containers(_one(objs, "Deployment", m.name))
        ecs = {d["name"]: d for d in container_definitions(m, plan, refs)}
        assert c["vllm"]["args"] == ecs["vllm"]["command"] == m.vllm_command
        # The account's registry by digest, as the ECS task pulls it (issue 13).
        assert c["vllm"]["image"] == plan.engine_image.offline_reference(plan.config.region)
        assert {e["name"]: e["value"] for e in c["vllm"]["env"]} == {
            e["name"]: e["value"] for e in ecs["vllm"]["environment"]
        }
        eks_env = {e["name"]: e.get("value") for e in c["sidecar"]["env"] if "value" in e}
        ecs_env = {e["name"]: e["value"] for e in ecs["sidecar"]["environment"]}
        # One setting differs by design: ECS kills a container 120 s after SIGTERM at most;
        # both values come from the plan's one drain decision.
        assert eks_env["SIDECAR_DRAIN_SECONDS"] == str(plan.drain.pod_sidecar_drain_s)
        assert plan.drain.pod_sidecar_drain_s == plan.drain.requested_s
        assert ecs_env["SIDECAR_DRAIN_SECONDS"] == str(plan.drain.sidecar_drain_s)
        del eks_env["SIDECAR_DRAIN_SECONDS"], ecs_env["SIDECAR_DRAIN_SECONDS"]
        # The same metric dimension as the ECS service, so alarms are one definition.
        assert eks_env["SIDECAR_SERVICE_NAME"] == ecs_env["SIDECAR_SERVICE_NAME"] == m.service_name
        # EMF goes to the node's CloudWatch agent on EKS, to stdout (awslogs) on ECS.
        assert eks_env.pop("SIDECAR_EMF_ENDPOINT") == "udp://$(HOST_IP):25888"
        names = [e["name"] for e in c["sidecar"]["env"]]
        assert names.index("HOST_IP") < names.index("SIDECAR_EMF_ENDPOINT")
        assert eks_env == ecs_env
        assert eks_env == {
            k: v
            for k, v in sidecar_env(plan, m, sm.drain_s).items()
            if k != "SIDECAR_DRAIN_SECONDS"
        }
        # Secrets by the same names on both platforms, from the plan's one secrets table.
        eks_secrets = {e["name"] for e in c["sidecar"]["env"] if "valueFrom" in e} - {"HOST_IP"}
        assert eks_secrets == {x["name"] for x in ecs["sidecar"].get("secrets", [])}
        # The guard: one fetcher init container per source, as ECS runs one per source.
        fetchers = [n for n in c if n.startswith("fetch-")]
        assert fetchers == [n for n, _ in sm.sources]
        assert [c[n]["args"] for n in fetchers] == [ecs[n]["command"] for n in fetchers]


def test_gpu_shm_and_cache_mounts(plan: FleetPlan) -> None:
    for m in plan.models:
        d = _one(placeholder_objects(plan), "Deployment", m.name)
        c = _containers(d)
        res = c["vllm"]["resources"]
        assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"]
        assert res["limits"]["nvidia.com/gpu"] == str(m.tensor_parallel)
        mounts = {v["name"]: v for v in c["vllm"]["volumeMounts"]}
        assert mounts["models"]["readOnly"] is True
        for name, container in c.items():
            if name.startswith("fetch-"):
                assert container["volumeMounts"][0]["readOnly"] is False
        assert mounts["dshm"]["mountPath"] == "/dev/shm"
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        assert volumes["dshm"]["emptyDir"] == {
            "medium": "Memory",
            "sizeLimit": f"{m.shared_memory_mib}Mi",
        }
        assert "nvidia.com/gpu" not in json.dumps(c["sidecar"]["resources"])
        for container in c.values():
            assert container["resources"]["limits"]["memory"]


def test_probe_windows_cover_the_plans_start_estimate(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    for m in plan.models:
        d = _one(objs, "Deployment", m.name)
        c = _containers(d)
        startup = c["vllm"]["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= m.container_start_s
        assert startup["periodSeconds"] * startup["failureThreshold"] >= (
            m.vllm_health_check.start_period
        )
        assert "/health" in " ".join(c["vllm"]["livenessProbe"]["exec"]["command"])
        assert c["sidecar"]["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert _walk(d, "initialDelaySeconds") == []


def test_draining_outlasts_the_target_groups_deregistration_delay(plan: FleetPlan) -> None:
    sp = serving_plan(plan)
    for m in plan.models:
        d = _one(placeholder_objects(plan), "Deployment", m.name)
        pod = d["spec"]["template"]["spec"]
        c = _containers(d)
        for name in ("vllm", "sidecar"):
            assert (
                c[name]["lifecycle"]["preStop"]["sleep"]["seconds"]
                >= plan.drain.deregistration_delay_s
            )
        sidecar_drain = next(
            int(e["value"]) for e in c["sidecar"]["env"] if e["name"] == "SIDECAR_DRAIN_SECONDS"
        )
        assert pod["terminationGracePeriodSeconds"] > (sp.models[m.name].pre_stop_s + sidecar_drain)


def test_pods_stay_on_their_gpu_pool_and_karpenter_leaves_them(plan: FleetPlan) -> None:
    assert plan.eks is not None
    for m in plan.models:
        d = _one(placeholder_objects(plan), "Deployment", m.name)
        pod = d["spec"]["template"]
        where = plan.eks.scheduling[m.name]
        assert pod["spec"]["nodeSelector"] == where.node_selector
        assert pod["spec"]["tolerations"] == [dict(t) for t in where.tolerations]
        assert pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        spread = pod["spec"]["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert pod["spec"]["serviceAccountName"] == plan.eks.workload_service_accounts[m.name]


def test_containers_run_restricted(plan: FleetPlan) -> None:
    for o in placeholder_objects(plan):
        if o.kind not in ("Deployment", "Job"):
            continue
        pod = o.body["spec"]["template"]["spec"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for name, c in _containers(o.body).items():
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["privileged"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            # vLLM's image runs as root (it writes its caches under /root); ours do not.
            assert ctx.get("runAsNonRoot") is (None if name == "vllm" else True)


def test_secrets_only_by_reference(plan: FleetPlan) -> None:
    values = {"api_keys": "team:sk-plain-1", "fallback_api_key": "sk-plain-2", "hf_token": "hf_x"}
    objs = placeholder_objects(plan, values)
    secret = _one(objs, "Secret", None)
    assert secret["stringData"] == values
    rest = json.dumps([o.body for o in objs if o.kind != "Secret"])
    for v in values.values():
        assert v not in rest
    for o in objs:
        for env in _walk(o.body, "env"):
            for e in env:
                if e["name"] in {spec.env for spec in plan.secrets}:
                    assert "value" not in e
                    assert e["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_prewarm_job_is_named_by_its_sources_and_awaited(plan: FleetPlan, tmp_path: Path) -> None:
    objs = placeholder_objects(plan)
    for m in plan.models:
        job = _one(objs, "Job", m.name)
        ann = job["metadata"]["annotations"]
        sources = len(serving_plan(plan).models[m.name].sources)
        assert job["spec"]["activeDeadlineSeconds"] == m.prewarm_timeout_s * sources
        assert int(ann["pulumi.com/timeoutSeconds"]) > job["spec"]["activeDeadlineSeconds"]
        assert ann["pulumi.com/replaceUnready"] == "true"
        assert job["spec"]["backoffLimit"] >= 1
        assert "ttlSecondsAfterFinished" not in job["spec"]
    cfg = two_model_config()
    cfg["modelfleet:models"][1]["source"] = cfg["modelfleet:models"][1]["source"][:-8] + "00000000"
    (tmp_path / "rev").mkdir()
    other = eks_plan_for(tmp_path / "rev", cfg)
    old = {o.model: o.name for o in objs if o.kind == "Job"}
    new = {o.model: o.name for o in placeholder_objects(other) if o.kind == "Job"}
    assert new["custom-7b"] == old["custom-7b"]
    assert new["llama-8b"] != old["llama-8b"]


def test_order_namespace_first_binding_before_pods(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    assert objs[0].kind == "Namespace"
    assert objs[0].body["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == (
        "enabled"
    )
    for m in plan.models:
        kinds = [o.kind for o in objs if o.model == m.name]
        for first in ("Job", "Service", "TargetGroupBinding", "PersistentVolumeClaim"):
            assert kinds.index(first) < kinds.index("Deployment")


def test_binding_and_network_policy(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    assert plan.target_type == "ip"
    for m in plan.models:
        tgb = _one(objs, "TargetGroupBinding", m.name)["spec"]
        assert tgb["targetType"] == plan.target_type
        assert tgb["vpcID"] and tgb["targetGroupARN"] == f"<target-group-arn:{m.name}>"
        svc = _one(objs, "Service", m.name)
        assert tgb["serviceRef"] == {"name": svc["metadata"]["name"], "port": 8080}
    policies = {o.name: o.body["spec"] for o in objs if o.kind == "NetworkPolicy"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    allow = policies["alb-to-sidecar"]["ingress"]
    assert allow == [
        {
            "from": [{"ipBlock": {"cidr": "<alb-subnet-cidr>"}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]


def test_disruption_budget_only_from_two_replicas(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    budgets = {o.model: o.body["spec"] for o in objs if o.kind == "PodDisruptionBudget"}
    assert set(budgets) == {m.name for m in plan.models if m.replicas_min >= 2} == {"llama-8b"}
    assert budgets["llama-8b"]["maxUnavailable"] == 1
    assert budgets["llama-8b"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# --- KEDA ---------------------------------------------------------------------------------


def _evaluate(formula: str, values: dict[str, float]) -> float:
    """Evaluate the expr-lang subset the formulas use (https://expr-lang.org/docs/language-
    definition): numbers, trigger names, `/`, `*`, `>`, `max(a, b)` and `cond ? a : b`."""
    tokens: list[str] = re.findall(r"\d+(?:\.\d+)?|[A-Za-z_][\w-]*|[()?:,/*>]", formula)
    assert "".join(tokens) == formula.replace(" ", ""), formula
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        tok = tokens[pos]
        assert expected is None or tok == expected, (formula, pos, tok)
        pos += 1
        return tok

    def ternary() -> float:
        cond = comparison()
        if peek() != "?":
            return cond
        take("?")
        yes = ternary()
        take(":")
        no = ternary()
        return yes if cond else no

    def comparison() -> float:
        left = product()
        if peek() == ">":
            take(">")
            return float(left > product())
        return left

    def product() -> float:
        value = atom()
        while peek() in ("/", "*"):
            op = take()
            rhs = atom()
            value = value / rhs if op == "/" else value * rhs
        return value

    def atom() -> float:
        tok = take()
        if tok == "(":
            value = ternary()
            take(")")
            return value
        if tok == "max":
            take("(")
            args = [ternary()]
            while peek() == ",":
                take(",")
                args.append(ternary())
            take(")")
            return max(args)
        if tok[0].isdigit():
            return float(tok)
        return float(values[tok])

    result = ternary()
    assert pos == len(tokens), formula
    return result


def test_queue_depth_is_scaled_per_replica_as_on_ecs(tmp_path: Path) -> None:
    plan = eks_plan_for(tmp_path, unscheduled_config())
    target = plan.config.autoscaling.queue_depth_target
    m = plan.model("llama-8b")
    f = scaling.formula(plan, m)
    # 3 replicas each with `target` waiting, sampled SAMPLES_PER_PERIOD times a minute:
    # the composite asks for exactly 3 replicas (AverageValue: ceil(composite / target)).
    queue_sum = 3 * target * scaling.SAMPLES_PER_PERIOD
    assert _evaluate(f, {"queue": queue_sum}) / target == pytest.approx(3)


def test_wake_from_zero_on_requests_only_for_min_zero(tmp_path: Path) -> None:
    plan = eks_plan_for(tmp_path, unscheduled_config())
    target = plan.config.autoscaling.queue_depth_target
    cold = plan.model("custom-7b")
    f = scaling.formula(plan, cold)
    assert _evaluate(f, {"queue": 0, "requests": 0}) == 0
    assert _evaluate(f, {"queue": 0, "requests": 3}) / target == pytest.approx(1)
    so = _one(placeholder_objects(plan), "ScaledObject", "custom-7b")
    wake = next(t for t in so["spec"]["triggers"] if t["name"] == scaling.WAKE_TRIGGER)
    assert wake["metadata"]["metricName"] == "RequestCount"
    assert wake["metadata"]["metricStatPeriod"] == "60"
    assert so["spec"]["minReplicaCount"] == 0
    warm = _one(placeholder_objects(plan), "ScaledObject", "llama-8b")
    assert scaling.WAKE_TRIGGER not in {t["name"] for t in warm["spec"]["triggers"]}
    assert warm["spec"]["minReplicaCount"] == 2
    assert warm["spec"]["maxReplicaCount"] == plan.model("llama-8b").replicas_max


def test_schedule_is_a_hard_stop_at_night_and_a_floor_by_day(tmp_path: Path) -> None:
    plan = eks_plan_for(tmp_path, two_model_config())
    sch = plan.config.schedule
    assert sch is not None
    target = plan.config.autoscaling.queue_depth_target
    busy = {"queue": 50 * target * scaling.SAMPLES_PER_PERIOD, "requests": 500}
    for m in plan.models:
        so = _one(placeholder_objects(plan), "ScaledObject", m.name)
        cron = next(t for t in so["spec"]["triggers"] if t["type"] == "cron")
        assert cron["metadata"] == {
            "timezone": sch.timezone,
            "start": sch.scale_up,
            "end": sch.scale_down,
            "desiredReplicas": str(max(1, m.replicas_min)),
        }
        # The night stop needs 0 here; the day floor comes from the formula.
        assert so["spec"]["minReplicaCount"] == 0
        f = so["spec"]["advanced"]["scalingModifiers"]["formula"]
        night = {**busy, "schedule": 0}
        assert _evaluate(f, night) == 0  # however busy: the object goes inactive
        quiet_day = {"queue": 0, "requests": 0, "schedule": float(max(1, m.replicas_min))}
        assert _evaluate(f, quiet_day) / target == pytest.approx(m.replicas_min)
        assert _evaluate(f, {**busy, "schedule": 1}) / target > m.replicas_min


def test_triggers_use_the_keda_operators_identity(plan: FleetPlan) -> None:
    objs = placeholder_objects(plan)
    auth = _one(objs, "TriggerAuthentication", None)
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    for m in plan.models:
        so = _one(objs, "ScaledObject", m.name)
        for t in so["spec"]["triggers"]:
            if t["type"] == "aws-cloudwatch":
                assert t["authenticationRef"] == {"name": auth["metadata"]["name"]}
                assert "identityOwner" not in t["metadata"]
        queue = next(t for t in so["spec"]["triggers"] if t["name"] == scaling.QUEUE_TRIGGER)
        assert (
            queue["metadata"]["dimensionValue"] == serving_plan(plan).models[m.name].metric_service
        )

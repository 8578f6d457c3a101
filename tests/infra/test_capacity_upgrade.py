"""Upgrading a stack whose `capacity: mixed` groups (one ASG + provider with a mixed instances
policy) become an on-demand and a spot group (issue 13): `keepCapacityProviders` keeps the old
group and its provider attached for one `pulumi up` while the services' strategies move, and
the next run drops it.

ECS refuses to disassociate a capacity provider that tasks use ("You can only disassociate an
existing capacity provider from a cluster if it's not being used by any existing tasks",
PutClusterCapacityProviders; ResourceInUseException), and PutClusterCapacityProviders replaces
the whole list: without the key, the update that moves the services would first try to drop the
old provider from the cluster, with the old tasks still on it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from infra_support import PROD, assert_valid, dependency_names, plan_of

from components.ecs.gpu_capacity import KEPT_ASG_SETTINGS, KEPT_CP_SETTINGS, KEPT_LT_SETTINGS
from components.harness import Run, run_stack
from modelfleet.plan import FleetPlan

pytestmark = pytest.mark.xdist_group("infra")

CCP = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
CP = "aws:ecs/capacityProvider:CapacityProvider"
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SERVICE = "aws:ecs/service:Service"
LEGACY = "g6e-xlarge-mixed"


@pytest.fixture(scope="module")
def run1(tmp_path_factory: pytest.TempPathFactory) -> tuple[FleetPlan, Run]:
    """Run 1 of the upgrade: the shipped prod stack (mixed models) with the legacy group kept.
    (Written here: every tests/<area>/conftest.py imports as the one module `conftest`.)"""
    doc = yaml.safe_load(PROD.read_text())
    doc["config"]["modelfleet:keepCapacityProviders"] = [LEGACY]
    path = tmp_path_factory.mktemp("run1") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return plan_of(path), run_stack(path)


def _legacy(run: Run, type_token: str) -> Any:
    return run.one(type_token, f"-gpu-{LEGACY}-")


def test_run1_keeps_the_legacy_provider_attached(run1: tuple[FleetPlan, Run]) -> None:
    plan, run = run1
    attached = run.one(CCP).inputs["capacityProviders"]
    legacy = _legacy(run, CP)
    assert legacy.outputs["name"] in attached
    # The new groups are attached beside it, and FARGATE for the pre-warm fetcher.
    for key in plan.capacity:
        assert run.one(CP, f"-gpu-{key}-cp").outputs["name"] in attached
    assert "FARGATE" in attached
    assert_valid(
        "ecs",
        "PutClusterCapacityProviders",
        {
            "cluster": run.one(CCP).inputs["clusterName"],
            "capacityProviders": attached,
            "defaultCapacityProviderStrategy": [],
        },
        "cluster providers",
    )


def test_run1_leaves_the_legacy_group_as_it_is(run1: tuple[FleetPlan, Run]) -> None:
    """Same logical names as before (Pulumi adopts the existing resources) and every setting
    ignored, so Pulumi neither updates nor replaces them; only forceDelete is applied, for
    the next run's delete."""
    _, run = run1
    lt, asg, cp = (_legacy(run, t) for t in (LT, ASG, CP))
    assert lt.name.endswith(f"-gpu-{LEGACY}-lt")
    assert asg.name.endswith(f"-gpu-{LEGACY}-asg")
    assert cp.name.endswith(f"-gpu-{LEGACY}-cp")
    assert lt.options["ignoreChanges"] == sorted(KEPT_LT_SETTINGS)
    assert asg.options["ignoreChanges"] == sorted(KEPT_ASG_SETTINGS)
    assert cp.options["ignoreChanges"] == sorted(KEPT_CP_SETTINGS)
    # What the mixed group of the earlier release set is among what is left alone.
    assert {"mixedInstancesPolicy", "launchTemplate", "maxSize"} <= set(KEPT_ASG_SETTINGS)
    assert "forceDelete" not in asg.options["ignoreChanges"]
    assert asg.inputs["forceDelete"] is True
    # A key that names no existing group creates nothing that can run.
    assert asg.inputs["maxSize"] == 0
    assert cp.inputs["autoScalingGroupProvider"]["autoScalingGroupArn"] == asg.outputs["arn"]


def test_run1_moves_the_services_to_the_new_providers(run1: tuple[FleetPlan, Run]) -> None:
    plan, run = run1
    legacy = _legacy(run, CP).outputs["name"]
    moved = [m for m in plan.models if m.instance_type == "g6e.xlarge"]
    assert moved, "the prod stack serves a g6e.xlarge model"
    for m in moved:
        svc = run.one(SERVICE, f"-{m.short}-")
        used = {s["capacityProvider"] for s in svc.inputs["capacityProviderStrategies"]}
        assert legacy not in used
        news = {run.one(CP, f"-gpu-{s.group}-cp").outputs["name"] for s in m.capacity_strategy}
        assert used == news
        # The strategy change waits for the new providers' attachment; it is an update that
        # starts a deployment, not a replacement of the service.
        deps = dependency_names(run, svc)
        assert run.one(CCP).name in deps
        for s in m.capacity_strategy:
            assert run.one(CP, f"-gpu-{s.group}-cp").name in deps
        assert svc.inputs["forceNewDeployment"] is True


def test_every_service_forces_a_deployment_on_update(prod: Run) -> None:
    """Without force_new_deployment, pulumi-aws replaces a service whose capacity provider
    strategy changes (terraform-provider-aws capacityProviderStrategyCustomizeDiff), and the
    service is delete-before-replace: an outage. Every upgrade from mixed changes it."""
    for svc in prod.by_type(SERVICE):
        assert svc.inputs["forceNewDeployment"] is True
        assert svc.options["deleteBeforeReplace"] is True


def test_run1_shows_the_step_in_the_plan(run1: tuple[FleetPlan, Run]) -> None:
    plan, run = run1
    kept = plan.kept_capacity[LEGACY]
    assert kept.instance_type == "g6e.xlarge" and kept.capacity == "mixed"
    assert kept.moved_to == ("g6e-xlarge-on-demand", "g6e-xlarge-spot")
    assert kept.step in plan.notes
    assert "run 1 of 2" in kept.step and "Run 2" in kept.step
    # The plan's resource list is what the program creates, kept group included.
    planned = {(r.type, r.name) for r in plan.resources}
    for t in (LT, ASG, CP):
        r = _legacy(run, t)
        assert (r.type, r.name) in planned
    assert plan.to_dict()["kept_capacity_groups"][0]["key"] == LEGACY


def test_run2_detaches_and_deletes_the_legacy_group(prod: Run, prod_plan: FleetPlan) -> None:
    """Run 2 is the stack without the key: nothing of the legacy group is in the program, so
    Pulumi updates the cluster's list without it first and deletes the provider, the group and
    the launch template after (deletes run after updates)."""
    assert not prod_plan.kept_capacity
    names = [r.name for r in prod.resources]
    assert not [n for n in names if f"-{LEGACY}-" in n]
    attached = prod.one(CCP).inputs["capacityProviders"]
    assert not [p for p in attached if LEGACY in p]


def test_run1_passes_the_policy_pack(run1: tuple[FleetPlan, Run]) -> None:
    """The kept resources go through the same guardrails as every other: a mistyped key would
    create them, so the template is declared IMDSv2-only with an encrypted root."""
    from policies import offline

    _, run = run1
    verdict = offline.run_rules([(r.type, r.name, r.inputs) for r in run.resources])
    kept = [v for v in verdict.violations if f"-{LEGACY}-" in v.urn_name]
    assert kept == []
    assert verdict.passed, verdict.violations


def test_the_ecs_api_behaves_as_the_transition_assumes() -> None:
    """What the two runs rest on, read from botocore's ECS model (the API reference)."""
    import re

    import botocore.session

    def text(html: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", "", html).split())

    ecs = botocore.session.get_session().get_service_model("ecs")
    put = ecs.operation_model("PutClusterCapacityProviders")
    assert "ResourceInUseException" in [e.name for e in put.error_shapes]
    doc = text(put.documentation)
    assert "omitted from a PutClusterCapacityProviders API call will be disassociated" in doc
    assert "only disassociate an existing capacity provider from a cluster if it's not" in doc
    delete = text(ecs.operation_model("DeleteCapacityProvider").documentation)
    assert "Only capacity providers that aren't associated with a cluster can be deleted" in delete
    update = ecs.operation_model("UpdateService").input_shape
    assert update is not None
    strategy = update.members["capacityProviderStrategy"]
    # A strategy change alone moves no task: the service's update forces a deployment.
    assert "doesn't trigger a new service deployment" in text(strategy.documentation)

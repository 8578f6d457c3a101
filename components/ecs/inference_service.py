"""One model's serving: its log group, task definition (fetcher -> vLLM -> sidecar) and ECS
service on its GPU capacity provider, registered with its target group."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._common import child, stack_tags
from components.model_cache import efs_volume
from modelfleet.containers import TaskRefs, container_definitions
from modelfleet.contract import COMPILE_CACHE_VOLUME, SIDECAR_PORT
from modelfleet.plan_types import FleetPlan, ModelPlan


def service_tags(plan: FleetPlan, m: ModelPlan) -> dict[str, str]:
    """Facts the policy pack's cost guardrails read at preview time, when ids are unknown."""
    c = plan.config
    g = c.guardrails
    tags = stack_tags(
        c,
        **{
            "modelfleet:model": m.name,
            "modelfleet:instance-type": m.instance_type,
            "modelfleet:capacity": m.capacity,
            "modelfleet:max-replicas": str(m.replicas_max),
            "modelfleet:tasks-per-instance": str(m.tasks_per_instance),
            "modelfleet:instance-hourly-usd": f"{m.cost.on_demand_hourly:g}",
        },
    )
    if g.allowed_instance_families is not None:
        # ECS tag values refuse commas: families are joined with "/".
        tags["modelfleet:guardrail-allowed-families"] = "/".join(g.allowed_instance_families)
    if g.max_hourly_usd is not None:
        tags["modelfleet:guardrail-max-hourly-usd"] = f"{g.max_hourly_usd:g}"
    if g.require_spot is not None:
        tags["modelfleet:guardrail-require-spot"] = "true" if g.require_spot else "false"
    return tags


@dataclass(frozen=True)
class InferenceServiceArgs:
    plan: FleetPlan
    model: ModelPlan
    region: str
    cluster_arn: pulumi.Input[str]
    # Capacity provider names by capacity group key (the model's strategy names its groups).
    capacity_providers: Mapping[str, pulumi.Input[str]]
    subnet_ids: Sequence[pulumi.Input[str]]
    tasks_sg_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    file_system_id: pulumi.Input[str]
    access_point_id: pulumi.Input[str]
    compile_access_point_id: pulumi.Input[str]
    engine_image: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    sidecar_image: pulumi.Input[str]
    fetcher_image: pulumi.Input[str]
    secret_arns: dict[str, pulumi.Output[str]]
    depends_on: list[pulumi.Resource]


class InferenceService(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:inference:InferenceService", name, None, opts)
        plan, m = args.plan, args.model
        c = plan.config
        ids = plan.ids.serving[m.name]
        tags = stack_tags(c, **{"modelfleet:model": m.name})
        log_group = aws.cloudwatch.LogGroup(
            ids.log_group.name, retention_in_days=c.retention_days, tags=tags, opts=child(self)
        )
        keys = sorted(args.secret_arns)
        containers = pulumi.Output.all(
            log_group.name,
            args.sidecar_image,
            args.fetcher_image,
            args.engine_image,
            *[args.secret_arns[k] for k in keys],
        ).apply(
            lambda v: json.dumps(
                container_definitions(
                    m,
                    plan,
                    TaskRefs(
                        region=args.region,
                        log_group=v[0],
                        vllm_image=v[3],
                        sidecar_image=v[1],
                        fetcher_image=v[2],
                        secret_arns=dict(zip(keys, v[4:], strict=True)),
                    ),
                )
            )
        )
        task_def = aws.ecs.TaskDefinition(
            ids.task_definition.name,
            family=m.service_name,
            requires_compatibilities=["EC2"],
            network_mode="awsvpc",
            cpu=str(m.task_cpu),
            memory=str(m.task_memory_mib),
            execution_role_arn=args.execution_role_arn,
            task_role_arn=args.task_role_arn,
            container_definitions=containers,
            volumes=[
                efs_volume(args.file_system_id, args.access_point_id),
                efs_volume(args.file_system_id, args.compile_access_point_id, COMPILE_CACHE_VOLUME),
            ],
            placement_constraints=[
                {
                    "type": "memberOf",
                    "expression": f"attribute:ecs.instance-type == {m.instance_type}",
                }
            ],
            tags=tags,
            opts=child(self),
        )
        service = aws.ecs.Service(
            ids.service.name,
            name=m.service_name,
            cluster=args.cluster_arn,
            task_definition=task_def.arn,
            desired_count=m.replicas_min,
            # From the plan: one entry per capacity group the model uses (mixed: its minimum
            # as base on the warm on-demand group, the rest on spot).
            capacity_provider_strategies=[
                {
                    "capacity_provider": args.capacity_providers[share.group],
                    "weight": share.weight,
                    "base": share.base,
                }
                for share in m.capacity_strategy
            ],
            network_configuration={
                "subnets": args.subnet_ids,
                "security_groups": [args.tasks_sg_id],
                "assign_public_ip": False,
            },
            load_balancers=[
                {
                    "target_group_arn": args.target_group_arn,
                    "container_name": "sidecar",
                    "container_port": SIDECAR_PORT,
                }
            ],
            # From the plan's cold-start estimate: image pull + weight load + engine start.
            health_check_grace_period_seconds=m.grace_period_s,
            # Every update of the service starts a deployment. Without it a changed capacity
            # provider strategy replaces the service: pulumi-aws (terraform-provider-aws's
            # aws_ecs_service) forces a new resource on a strategy change unless
            # force_new_deployment is true (capacityProviderStrategyCustomizeDiff), and this
            # service is delete-before-replace, so that would be an outage. ECS itself
            # moves no task on a strategy change alone ("This parameter doesn't trigger a new
            # service deployment", UpdateService capacityProviderStrategy, botocore 1.44.8).
            force_new_deployment=True,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            ordered_placement_strategies=[
                {"type": "spread", "field": "attribute:ecs.availability-zone"},
                {"type": "binpack", "field": "memory"},
            ],
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            enable_execute_command=False,
            tags=service_tags(plan, m),
            # Application Auto Scaling owns the desired count once the service exists.
            # An explicit service name: a replacement must delete the old service first.
            opts=child(
                self,
                depends_on=args.depends_on,
                ignore_changes=["desiredCount"],
                delete_before_replace=True,
            ),
        )
        self.service_name = service.name
        self.task_definition_arn = task_def.arn
        self.register_outputs({"service_name": service.name})

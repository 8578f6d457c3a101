"""The whole serving slice of one stack, composed from one component per AWS concern."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import invoke
from components.ecs.autoscaling import Autoscaling, AutoscalingArgs
from components.ecs.gpu_capacity import GpuCapacity, GpuCapacityArgs
from components.ecs.inference_service import InferenceService, InferenceServiceArgs
from components.ecs.prewarm import Prewarm, PrewarmArgs
from components.ecs.task_roles import TaskRoles, TaskRolesArgs
from components.eks.platform import EksPlatform, EksPlatformArgs
from components.eks.workloads import Workloads, WorkloadsArgs
from components.encryption import Encryption, EncryptionArgs
from components.engine_image import EngineImage, EngineImageArgs
from components.images import Images, ImagesArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.model_cache import ModelCache, ModelCacheArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.secrets import Secrets, SecretsArgs
from components.security import Security, SecurityArgs
from modelfleet.config import Platform
from modelfleet.kube.serving import serving_plan
from modelfleet.plan_types import FleetPlan


@dataclass(frozen=True)
class FleetArgs:
    plan: FleetPlan
    # The `aws` provider's profile and roles, for AWS calls made outside the provider.
    aws_session: Mapping[str, Any] = field(default_factory=dict)


class Fleet(pulumi.ComponentResource):
    endpoints: dict[str, pulumi.Output[str]]
    dashboard_url: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    fetcher_task_definitions: dict[str, pulumi.Output[str]]
    # platform: eks only: the cluster, its provider and GPU pools the serving slice uses.
    eks: EksPlatform | None = None
    network: Network
    security: Security
    cache: ModelCache
    load_balancer: LoadBalancer
    secrets: Secrets
    images: Images
    encryption: Encryption

    def __init__(
        self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:fleet:Fleet", name, None, opts)
        plan = args.plan
        c = plan.config
        mine = pulumi.ResourceOptions(parent=self)
        ids = plan.ids
        # Account facts are known at preview time; the components only wire resources.
        identity = aws.get_caller_identity(opts=invoke(self))
        partition = plan.partition
        zones = aws.get_availability_zones(state="available", opts=invoke(self)).names

        keys = Encryption(
            ids.encryption.component,
            EncryptionArgs(plan, identity.account_id, partition),
            mine,
        )
        net = Network(ids.network.component, NetworkArgs(plan, list(zones), c.region), mine)
        sec = Security(ids.security.component, SecurityArgs(plan, net.vpc_id), mine)
        cache = ModelCache(
            ids.cache.component,
            ModelCacheArgs(plan, keys.key_arn, net.private_subnet_ids, sec.efs_sg_id),
            mine,
        )
        secrets = Secrets(ids.secrets.component, SecretsArgs(plan, keys.key_arn), mine)
        images = Images(ids.images.component, ImagesArgs(plan, keys.key_arn), mine)
        engine = EngineImage(
            ids.engine_image.component,
            EngineImageArgs(plan, keys.key_arn, identity.account_id, partition, args.aws_session),
            mine,
        )
        # What the serving slice wires on either platform.
        self.network, self.security, self.cache = net, sec, cache
        self.secrets, self.images, self.encryption = secrets, images, keys
        self.engine_image = engine
        self._aws_session = args.aws_session
        if c.platform is Platform.EKS:
            self._eks(plan, identity, partition, net, sec, keys, cache, mine)
            assert self.eks is not None
            self.register_outputs(
                {
                    "endpoints": self.endpoints,
                    "dashboard_url": self.dashboard_url,
                    "alarm_topic_arn": self.alarm_topic_arn,
                    "cluster_name": self.eks.cluster_name,
                }
            )
            return
        assert ids.gpu is not None  # ECS: the plan names the GPU capacity
        gpus = GpuCapacity(
            ids.gpu.component,
            GpuCapacityArgs(
                plan,
                net.private_subnet_ids,
                sec.hosts_sg_id,
                partition,
                account_id=identity.account_id,
                kms_key_arn=keys.key_arn,
                images=[engine.reference, images.sidecar, images.fetcher],
            ),
            mine,
        )
        roles = TaskRoles(
            ids.roles.component,
            TaskRolesArgs(
                plan,
                partition,
                cache.file_system_arn,
                {n: ap.arn for n, ap in cache.access_points.items()},
                keys.key_arn,
                dict(secrets.arns),
                {n: ap.arn for n, ap in cache.compile_access_points.items()},
                identity.account_id,
            ),
            mine,
        )
        lb = LoadBalancer(
            ids.load_balancer.component,
            LoadBalancerArgs(plan, net.vpc_id, net.public_subnet_ids, sec.alb_sg_id),
            mine,
        )
        self.load_balancer = lb
        prewarm = Prewarm(
            ids.prewarm.component,
            PrewarmArgs(
                plan=plan,
                region=c.region,
                cluster_arn=gpus.cluster_arn,
                subnet_ids=net.private_subnet_ids,
                security_group_id=sec.fetcher_sg_id,
                file_system_id=cache.file_system_id,
                access_point_ids={n: ap.id for n, ap in cache.access_points.items()},
                execution_role_arn=dict(roles.execution_role_arn),
                task_role_arn=dict(roles.task_role_arn),
                fetcher_image=images.fetcher,
                secret_arns=dict(secrets.arns),
                session=args.aws_session,
            ),
            mine,
        )
        scheme = "https" if plan.https else "http"
        self.endpoints = {}
        for m in plan.models:
            serving = ids.serving[m.name]
            svc = InferenceService(
                serving.component,
                InferenceServiceArgs(
                    plan=plan,
                    model=m,
                    region=c.region,
                    cluster_arn=gpus.cluster_arn,
                    capacity_providers=dict(gpus.capacity_provider),
                    subnet_ids=net.private_subnet_ids,
                    tasks_sg_id=sec.tasks_sg_id,
                    target_group_arn=lb.target_groups[m.name].arn,
                    file_system_id=cache.file_system_id,
                    access_point_id=cache.access_points[m.name].id,
                    compile_access_point_id=cache.compile_access_points[m.name].id,
                    engine_image=engine.reference,
                    execution_role_arn=roles.execution_role_arn[m.name],
                    task_role_arn=roles.task_role_arn[m.name],
                    sidecar_image=images.sidecar,
                    fetcher_image=images.fetcher,
                    secret_arns=dict(secrets.arns),
                    # Weights on EFS first; the target group attached to a listener first.
                    depends_on=[prewarm.runs[m.name], lb.listener_rules[m.name]],
                ),
                mine,
            )
            Autoscaling(
                serving.scaling_component,
                AutoscalingArgs(
                    plan=plan,
                    model=m,
                    cluster_name=gpus.cluster_name,
                    service_name=svc.service_name,
                    load_balancer=lb.arn_suffix,
                    target_group=lb.target_groups[m.name].arn_suffix,
                ),
                mine,
            )
            self.endpoints[m.name] = pulumi.Output.concat(
                f"{scheme}://", lb.dns_name, f"/{m.name}/v1"
            )
        self._monitoring(plan, identity, keys, lb, cache, gpus.cluster_name, dict(gpus.asg_names))
        self.fetcher_task_definitions = dict(prewarm.task_definition_arn)
        self.register_outputs(
            {
                "endpoints": self.endpoints,
                "dashboard_url": self.dashboard_url,
                "alarm_topic_arn": self.alarm_topic_arn,
                "fetcher_task_definitions": self.fetcher_task_definitions,
            }
        )

    def _eks(
        self,
        plan: FleetPlan,
        identity: aws.GetCallerIdentityResult,
        partition: str,
        net: Network,
        sec: Security,
        keys: Encryption,
        cache: ModelCache,
        mine: pulumi.ResourceOptions,
    ) -> None:
        """platform: eks: the EKS platform replaces ECS capacity, tasks and services; VPC,
        KMS, EFS, the ALB and its target groups, SNS, alarms and dashboard stay as they are."""
        e = plan.eks
        assert e is not None
        c = plan.config
        ids = plan.ids
        lb = LoadBalancer(
            ids.load_balancer.component,
            LoadBalancerArgs(plan, net.vpc_id, net.public_subnet_ids, sec.alb_sg_id),
            mine,
        )
        self.load_balancer = lb
        scheme = "https" if plan.https else "http"
        self.endpoints = {
            m.name: pulumi.Output.concat(f"{scheme}://", lb.dns_name, f"/{m.name}/v1")
            for m in plan.models
        }
        # The deploying role's ARN, not its STS session's: an access entry takes an IAM
        # principal (https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html).
        deployer = aws.iam.get_session_context_output(
            arn=identity.arn, opts=invoke(self)
        ).issuer_arn
        self.eks = EksPlatform(
            f"{c.prefix}-eks",
            EksPlatformArgs(
                plan=plan,
                partition=partition,
                region=c.region,
                account_id=identity.account_id,
                deployer_arn=deployer,
                vpc_id=net.vpc_id,
                private_subnet_ids=net.private_subnet_ids,
                node_security_group_ids=[sec.tasks_sg_id, sec.hosts_sg_id],
                kms_key_arn=keys.key_arn,
                file_system_arn=cache.file_system_arn,
                access_point_arns={n: ap.arn for n, ap in cache.access_points.items()},
                target_group_arns={n: tg.arn for n, tg in lb.target_groups.items()},
                compile_access_point_arns={
                    n: ap.arn for n, ap in cache.compile_access_points.items()
                },
                images=[self.engine_image.reference, self.images.sidecar, self.images.fetcher],
                session=self._aws_session,
            ),
            mine,
        )
        Workloads(
            serving_plan(plan).component,
            WorkloadsArgs(
                plan=plan,
                provider=self.eks.provider,
                vpc_id=net.vpc_id,
                file_system_id=cache.file_system_id,
                access_point_ids={n: ap.id for n, ap in cache.access_points.items()},
                compile_access_point_ids={
                    n: ap.id for n, ap in cache.compile_access_points.items()
                },
                target_group_arns={n: tg.arn for n, tg in lb.target_groups.items()},
                target_group_suffixes={n: tg.arn_suffix for n, tg in lb.target_groups.items()},
                load_balancer_suffix=lb.arn_suffix,
                alb_subnet_cidrs=self._public_subnet_cidrs(plan),
                # The account's registry, by digest: never the Docker Hub reference as written.
                vllm_image=self.engine_image.reference,
                sidecar_image=self.images.sidecar,
                fetcher_image=self.images.fetcher,
                secret_values=_secret_values(plan),
                depends_on=self.eks.ready,
                listener_rules=dict(lb.listener_rules),
            ),
            mine,
        )
        # Karpenter launches the GPU nodes: no Auto Scaling group to watch.
        self._monitoring(plan, identity, keys, lb, cache, self.eks.cluster_name, {})
        self.fetcher_task_definitions = {}

    def _monitoring(
        self,
        plan: FleetPlan,
        identity: aws.GetCallerIdentityResult,
        keys: Encryption,
        lb: LoadBalancer,
        cache: ModelCache,
        cluster_name: pulumi.Input[str],
        asg_names: dict[str, pulumi.Output[str]],
    ) -> None:
        """Alarms and the dashboard, the same component on both platforms."""
        monitoring = Monitoring(
            plan.ids.monitoring.component,
            MonitoringArgs(
                plan=plan,
                region=plan.config.region,
                account_id=identity.account_id,
                kms_key_arn=keys.key_arn,
                load_balancer=lb.arn_suffix,
                file_system_id=cache.file_system_id,
                cluster_name=cluster_name,
                target_groups={n: tg.arn_suffix for n, tg in lb.target_groups.items()},
                asg_names=asg_names,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_url = monitoring.dashboard_url
        self.alarm_topic_arn = monitoring.topic_arn

    def _public_subnet_cidrs(self, plan: FleetPlan) -> list[pulumi.Input[str]]:
        """The ALB's subnets: planned for a new VPC, looked up for an existing one."""
        if plan.subnets is not None:
            return list(plan.subnets.public)
        return [
            aws.ec2.get_subnet_output(id=s, opts=invoke(self)).cidr_block
            for s in plan.config.network.public_subnet_ids
        ]


def _secret_values(plan: FleetPlan) -> dict[str, pulumi.Input[str]]:
    """Pulumi secret config by role, for the cluster's Secret (never a plain value)."""
    c = plan.config
    out: dict[str, pulumi.Input[str]] = {}
    if c.gateway.api_keys is not None:
        out["api_keys"] = pulumi.Output.secret(c.gateway.api_keys.get_secret_value())
    if c.gateway.fallback is not None:
        out["fallback_api_key"] = pulumi.Output.secret(
            c.gateway.fallback.api_key.get_secret_value()
        )
    if c.hf_token is not None:
        out["hf_token"] = pulumi.Output.secret(c.hf_token.get_secret_value())
    return out

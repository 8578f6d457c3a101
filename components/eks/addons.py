"""Managed add-ons, pinned per Kubernetes version by the plan (modelfleet.eks_versions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._common import child, invoke, stack_tags
from modelfleet.eks import AddonPlan
from modelfleet.plan import FleetPlan

# NetworkPolicy objects are enforced only when the VPC CNI's network policy agent is on
# (https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html:
# configuration value {"enableNetworkPolicy": "true"}, a string).
ADDON_CONFIGURATION: dict[str, dict[str, Any]] = {
    # NetworkPolicy is enforced by vpc-cni only when asked (the serving slice's default-deny).
    "vpc-cni": {"enableNetworkPolicy": "true"},
    # The agent's configuration replaces the add-on's default one, so it restates Enhanced
    # Container Insights (with GPU metrics, `accelerated_compute_metrics`) and adds the EMF
    # listener (logs.metrics_collected.emf: TCP/UDP 25888 on the node) that the sidecars send
    # QueueDepth to; Fluent Bit nests stdout lines, so EMF written to stdout is not extracted.
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html
    # (agent.config), https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
    # (logs.metrics_collected.emf), read 2026-12-02.
    "amazon-cloudwatch-observability": {
        "agent": {
            "config": {
                "logs": {
                    "metrics_collected": {
                        "emf": {},
                        "kubernetes": {
                            "enhanced_container_insights": True,
                            "accelerated_compute_metrics": True,
                        },
                    }
                }
            }
        }
    },
}


@dataclass(frozen=True)
class AddonsArgs:
    plan: FleetPlan
    cluster_name: pulumi.Input[str]
    addons: list[AddonPlan]
    depends_on: list[pulumi.Resource]


class Addons(pulumi.ComponentResource):
    addons: dict[str, aws.eks.Addon]

    def __init__(
        self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Addons", name, None, opts)
        e = args.plan.eks
        assert e is not None
        tags = stack_tags(args.plan.config)
        self.addons = {}
        for a in args.addons:
            version: pulumi.Input[str]
            if a.version is not None:
                version = a.version
            else:
                # EKS's default build for this Kubernetes version (DescribeAddonVersions).
                version = aws.eks.get_addon_version_output(
                    addon_name=a.name, kubernetes_version=e.kubernetes_version, opts=invoke(self)
                ).version
            config = ADDON_CONFIGURATION.get(a.name)
            self.addons[a.name] = aws.eks.Addon(
                a.logical.name,
                cluster_name=args.cluster_name,
                addon_name=a.name,
                addon_version=version,
                configuration_values=json.dumps(config) if config else None,
                # The add-on owns its objects: a hand edit is overwritten, not merged.
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=tags,
                opts=child(self, depends_on=args.depends_on),
            )
        self.register_outputs({})

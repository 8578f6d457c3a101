"""The controllers as pinned Helm releases, and every CRD their charts install, applied as
typed resources from the vendored YAML (the charts are told not to install them), so a fresh
stack previews and the CRDs' lifecycle is Pulumi's, not Helm's."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components._common import child
from modelfleet import eks_objects, eks_versions
from modelfleet.eks import EksPlan, crd_logical
from modelfleet.plan import FleetPlan

CRD_DIR = Path(__file__).resolve().parent / "crds"


@cache
def vendored_crds() -> dict[str, dict[str, Any]]:
    """Every vendored CustomResourceDefinition, by metadata.name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out[doc["metadata"]["name"]] = doc
    return out


def _values(plan: EksPlan, key: str, region: str, ids: list[str]) -> dict[str, Any]:
    return eks_objects.chart_values(plan, key, region, vpc_id=ids[0], queue_name=ids[1])


@dataclass(frozen=True)
class ControllersArgs:
    plan: FleetPlan
    provider: k8s.Provider
    region: str
    vpc_id: pulumi.Input[str]
    queue_name: pulumi.Input[str]
    # Per chart key: what its release waits for (its pod identity, the system nodes).
    depends_on: dict[str, list[pulumi.Resource]]


class Controllers(pulumi.ComponentResource):
    releases: dict[str, k8s.helm.v3.Release]
    crds: dict[str, k8s.apiextensions.v1.CustomResourceDefinition]

    def __init__(
        self, name: str, args: ControllersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:eks:Controllers", name, None, opts)
        e = args.plan.eks
        assert e is not None
        prefix = e.cluster_name
        k8s_opts = child(self, provider=args.provider)
        docs = vendored_crds()
        self.crds = {}
        for crds in eks_versions.VENDORED_CRDS.values():
            for crd in crds:
                doc = docs[crd]
                self.crds[crd] = k8s.apiextensions.v1.CustomResourceDefinition(
                    crd_logical(prefix, crd).name,
                    metadata=doc["metadata"],
                    spec=doc["spec"],
                    opts=k8s_opts,
                )
        keda_ns = k8s.core.v1.Namespace(
            e.logical["keda_namespace"].name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=e.releases["keda"].namespace),
            opts=k8s_opts,
        )
        self.releases = {}
        for key, rel in e.releases.items():
            chart = rel.chart
            oci = chart.repository.startswith("oci://")
            values = pulumi.Output.all(args.vpc_id, args.queue_name).apply(
                functools.partial(_values, e, key, args.region)
            )
            waits: list[pulumi.Resource] = [
                *(self.crds[c] for c in eks_versions.VENDORED_CRDS[key]),
                *args.depends_on.get(key, []),
            ]
            if key == "keda":
                waits.append(keda_ns)
            self.releases[key] = k8s.helm.v3.Release(
                rel.logical.name,
                name=key,
                chart=f"{chart.repository}/{chart.name}" if oci else chart.name,
                version=chart.version,
                repository_opts=None
                if oci
                else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
                namespace=rel.namespace,
                create_namespace=False,
                skip_crds=True,
                values=values,
                # Roll back a failed upgrade instead of leaving a half-applied release.
                atomic=True,
                timeout=600,
                opts=child(self, provider=args.provider, depends_on=waits),
            )
        self.register_outputs({})

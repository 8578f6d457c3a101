"""What an EKS stack may run: Kubernetes versions, their support windows, pinned charts.

Every row carries where it was read and when. A version is allowed only if EKS still offers it
(before the end of extended support) AND every pinned controller is tested on it; the reason a
version is refused is part of the table, so the error message can say it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from modelfleet.catalog import Source

_READ = "2026-12-01"

# https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html ("Amazon EKS
# Kubernetes release calendar"; the awsdocs/amazon-eks-user-guide source of that page,
# latest/ug/versioning/kubernetes-versions.adoc) and https://endoflife.date/amazon-eks for 1.35.
EKS_CALENDAR = Source(
    "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html", _READ
)
EKS_CALENDAR_135 = Source("https://endoflife.date/amazon-eks", _READ)
# aws/karpenter-provider-aws@1d927085 website/content/en/docs/upgrading/compatibility.md:
# 1.33 >= 1.5, 1.34 >= 1.6, 1.35 >= 1.9, 1.36 >= 1.13.
KARPENTER_COMPAT = Source(
    "https://github.com/aws/karpenter-provider-aws/blob/v1.14.1/website/content/en/docs/upgrading/compatibility.md",
    _READ,
)
# https://keda.sh/docs/2.20/operate/cluster/ "Kubernetes Compatibility": v2.20 -> v1.33 - v1.35.
KEDA_COMPAT = Source("https://keda.sh/docs/2.20/operate/cluster/", _READ)


class Support(StrEnum):
    STANDARD = "STANDARD"
    EXTENDED = "EXTENDED"


@dataclass(frozen=True)
class KubernetesVersion:
    version: str
    eks_release: dt.date
    end_of_standard: dt.date
    end_of_extended: dt.date
    source: Source
    # Why modelfleet refuses it even though EKS offers it; None when allowed.
    refused: str | None = None

    def support_on(self, day: dt.date) -> Support | None:
        """STANDARD/EXTENDED on `day`, None once EKS no longer offers the version."""
        if day < self.end_of_standard:
            return Support.STANDARD
        if day < self.end_of_extended:
            return Support.EXTENDED
        return None


KUBERNETES_VERSIONS: dict[str, KubernetesVersion] = {
    v.version: v
    for v in (
        KubernetesVersion(
            "1.32",
            dt.date(2025, 1, 23),
            dt.date(2026, 3, 23),
            dt.date(2027, 3, 23),
            EKS_CALENDAR,
            refused="KEDA 2.20 is tested on Kubernetes 1.33 - 1.35 only (keda.sh/docs/2.20)",
        ),
        KubernetesVersion(
            "1.33", dt.date(2025, 5, 29), dt.date(2026, 7, 29), dt.date(2027, 7, 29), EKS_CALENDAR
        ),
        KubernetesVersion(
            "1.34", dt.date(2025, 10, 2), dt.date(2026, 12, 2), dt.date(2027, 12, 2), EKS_CALENDAR
        ),
        KubernetesVersion(
            "1.35",
            dt.date(2026, 1, 27),
            dt.date(2027, 3, 27),
            dt.date(2028, 3, 27),
            EKS_CALENDAR_135,
        ),
    )
}
DEFAULT_KUBERNETES_VERSION = "1.35"
# Karpenter 1.14 supports up to 1.36, but KEDA 2.20 (the newest release, v2.20.2, on
# kedacore/charts@1444d00d) is tested up to 1.35 only, and this table has no EKS dates for 1.36.
NEWER_REFUSED = (
    "KEDA 2.20, the pinned autoscaler, is tested up to Kubernetes 1.35 (keda.sh/docs/2.20); "
    "Karpenter 1.14 would support 1.36"
)


def allowed_versions() -> list[str]:
    return [v for v, row in KUBERNETES_VERSIONS.items() if row.refused is None]


@dataclass(frozen=True)
class HelmChart:
    name: str
    version: str
    repository: str
    namespace: str
    source: Source


# Chart versions read from each chart's Chart.yaml at the commit the vendored CRDs come from
# (../shared/crds/SOURCES.txt): karpenter charts/karpenter/Chart.yaml@1d927085 (1.14.1),
# kedacore/charts keda/Chart.yaml@1444d00d (2.20.2), aws-load-balancer-controller
# helm/aws-load-balancer-controller/Chart.yaml@225f4456 (3.5.0, appVersion v3.5.0).
CHARTS: dict[str, HelmChart] = {
    "karpenter": HelmChart(
        "karpenter",
        "1.14.1",
        "oci://public.ecr.aws/karpenter",
        "kube-system",
        Source(
            "https://github.com/aws/karpenter-provider-aws/blob/v1.14.1/charts/karpenter/Chart.yaml",
            _READ,
        ),
    ),
    "aws-load-balancer-controller": HelmChart(
        "aws-load-balancer-controller",
        "3.5.0",
        "https://aws.github.io/eks-charts",
        "kube-system",
        Source(
            "https://github.com/kubernetes-sigs/aws-load-balancer-controller/blob/v3.5.0/helm/aws-load-balancer-controller/Chart.yaml",
            _READ,
        ),
    ),
    "keda": HelmChart(
        "keda",
        "2.20.2",
        "https://kedacore.github.io/charts",
        "keda",
        Source("https://github.com/kedacore/charts/blob/v2.20.2/keda/Chart.yaml", _READ),
    ),
}


# Every CRD each pinned chart installs, by chart; the program applies them as typed resources
# from components/eks/crds/ (copied unchanged, see SOURCES.txt there) and tells the charts not to.
VENDORED_CRDS: dict[str, tuple[str, ...]] = {
    "karpenter": (
        "ec2nodeclasses.karpenter.k8s.aws",
        "nodeclaims.karpenter.sh",
        "nodepools.karpenter.sh",
        "nodeoverlays.karpenter.sh",
        "capacitybuffers.autoscaling.x-k8s.io",
    ),
    "aws-load-balancer-controller": (
        "albtargetcontrolconfigs.elbv2.k8s.aws",
        "globalaccelerators.aga.k8s.aws",
        "ingressclassparams.elbv2.k8s.aws",
        "targetgroupbindings.elbv2.k8s.aws",
        "listenerruleconfigurations.gateway.k8s.aws",
        "loadbalancerconfigurations.gateway.k8s.aws",
        "targetgroupconfigurations.gateway.k8s.aws",
    ),
    "keda": (
        "scaledobjects.keda.sh",
        "scaledjobs.keda.sh",
        "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh",
        "cloudeventsources.eventing.keda.sh",
        "clustercloudeventsources.eventing.keda.sh",
    ),
}

# Managed add-ons. A version string is pinned where AWS's version table for the add-on was
# read (Kubernetes version -> latest add-on build); None means "the default version EKS
# publishes for this Kubernetes version", resolved at each preview with
# aws.eks.get_addon_version (DescribeAddonVersions, defaultVersion=true): the add-on is always
# created with an explicit version, and when AWS moves its default the next preview shows the
# add-on update for review. `eks.addonVersions` in the stack holds any add-on at a build.
# coredns: https://docs.aws.amazon.com/ja_jp/eks/latest/userguide/managing-coredns.md
#   (the newest copy of the table found: 1.36/1.35 v1.14.3-eksbuild.3, 1.34 v1.13.2-eksbuild.11,
#   1.33 v1.12.4-eksbuild.18)
# kube-proxy: https://docs.amazonaws.cn/zh_cn/eks/latest/userguide/managing-kube-proxy.md
#   (1.35 v1.35.3-eksbuild.2, 1.34 v1.34.6-eksbuild.2, 1.33 v1.33.10-eksbuild.2)
ADDON_SOURCES = (
    Source("https://docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html", _READ),
    Source("https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html", _READ),
)
ADDON_NAMES = (
    "vpc-cni",
    "kube-proxy",
    "coredns",
    "eks-pod-identity-agent",
    "aws-efs-csi-driver",
    "amazon-cloudwatch-observability",
)
_PINNED: dict[str, dict[str, str]] = {
    "1.33": {"coredns": "v1.12.4-eksbuild.18", "kube-proxy": "v1.33.10-eksbuild.2"},
    "1.34": {"coredns": "v1.13.2-eksbuild.11", "kube-proxy": "v1.34.6-eksbuild.2"},
    "1.35": {"coredns": "v1.14.3-eksbuild.3", "kube-proxy": "v1.35.3-eksbuild.2"},
}
ADDON_VERSIONS: dict[str, dict[str, str | None]] = {
    k8s: {name: _PINNED.get(k8s, {}).get(name) for name in ADDON_NAMES}
    for k8s in KUBERNETES_VERSIONS
}

# AWS managed policies on both node roles (system nodes and Karpenter's GPU nodes), keyed by
# name: the kubelet's own API calls and Pod Identity's AssumeRoleForPodIdentity
# (AmazonEKSWorkerNodePolicy), image pulls (AmazonEC2ContainerRegistryPullOnly), the VPC CNI's
# ENI management (AmazonEKS_CNI_Policy: on the node role, as EKS's own managed node groups do,
# because aws-node must work before the Pod Identity agent has a network), and SSM Session
# Manager instead of SSH (AmazonSSMManagedInstanceCore). Karpenter's getting-started template
# attaches the same set (karpenter-provider-aws website/content/en/docs/getting-started/
# getting-started-with-karpenter/cloudformation.yaml, KarpenterNodeRole).
NODE_MANAGED_POLICIES: tuple[str, ...] = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",
    "AmazonSSMManagedInstanceCore",
)

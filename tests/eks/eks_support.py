"""Recorded EKS resources as the API requests and Kubernetes objects they become."""

from __future__ import annotations

import copy
from typing import Any

from components.eks.controllers import vendored_crds
from components.harness import Recorded

K8S_TYPE_PREFIX = "kubernetes:"


def _tags(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"tags": inputs["tags"]} if inputs.get("tags") else {}


def create_cluster(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    vpc = i["vpcConfig"]
    out: dict[str, Any] = {
        "name": i["name"],
        "version": i["version"],
        "roleArn": i["roleArn"],
        "resourcesVpcConfig": {
            "subnetIds": vpc["subnetIds"],
            "endpointPublicAccess": vpc["endpointPublicAccess"],
            "endpointPrivateAccess": vpc["endpointPrivateAccess"],
            **(
                {"publicAccessCidrs": vpc["publicAccessCidrs"]}
                if vpc.get("publicAccessCidrs")
                else {}
            ),
        },
        "logging": {"clusterLogging": [{"types": i["enabledClusterLogTypes"], "enabled": True}]},
        "encryptionConfig": [
            {
                "resources": i["encryptionConfig"]["resources"],
                "provider": {"keyArn": i["encryptionConfig"]["provider"]["keyArn"]},
            }
        ],
        "accessConfig": i["accessConfig"],
        "bootstrapSelfManagedAddons": i["bootstrapSelfManagedAddons"],
        "upgradePolicy": i["upgradePolicy"],
        "deletionProtection": i["deletionProtection"],
        **_tags(i),
    }
    return out


def create_addon(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    out = {
        "clusterName": i["clusterName"],
        "addonName": i["addonName"],
        "addonVersion": i["addonVersion"],
        "resolveConflicts": i["resolveConflictsOnCreate"],
        **_tags(i),
    }
    if i.get("configurationValues"):
        out["configurationValues"] = i["configurationValues"]
    return out


def create_access_entry(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    return {
        "clusterName": i["clusterName"],
        "principalArn": i["principalArn"],
        "type": i["type"],
        **_tags(i),
    }


def associate_access_policy(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    return {
        "clusterName": i["clusterName"],
        "principalArn": i["principalArn"],
        "policyArn": i["policyArn"],
        "accessScope": i["accessScope"],
    }


def create_pod_identity_association(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    return {
        "clusterName": i["clusterName"],
        "namespace": i["namespace"],
        "serviceAccount": i["serviceAccount"],
        "roleArn": i["roleArn"],
        **_tags(i),
    }


def create_nodegroup(r: Recorded) -> dict[str, Any]:
    i = r.inputs
    sc = i["scalingConfig"]
    return {
        "clusterName": i["clusterName"],
        # Pulumi auto-names the node group (logical name + suffix), as the mocks do.
        "nodegroupName": r.outputs["name"],
        "scalingConfig": {k: int(v) for k, v in sc.items()},
        "subnets": i["subnetIds"],
        "instanceTypes": i["instanceTypes"],
        "amiType": i["amiType"],
        "nodeRole": i["nodeRoleArn"],
        "labels": i["labels"],
        "capacityType": i["capacityType"],
        "updateConfig": {k: int(v) for k, v in i["updateConfig"].items()},
        "launchTemplate": {
            "id": i["launchTemplate"]["id"],
            "version": str(i["launchTemplate"]["version"]),
        },
        **_tags(i),
    }


# Pulumi kubernetes type token -> (apiVersion, kind)
def api_version_kind(type_token: str) -> tuple[str, str]:
    _, group_version, kind = type_token.split(":")
    group, _, version = group_version.rpartition("/")
    if group in ("core", ""):
        return version, kind
    return f"{group}/{version}", kind


def k8s_object(r: Recorded) -> dict[str, Any]:
    """The object Pulumi sends to the API server for a typed resource or a CustomResource."""
    api_version, kind = api_version_kind(r.type)
    obj = copy.deepcopy({k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")})
    return {
        "apiVersion": r.inputs.get("apiVersion", api_version),
        "kind": r.inputs.get("kind", kind),
        **obj,
    }


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's openAPIV3Schema with unknown fields rejected wherever it lists properties
    (the API server prunes them; strict here so a misspelt field fails the test)."""
    s = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node.setdefault("additionalProperties", False)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    # metadata is validated by the API server's ObjectMeta, not by the CRD.
    s.setdefault("properties", {})["metadata"] = {"type": "object"}
    return s


def ec2_shaped(obj: dict[str, Any]) -> dict[str, Any]:
    """The mocks name every ID "<logical name>-id"; AWS's are `subnet-<hex>` and `sg-<hex>`,
    which the EC2NodeClass schema checks. Substitute the real shape, deterministically."""
    import hashlib

    out = copy.deepcopy(obj)
    spec = out.get("spec", {})
    for key, prefix in (("subnetSelectorTerms", "subnet"), ("securityGroupSelectorTerms", "sg")):
        for term in spec.get(key, []):
            if "id" in term and term["id"].endswith("-id"):
                term["id"] = f"{prefix}-{hashlib.sha256(term['id'].encode()).hexdigest()[:17]}"
    return out


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """A vendored CRD's schema for one kind and version, strict (see `strict_schema`)."""
    group, _, version = api_version.partition("/")
    for doc in vendored_crds().values():
        spec = doc["spec"]
        if spec["group"] == group and spec["names"]["kind"] == kind:
            v = next(v for v in spec["versions"] if v["name"] == version)
            return strict_schema(v["schema"]["openAPIV3Schema"])
    raise LookupError(f"{api_version} {kind}")


# The EKS API request each recorded resource type becomes, by operation name.
PAYLOADS = {
    "CreateCluster": ("aws:eks/cluster:Cluster", create_cluster),
    "CreateAddon": ("aws:eks/addon:Addon", create_addon),
    "CreateAccessEntry": ("aws:eks/accessEntry:AccessEntry", create_access_entry),
    "AssociateAccessPolicy": (
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        associate_access_policy,
    ),
    "CreatePodIdentityAssociation": (
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        create_pod_identity_association,
    ),
    "CreateNodegroup": ("aws:eks/nodeGroup:NodeGroup", create_nodegroup),
}

"""Recorded-resource fixtures: (type token, logical name, inputs as Pulumi serializes them).

`good_stack()` is what the Fleet component should declare for a prod stack; `broken_stack()` is
a stack built to break every rule of the pack once.
"""

from __future__ import annotations

import json
from typing import Any

from kube_policy_cases import kube_broken_resources, kube_good_resources

Resource = tuple[str, str, dict[str, Any]]

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/8f0c7c5e-1a2b-4c3d-9e8f-0a1b2c3d4e5f"


def base_tags(
    environment: str = "prod", ephemeral: bool = False, team: str = "platform"
) -> dict[str, str]:
    return {
        "modelfleet:environment": environment,
        "modelfleet:team": team,
        "modelfleet:stack": environment,
        "modelfleet:ephemeral": "true" if ephemeral else "false",
    }


def service_tags(
    *,
    environment: str = "prod",
    team: str = "platform",
    instance_type: str = "g6e.xlarge",
    capacity: str = "mixed",
    max_replicas: int = 6,
    tasks_per_instance: int = 1,
    hourly: float = 1.861,
    **guardrails: str,
) -> dict[str, str]:
    tags = base_tags(environment, team=team) | {
        "modelfleet:model": "llama-8b",
        "modelfleet:instance-type": instance_type,
        "modelfleet:capacity": capacity,
        "modelfleet:max-replicas": str(max_replicas),
        "modelfleet:tasks-per-instance": str(tasks_per_instance),
        "modelfleet:instance-hourly-usd": str(hourly),
    }
    names = {
        "families": "modelfleet:guardrail-allowed-families",
        "max_hourly": "modelfleet:guardrail-max-hourly-usd",
        "require_spot": "modelfleet:guardrail-require-spot",
    }
    tags |= {names[k]: v for k, v in guardrails.items()}
    return tags


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def containers(*defs: dict[str, Any]) -> str:
    return json.dumps(list(defs))


GOOD_CONTAINERS = containers(
    {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.6.3",
        "environment": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
        "secrets": [
            {"name": "HF_TOKEN", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:hf"}
        ],
    },
    {
        "name": "sidecar",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sidecar@sha256:" + "a" * 64,
        "environment": [
            {"name": "SIDECAR_TOKENS_PER_MINUTE", "value": "200000"},
            {
                "name": "SIDECAR_API_KEYS_ARN",
                "value": "arn:aws:secretsmanager:us-east-1:1:secret:k",
            },
        ],
    },
)


def good_stack() -> list[Resource]:
    t = base_tags()
    return [
        ("aws:kms/key:Key", "fleet-key", {"enableKeyRotation": True, "tags": t}),
        (
            "aws:efs/fileSystem:FileSystem",
            "fleet-cache-fs",
            {"encrypted": True, "kmsKeyId": KEY_ARN, "throughputMode": "elastic", "tags": t},
        ),
        (
            "aws:efs/accessPoint:AccessPoint",
            "fleet-cache-llama-8b",
            {
                "fileSystemId": "fs-123",
                "rootDirectory": {
                    "path": "/models/llama-8b",
                    "creationInfo": {"ownerUid": 1000, "ownerGid": 1000, "permissions": "0750"},
                },
                "posixUser": {"uid": 1000, "gid": 1000},
                "tags": t,
            },
        ),
        (
            "aws:lb/loadBalancer:LoadBalancer",
            "fleet-alb",
            {
                "loadBalancerType": "application",
                "dropInvalidHeaderFields": True,
                "enableDeletionProtection": True,
                "accessLogs": {"bucket": "fleet-alb-logs", "enabled": True},
                "tags": t,
            },
        ),
        (
            "aws:lb/listener:Listener",
            "fleet-http",
            {
                "port": 80,
                "protocol": "HTTP",
                "defaultActions": [
                    {
                        "type": "redirect",
                        "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"},
                    }
                ],
                "tags": t,
            },
        ),
        (
            "aws:lb/listener:Listener",
            "fleet-https",
            {
                "port": 443,
                "protocol": "HTTPS",
                "certificateArn": CERT_ARN,
                "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "defaultActions": [{"type": "fixed-response"}],
                "tags": t,
            },
        ),
        (
            "aws:ec2/securityGroup:SecurityGroup",
            "fleet-alb-sg",
            {
                "ingress": [
                    {
                        "protocol": "tcp",
                        "fromPort": 443,
                        "toPort": 443,
                        "cidrBlocks": ["0.0.0.0/0"],
                    },
                    {"protocol": "tcp", "fromPort": 80, "toPort": 80, "ipv6CidrBlocks": ["::/0"]},
                ],
                "tags": t,
            },
        ),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "fleet-nfs-from-hosts",
            {
                "ipProtocol": "tcp",
                "fromPort": 2049,
                "toPort": 2049,
                "referencedSecurityGroupId": "sg-hosts",
                "tags": t,
            },
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            "fleet-task-policy",
            {
                "policy": policy(
                    {
                        "Effect": "Allow",
                        "Action": ["elasticfilesystem:ClientMount", "s3:GetObject"],
                        "Resource": "*",
                    },
                    {"Effect": "Deny", "Action": "*", "Resource": "*"},
                )
            },
        ),
        (
            "aws:ec2/launchTemplate:LaunchTemplate",
            "fleet-gpu-lt",
            {
                "metadataOptions": {
                    "httpEndpoint": "enabled",
                    "httpTokens": "required",
                    "httpPutResponseHopLimit": 1,
                },
                "blockDeviceMappings": [
                    {
                        "deviceName": "/dev/xvda",
                        "ebs": {"encrypted": "true", "kmsKeyId": KEY_ARN, "volumeSize": 200},
                    }
                ],
                "tags": t,
            },
        ),
        (
            "aws:cloudwatch/logGroup:LogGroup",
            "fleet-logs",
            {"retentionInDays": 90, "kmsKeyId": KEY_ARN, "tags": t},
        ),
        (
            "aws:ecs/taskDefinition:TaskDefinition",
            "fleet-llama-8b-task",
            {"family": "llama-8b", "containerDefinitions": GOOD_CONTAINERS, "tags": t},
        ),
        (
            "aws:ecs/service:Service",
            "fleet-llama-8b-svc",
            {"desiredCount": 2, "tags": service_tags(max_hourly="80")},
        ),
        (
            "aws:ecs/service:Service",
            "fleet-llama-70b-svc",
            {
                "desiredCount": 1,
                "tags": service_tags(
                    instance_type="g6e.12xlarge", max_replicas=3, hourly=10.493, max_hourly="80"
                ),
            },
        ),
        ("aws:sns/topic:Topic", "fleet-alarms", {"kmsMasterKeyId": KEY_ARN, "tags": t}),
        ("aws:s3/bucket:Bucket", "fleet-alb-logs", {"bucket": "fleet-alb-logs", "tags": t}),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "fleet-alb-logs-public-access",
            {
                "bucket": "fleet-alb-logs",
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
        (
            "aws:secretsmanager/secret:Secret",
            "fleet-api-keys",
            {"kmsKeyId": KEY_ARN, "tags": t},
        ),
        *kube_good_resources(),
    ]


def broken_stack() -> list[Resource]:
    """One resource (or two) per rule, each breaking exactly that rule."""
    t = base_tags()
    return [
        (
            "aws:efs/fileSystem:FileSystem",
            "bad-fs",
            {"encrypted": False, "throughputMode": "bursting", "tags": t},
        ),
        (
            "aws:efs/accessPoint:AccessPoint",
            "bad-ap",
            {"rootDirectory": {"path": "/"}, "posixUser": {"uid": 0, "gid": 0}, "tags": t},
        ),
        (
            "aws:lb/loadBalancer:LoadBalancer",
            "bad-alb",
            {"dropInvalidHeaderFields": False, "enableDeletionProtection": False, "tags": t},
        ),
        (
            "aws:lb/listener:Listener",
            "bad-http",
            {"port": 80, "protocol": "HTTP", "defaultActions": [{"type": "forward"}], "tags": t},
        ),
        (
            "aws:lb/listener:Listener",
            "bad-https",
            {
                "port": 443,
                "protocol": "HTTPS",
                "sslPolicy": "ELBSecurityPolicy-2016-08",
                "defaultActions": [{"type": "forward"}],
                "tags": t,
            },
        ),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "bad-ssh",
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            "bad-policy",
            {"policy": policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})},
        ),
        (
            "aws:ec2/launchTemplate:LaunchTemplate",
            "bad-lt",
            {
                "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2},
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}],
                "tags": t,
            },
        ),
        ("aws:cloudwatch/logGroup:LogGroup", "bad-logs", {"tags": t}),
        (
            "aws:ecs/taskDefinition:TaskDefinition",
            "bad-task",
            {
                "containerDefinitions": containers(
                    {
                        "name": "vllm",
                        "image": "vllm/vllm-openai:latest",
                        "environment": [{"name": "HF_TOKEN", "value": "hf_abc123"}],
                    }
                ),
                "tags": t,
            },
        ),
        (
            "aws:ecs/service:Service",
            "bad-svc",
            {
                "tags": service_tags(
                    environment="dev",
                    instance_type="p5.48xlarge",
                    capacity="on-demand",
                    max_replicas=2,
                    hourly=98.32,
                )
            },
        ),
        ("aws:sns/topic:Topic", "bad-topic", {"tags": t}),
        ("aws:s3/bucket:Bucket", "bad-bucket", {"bucket": "bad-bucket", "tags": t}),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "other-public-access",
            {"bucket": "some-other-bucket", "blockPublicAcls": False},
        ),
        ("aws:secretsmanager/secret:Secret", "bad-secret", {"tags": t}),
        # EKS: no Secrets encryption, API open to the world (the default when public access
        # is on and no CIDRs are given), an unpinned chart, an unbounded pool, IMDSv1 nodes.
        ("aws:eks/cluster:Cluster", "bad-cluster", {"vpcConfig": {"subnetIds": ["s"]}, "tags": t}),
        (
            "kubernetes:helm.sh/v3:Release",
            "bad-release",
            {"chart": "karpenter", "version": "", "values": {}},
        ),
        (
            "kubernetes:karpenter.sh/v1:NodePool",
            "bad-pool",
            {
                "metadata": {
                    "name": "bad-pool",
                    # Cost facts within every guardrail: only the missing GPU limit is wrong.
                    "annotations": {
                        f"modelfleet.io/{k.removeprefix('modelfleet:')}": v
                        for k, v in service_tags(
                            instance_type="g5.xlarge", capacity="spot", max_replicas=1, hourly=1.006
                        ).items()
                    },
                },
                "spec": {"template": {"spec": {}}},
            },
        ),
        (
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
            "bad-node-class",
            {"spec": {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}}},
        ),
        *kube_broken_resources(),
    ]

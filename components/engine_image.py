"""The engine image inside AWS: an ECR pull-through cache of Docker Hub, pinned by digest.

Present when `images.vllm` is a Docker Hub image and `images.dockerHubCredentials` is set:

- the credentials in a Secrets Manager secret named `ecr-pullthroughcache/<prefix>-docker-hub`
  (ECR reads upstream credentials only from secrets with that prefix), encrypted with the
  stack's key;
- a repository creation template for the cache prefix: repositories ECR creates on the first
  pull are KMS-encrypted with the stack's key, tag-immutable and expire old images (ECR needs
  a role it assumes to use a customer-managed key and tags);
- the pull-through cache rule `<prefix>-hub` -> registry-1.docker.io;
- the digest: the `@sha256:` given in `images.vllm`, or, for a tag, a small dynamic resource
  that pulls the manifest through the cache at `pulumi up` (the first pull imports the image)
  and records its digest. Task definitions, the warm pool's pre-pull and the EKS pods use
  `<account>.dkr.ecr.<region>.<partition's DNS suffix>/<prefix>-hub/<repository>@<digest>`
  (`EngineImagePlan.registry_reference`), so every task, warm instance and pod runs the same
  bytes even if the tag moves upstream.

Resolving at `pulumi up` rather than asking for a digest: a digest cannot be known offline,
and asking users to look one up by hand for every engine upgrade invites copying the wrong
platform's digest; a given `@sha256:` is still honoured and skips the lookup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_aws as aws
from botocore.exceptions import ClientError

from components._common import assume_role_policy, child, policy_json, replacing_diff, stack_tags
from components.stack_config import aws_session
from modelfleet.plan_types import FleetPlan

DOCKER_HUB = "registry-1.docker.io"
# Keep the last images per repository; the fleet runs one digest at a time.
LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the last 10 images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 10,
                },
                "action": {"type": "expire"},
            }
        ]
    },
    separators=(",", ":"),
)
# Manifest lists and OCI indexes first: the digest of the multi-platform index lets each host
# pull its own platform.
MEDIA_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]
POLL_SECONDS = 10.0
ATTEMPTS = 30  # the import of a ~10 GB image's manifest; layers follow on the first pull
# The cache is still importing, or the upstream tag has not reached it yet.
RETRYABLE = frozenset({"RepositoryNotFoundException", "ImageNotFoundException"})


class EngineImageError(Exception):
    pass


def resolve_digest(ecr: Any, props: Mapping[str, Any], sleep: Any = time.sleep) -> str:
    """The digest of `repository:tag` in the cache, pulling it through on the first call.

    `ecr` is a boto3 ECR client (tests pass a stubbed one). BatchGetImage is the manifest read
    of a registry pull: on a pull-through cache path it imports the upstream image first.
    """
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            resp = ecr.batch_get_image(
                registryId=props["registryId"],
                repositoryName=props["repository"],
                imageIds=[{"imageTag": props["tag"]}],
                acceptedMediaTypes=MEDIA_TYPES,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in RETRYABLE:
                raise EngineImageError(
                    f"{props['repository']}:{props['tag']}: {code or exc}; check the Docker Hub "
                    "credentials in images.dockerHubCredentials and the cache rule"
                ) from None
            last = code
        else:
            images = resp.get("images") or []
            if images:
                return str(images[0]["imageId"]["imageDigest"])
            last = "; ".join(
                f"{f.get('failureCode', '')} {f.get('failureReason', '')}".strip()
                for f in resp.get("failures") or []
            )
        if attempt < ATTEMPTS - 1:
            sleep(POLL_SECONDS)
    raise EngineImageError(
        f"{props['repository']}:{props['tag']} did not arrive in the pull-through cache after "
        f"{ATTEMPTS} attempts ({last or 'no image'})"
    )


# A new repository or tag is a new image; the session settings are not.
TRIGGERS = ("registryId", "repository", "tag")


class EngineDigestProvider(pulumi.dynamic.ResourceProvider):
    """Runs in the Pulumi engine's Python host as the stack's `aws` provider identity."""

    def _resolve(self, props: dict[str, Any]) -> dict[str, Any]:
        ecr = aws_session(props).client("ecr")
        return {**props, "digest": resolve_digest(ecr, props)}

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._resolve(props)
        return pulumi.dynamic.CreateResult(id_=outs["digest"], outs=outs)

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        return replacing_diff(TRIGGERS, olds, news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The cached image stays: the repository's lifecycle policy expires it.
        return None


class EngineDigest(pulumi.dynamic.Resource):
    digest: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(EngineDigestProvider(), name, {**props, "digest": None}, opts)


@dataclass(frozen=True)
class EngineImageArgs:
    plan: FleetPlan
    kms_key_arn: pulumi.Input[str]
    account_id: str
    partition: str
    # The `aws` provider's profile and roles (components.stack_config.aws_session_settings).
    session: Mapping[str, Any]


class EngineImage(pulumi.ComponentResource):
    """`reference`: what the task definitions, the warm pool and the EKS pods pull."""

    reference: pulumi.Output[str]

    def __init__(
        self, name: str, args: EngineImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:engine-image:EngineImage", name, None, opts)
        plan = args.plan
        c = plan.config
        e = plan.engine_image
        ids = plan.ids.engine_image
        creds = c.images.docker_hub_credentials
        if e.mode != "pull-through" or creds is None:
            self.reference = pulumi.Output.from_input(e.reference)
            self.register_outputs({"reference": self.reference})
            return
        assert ids.secret and ids.secret_version and ids.template_role  # planned with the rule
        assert ids.template_role_policy and ids.template and ids.rule and e.cache_prefix
        tags = stack_tags(c)
        secret = aws.secretsmanager.Secret(
            ids.secret.name,
            name=e.secret_name,
            description=f"modelfleet {c.team}/{c.stack}: Docker Hub credentials for the ECR "
            "pull-through cache (modelfleet:images.dockerHubCredentials)",
            kms_key_id=args.kms_key_arn,
            recovery_window_in_days=0 if c.ephemeral else 30,
            tags=tags,
            # An explicit name: a replacement must delete the old secret first.
            opts=child(self, delete_before_replace=True),
        )
        username, _, token = creds.get_secret_value().partition(":")
        version = aws.secretsmanager.SecretVersion(
            ids.secret_version.name,
            secret_id=secret.id,
            # The shape ECR reads for Docker Hub.
            secret_string=pulumi.Output.secret(
                json.dumps({"username": username, "accessToken": token})
            ),
            opts=child(self),
        )
        region = c.region
        repos = f"arn:{args.partition}:ecr:{region}:{args.account_id}:repository/{e.cache_prefix}/*"
        role = aws.iam.Role(
            ids.template_role.name,
            assume_role_policy=assume_role_policy("ecr.amazonaws.com"),
            tags=tags,
            opts=child(self),
        )
        role_policy = aws.iam.RolePolicy(
            ids.template_role_policy.name,
            role=role.id,
            policy=policy_json(
                [
                    {
                        # Repositories created for the cache encrypt with the stack's key.
                        "Effect": "Allow",
                        "Action": [
                            "kms:CreateGrant",
                            "kms:Decrypt",
                            "kms:DescribeKey",
                            "kms:Encrypt",
                            "kms:GenerateDataKey*",
                            "kms:ReEncrypt*",
                        ],
                        "Resource": args.kms_key_arn,
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["ecr:CreateRepository", "ecr:TagResource"],
                        "Resource": repos,
                    },
                ]
            ),
            opts=child(self),
        )
        template = aws.ecr.RepositoryCreationTemplate(
            ids.template.name,
            prefix=e.cache_prefix,
            applied_fors=["PULL_THROUGH_CACHE"],
            description=f"modelfleet {c.team}/{c.stack}: engine image cache",
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
            lifecycle_policy=LIFECYCLE_POLICY,
            custom_role_arn=role.arn,
            resource_tags=tags,
            opts=child(self, depends_on=[role_policy]),
        )
        rule = aws.ecr.PullThroughCacheRule(
            ids.rule.name,
            ecr_repository_prefix=e.cache_prefix,
            upstream_registry_url=DOCKER_HUB,
            credential_arn=secret.arn,
            # The first pull must find the credentials and the template in place.
            opts=child(self, depends_on=[version, template]),
        )
        if e.digest is not None:
            digest: pulumi.Output[str] = pulumi.Output.from_input(e.digest)
        else:
            assert ids.digest is not None and e.tag is not None  # planned for a tag
            resolved = EngineDigest(
                ids.digest.name,
                {
                    "region": region,
                    "profile": args.session.get("profile"),
                    "roles": list(args.session.get("roles") or []),
                    "registryId": args.account_id,
                    "repository": e.cache_repository,
                    "tag": e.tag,
                },
                opts=child(self, depends_on=[rule]),
            )
            digest = resolved.digest
        self.reference = digest.apply(lambda d: e.registry_reference(args.account_id, region, d))
        self.register_outputs({"reference": self.reference})

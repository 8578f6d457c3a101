"""Container images for the sidecar and the fetcher.

Given in `images:` they are used as they are; otherwise `pulumi up` builds them from
docker/<name>/ (Docker with buildx on the machine that runs Pulumi) and pushes them to ECR
repositories of the stack, tagged with the hash of their build context so a tag never moves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from components._common import child, invoke, stack_tags
from modelfleet.plan_types import FleetPlan

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"
# GPU hosts are x86_64 (g4dn/g5/g6/g6e/p4/p5), whatever machine runs the build.
PLATFORM = docker_build.Platform.LINUX_AMD64
_IGNORED = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def context_hash(context: Path) -> str:
    """Content hash of a build context: file paths and bytes, in a stable order."""
    h = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context)
        if _IGNORED.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ImagesArgs:
    plan: FleetPlan
    kms_key_arn: pulumi.Input[str]


class Images(pulumi.ComponentResource):
    sidecar: pulumi.Output[str]
    fetcher: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelfleet:images:Images", name, None, opts)
        c = args.plan.config
        built = args.plan.ids.images.images
        refs: dict[str, pulumi.Output[str]] = {}
        given = {"sidecar": c.images.sidecar, "fetcher": c.images.fetcher}
        for role, image in given.items():
            if image is not None:
                refs[role] = pulumi.Output.from_input(image)
                continue
            ids = built[role]
            repo = aws.ecr.Repository(
                ids.repository.name,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
                force_delete=c.ephemeral,
                tags=stack_tags(c),
                opts=child(self),
            )
            aws.ecr.LifecyclePolicy(
                ids.lifecycle.name,
                repository=repo.name,
                policy=(
                    '{"rules":[{"rulePriority":1,"description":"keep the last 20 images",'
                    '"selection":{"tagStatus":"any","countType":"imageCountMoreThan",'
                    '"countNumber":20},"action":{"type":"expire"}}]}'
                ),
                opts=child(self),
            )
            auth = aws.ecr.get_authorization_token_output(
                registry_id=repo.registry_id, opts=invoke(self)
            )
            context = DOCKER_DIR / role
            tag = pulumi.Output.concat(repo.repository_url, ":", context_hash(context))
            image_res = docker_build.Image(
                ids.image.name,
                context={"location": str(context)},
                platforms=[PLATFORM],
                push=True,
                tags=[tag],
                registries=[
                    {
                        "address": repo.repository_url,
                        "username": auth.user_name,
                        "password": auth.password,
                    }
                ],
                opts=child(self),
            )
            # Pin by digest: the task definition names exactly the bytes that were pushed.
            refs[role] = pulumi.Output.concat(repo.repository_url, "@", image_res.digest)
        self.sidecar = refs["sidecar"]
        self.fetcher = refs["fetcher"]
        self.register_outputs({"sidecar": self.sidecar, "fetcher": self.fetcher})

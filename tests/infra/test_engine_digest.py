"""The engine image's digest, resolved through the pull-through cache at `pulumi up`, against a
real boto3 ECR client with botocore's Stubber: every request is checked against ECR's model,
so a malformed BatchGetImage fails here rather than at deploy time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.engine_image import (
    ATTEMPTS,
    MEDIA_TYPES,
    POLL_SECONDS,
    TRIGGERS,
    EngineDigestProvider,
    EngineImageError,
    resolve_digest,
)

pytestmark = pytest.mark.xdist_group("infra")

DIGEST = "sha256:" + "3f" * 32
PROPS = {
    "region": "us-east-1",
    "registryId": "123456789012",
    "repository": "mf-platform-prod-hub/vllm/vllm-openai",
    "tag": "v0.31.0-cu129",
}
REQUEST = {
    "registryId": PROPS["registryId"],
    "repositoryName": PROPS["repository"],
    "imageIds": [{"imageTag": PROPS["tag"]}],
    "acceptedMediaTypes": MEDIA_TYPES,
}


@pytest.fixture
def ecr() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _found() -> dict[str, Any]:
    return {
        "images": [
            {
                "registryId": PROPS["registryId"],
                "repositoryName": PROPS["repository"],
                "imageId": {"imageDigest": DIGEST, "imageTag": PROPS["tag"]},
                "imageManifest": "{}",
                "imageManifestMediaType": MEDIA_TYPES[0],
            }
        ],
        "failures": [],
    }


def test_first_pull_imports_then_the_digest_is_read(ecr: tuple[Any, Stubber]) -> None:
    client, stub = ecr
    # The cache has not created the repository yet, then the tag is still importing.
    stub.add_client_error("batch_get_image", "RepositoryNotFoundException", expected_params=REQUEST)
    stub.add_response(
        "batch_get_image",
        {
            "images": [],
            "failures": [
                {
                    "imageId": {"imageTag": PROPS["tag"]},
                    "failureCode": "ImageNotFound",
                    "failureReason": "Requested image not found",
                }
            ],
        },
        expected_params=REQUEST,
    )
    stub.add_response("batch_get_image", _found(), expected_params=REQUEST)
    slept: list[float] = []
    assert resolve_digest(client, PROPS, sleep=slept.append) == DIGEST
    assert slept == [POLL_SECONDS, POLL_SECONDS]


def test_bad_credentials_fail_with_the_key_to_fix(ecr: tuple[Any, Stubber]) -> None:
    client, stub = ecr
    stub.add_client_error(
        "batch_get_image",
        "UnableToGetUpstreamImageException",
        "authentication failed",
        expected_params=REQUEST,
    )
    with pytest.raises(EngineImageError) as info:
        resolve_digest(client, PROPS, sleep=lambda _s: None)
    assert "UnableToGetUpstreamImageException" in str(info.value)
    assert "images.dockerHubCredentials" in str(info.value)


def test_gives_up_after_its_attempts(ecr: tuple[Any, Stubber]) -> None:
    client, stub = ecr
    for _ in range(ATTEMPTS):
        stub.add_client_error("batch_get_image", "ImageNotFoundException", expected_params=REQUEST)
    slept: list[float] = []
    with pytest.raises(EngineImageError) as info:
        resolve_digest(client, PROPS, sleep=slept.append)
    assert f"after {ATTEMPTS} attempts" in str(info.value)
    assert len(slept) == ATTEMPTS - 1  # no sleep after the last try


def test_a_new_tag_replaces_the_digest_a_new_session_does_not() -> None:
    provider = EngineDigestProvider()
    olds: dict[str, Any] = {**PROPS, "profile": None, "roles": [], "digest": DIGEST}
    assert not provider.diff(DIGEST, olds, {**olds, "profile": "other"}).changes
    moved = provider.diff(DIGEST, olds, {**olds, "tag": "v0.32.0-cu129"})
    assert moved.changes and moved.replaces == ["tag"]
    assert set(TRIGGERS) == {"registryId", "repository", "tag"}

"""Parsing and validation of SOURCE strings: ``hf://org/name@revision`` and ``s3://bucket/prefix``.

Pure functions with no network or file-system access, so that the stack config validation
and the ECS task definitions can import them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fetcher.errors import SourceError

# Hub repo ids: letters, digits, '-', '_', '.', at most 96 characters per part, no '--' or '..'
# (the Hub rejects both, which is also what keeps the '--' separators of folder names unambiguous).
_HF_PART = re.compile(r"[A-Za-z0-9_.-]{1,96}")
# Git ref names and commit hashes; '/' is allowed for refs such as 'refs/pr/1'.
_HF_REVISION = re.compile(r"[A-Za-z0-9_.+/-]{1,255}")
# General purpose bucket names (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_commit(revision: str) -> bool:
    """A full 40-hex commit id: the only Hub revision that can never point elsewhere."""
    return _COMMIT.fullmatch(revision) is not None


@dataclass(frozen=True)
class HfSource:
    org: str
    name: str
    revision: str

    @property
    def repo_id(self) -> str:
        return f"{self.org}/{self.name}"

    def __str__(self) -> str:
        return f"hf://{self.org}/{self.name}@{self.revision}"


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str  # empty (whole bucket) or ending with '/'

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


Source = HfSource | S3Source


def parse_source(value: str) -> Source:
    """Validate and normalise a SOURCE string.

    ``hf://org/name@revision``: the revision (branch, tag or commit) is required, so that a
    source always names a pinned model. ``s3://bucket/prefix``: the prefix is a folder; a
    trailing '/' is added, so ``s3://b/p`` and ``s3://b/p/`` are the same source. Raises
    ``SourceError`` (exit code 2) with a message that says what is expected.
    """
    text = value.strip()
    if text.startswith("hf://"):
        return _parse_hf(text)
    if text.startswith("s3://"):
        return _parse_s3(text)
    raise SourceError(
        f"invalid source {value!r}: expected hf://org/name@revision or s3://bucket/prefix/"
    )


def _parse_hf(text: str) -> HfSource:
    body = text[len("hf://") :]
    repo, sep, revision = body.partition("@")
    if not sep or not revision:
        raise SourceError(
            f"invalid source {text!r}: a revision is required, e.g. {text}@<commit-sha> "
            "(or @main to follow a branch)"
        )
    parts = repo.split("/")
    if len(parts) != 2:
        raise SourceError(f"invalid source {text!r}: expected hf://org/name@revision")
    for part in parts:
        if (
            not _HF_PART.fullmatch(part)
            or "--" in part
            or ".." in part
            or part[0] in ".-"
            or part[-1] in ".-"
            or part.endswith(".git")
        ):
            raise SourceError(
                f"invalid source {text!r}: {part!r} is not a valid Hugging Face org or repo name"
            )
    if (
        not _HF_REVISION.fullmatch(revision)
        or ".." in revision
        or "//" in revision
        or revision[0] in "/-"
        or revision.endswith("/")
    ):
        raise SourceError(f"invalid source {text!r}: {revision!r} is not a valid revision")
    return HfSource(org=parts[0], name=parts[1], revision=revision)


def _parse_s3(text: str) -> S3Source:
    body = text[len("s3://") :]
    bucket, _, prefix = body.partition("/")
    if not _S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise SourceError(f"invalid source {text!r}: {bucket!r} is not a valid S3 bucket name")
    if prefix.startswith("/") or "//" in prefix:
        raise SourceError(f"invalid source {text!r}: the prefix must not contain empty segments")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise SourceError(f"invalid source {text!r}: the prefix must not contain '.' or '..'")
    if any(ord(char) < 32 for char in prefix):
        raise SourceError(f"invalid source {text!r}: the prefix contains control characters")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Source(bucket=bucket, prefix=prefix)

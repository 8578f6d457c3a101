"""S3 backend: boto3's transfer manager (ranged, parallel GETs) for downloads.

Credentials come from boto3's default chain (the ECS task role in production); ``AWS_ENDPOINT_URL``
and ``AWS_ENDPOINT_URL_S3`` are honoured by botocore itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    FlexibleChecksumError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from s3transfer.exceptions import RetriesExceededError

from fetcher.backend import ByteSink, Chooser, Plan, RemoteFile
from fetcher.errors import Cancelled, ChecksumError, ExitCode, FetchError
from fetcher.integrity import CRC32, MD5, SHA256, Expected
from fetcher.source import S3Source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "403",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "503"}
)
# Parts of one object fetched in parallel; files are fetched in parallel on top of this.
_PER_FILE_CONCURRENCY = 8


def _expected(head: dict[str, Any]) -> Expected:
    """What S3 promises about an object, from a HeadObject answer with ChecksumMode=ENABLED.

    Only full-object checksums can be checked against the file: a multipart object's SHA256 is a
    checksum of part checksums (ChecksumType COMPOSITE, "-N" suffix) and its ETag an MD5 of part
    MD5s, neither checkable without the part boundaries, so such objects are verified by size
    (plus CRC32 when S3 keeps a full-object one). The ETag is the MD5 of the content only for
    single-part objects that are not encrypted with KMS or customer-provided keys.
    """
    size = int(head["ContentLength"])
    etag = str(head.get("ETag", "")).strip('"')
    checksum_type = head.get("ChecksumType")
    multipart = "-" in etag or int(head.get("PartsCount") or 1) > 1

    def full_object(value: object) -> bool:
        if not isinstance(value, str) or not value or "-" in value:
            return False
        if checksum_type:
            return bool(checksum_type == "FULL_OBJECT")
        # Without ChecksumType (older endpoints, emulators) a multipart checksum may be composite.
        return not multipart

    digests: list[tuple[str, str]] = []
    sha = head.get("ChecksumSHA256")
    if full_object(sha):
        digests.append((SHA256, base64.b64decode(str(sha)).hex()))
    else:
        encrypted = head.get("ServerSideEncryption") in ("aws:kms", "aws:kms:dsse") or bool(
            head.get("SSECustomerAlgorithm")
        )
        if not multipart and not encrypted and re.fullmatch(r"[0-9a-f]{32}", etag):
            digests.append((MD5, etag))
        crc = head.get("ChecksumCRC32")
        if full_object(crc):
            digests.append((CRC32, str(crc)))
    return Expected(size, tuple(digests))


class S3Backend:
    def __init__(self, source: S3Source, workers: int) -> None:
        self.source = source
        self.workers = workers
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            config=Config(
                max_pool_connections=max(10, workers * _PER_FILE_CONCURRENCY),
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )
        self.transfer = TransferConfig(
            max_concurrency=_PER_FILE_CONCURRENCY,
            multipart_threshold=16 * 1024 * 1024,
            multipart_chunksize=16 * 1024 * 1024,
        )

    def _key(self, path: str) -> str:
        return self.source.prefix + path

    def resolve(self) -> str | None:
        return None  # S3 prefixes have no revisions; the plan names its listing instead

    def plan(self, choose: Chooser) -> Plan:
        src = self.source
        paginator = self.client.get_paginator("list_objects_v2")
        paths: list[str] = []
        for page in paginator.paginate(Bucket=src.bucket, Prefix=src.prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(src.prefix) :]
                if not rel or (rel.endswith("/") and obj.get("Size", 0) == 0):
                    continue  # folder markers made by the console
                # Keys with '//', '.' or '..' go to choose() too: it refuses them only when
                # they would be fetched, naming the key (safety.py).
                paths.append(rel)
        if not paths:
            raise FetchError(f"{src}: no objects under this prefix", ExitCode.NOT_FOUND)
        chosen = choose(paths)

        def head(path: str) -> RemoteFile:
            answer = self.client.head_object(
                Bucket=src.bucket, Key=self._key(path), ChecksumMode="ENABLED"
            )
            return RemoteFile(path, _expected(dict(answer)))

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            files = tuple(pool.map(head, chosen))
        return Plan(files=files, resolved_revision=_listing_digest(files), listed=len(paths))

    def download(
        self, file: RemoteFile, staging: str, on_bytes: ByteSink, cancel: threading.Event
    ) -> None:
        target = os.path.join(staging, *file.path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)

        def callback(count: int) -> None:
            if cancel.is_set():
                raise Cancelled
            on_bytes(count)

        # s3transfer writes to a temporary name beside the target and renames when complete.
        try:
            self.client.download_file(
                self.source.bucket,
                self._key(file.path),
                target,
                Callback=callback,
                Config=self.transfer,
            )
        except FlexibleChecksumError as exc:
            # botocore checks an object's stored checksum itself on single-request GETs.
            raise ChecksumError(f"{file.path}: {exc}") from exc

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, BotoConnectionError | RetriesExceededError):
            return True
        if isinstance(exc, ClientError):
            return str(exc.response.get("Error", {}).get("Code")) in _TRANSIENT_CODES
        return False

    def translate(self, exc: BaseException) -> FetchError | None:
        src = self.source
        if isinstance(exc, RetriesExceededError):
            # s3transfer retries short bodies itself (S3_RETRYABLE_DOWNLOAD_ERRORS) and then
            # wraps the last error; a body that keeps ending early is a size mismatch (exit 5).
            last = exc.last_exception
            if isinstance(last, IncompleteReadError):
                return ChecksumError(
                    f"size mismatch: download ended at {last.kwargs.get('actual_bytes')} of "
                    f"{last.kwargs.get('expected_bytes')} bytes"
                )
            return FetchError(f"{src}: download failed after retries: {type(last).__name__}")
        if isinstance(exc, IncompleteReadError):
            return ChecksumError(
                f"size mismatch: download ended at {exc.kwargs.get('actual_bytes')} of "
                f"{exc.kwargs.get('expected_bytes')} bytes"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return FetchError(
                f"{src}: no AWS credentials found (task role or AWS_* environment)", ExitCode.AUTH
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code"))
            op = exc.operation_name
            if code == "NoSuchBucket" or (code in ("404", "NotFound") and op == "HeadBucket"):
                return FetchError(f"{src}: bucket {src.bucket} does not exist", ExitCode.NOT_FOUND)
            if code in _NOT_FOUND_CODES:
                return FetchError(
                    f"{src}: object vanished during the fetch ({op})", ExitCode.NOT_FOUND
                )
            if code in _AUTH_CODES:
                return FetchError(f"{src}: access denied by S3 ({code} on {op})", ExitCode.AUTH)
            return FetchError(f"{src}: S3 error {code} on {op}: {error.get('Message', '')}")
        if isinstance(exc, EndpointConnectionError):
            return FetchError(f"{src}: cannot reach S3: {exc}")
        if isinstance(exc, BotoCoreError):
            return FetchError(f"{src}: {exc}")
        return None


def _listing_digest(files: tuple[RemoteFile, ...]) -> str:
    """A stand-in for a revision: S3 prefixes have none, so name the listing that was fetched."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.path.encode() + b"\0")
        digest.update(str(file.expected).encode() + b"\n")
    return "listing-sha256:" + digest.hexdigest()[:16]

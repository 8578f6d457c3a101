"""Hashing files once and checking them against what the source says they should be."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from fetcher.errors import ChecksumError

_CHUNK = 8 * 1024 * 1024

# Expected-value kinds, in the order of preference used to name how a file was verified.
SHA256 = "sha256"  # hex, the Hub's LFS oid or S3 ChecksumSHA256 (full object)
GIT_BLOB_SHA1 = "git-blob-sha1"  # hex, the Hub's blob id for files kept in git (not LFS)
CRC32 = "crc32"  # base64 big-endian, S3 ChecksumCRC32 (full object)
MD5 = "md5"  # hex, the ETag of a single-part, non-KMS S3 object


@dataclass(frozen=True)
class Expected:
    """What the source promises about one file: its size and zero or more digests."""

    size: int
    digests: tuple[tuple[str, str], ...] = ()

    @property
    def verified_by(self) -> str:
        kinds = [kind for kind, _ in self.digests]
        return "+".join(["size", *kinds])

    def digest(self, kind: str) -> str | None:
        return next((value for k, value in self.digests if k == kind), None)


def compute(
    path: str, kinds: tuple[str, ...], on_bytes: Callable[[int], None] | None = None
) -> dict[str, str]:
    """sha256 of ``path`` plus the other requested digests, in one read.

    hashlib and zlib release the GIL on large buffers, so files hash in parallel threads.
    """
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if MD5 in kinds else None
    sha1 = hashlib.sha1(usedforsecurity=False) if GIT_BLOB_SHA1 in kinds else None
    crc: int | None = 0 if CRC32 in kinds else None
    if sha1 is not None:
        sha1.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            if crc is not None:
                crc = zlib.crc32(chunk, crc)
            if on_bytes is not None:
                on_bytes(len(chunk))
    out = {SHA256: sha256.hexdigest()}
    if md5 is not None:
        out[MD5] = md5.hexdigest()
    if sha1 is not None:
        out[GIT_BLOB_SHA1] = sha1.hexdigest()
    if crc is not None:
        out[CRC32] = base64.b64encode(crc.to_bytes(4, "big")).decode()
    return out


def verify(path: str, rel: str, expected: Expected) -> str:
    """Check size and every expected digest of ``path``; return its sha256 hex.

    Raises ``ChecksumError`` (exit code 5) naming the file and what differed.
    """
    size = os.path.getsize(path)
    if size != expected.size:
        raise ChecksumError(f"{rel}: size mismatch: expected {expected.size} bytes, got {size}")
    kinds = tuple(kind for kind, _ in expected.digests)
    actual = compute(path, kinds)
    for kind, value in expected.digests:
        if actual[kind] != value:
            raise ChecksumError(f"{rel}: {kind} mismatch: expected {value}, got {actual[kind]}")
    return actual[SHA256]

"""The completion manifest (written last) and the record of files verified so far."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any

from fetcher.integrity import Expected
from fetcher.paths import MANIFEST_NAME, folder_name
from fetcher.source import Source

RECORD_NAME = ".modelfleet-verified.json"
MANIFEST_FORMAT = 1


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync, then rename over it."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def fsync_file(path: str) -> None:
    """Flush a downloaded file before it is recorded: the folder rename must never publish
    names whose data a crash of a local-disk host could still lose (NFS commits on close)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_complete(folder: str, source: Source) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it holds a complete fetch of ``source``, else None.

    Besides parsing the manifest, every listed file must exist with its recorded size: a stat
    per file is cheap, and it turns a file deleted by hand into a refetch instead of a vLLM crash.
    """
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("format") != MANIFEST_FORMAT or data.get("folder") != folder_name(source):
            return None
        for entry in data["files"]:
            path = os.path.join(folder, *str(entry["path"]).split("/"))
            if os.stat(path).st_size != int(entry["size"]):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None


class VerifiedRecord:
    """Files of a partial download whose checksums already matched, to skip them on a rerun.

    A file is reused only while its size and mtime are those seen when it was verified and the
    source still promises the same digests; anything else is hashed or downloaded again.
    """

    def __init__(self, staging: str) -> None:
        self.path = os.path.join(staging, RECORD_NAME)
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                loaded = json.load(handle).get("files", {})
            if isinstance(loaded, dict):
                self._files = loaded
        except (OSError, ValueError, AttributeError):
            self._files = {}

    @staticmethod
    def _expected_key(expected: Expected) -> list[list[str]]:
        return [[kind, value] for kind, value in expected.digests]

    def reusable(self, rel: str, file_path: str, expected: Expected) -> str | None:
        """The recorded sha256 of ``rel`` if it can be reused as is."""
        entry = self._files.get(rel)
        if not entry:
            return None
        try:
            stat = os.stat(file_path)
        except OSError:
            return None
        if (
            entry.get("size") == expected.size == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
            and entry.get("expected") == self._expected_key(expected)
        ):
            sha = entry.get("sha256")
            return sha if isinstance(sha, str) else None
        return None

    def add(self, rel: str, file_path: str, expected: Expected, sha256: str) -> None:
        stat = os.stat(file_path)
        with self._lock:
            self._files[rel] = {
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": sha256,
                "expected": self._expected_key(expected),
            }
            write_json_atomic(self.path, {"files": self._files})

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

"""The completion manifest (written last) and the record of files verified so far."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any, BinaryIO

from fetcher.integrity import Expected
from fetcher.paths import folder_name
from fetcher.safety import JOURNAL_NAME, MANIFEST_NAME, RECORD_NAME, unsafe_reason
from fetcher.source import Source

__all__ = ["JOURNAL_NAME", "MANIFEST_FORMAT", "RECORD_NAME", "VerifiedRecord", "read_complete"]

MANIFEST_FORMAT = 1


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync, then rename over it."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    # O_EXCL|O_NOFOLLOW: never write through a link planted at the temporary name.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with open(fd, "w", encoding="utf-8") as handle:
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


def read_complete(folder: str, source: Source, commit: str | None = None) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it holds a complete fetch of ``source``, else None.

    Besides parsing the manifest, every listed file must exist with its recorded size: a stat
    per file is cheap, and it turns a file deleted by hand into a refetch instead of a vLLM crash.
    With ``commit`` (what a branch or tag resolves to now), a folder fetched at another commit is
    not complete: the branch moved since.
    """
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("format") != MANIFEST_FORMAT or data.get("folder") != folder_name(source):
            return None
        if commit is not None and data.get("resolved_revision") != commit:
            return None
        for entry in data["files"]:
            name = str(entry["path"])
            if unsafe_reason(name) is not None:
                return None
            path = os.path.join(folder, *name.split("/"))
            if os.lstat(path).st_size != int(entry["size"]) or os.path.islink(path):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _open_nofollow(path: str, flags: int) -> BinaryIO:
    """Open ``path`` as a binary file, failing (ELOOP) rather than following a symlink."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    return open(fd, "r+b" if flags & os.O_RDWR else "rb")


class VerifiedRecord:
    """Files of a partial download whose checksums already matched, to skip them on a rerun.

    A file is reused only while its size and mtime are those seen when it was verified and the
    source still promises the same digests; anything else is hashed or downloaded again.

    Storage: an append-only journal, ``.modelfleet-verified.jsonl``, one JSON object per line.
    Recording a file costs one ``write(2)`` of one line on an ``O_APPEND`` descriptor and one
    ``fsync(2)`` of the journal, whatever the number of files already recorded, so a model of
    N files costs O(N) bytes written in all (the format 1 record, one JSON document rewritten
    and fsynced after every file, cost O(N^2)). Crash safety: the downloaded file is fsynced
    before its line is appended (``fsync_file``), and the line is fsynced before the file counts
    as verified, so a line that survives a crash names data that survived it too. A crash in
    the middle of a line leaves a torn last line without its newline: it is ignored when the
    journal is read, and cut off before the next append so that it cannot corrupt that line.
    A later line for the same path replaces an earlier one. The format 1 record
    (``.modelfleet-verified.json``), left by an older fetcher, is still read for resumes.
    """

    def __init__(self, staging: str) -> None:
        self.path = os.path.join(staging, JOURNAL_NAME)
        self.legacy_path = os.path.join(staging, RECORD_NAME)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._files: dict[str, dict[str, Any]] = {}
        try:
            with _open_nofollow(self.legacy_path, os.O_RDONLY) as handle:
                loaded = json.loads(handle.read()).get("files", {})
            if isinstance(loaded, dict):
                self._files.update(loaded)
        except (OSError, ValueError, AttributeError):
            pass
        self._load_journal()

    def _load_journal(self) -> None:
        try:
            with _open_nofollow(self.path, os.O_RDONLY) as handle:
                data = handle.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
                self._files[str(entry["path"])] = dict(entry["record"])
            except (ValueError, KeyError, TypeError):
                continue  # a line damaged by hand: that file is simply hashed again
        if len(complete) != len(data):
            # A torn last line from a crash mid-append: cut it so the next line starts clean.
            with _open_nofollow(self.path, os.O_RDWR) as handle:
                handle.truncate(len(complete))
                handle.flush()
                os.fsync(handle.fileno())

    @staticmethod
    def _expected_key(expected: Expected) -> list[list[str]]:
        return [[kind, value] for kind, value in expected.digests]

    def reusable(self, rel: str, file_path: str, expected: Expected) -> str | None:
        """The recorded sha256 of ``rel`` if it can be reused as is."""
        entry = self._files.get(rel)
        if not entry:
            return None
        try:
            stat = os.lstat(file_path)
        except OSError:
            return None
        if (
            not os.path.islink(file_path)
            and entry.get("size") == expected.size == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
            and entry.get("expected") == self._expected_key(expected)
        ):
            sha = entry.get("sha256")
            return sha if isinstance(sha, str) else None
        return None

    def add(self, rel: str, file_path: str, expected: Expected, sha256: str) -> None:
        stat = os.stat(file_path)
        record = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": sha256,
            "expected": self._expected_key(expected),
        }
        line = json.dumps({"path": rel, "record": record}, sort_keys=True).encode() + b"\n"
        with self._lock:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o644)
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(self._fd)
            self._files[rel] = record

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        self.close()
        for path in (self.path, self.legacy_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

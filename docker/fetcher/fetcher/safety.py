"""Names from a listing and paths under DEST_ROOT, checked before they are used for anything.

A Hub listing (``HF_ENDPOINT`` may be any mirror) and an S3 listing are untrusted input: a name
such as ``../../victim/file`` or ``a//b`` must never become a path outside the model folder. And
DEST_ROOT is shared storage: a symlink planted where the fetcher renames, deletes or writes would
turn those operations on another directory, so the fetcher never follows one there.
"""

from __future__ import annotations

import os
import shutil

from fetcher.errors import UnsafeError

# The fetcher's own bookkeeping inside a model folder. A source that holds them (an `aws s3 sync`
# of a fetched folder) must not have them fetched: they would pass for the fetcher's own records.
MANIFEST_NAME = ".modelfleet-complete.json"
RECORD_NAME = ".modelfleet-verified.json"  # format 1 record (read for resumes of older runs)
JOURNAL_NAME = ".modelfleet-verified.jsonl"
RESERVED_PREFIX = ".modelfleet"
# huggingface_hub keeps per-download metadata in <local_dir>/.cache/huggingface/ and the fetcher
# deletes that folder between runs, so a repository file under it could never be kept.
HF_CACHE_DIR = ".cache"

_NAME_MAX = 255  # bytes per path component on Linux file systems and NFS


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` cannot be a file path inside the model folder, or None when it can.

    Accepted: '/'-separated, relative, no empty, '.' or '..' component, no backslash, NUL or
    control character, each component at most 255 bytes. Checked on the name exactly as listed
    (no normalisation), so what is checked is what is used.
    """
    if not name:
        return "empty name"
    if any(ord(char) < 32 or char in "\\\x7f" for char in name):
        return "control character or backslash"
    if name.startswith("/"):
        return "absolute path"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "empty, '.' or '..' path component"
        if len(part.encode("utf-8", "surrogatepass")) > _NAME_MAX:
            return "path component longer than 255 bytes"
    return None


def is_reserved(name: str) -> bool:
    """Names the fetcher keeps for itself: never fetched, never deleted as leftovers."""
    top = name.split("/", 1)[0]
    return top.startswith(RESERVED_PREFIX) or top == HF_CACHE_DIR


def inside(folder: str, name: str) -> str:
    """The local path of the listed ``name`` in ``folder``; refuses any name that would escape."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise UnsafeError(f"refusing listed name {name!r}: {reason}")
    path = os.path.join(folder, *name.split("/"))
    root = os.path.normpath(folder)
    if os.path.commonpath([root, os.path.normpath(path)]) != root:
        raise UnsafeError(f"refusing listed name {name!r}: outside {folder}")
    return path


def refuse_symlink(path: str, what: str) -> None:
    """Raise ``UnsafeError`` if ``path`` is a symbolic link (whatever it points to)."""
    if os.path.islink(path):
        raise UnsafeError(
            f"{path} ({what}) is a symbolic link; the fetcher never follows links under "
            "DEST_ROOT: remove the link and rerun"
        )


def remove_tree(path: str) -> None:
    """Delete ``path`` without following links: a link is removed, never its target's files."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        # rmtree does not follow symlinks inside the tree (it unlinks them).
        shutil.rmtree(path, ignore_errors=True)

"""Where a source lands under DEST_ROOT. Pure: no network, no file-system access.

The rule (stable, part of the contract with the ECS task definitions):

- ``hf://Org/Name@rev`` -> ``hf--org--name--<rev>``; org and name lower-cased (the Hub treats
  them case-insensitively); a revision made only of ``[A-Za-z0-9._-]`` and at most 64 characters
  is used as is, any other is sanitised and suffixed with 8 hex digits of its sha256.
- ``s3://bucket/some/prefix/`` -> ``s3--bucket--some_prefix--<12 hex digits>``, the digits being
  the sha256 of the normalised source (sanitising the prefix is lossy, the hash keeps names apart).

The folder depends on the source string only, never on what a branch resolves to (the ECS task
definition computes it offline): a source ``@main`` lands in ``...--main``. What that folder
holds is keyed by commit instead: the manifest records the commit, every run resolves the
branch, and a folder fetched at another commit is fetched again (fetch.py ``_current_commit``).

Working files live in ``DEST_ROOT/.modelfleet/`` (locks and partial downloads), so the model
folder itself only ever holds a complete model.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

from fetcher.safety import MANIFEST_NAME
from fetcher.source import HfSource, S3Source, Source, parse_source

__all__ = ["MANIFEST_NAME", "folder_name", "lock_path", "model_dir", "staging_dir", "work_dir"]

WORK_DIR = ".modelfleet"
_SAFE = re.compile(r"[A-Za-z0-9._-]+")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# Leaves room for the '.partial' and '.lock' suffixes under the 255-byte NAME_MAX of Linux and NFS.
_MAX_NAME = 200


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _as_source(source: str | Source) -> Source:
    return parse_source(source) if isinstance(source, str) else source


def folder_name(source: str | Source) -> str:
    """The name of the model folder for ``source`` (see the module docstring for the rule)."""
    src = _as_source(source)
    if isinstance(src, HfSource):
        rev = src.revision
        if not _SAFE.fullmatch(rev) or len(rev) > 64:
            rev = f"{_UNSAFE_CHAR.sub('_', rev)[:40]}-{_digest(src.revision, 8)}"
        name = f"hf--{src.org.lower()}--{src.name.lower()}--{rev}"
    else:
        assert isinstance(src, S3Source)
        slug = _UNSAFE_CHAR.sub("_", src.prefix.strip("/").replace("/", "_"))[:100].strip("_")
        parts = ["s3", src.bucket, *([slug] if slug else []), _digest(str(src), 12)]
        name = "--".join(parts)
    if len(name) > _MAX_NAME:
        name = f"{name[: _MAX_NAME - 13]}-{_digest(name, 12)}"
    return name


def model_dir(source: str | Source, dest_root: str) -> str:
    """The folder that ``python -m fetcher SOURCE DEST_ROOT`` fills and prints.

    Import this from the ECS code to pass the same path to vLLM; it never touches the network
    or the file system and raises ``fetcher.errors.SourceError`` for a malformed source.
    """
    return posixpath.join(dest_root, folder_name(source))


def work_dir(dest_root: str) -> str:
    return posixpath.join(dest_root, WORK_DIR)


def staging_dir(source: str | Source, dest_root: str) -> str:
    return posixpath.join(work_dir(dest_root), folder_name(source) + ".partial")


def lock_path(source: str | Source, dest_root: str) -> str:
    return posixpath.join(work_dir(dest_root), folder_name(source) + ".lock")

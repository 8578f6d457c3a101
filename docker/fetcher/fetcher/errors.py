"""Exit codes and the one error type the CLI turns into a single line on stderr."""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``python -m fetcher``; the ECS side and runbooks key on these."""

    OK = 0
    OTHER = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    CHECKSUM = 5
    DISK_FULL = 6
    WAIT_TIMEOUT = 7
    EXPECTATION = 8  # the checkpoint is not what --expect (the stack's plan) says
    UNSAFE = 9  # a symlink under DEST_ROOT, or a listed name that is not a safe relative path
    INTERRUPTED = 130


class FetchError(Exception):
    """An expected failure: ``message`` is printed as one line, ``code`` becomes the exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.OTHER) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SourceError(FetchError):
    """The SOURCE argument is malformed; raised before any network or file-system access."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


class ChecksumError(FetchError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.CHECKSUM)


class UnsafeError(FetchError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNSAFE)


class ExpectationError(FetchError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.EXPECTATION)


class Cancelled(Exception):
    """Raised inside download callbacks so that sibling downloads stop once one has failed."""


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full_error(exc: BaseException) -> OSError | None:
    """The ENOSPC-like OSError in ``exc``'s cause/context chain, if any.

    Libraries wrap I/O errors (s3transfer re-raises from its I/O thread, huggingface_hub
    chains), so the errno has to be looked for along the chain rather than on ``exc`` alone.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None

"""The per-model lock that lets one fetcher download while the others wait.

Why POSIX record locks (``fcntl.lockf``) rather than an O_EXCL lock file with a heartbeat:

- EFS speaks NFSv4.1, where byte-range locks are part of the protocol and held by the server
  under a lease. A fetcher that is killed (SIGKILL, OOM, task stopped) has its locks released
  by its kernel when the process dies; a host that dies or loses the network stops renewing
  its lease and the server drops its locks when the lease expires. A stale lock therefore
  breaks itself, with no clock comparison between hosts and no "is the holder still alive"
  guess that two waiters could both make at once, which is where O_EXCL schemes go wrong.
- ``flock(2)`` is emulated with the same byte-range locks on Linux NFS clients, but
  ``lockf`` says so explicitly and behaves the same on local disks (tests, laptops).

Two rules keep record locks correct: they belong to the process, so the lock file is opened
once per process and never closed while locked (closing any descriptor of that file would drop
the lock); and the lock file is never deleted (a waiter could otherwise lock an unlinked inode
while a newcomer locks a fresh file of the same name).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time


class ModelLock:
    """An exclusive, non-blocking, process-scoped lock on ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.held = False

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; record who holds it for people reading the file."""
        fd = self._open()
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        self.held = True
        info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        payload = json.dumps(info).encode() + b"\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        os.fsync(fd)
        return True

    def holder(self) -> str:
        """Who holds the lock, as written by the holder (best effort, for log lines only)."""
        try:
            raw = os.pread(self._open(), 4096, 0)
            info = json.loads(raw.decode() or "{}")
            return f"pid {info['pid']} on {info['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another fetcher"

    def release(self) -> None:
        if self._fd is not None:
            # Closing the only descriptor releases the record lock.
            os.close(self._fd)
            self._fd = None
        self.held = False

    def __enter__(self) -> ModelLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

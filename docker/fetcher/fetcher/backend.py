"""The interface between the fetch logic and the places weights come from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fetcher.errors import FetchError
from fetcher.integrity import Expected

Chooser = Callable[[Sequence[str]], list[str]]
ByteSink = Callable[[int], None]


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the model folder, '/'-separated
    expected: Expected


@dataclass(frozen=True)
class Plan:
    """The files to fetch and, for the Hub, the commit a branch or tag resolved to."""

    files: tuple[RemoteFile, ...]
    resolved_revision: str | None
    listed: int  # files at the source before selection, for the log line


class Backend(Protocol):
    def resolve(self) -> str | None:
        """The commit a Hub branch or tag names now; None for sources without revisions."""
        ...

    def plan(self, choose: Chooser) -> Plan:
        """List the source, keep ``choose(paths)``, and return what each kept file must be.

        Every listed name goes to ``choose`` as listed, relative to the model folder; only the
        names it returns may be used for anything (it checks them, see safety.py).
        """
        ...

    def download(
        self, file: RemoteFile, staging: str, on_bytes: ByteSink, cancel: threading.Event
    ) -> None:
        """Write ``file`` to ``staging/file.path`` complete or not at all (temp name + rename)."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying the same call may succeed (network hiccup, 5xx, throttling)."""
        ...

    def translate(self, exc: BaseException) -> FetchError | None:
        """An expected failure as a one-line ``FetchError`` with its exit code, else None."""
        ...

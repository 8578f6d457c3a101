"""Hugging Face Hub backend: huggingface_hub for listing and downloads.

Files are fetched with ``hf_hub_download(local_dir=...)`` from a thread pool, the same path
``snapshot_download`` takes: each file goes through Xet (hf_xet, chunked and parallel) when the
Hub advertises it for that file, and plain HTTP otherwise. The fetcher does not set
``HF_HUB_DISABLE_XET``: huggingface_hub only takes the Xet path when the server's HEAD answer
carries Xet headers, so an ``HF_ENDPOINT`` mirror without Xet is served over HTTP anyway, and
an operator whose mirror forwards Xet headers it cannot honour sets ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

import httpx2
from huggingface_hub import HfApi, get_token, hf_hub_download
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fetcher.backend import ByteSink, Chooser, Plan, RemoteFile
from fetcher.errors import Cancelled, ChecksumError, ExitCode, FetchError
from fetcher.integrity import GIT_BLOB_SHA1, SHA256, Expected
from fetcher.source import HfSource
from fetcher.version import __version__

_LIBRARY = "modelfleet-fetcher"
_API_TIMEOUT = 60.0
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _progress_class(on_bytes: ByteSink, cancel: threading.Event) -> type:
    """A tqdm stand-in that forwards byte counts to the fetcher's reporter.

    huggingface_hub instantiates ``tqdm_class`` per file and calls ``update`` with bytes written
    (HTTP and Xet alike); raising from it is how a failing sibling stops this download.
    """

    class _Bar:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.total = kwargs.get("total")
            self.n = 0
            self.format_dict: dict[str, Any] = {}

        def update(self, n: float | None = 1) -> None:
            if cancel.is_set():
                raise Cancelled
            if n:
                self.n += int(n)
                on_bytes(int(n))

        def update_transfer(self, n: float | None = 1) -> None:
            # Network bytes of Xet transfers; progress counts bytes written (``update``).
            if cancel.is_set():
                raise Cancelled

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            return None

        def close(self) -> None:
            return None

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    return _Bar


class HfBackend:
    def __init__(self, source: HfSource) -> None:
        self.source = source
        # Read at call time rather than through huggingface_hub.constants (frozen at import).
        self.endpoint = os.environ.get("HF_ENDPOINT") or None
        self.has_token = get_token() is not None
        self.commit: str | None = None
        # huggingface_hub warns through logging; the fetcher reports failures itself, once.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)

    def _api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint, library_name=_LIBRARY, library_version=__version__)

    def resolve(self) -> str | None:
        """The commit the source's revision names now (``model_info(...).sha``)."""
        info = self._api().model_info(
            self.source.repo_id, revision=self.source.revision, timeout=_API_TIMEOUT
        )
        if not info.sha:
            raise FetchError(f"{self.source}: the Hub did not return a commit for the revision")
        return str(info.sha)

    def plan(self, choose: Chooser) -> Plan:
        api = self._api()
        # huggingface_hub's shared client has no timeout of its own; a stalled Hub must not
        # hold an init container forever.
        info = api.model_info(
            self.source.repo_id,
            revision=self.source.revision,
            files_metadata=True,
            timeout=_API_TIMEOUT,
        )
        if not info.sha:
            raise FetchError(f"{self.source}: the Hub did not return a commit for the revision")
        self.commit = info.sha
        # Every listed name goes through ``choose``, which checks it before anything else
        # uses it (safety.py): HF_ENDPOINT may be any mirror.
        siblings = {s.rfilename: s for s in info.siblings or []}
        files = []
        for path in choose(list(siblings)):
            sibling = siblings[path]
            if sibling.lfs is not None:
                expected = Expected(sibling.lfs.size, ((SHA256, sibling.lfs.sha256),))
            elif sibling.size is not None and sibling.blob_id:
                expected = Expected(sibling.size, ((GIT_BLOB_SHA1, sibling.blob_id),))
            else:
                raise FetchError(f"{self.source}: the Hub listed {path} without size or checksum")
            files.append(RemoteFile(path, expected))
        return Plan(files=tuple(files), resolved_revision=info.sha, listed=len(siblings))

    def download(
        self, file: RemoteFile, staging: str, on_bytes: ByteSink, cancel: threading.Event
    ) -> None:
        assert self.commit is not None, "plan() resolves the commit first"
        hf_hub_download(
            self.source.repo_id,
            file.path,
            # The commit, not the branch: every file comes from the same snapshot.
            revision=self.commit,
            local_dir=staging,
            endpoint=self.endpoint,
            library_name=_LIBRARY,
            library_version=__version__,
            tqdm_class=_progress_class(on_bytes, cancel),
        )

    def is_transient(self, exc: BaseException) -> bool:
        # huggingface_hub wraps a failed metadata request in LocalEntryNotFoundError ("cannot
        # find the file in the local cache"), so the network error is looked for down the chain.
        for error in _chain(exc):
            if isinstance(error, httpx2.TransportError):
                return True
            if isinstance(error, HfHubHTTPError) and error.response is not None:
                return error.response.status_code in _RETRY_STATUS
            # huggingface_hub's "Consistency check failed" (short read) carries no errno.
            if type(error) is OSError and error.errno is None:
                return True
        return False

    def translate(self, exc: BaseException) -> FetchError | None:
        src = self.source
        status = getattr(getattr(exc, "response", None), "status_code", None)
        short = _short_read(exc)
        if short is not None:
            return ChecksumError(f"size mismatch: {short}")
        if isinstance(exc, RevisionNotFoundError):
            return FetchError(
                f"{src}: revision {src.revision!r} not found in {src.repo_id}", ExitCode.NOT_FOUND
            )
        if isinstance(exc, GatedRepoError):
            return FetchError(
                f"{src}: {src.repo_id} is gated: accept its terms on the Hub with the account "
                "whose HF_TOKEN the fetcher uses",
                ExitCode.AUTH,
            )
        if isinstance(exc, RepositoryNotFoundError):
            if status == 401 and not self.has_token:
                return FetchError(
                    f"{src}: repository {src.repo_id} not found, or private and HF_TOKEN "
                    "is not set",
                    ExitCode.AUTH,
                )
            return FetchError(
                f"{src}: repository {src.repo_id} not found (or HF_TOKEN has no access to it)",
                ExitCode.NOT_FOUND,
            )
        if isinstance(exc, DisabledRepoError):
            return FetchError(f"{src}: repository {src.repo_id} is disabled", ExitCode.NOT_FOUND)
        if isinstance(exc, RemoteEntryNotFoundError):
            return FetchError(
                f"{src}: a listed file is missing on the Hub ({status})", ExitCode.NOT_FOUND
            )
        if isinstance(exc, HfHubHTTPError) and status in (401, 403):
            reason = "HF_TOKEN was rejected" if self.has_token else "HF_TOKEN is not set"
            return FetchError(
                f"{src}: access denied by the Hub ({status}): {reason}", ExitCode.AUTH
            )
        if isinstance(exc, HfHubHTTPError):
            return FetchError(f"{src}: the Hub answered HTTP {status}")
        network = next((e for e in _chain(exc) if isinstance(e, httpx2.TransportError)), None)
        if network is not None:
            endpoint = self.endpoint or "https://huggingface.co"
            reason = f"{type(network).__name__}: {network}"
            return FetchError(f"{src}: cannot reach {endpoint}: {reason}")
        if isinstance(exc, LocalEntryNotFoundError):
            cause = exc.__cause__ or exc
            reason = f"{type(cause).__name__}: {cause}"
            return FetchError(f"{src}: the Hub gave no file metadata: {reason}")
        return None


# huggingface_hub 2.4.0 file_download.py http_get: "Consistency check failed: file should be of
# size {expected} but has size {actual}" (an OSError without errno) when the body ends short;
# httpx's RemoteProtocolError when the server closes before Content-Length bytes were sent.
_CONSISTENCY = re.compile(r"should be of size (\d+) but has size (\d+)")
_INCOMPLETE = re.compile(r"received (\d+) bytes, expected (\d+)")


def _short_read(exc: BaseException) -> str | None:
    """'download ended at X of Y bytes' when ``exc`` is a truncated download, else None."""
    for error in _chain(exc):
        text = str(error)
        if isinstance(error, OSError) and (match := _CONSISTENCY.search(text)):
            return f"download ended at {match.group(2)} of {match.group(1)} bytes"
        if isinstance(error, httpx2.RemoteProtocolError) and (match := _INCOMPLETE.search(text)):
            return f"download ended at {match.group(1)} of {match.group(2)} bytes"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out

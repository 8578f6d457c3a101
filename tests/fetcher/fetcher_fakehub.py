"""A local stand-in for the Hugging Face Hub, speaking what huggingface_hub 1.x/2.x calls.

Two HTTP servers on 127.0.0.1: the Hub (model info API and ``/resolve/`` with the headers
huggingface_hub reads) and a "CDN" on another port, where LFS files are redirected the way the
real Hub redirects them (a different origin, so huggingface_hub takes the file metadata from
the redirect answer and does not forward the token). No Xet headers are sent, so downloads use
plain HTTP. Every request is logged so that tests can count downloads.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    lfs: set[str]
    revisions: dict[str, str]  # branch or tag -> 40-hex commit
    token: str | None = None  # private repo readable with this token only
    # LFS paths whose blob is served with one byte flipped (the listing keeps the true sha256).
    corrupt: set[str] = field(default_factory=set)
    # Gated: readable only with a token of an account that accepted the terms (these tokens).
    gated_for: set[str] | None = None

    def resolve(self, rev: str) -> str | None:
        if rev in self.revisions:
            return self.revisions[rev]
        return rev if rev in self.revisions.values() else None


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    authorization: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-answer (a killed fetcher) are part of the tests.
        return None


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.valid_tokens: set[str] = set()
        # Seconds to sleep after each 64 KiB chunk of a file, by repository path.
        self.delays: dict[str, float] = {}
        # How many more times to answer 503, by repository path or "api" for the model info.
        self.failures: dict[str, int] = {}
        # LFS blobs cut short: the full Content-Length is announced, only this many bytes are
        # sent, then the connection is closed (a mirror or proxy that drops mid-file).
        self.truncate: dict[str, int] = {}
        # Extra names in every listing, as a hostile mirror set as HF_ENDPOINT would send them:
        # name -> content, served at /resolve/ like a file kept in git.
        self.hostile: dict[str, bytes] = {}
        self.log: list[LoggedRequest] = []
        self._served: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # Lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for role in ("hub", "cdn"):
            server = _Server(("127.0.0.1", 0), _Handler)
            server.hub = self  # type: ignore[attr-defined]
            server.role = role  # type: ignore[attr-defined]
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def take_failure(self, key: str) -> bool:
        with self.lock:
            left = self.failures.get(key, 0)
            if left:
                self.failures[key] = left - 1
            return left > 0

    # Queries for tests ---------------------------------------------------------------------

    def downloads(self, repo_id: str, path: str) -> int:
        """GETs that served the content of ``path`` (from /resolve/ or from the CDN)."""
        data = self.repos[repo_id].files[path]
        if path in self.repos[repo_id].lfs:
            target = f"/blobs/{sha256(data)}"
            return sum(1 for r in self.log if r.method == "GET" and r.path == target)
        suffix = f"/{path}"
        return sum(
            1
            for r in self.log
            if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(suffix)
        )

    def unknown_requests(self) -> list[LoggedRequest]:
        return [r for r in self.log if r.status == 599]

    def served_bytes(self, repo_id: str, path: str) -> int:
        with self.lock:
            return self._served.get((repo_id, path), 0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        return None

    @property
    def hub(self) -> FakeHub:
        hub: FakeHub = self.server.hub
        return hub

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # Routing -------------------------------------------------------------------------------

    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if self.server.role == "cdn":
            if len(parts) == 2 and parts[0] == "blobs" and not head:
                return self._blob(parts[1])
            return self._reply(599, head=head)
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            return self._model_info(f"{parts[2]}/{parts[3]}", parts[5], parse_qs(url.query), head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
        return self._reply(599, head=head)

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        head: bool = False,
        length: int | None = None,
    ) -> None:
        with self.hub.lock:
            self.hub.log.append(
                LoggedRequest(self.command, self.path, status, self.headers.get("authorization"))
            )
        self.send_response(404 if status == 599 else status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, head: bool, message: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        body = json.dumps({"error": message or code or "error"}).encode()
        self._reply(status, body, headers, head)

    def _repo(self, repo_id: str, head: bool) -> FakeRepo | None:
        """The repository if the caller may read it; otherwise answer as the Hub does."""
        auth = self.headers.get("authorization") or ""
        token = auth.removeprefix("Bearer ").strip() or None
        if token is not None and token not in self.hub.valid_tokens:
            self._error(401, None, head, "Invalid credentials in Authorization header")
            return None
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.token is not None and repo.token != token):
            # The Hub answers 401 to anonymous callers and 404 to authenticated ones, both
            # RepoNotFound, so that private repositories cannot be told from missing ones.
            self._error(401 if token is None else 404, "RepoNotFound", head)
            return None
        if repo.gated_for is not None and token not in repo.gated_for:
            self._error(401 if token is None else 403, "GatedRepo", head)
            return None
        return repo

    # Endpoints -----------------------------------------------------------------------------

    def _model_info(self, repo_id: str, rev: str, query: dict[str, list[str]], head: bool) -> None:
        repo = self._repo(repo_id, head)
        if repo is None:
            return
        commit = repo.resolve(rev)
        if commit is None:
            return self._error(404, "RevisionNotFound", head)
        if self.hub.take_failure("api"):
            return self._error(503, None, head, "Service Unavailable")
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings: list[dict[str, Any]] = []
        for path, data in sorted({**repo.files, **self.hub.hostile}.items()):
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                if path in repo.lfs:
                    entry["size"] = len(data)
                    entry["blobId"] = git_blob_sha1(b"lfs pointer " + sha256(data).encode())
                    entry["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
                else:
                    entry["size"] = len(data)
                    entry["blobId"] = git_blob_sha1(data)
            siblings.append(entry)
        body = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit,
            "private": repo.token is not None,
            "siblings": siblings,
        }
        self._reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)

    def _resolve(self, repo_id: str, rev: str, path: str, head: bool) -> None:
        repo = self._repo(repo_id, head)
        if repo is None:
            return
        commit = repo.resolve(rev)
        if commit is None:
            return self._error(404, "RevisionNotFound", head)
        data = repo.files.get(path, self.hub.hostile.get(path))
        if data is None:
            headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
            return self._reply(404, b"", headers, head)
        if path in repo.lfs:
            digest = sha256(data)
            headers = {
                "Location": f"{self.hub.cdn_url}/blobs/{digest}",
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{digest}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{git_blob_sha1(data)}"',
            }
            return self._reply(302, b"", headers, head)
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{git_blob_sha1(data)}"',
            "Content-Type": "application/octet-stream",
        }
        self._reply(200, data, headers, head)

    def _blob(self, digest: str) -> None:
        for repo_id, repo in self.hub.repos.items():
            for path in repo.lfs:
                data = repo.files[path]
                if sha256(data) == digest:
                    if self.hub.take_failure(path):
                        return self._reply(503, b"busy")
                    if path in repo.corrupt:
                        data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
                    return self._stream(repo_id, path, data)
        self._reply(404)

    def _stream(self, repo_id: str, path: str, data: bytes) -> None:
        with self.hub.lock:
            self.hub.log.append(
                LoggedRequest("GET", self.path, 200, self.headers.get("authorization"))
            )
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = self.hub.truncate.get(path)
        if cut is not None:
            data = data[:cut]
            self.close_connection = True
        try:
            for offset in range(0, len(data), CHUNK):
                self.wfile.write(data[offset : offset + CHUNK])
                self.wfile.flush()
                with self.hub.lock:
                    key = (repo_id, path)
                    self.hub._served[key] = self.hub._served.get(key, 0) + CHUNK
                delay = self.hub.delays.get(path, 0.0)
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

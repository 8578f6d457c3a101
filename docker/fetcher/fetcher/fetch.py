"""Put one model under DEST_ROOT: wait for or take the lock, download, verify, rename into place."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal

from fetcher.backend import Backend, Plan, RemoteFile
from fetcher.errors import Cancelled, ChecksumError, ExitCode, FetchError
from fetcher.integrity import SHA256, compute, verify
from fetcher.lock import ModelLock
from fetcher.manifest import (
    MANIFEST_FORMAT,
    RECORD_NAME,
    VerifiedRecord,
    fsync_dir,
    fsync_file,
    read_complete,
    write_json_atomic,
)
from fetcher.paths import MANIFEST_NAME, folder_name, lock_path, staging_dir, work_dir
from fetcher.progress import Reporter, human_bytes
from fetcher.selection import has_weights, select_files
from fetcher.source import HfSource, S3Source, Source
from fetcher.version import __version__


@dataclass(frozen=True)
class Options:
    workers: int = 8
    wait_timeout: float = 3600.0
    poll_interval: float = 2.0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    attempts: int = 3
    verify: bool = False


@dataclass(frozen=True)
class Outcome:
    folder: str
    status: Literal["present", "fetched", "waited"]


BackendFactory = Callable[[Source, Options], Backend]


def default_backend(source: Source, options: Options) -> Backend:
    # Imported here so that the no-op path (model already complete) never pays for
    # importing huggingface_hub or boto3.
    if isinstance(source, HfSource):
        from fetcher.hf import HfBackend

        return HfBackend(source)
    assert isinstance(source, S3Source)
    from fetcher.s3 import S3Backend

    return S3Backend(source, options.workers)


def is_complete(source: Source, dest_root: str) -> dict[str, Any] | None:
    """The manifest of the model folder if it is complete, looking past NFS caches.

    Listing DEST_ROOT first is deliberate: opening a directory makes the Linux NFS client
    revalidate it (close-to-open consistency), so a folder renamed into place by a fetcher on
    another host is seen now rather than after the attribute cache expires (up to 60 s).
    """
    name = folder_name(source)
    try:
        if name not in os.listdir(dest_root):
            return None
    except FileNotFoundError:
        return None
    return read_complete(os.path.join(dest_root, name), source)


def fetch(
    source: Source,
    dest_root: str,
    options: Options,
    reporter: Reporter,
    backend_factory: BackendFactory = default_backend,
) -> Outcome:
    final = os.path.join(dest_root, folder_name(source))
    manifest = is_complete(source, dest_root)
    if manifest is not None:
        if options.verify:
            verify_in_place(final, manifest, options.workers)
        reporter.event("present", f"{source} is already complete in {final}", folder=final)
        return Outcome(final, "present")

    os.makedirs(work_dir(dest_root), exist_ok=True)
    with ModelLock(lock_path(source, dest_root)) as lock:
        waited = not lock.try_acquire()
        if waited:
            reporter.event(
                "waiting",
                f"{lock.holder()} is fetching {source}; waiting up to {options.wait_timeout:.0f}s",
            )
            deadline = time.monotonic() + options.wait_timeout
            while not lock.try_acquire():
                if is_complete(source, dest_root) is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FetchError(
                        f"timed out after {options.wait_timeout:.0f}s waiting for "
                        f"{lock.holder()} to fetch {source}",
                        ExitCode.WAIT_TIMEOUT,
                    )
                time.sleep(min(options.poll_interval, remaining))
        # Checked again under the lock: the holder may have finished since the first look.
        if is_complete(source, dest_root) is not None:
            reporter.event("present", f"{source} completed by another fetcher", folder=final)
            return Outcome(final, "waited")
        if waited:
            # The holder died before finishing; resume from the files it had verified.
            reporter.event("lock", f"took over the fetch of {source} from a stopped fetcher")
        _Fetch(source, dest_root, final, options, reporter, backend_factory).run()
        return Outcome(final, "fetched")


def verify_in_place(folder: str, manifest: dict[str, Any], workers: int) -> None:
    """Hash every file of a complete folder against its manifest, changing nothing.

    Read-only on purpose: other tasks may be loading this folder right now, so a bad file is
    reported (exit code 5) for an operator to remove the folder, not repaired under them.
    """

    def matches(entry: dict[str, Any]) -> bool:
        path = os.path.join(folder, *str(entry["path"]).split("/"))
        return compute(path, ())[SHA256] == str(entry["sha256"])

    entries = list(manifest["files"])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(matches, entries))
    bad = [str(e["path"]) for e, ok in zip(entries, results, strict=True) if not ok]
    if bad:
        raise ChecksumError(
            f"{len(bad)} file(s) in {folder} differ from its manifest ({', '.join(bad[:5])}); "
            "remove the folder and fetch again"
        )


class _Fetch:
    """One download by the lock holder."""

    def __init__(
        self,
        source: Source,
        dest_root: str,
        final: str,
        options: Options,
        reporter: Reporter,
        backend_factory: BackendFactory,
    ) -> None:
        self.source = source
        self.dest_root = dest_root
        self.final = final
        self.staging = staging_dir(source, dest_root)
        self.options = options
        self.reporter = reporter
        self.backend = backend_factory(source, options)
        self.cancel = threading.Event()

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        for attempt in range(1, self.options.attempts + 1):
            try:
                return call()
            except (Cancelled, FetchError):
                raise
            except Exception as exc:
                retries = self.options.attempts - 1
                if attempt <= retries and self.backend.is_transient(exc):
                    self.reporter.event(
                        "retry",
                        f"{what}: {type(exc).__name__}; retry {attempt} of {retries}",
                        level="warning",
                    )
                    time.sleep(float(attempt))
                    continue
                translated = self.backend.translate(exc)
                if translated is not None:
                    raise translated from exc
                raise
        raise AssertionError("unreachable")

    def run(self) -> None:
        started = time.monotonic()
        options = self.options

        def choose(paths: Sequence[str]) -> list[str]:
            return select_files(paths, options.include, options.exclude)

        plan: Plan = self._with_retries(f"listing {self.source}", lambda: self.backend.plan(choose))
        if not has_weights(f.path for f in plan.files):
            raise FetchError(
                f"{self.source}: no model weights (*.safetensors, *.bin) among {plan.listed} files",
                ExitCode.NOT_FOUND,
            )
        if isinstance(self.source, HfSource) and plan.resolved_revision != self.source.revision:
            self.reporter.event(
                "resolved",
                f"{self.source.revision} resolved to commit {plan.resolved_revision}",
                revision=self.source.revision,
                commit=plan.resolved_revision,
            )

        self._prepare_staging(plan)
        record = VerifiedRecord(self.staging)
        reused: list[tuple[RemoteFile, str]] = []
        todo: list[RemoteFile] = []
        for file in plan.files:
            sha = record.reusable(file.path, self._local(file), file.expected)
            if sha is not None:
                reused.append((file, sha))
            else:
                todo.append(file)
        total = sum(f.expected.size for f in plan.files)
        reused_bytes = sum(f.expected.size for f, _ in reused)
        self._check_space(todo)
        self.reporter.event(
            "plan",
            f"fetching {self.source} into {self.final}: {len(plan.files)} files, "
            f"{human_bytes(total)}; {len(reused)} already verified "
            f"({human_bytes(reused_bytes)}), {len(todo)} to fetch",
            files=len(plan.files),
            bytes_total=total,
            files_reused=len(reused),
            bytes_reused=reused_bytes,
            source=str(self.source),
            folder=self.final,
        )
        self.reporter.start(
            total_bytes=total,
            done_bytes=reused_bytes,
            files_total=len(plan.files),
            files_done=len(reused),
        )
        try:
            hashes = dict((f.path, sha) for f, sha in reused)
            hashes.update(self._fetch_all(todo, record))
        finally:
            self.reporter.stop()
        self._finish(plan, hashes, started, reused_bytes)

    def _local(self, file: RemoteFile) -> str:
        return os.path.join(self.staging, *file.path.split("/"))

    def _prepare_staging(self, plan: Plan) -> None:
        """Make the staging folder hold only files of this plan (plus the record).

        A final folder that exists without a valid manifest (a file deleted by hand, a
        manifest of another format) becomes the staging folder when there is none, so its
        files are re-verified instead of downloaded again.
        """
        if os.path.lexists(self.final):
            if not os.path.exists(self.staging):
                os.rename(self.final, self.staging)
            else:
                trash = f"{self.staging}.stale-{os.getpid()}"
                os.rename(self.final, trash)
                shutil.rmtree(trash, ignore_errors=True)
        os.makedirs(self.staging, exist_ok=True)
        # huggingface_hub's per-download bookkeeping; files are only requested when absent.
        shutil.rmtree(os.path.join(self.staging, ".cache"), ignore_errors=True)
        wanted = {f.path for f in plan.files}
        for root, dirs, names in os.walk(self.staging, topdown=False):
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.staging).replace(os.sep, "/")
                if rel not in wanted and rel != RECORD_NAME:
                    # Leftovers of killed downloads (temporary names) or files no longer wanted.
                    os.unlink(full)
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, name))

    def _check_space(self, todo: list[RemoteFile]) -> None:
        needed = sum(f.expected.size for f in todo if not os.path.exists(self._local(f)))
        free = shutil.disk_usage(self.dest_root).free
        if needed > free:
            raise FetchError(
                f"no space left on device: {self.source} needs {human_bytes(needed)} more under "
                f"{self.dest_root}, {human_bytes(free)} free",
                ExitCode.DISK_FULL,
            )

    def _fetch_one(self, file: RemoteFile, record: VerifiedRecord) -> str:
        if self.cancel.is_set():
            raise Cancelled
        local = self._local(file)
        if os.path.exists(local):
            # Downloaded by a fetcher killed before it recorded the check: hashing is cheaper
            # than downloading again.
            try:
                sha = verify(local, file.path, file.expected)
                record.add(file.path, local, file.expected, sha)
                self.reporter.add_bytes(file.expected.size, downloaded=False)
                self.reporter.file_done()
                return sha
            except ChecksumError:
                os.unlink(local)
        self._with_retries(
            file.path,
            lambda: self.backend.download(file, self.staging, self._on_bytes, self.cancel),
        )
        try:
            sha = verify(local, file.path, file.expected)
        except ChecksumError:
            # Never leave a bad file where a rerun could mistake it for a download.
            os.unlink(local)
            raise
        fsync_file(local)
        record.add(file.path, local, file.expected, sha)
        self.reporter.file_done()
        self.reporter.event(
            "verified",
            f"verified {file.path} ({human_bytes(file.expected.size)}, "
            f"{file.expected.verified_by})",
            path=file.path,
            size=file.expected.size,
            verified_by=file.expected.verified_by,
        )
        return sha

    def _on_bytes(self, count: int) -> None:
        self.reporter.add_bytes(count)

    def _fetch_all(self, todo: list[RemoteFile], record: VerifiedRecord) -> dict[str, str]:
        hashes: dict[str, str] = {}
        if not todo:
            return hashes
        # Largest first, so that the long downloads overlap with everything else.
        ordered = sorted(todo, key=lambda f: f.expected.size, reverse=True)
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.workers))
        futures: dict[Future[str], RemoteFile] = {
            pool.submit(self._fetch_one, f, record): f for f in ordered
        }
        try:
            for future in as_completed(futures):
                hashes[futures[future].path] = future.result()
        except BaseException:
            # Report the first failure now rather than after the siblings: they stop at their
            # next progress callback (Cancelled), and whatever they leave behind is what a
            # killed fetcher leaves, which the next run cleans up.
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return hashes

    def _finish(
        self, plan: Plan, hashes: dict[str, str], started: float, reused_bytes: int
    ) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        downloaded = self.reporter.downloaded
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "source": str(self.source),
            "folder": folder_name(self.source),
            "resolved_revision": plan.resolved_revision,
            "fetcher_version": __version__,
            "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": [
                {
                    "path": f.path,
                    "size": f.expected.size,
                    "sha256": hashes[f.path],
                    "verified_by": f.expected.verified_by,
                }
                for f in plan.files
            ],
            "total_bytes": sum(f.expected.size for f in plan.files),
            "downloaded_bytes": downloaded,
            "reused_bytes": reused_bytes,
            "seconds": round(elapsed, 3),
            "bytes_per_second": round(downloaded / elapsed),
            "include": list(self.options.include),
            "exclude": list(self.options.exclude),
        }
        VerifiedRecord(self.staging).discard()
        shutil.rmtree(os.path.join(self.staging, ".cache"), ignore_errors=True)
        # The manifest is the last file written; the rename then publishes the whole folder.
        write_json_atomic(os.path.join(self.staging, MANIFEST_NAME), manifest)
        fsync_dir(self.staging)
        try:
            os.rename(self.staging, self.final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Only a fetcher that lost its lock (an NFS lease expired under it) gets here.
            if is_complete(self.source, self.dest_root) is None:
                raise FetchError(
                    f"{self.final} appeared during the fetch and is incomplete"
                ) from exc
            shutil.rmtree(self.staging, ignore_errors=True)
        fsync_dir(self.dest_root)
        self.reporter.event(
            "done",
            f"fetched {self.source} into {self.final}: {human_bytes(manifest['total_bytes'])} in "
            f"{elapsed:.1f}s ({human_bytes(manifest['bytes_per_second'])}/s downloaded)",
            folder=self.final,
            resolved_revision=plan.resolved_revision,
            seconds=manifest["seconds"],
            bytes_per_second=manifest["bytes_per_second"],
            downloaded_bytes=downloaded,
        )

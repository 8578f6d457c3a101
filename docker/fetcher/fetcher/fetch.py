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
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal

from fetcher.backend import Backend, Plan, RemoteFile
from fetcher.errors import Cancelled, ChecksumError, ExitCode, FetchError, UnsafeError
from fetcher.integrity import SHA256, compute, verify
from fetcher.lock import ModelLock
from fetcher.manifest import (
    MANIFEST_FORMAT,
    VerifiedRecord,
    fsync_dir,
    fsync_file,
    read_complete,
    write_json_atomic,
)
from fetcher.paths import MANIFEST_NAME, folder_name, lock_path, staging_dir, work_dir
from fetcher.progress import Reporter, human_bytes
from fetcher.safety import (
    JOURNAL_NAME,
    RECORD_NAME,
    inside,
    is_reserved,
    refuse_symlink,
    remove_tree,
    unsafe_reason,
)
from fetcher.selection import (
    has_weights,
    is_support,
    is_weight,
    select_files,
    weight_rule,
    weight_total,
    weights_in_index,
)
from fetcher.source import HfSource, S3Source, Source, is_commit
from fetcher.version import __version__

if TYPE_CHECKING:
    # pydantic costs ~0.5 s to import: only runs given --expect pay for it.
    from fetcher.expect import Expectation


@dataclass(frozen=True)
class Options:
    workers: int = 8
    wait_timeout: float = 3600.0
    poll_interval: float = 2.0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    attempts: int = 3
    verify: bool = False
    expect: Expectation | None = None


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


def is_complete(source: Source, dest_root: str, commit: str | None = None) -> dict[str, Any] | None:
    """The manifest of the model folder if it is complete, looking past NFS caches.

    Listing DEST_ROOT first is deliberate: opening a directory makes the Linux NFS client
    revalidate it (close-to-open consistency), so a folder renamed into place by a fetcher on
    another host is seen now rather than after the attribute cache expires (up to 60 s).
    ``commit``: for a branch or tag source, the commit it resolves to now.
    """
    name = folder_name(source)
    try:
        if name not in os.listdir(dest_root):
            return None
    except FileNotFoundError:
        return None
    folder = os.path.join(dest_root, name)
    refuse_symlink(folder, "the model folder")
    return read_complete(folder, source, commit)


def refuse_links(source: Source, dest_root: str) -> None:
    """Refuse to start when anything the fetcher renames, deletes or writes is a symlink.

    DEST_ROOT itself may be a link (a mount point moved elsewhere); nothing under it may: a
    link at the model folder would be renamed into the partial folder and its target's files
    deleted as leftovers, a link at ``.modelfleet`` or the lock would be written through.
    """
    work = work_dir(dest_root)
    refuse_symlink(os.path.join(dest_root, folder_name(source)), "the model folder")
    refuse_symlink(work, "the fetcher's working folder")
    refuse_symlink(staging_dir(source, dest_root), "the partial folder")
    refuse_symlink(lock_path(source, dest_root), "the lock file")


def fetch(
    source: Source,
    dest_root: str,
    options: Options,
    reporter: Reporter,
    backend_factory: BackendFactory = default_backend,
) -> Outcome:
    final = os.path.join(dest_root, folder_name(source))
    refuse_links(source, dest_root)
    commit = _current_commit(source, dest_root, options, reporter, backend_factory)
    manifest = is_complete(source, dest_root, commit)
    if manifest is not None:
        if options.verify:
            verify_in_place(final, manifest, options.workers)
        _check_present(final, manifest, options)
        reporter.event(
            "present",
            f"{source} is already complete in {final}",
            folder=final,
            resolved_revision=manifest.get("resolved_revision"),
        )
        return Outcome(final, "present")

    os.makedirs(work_dir(dest_root), exist_ok=True)
    refuse_links(source, dest_root)
    with ModelLock(lock_path(source, dest_root)) as lock:
        waited = not lock.try_acquire()
        if waited:
            reporter.event(
                "waiting",
                f"{lock.holder()} is fetching {source}; waiting up to {options.wait_timeout:.0f}s",
            )
            deadline = time.monotonic() + options.wait_timeout
            while not lock.try_acquire():
                if is_complete(source, dest_root, commit) is not None:
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
        manifest = is_complete(source, dest_root, commit)
        if manifest is not None:
            _check_present(final, manifest, options)
            reporter.event("present", f"{source} completed by another fetcher", folder=final)
            return Outcome(final, "waited")
        if waited:
            # The holder died before finishing; resume from the files it had verified.
            reporter.event("lock", f"took over the fetch of {source} from a stopped fetcher")
        refuse_links(source, dest_root)
        _Fetch(source, dest_root, final, options, reporter, backend_factory).run()
        return Outcome(final, "fetched")


def with_retries(
    backend: Backend, reporter: Reporter, attempts: int, what: str, call: Callable[[], Any]
) -> Any:
    """``call()``, retried on transient errors; an expected failure becomes a ``FetchError``."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (Cancelled, FetchError):
            raise
        except Exception as exc:
            retries = attempts - 1
            if attempt <= retries and backend.is_transient(exc):
                reporter.event(
                    "retry",
                    f"{what}: {type(exc).__name__}; retry {attempt} of {retries}",
                    level="warning",
                )
                time.sleep(float(attempt))
                continue
            translated = backend.translate(exc)
            if isinstance(translated, ChecksumError):
                # A truncated download is a size mismatch (exit 5), named by its file.
                raise ChecksumError(f"{what}: {translated.message}") from exc
            if translated is not None:
                raise translated from exc
            raise
    raise AssertionError("unreachable")


def _current_commit(
    source: Source,
    dest_root: str,
    options: Options,
    reporter: Reporter,
    backend_factory: BackendFactory,
) -> str | None:
    """For a Hub branch or tag, the commit it names now (one API call); None otherwise.

    The folder of ``@main`` keeps its name (the ECS task definition computes it offline), so
    what it holds is keyed by commit instead: a complete folder fetched at another commit is
    outdated and fetched again, reusing the files whose checksums still match. When the Hub
    cannot be reached, a complete folder is used as it is, with a warning.
    """
    if not isinstance(source, HfSource) or is_commit(source.revision):
        return None
    backend = backend_factory(source, options)
    try:
        commit: str | None = with_retries(
            backend, reporter, options.attempts, f"resolving {source}", backend.resolve
        )
    except FetchError as exc:
        # Only "cannot reach the Hub" (exit 1) falls back; not found or denied stays an error.
        present = is_complete(source, dest_root)
        if present is None or exc.code != ExitCode.OTHER:
            raise
        reporter.event(
            "resolve-failed",
            f"cannot check what {source.revision} points to now ({exc.message}); "
            f"using the folder fetched at commit {present.get('resolved_revision')}",
            level="warning",
        )
        return None
    return commit


def _check_present(folder: str, manifest: dict[str, Any], options: Options) -> None:
    """``--expect`` on a folder that is already complete: read-only, other tasks may use it."""
    if options.expect is None:
        return
    from fetcher.expect import check

    sizes = [(str(e["path"]), int(e["size"])) for e in manifest["files"]]
    check(options.expect, folder, weight_total(sizes))


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
        self.record = VerifiedRecord(self.staging)
        self.reused_bytes = 0

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        return with_retries(self.backend, self.reporter, self.options.attempts, what, call)

    def _choose(self, paths: Sequence[str]) -> list[str]:
        """Select from a listing, every name checked before it is used for anything.

        A name that is not a safe relative path is ignored when the selection would not take it
        anyway, and refused (exit 9, naming it) when it would: skipping a file vLLM needs would
        only move the failure to the GPU task. Reserved names (the fetcher's bookkeeping) are
        skipped with a warning.
        """
        options = self.options
        unsafe = [p for p in paths if unsafe_reason(p) is not None]
        safe = [p for p in paths if unsafe_reason(p) is None]
        reserved = [p for p in safe if is_reserved(p)]
        usable = [p for p in safe if not is_reserved(p)]
        chosen = select_files(usable, options.include, options.exclude)
        if unsafe:
            wanted = set(select_files([*usable, *unsafe], options.include, options.exclude))
            refused = [p for p in unsafe if p in wanted]
            if refused:
                names = ", ".join(self._describe(p) for p in refused[:3])
                more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
                raise UnsafeError(
                    f"{self.source}: refusing {names}{more}: "
                    f"{unsafe_reason(refused[0])}; not a file path inside the model folder"
                )
        skipped = [p for p in reserved if p in set(select_files(reserved, options.include))]
        if skipped:
            self.reporter.event(
                "skipped",
                f"skipped {', '.join(self._describe(p) for p in skipped[:5])}: names the fetcher "
                "reserves for its own records (was this source copied from a fetched folder?)",
                level="warning",
                names=skipped[:20],
            )
        return chosen

    def _describe(self, name: str) -> str:
        if isinstance(self.source, S3Source):
            return f"object key {self.source.prefix + name!r}"
        return f"file {name!r}"

    def run(self) -> None:
        started = time.monotonic()
        plan: Plan = self._with_retries(
            f"listing {self.source}", lambda: self.backend.plan(self._choose)
        )
        for file in plan.files:
            inside(self.staging, file.path)  # a backend that bypassed _choose still cannot escape
        if not has_weights(f.path for f in plan.files):
            raise FetchError(
                f"{self.source}: no model weights (*.safetensors, *.bin, *.pt) among "
                f"{plan.listed} files",
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
        self.record = VerifiedRecord(self.staging)
        files = list(plan.files)
        self._check_space([f for f in files if self._reuse(f) is None])
        # First the small files that decide what else to fetch (the weight index) and whether
        # to go on at all (config.json against --expect); then the weights and anything large.
        hashes = self._fetch_files([f for f in files if is_support(f.path)])
        files = self._filter_by_index(files)
        weights = [f for f in files if is_weight(f.path)]
        rest = [f for f in files if not is_support(f.path)]
        if self.options.expect is not None:
            from fetcher.expect import check

            check(
                self.options.expect,
                self.staging,
                weight_total((f.path, f.expected.size) for f in weights),
            )
        hashes.update(self._fetch_files(rest, announce=True, plan_files=files))
        self._finish(plan, files, hashes, started)

    def _reuse(self, file: RemoteFile) -> str | None:
        return self.record.reusable(file.path, self._local(file), file.expected)

    def _fetch_files(
        self,
        files: list[RemoteFile],
        announce: bool = False,
        plan_files: list[RemoteFile] | None = None,
    ) -> dict[str, str]:
        reused: list[tuple[RemoteFile, str]] = []
        todo: list[RemoteFile] = []
        for file in files:
            sha = self._reuse(file)
            if sha is not None:
                reused.append((file, sha))
            else:
                todo.append(file)
        self.reused_bytes += sum(f.expected.size for f, _ in reused)
        if announce:
            everything = plan_files or files
            total = sum(f.expected.size for f in everything)
            done = total - sum(f.expected.size for f in todo)
            weight_bytes = weight_total((f.path, f.expected.size) for f in files)
            self.reporter.event(
                "plan",
                f"fetching {self.source} into {self.final}: {len(everything)} files, "
                f"{human_bytes(total)} ({human_bytes(weight_bytes)} of weights); "
                f"{len(everything) - len(todo)} verified ({human_bytes(done)}), "
                f"{len(todo)} to fetch",
                files=len(everything),
                bytes_total=total,
                bytes_weights=weight_bytes,
                files_reused=len(everything) - len(todo),
                bytes_reused=done,
                source=str(self.source),
                folder=self.final,
            )
            self.reporter.start(
                total_bytes=total,
                done_bytes=done,
                files_total=len(everything),
                files_done=len(everything) - len(todo),
            )
        try:
            hashes = dict((f.path, sha) for f, sha in reused)
            hashes.update(self._fetch_all(todo, self.record))
        finally:
            if announce:
                self.reporter.stop()
        return hashes

    def _filter_by_index(self, files: list[RemoteFile]) -> list[RemoteFile]:
        """Drop the weight files that vLLM's index filter would not read (selection.py)."""
        top = [f.path for f in files if "/" not in f.path]
        rule = weight_rule(top)
        if rule is None or rule.index is None or rule.kind == "pickled":
            return files
        try:
            with open(self._local_path(rule.index), "rb") as handle:
                named = weights_in_index(handle.read())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FetchError(
                f"{self.source}: cannot read the weight index {rule.index}: {exc}"
            ) from exc
        in_rule = {
            f.path
            for f in files
            if "/" not in f.path and any(fnmatchcase(f.path, pattern) for pattern in rule.patterns)
        }
        missing = sorted(named - in_rule)
        if missing:
            # vLLM 0.31.0 fails the same way (filter_duplicate_safetensors_files).
            raise FetchError(
                f"{self.source}: {rule.index} names weight files the source does not have: "
                f"{', '.join(missing[:3])}",
                ExitCode.NOT_FOUND,
            )
        explicit = self.options.include
        dropped = [
            f.path
            for f in files
            if f.path in in_rule
            and f.path not in named
            and not any(fnmatchcase(f.path, glob) for glob in explicit)
        ]
        if dropped:
            self.reporter.event(
                "index-filter",
                f"not fetching {len(dropped)} weight file(s) absent from {rule.index} "
                f"(vLLM does not read them): {', '.join(dropped[:5])}",
                dropped=dropped[:50],
            )
        keep = set(dropped)
        return [f for f in files if f.path not in keep]

    def _local(self, file: RemoteFile) -> str:
        return self._local_path(file.path)

    def _local_path(self, name: str) -> str:
        return inside(self.staging, name)

    def _prepare_staging(self, plan: Plan) -> None:
        """Make the staging folder hold only files of this plan (plus the record).

        A final folder that exists without a valid manifest (a file deleted by hand, a
        manifest of another format, a branch that moved) becomes the staging folder when there
        is none, so its files are re-verified instead of downloaded again. Links are never
        followed: one found in the staging folder is removed, never its target.
        """
        work = work_dir(self.dest_root)
        stale_prefix = os.path.basename(self.staging) + ".stale-"
        for name in os.listdir(work):
            if name.startswith(stale_prefix):
                # Left by a run killed while it removed an old folder; under the lock, so no
                # live run is removing it now.
                remove_tree(os.path.join(work, name))
        refuse_links(self.source, self.dest_root)
        if os.path.lexists(self.final):
            if not os.path.exists(self.staging):
                os.rename(self.final, self.staging)
            else:
                trash = f"{self.staging}.stale-{os.getpid()}"
                os.rename(self.final, trash)
                remove_tree(trash)
        os.makedirs(self.staging, exist_ok=True)
        # huggingface_hub's per-download bookkeeping; files are only requested when absent.
        remove_tree(os.path.join(self.staging, ".cache"))
        wanted = {f.path for f in plan.files}
        keep = {RECORD_NAME, JOURNAL_NAME}
        for root, dirs, names in os.walk(self.staging, topdown=False):
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.staging).replace(os.sep, "/")
                if os.path.islink(full) or (rel not in wanted and rel not in keep):
                    # Leftovers of killed downloads (temporary names), files no longer wanted,
                    # and links (unlink removes the link, not its target).
                    os.unlink(full)
            for name in dirs:
                full = os.path.join(root, name)
                if os.path.islink(full):
                    os.unlink(full)
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(full)

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
        self, plan: Plan, files: list[RemoteFile], hashes: dict[str, str], started: float
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
                for f in files
            ],
            "total_bytes": sum(f.expected.size for f in files),
            "weight_bytes": weight_total((f.path, f.expected.size) for f in files),
            "downloaded_bytes": downloaded,
            "reused_bytes": self.reused_bytes,
            "seconds": round(elapsed, 3),
            "bytes_per_second": round(downloaded / elapsed),
            "include": list(self.options.include),
            "exclude": list(self.options.exclude),
        }
        if self.options.expect is not None:
            manifest["expect"] = self.options.expect.model_dump(mode="json")
        # Files the index filter dropped after an earlier run fetched them must not stay.
        listed = {f.path for f in files}
        for file in plan.files:
            if file.path not in listed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._local(file))
        self.record.discard()
        remove_tree(os.path.join(self.staging, ".cache"))
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
            remove_tree(self.staging)
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

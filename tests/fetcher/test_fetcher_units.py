"""Pure pieces of the fetcher: sources, folder names, file selection, S3 expectations, lock."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import fetcher.hf
import huggingface_hub
import pytest
from fetcher import cli
from fetcher.errors import ExitCode, SourceError, disk_full_error
from fetcher.integrity import CRC32, MD5, SHA256, Expected, compute, verify
from fetcher.lock import ModelLock
from fetcher.paths import folder_name, model_dir
from fetcher.s3 import _expected
from fetcher.selection import select_files
from fetcher.source import HfSource, S3Source, parse_source
from fetcher_fakehub import FakeHub
from fetcher_helpers import REPO


def test_parse_hf_and_s3_sources() -> None:
    assert parse_source("hf://meta-llama/Llama-3.1-8B-Instruct@0e9e39f") == HfSource(
        "meta-llama", "Llama-3.1-8B-Instruct", "0e9e39f"
    )
    pr = parse_source("hf://org/name@refs/pr/1")
    assert isinstance(pr, HfSource) and pr.revision == "refs/pr/1"
    assert parse_source("s3://my-bucket/models/llama") == S3Source("my-bucket", "models/llama/")
    assert parse_source("s3://my-bucket/models/llama/") == S3Source("my-bucket", "models/llama/")
    assert parse_source("s3://my-bucket") == S3Source("my-bucket", "")


@pytest.mark.parametrize(
    "bad",
    [
        "meta-llama/Llama@main",
        "hf://meta-llama/Llama",
        "hf://meta-llama/Llama@",
        "hf://Llama@main",
        "hf://a/b/c@main",
        "hf://org--x/name@main",
        "hf://org/na..me@main",
        "hf://org/name@../etc",
        "hf://org/name@has space",
        "s3://Bad_Bucket/x",
        "s3://my-bucket//x",
        "s3://my-bucket/a/../b",
        "gs://bucket/x",
    ],
)
def test_invalid_sources_are_usage_errors(bad: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse_source(bad)
    assert raised.value.code == ExitCode.USAGE


def test_folder_names_are_stable_readable_and_distinct() -> None:
    assert (
        folder_name("hf://Meta-Llama/Llama-3.1-8B@0e9e39f")
        == "hf--meta-llama--llama-3.1-8b--0e9e39f"
    )
    assert folder_name("hf://meta-llama/llama-3.1-8b@0e9e39f") == folder_name(
        "hf://Meta-Llama/Llama-3.1-8B@0e9e39f"
    )
    pr = folder_name("hf://org/name@refs/pr/1")
    assert pr.startswith("hf--org--name--refs_pr_1-") and "/" not in pr
    assert pr != folder_name("hf://org/name@refs_pr_1")
    s3 = folder_name("s3://my-bucket/models/llama/")
    assert s3.startswith("s3--my-bucket--models_llama--") and len(s3.split("--")[-1]) == 12
    assert s3 == folder_name("s3://my-bucket/models/llama")
    assert s3 != folder_name("s3://my-bucket/models_llama/")
    assert folder_name("s3://my-bucket").startswith("s3--my-bucket--")
    long = folder_name("hf://" + "o" * 96 + "/" + "n" * 96 + "@" + "r" * 200)
    assert len(long) <= 200
    assert model_dir("hf://org/name@main", "/models") == "/models/hf--org--name--main"


def test_print_path_needs_no_network_nor_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hf://org/name@abc123", "/nonexistent/models", "--print-path"]) == 0
    assert capsys.readouterr().out == "/nonexistent/models/hf--org--name--abc123\n"
    assert cli.main(["hf://org/name", "/models", "--print-path"]) == ExitCode.USAGE


def test_selection_keeps_what_vllm_loads() -> None:
    repo = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer.model.v3",
        "tokenizer_config.json",
        "video_preprocessor_config.json",
        "chat_template.jinja",
        "merges.txt",
        "configuration_custom.py",
        "README.md",
        ".gitattributes",
        "model.gguf",
        "onnx/model.onnx",
        "flax_model.msgpack",
        "original/consolidated.00.pth",
        "original/params.json",
        "training_args.bin",
    ]
    assert select_files(repo) == [
        "chat_template.jinja",
        "config.json",
        "configuration_custom.py",
        "generation_config.json",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer.model.v3",
        "tokenizer_config.json",
        "video_preprocessor_config.json",
    ]
    pickled = [
        "pytorch_model.bin",
        "training_args.bin",
        "optimizer.pt",
        "config.json",
        "pytorch_model.bin.index.json",
    ]
    assert select_files(pickled) == [
        "config.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ]
    lora = ["adapter_config.json", "adapter_model.safetensors", "README.md"]
    assert select_files(lora) == ["adapter_config.json", "adapter_model.safetensors"]
    assert "original/params.json" in select_files(repo, include=["original/params.json"])
    assert "tokenizer.model" not in select_files(repo, exclude=["tokenizer.model"])


def test_s3_expectations_use_only_full_object_checksums() -> None:
    single = {"ContentLength": 5, "ETag": '"' + "a" * 32 + '"', "ChecksumSHA256": "3q2+7w=="}
    assert _expected(single) == Expected(5, ((SHA256, "deadbeef"),))
    no_checksum = {"ContentLength": 5, "ETag": '"' + "b" * 32 + '"'}
    assert _expected(no_checksum).digests == ((MD5, "b" * 32),)
    kms = {**no_checksum, "ServerSideEncryption": "aws:kms"}
    assert _expected(kms).digests == ()
    composite = {
        "ContentLength": 9,
        "ETag": '"' + "c" * 32 + '-3"',
        "ChecksumSHA256": "3q2+7w==-3",
        "ChecksumType": "COMPOSITE",
    }
    assert _expected(composite).digests == ()
    full_crc = {
        "ContentLength": 9,
        "ETag": '"' + "c" * 32 + '-3"',
        "ChecksumCRC32": "AAAAAA==",
        "ChecksumType": "FULL_OBJECT",
    }
    assert _expected(full_crc).digests == ((CRC32, "AAAAAA=="),)


def test_verify_checks_size_and_every_digest(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    digests = compute(str(path), (MD5, CRC32))
    ok = Expected(5, ((SHA256, digests[SHA256]), (MD5, digests[MD5]), (CRC32, digests[CRC32])))
    assert verify(str(path), "f", ok) == digests[SHA256]
    with pytest.raises(Exception, match="size mismatch"):
        verify(str(path), "f", Expected(6))
    with pytest.raises(Exception, match="crc32 mismatch"):
        verify(str(path), "f", Expected(5, ((CRC32, "AAAAAA=="),)))


def test_lock_is_exclusive_across_processes_and_freed_when_the_holder_dies(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "model.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from fetcher.lock import ModelLock; l = ModelLock(sys.argv[1]); "
            "assert l.try_acquire(); print('locked', flush=True); time.sleep(60)",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lock = ModelLock(path)
        assert not lock.try_acquire()
        assert lock.holder() == f"pid {holder.pid} on {os.uname().nodename}"
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while not lock.try_acquire():
        assert time.monotonic() < deadline, "the lock of a killed holder was not released"
        time.sleep(0.05)
    lock.release()
    assert os.path.exists(path)  # never deleted: waiters may hold descriptors of it


def test_disk_full_is_found_along_the_exception_chain() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        found = disk_full_error(outer)
    assert found is not None and found.errno == errno.ENOSPC
    assert disk_full_error(OSError(errno.EACCES, "denied")) is None


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_disk_full_while_writing_exits_6_with_one_line(
    hub: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    real_download = huggingface_hub.hf_hub_download  # what fetcher.hf imported

    def full_disk(repo_id: str, filename: str, **kwargs: Any) -> str:
        if filename.endswith(".safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", f"{filename}.incomplete")
        return str(real_download(repo_id, filename, **kwargs))

    monkeypatch.setattr(fetcher.hf, "hf_hub_download", full_disk)
    dest = tmp_path / "models"

    code = cli.main([f"hf://{REPO}@main", str(dest), "--log-format", "json"])

    out, err = capsys.readouterr()
    assert code == ExitCode.DISK_FULL
    assert out == ""
    error = _json_lines(err)[-1]
    assert error["event"] == "error" and error["exit_code"] == 6
    assert error["message"].startswith("no space left on device")
    assert not Path(model_dir(f"hf://{REPO}@main", str(dest))).exists()


def test_not_enough_free_space_is_refused_before_downloading(
    hub: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("fetcher.fetch.shutil.disk_usage", lambda _: usage(10**9, 10**9, 1000))

    code = cli.main([f"hf://{REPO}@main", str(tmp_path / "models"), "--log-format", "text"])

    err = capsys.readouterr().err
    assert code == ExitCode.DISK_FULL
    assert err.strip().splitlines()[-1].startswith("fetcher: error: no space left on device:")
    assert "needs 3.7 MiB more" in err
    assert not any("/blobs/" in r.path for r in hub.log)


def test_progress_bridge_speaks_huggingface_hubs_http_and_xet_reporters() -> None:
    """The tqdm stand-in is driven by the installed huggingface_hub's own progress code."""
    import logging
    import threading
    from types import SimpleNamespace

    from fetcher.errors import Cancelled
    from fetcher.hf import _progress_class
    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter
    from huggingface_hub.utils.tqdm import _get_progress_bar_context

    counted: list[int] = []
    cancel = threading.Event()
    bar_class = _progress_class(counted.append, cancel)

    # The plain HTTP path (http_get).
    with _get_progress_bar_context(
        desc="f", log_level=logging.INFO, total=10, tqdm_class=bar_class
    ) as bar:
        bar.update(4)
        bar.update_transfer(4)
    # The Xet path: bytes written count, network bytes do not (they would double-count).
    with XetDownloadProgressReporter(
        reconstruction_desc="f", total=100, log_level=logging.INFO, tqdm_class=bar_class
    ) as xet:
        for done, sent in ((30, 20), (100, 80)):
            xet.update_progress(
                SimpleNamespace(
                    total_bytes=100,
                    total_bytes_completed=done,
                    total_transfer_bytes_completed=sent,
                    total_bytes_completion_rate=None,
                    total_transfer_bytes_completion_rate=None,
                )
            )
    assert sum(counted) == 104

    cancel.set()
    with pytest.raises(Cancelled):
        bar_class(total=1).update(1)


def test_hub_network_errors_wrapped_by_huggingface_hub_are_retried() -> None:
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    backend = fetcher.hf.HfBackend(HfSource("acme", "tiny", "main"))
    try:
        try:
            raise httpx2.ConnectError("connection refused")
        except httpx2.ConnectError as network:
            raise LocalEntryNotFoundError("cannot find the file in the local cache") from network
    except LocalEntryNotFoundError as wrapped:
        assert backend.is_transient(wrapped)
        translated = backend.translate(wrapped)
    assert translated is not None and "cannot reach" in translated.message
    assert not backend.is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not backend.is_transient(ValueError("bad"))


def test_verified_journal_survives_a_torn_last_line_and_reads_the_old_record(
    tmp_path: Path,
) -> None:
    from fetcher.manifest import JOURNAL_NAME, RECORD_NAME, VerifiedRecord

    for name, data in (("a", b"alpha"), ("b", b"bravo"), ("c", b"charlie")):
        (tmp_path / name).write_bytes(data)
    digests = {n: compute(str(tmp_path / n), ())[SHA256] for n in ("a", "b", "c")}
    expected = {
        n: Expected(len((tmp_path / n).read_bytes()), ((SHA256, digests[n]),)) for n in digests
    }
    # A record left by an older fetcher (format 1) still counts for a resume.
    stat = os.stat(tmp_path / "c")
    legacy = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digests["c"]}
    legacy["expected"] = [[SHA256, digests["c"]]]
    (tmp_path / RECORD_NAME).write_text(json.dumps({"files": {"c": legacy}}))

    record = VerifiedRecord(str(tmp_path))
    record.add("a", str(tmp_path / "a"), expected["a"], digests["a"])
    record.close()
    # A crash in the middle of the next append: half a line, no newline.
    with open(tmp_path / JOURNAL_NAME, "ab") as handle:
        handle.write(b'{"path": "b", "rec')

    reopened = VerifiedRecord(str(tmp_path))
    assert reopened.reusable("a", str(tmp_path / "a"), expected["a"]) == digests["a"]
    assert reopened.reusable("b", str(tmp_path / "b"), expected["b"]) is None
    assert reopened.reusable("c", str(tmp_path / "c"), expected["c"]) == digests["c"]
    reopened.add("b", str(tmp_path / "b"), expected["b"], digests["b"])
    reopened.close()
    lines = (tmp_path / JOURNAL_NAME).read_bytes().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a", "b"]  # torn line cut off
    assert VerifiedRecord(str(tmp_path)).reusable("b", str(tmp_path / "b"), expected["b"])


def test_listed_names_are_checked_as_relative_paths_inside_the_folder() -> None:
    from fetcher.errors import UnsafeError
    from fetcher.safety import inside, is_reserved, unsafe_reason

    for good in ("config.json", "original/params.json", "a b/c.txt", "...json"):
        assert unsafe_reason(good) is None, good
    for bad in (
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "./a",
        "a/",
        "a\\b",
        "a\nb",
        "x" * 256,
    ):
        assert unsafe_reason(bad) is not None, bad
        with pytest.raises(UnsafeError):
            inside("/models/.modelfleet/x.partial", bad)
    assert is_reserved(".modelfleet-complete.json") and is_reserved(".modelfleet-verified.jsonl")
    assert is_reserved(".cache/huggingface/download/x.metadata") and not is_reserved("cache.json")


def test_s3_short_bodies_after_retries_are_a_size_mismatch() -> None:
    """s3transfer's own retries end in RetriesExceededError wrapping IncompleteReadError."""
    from botocore.exceptions import IncompleteReadError
    from fetcher.s3 import S3Backend
    from s3transfer.exceptions import RetriesExceededError

    backend = S3Backend(S3Source("bucket-name", "m/"), workers=1)
    short = IncompleteReadError(actual_bytes=100, expected_bytes=4096)
    translated = backend.translate(RetriesExceededError(short))
    assert translated is not None and translated.code == ExitCode.CHECKSUM
    assert translated.message == "size mismatch: download ended at 100 of 4096 bytes"

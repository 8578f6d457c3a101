"""End to end against S3 emulated by moto on 127.0.0.1, running ``python -m fetcher``."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from fetcher.paths import MANIFEST_NAME, model_dir
from fetcher_helpers import blob, run_fetcher
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _client(url: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(**config),
    )


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    _client(moto_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(fetcher_env: dict[str, str], moto_url: str) -> dict[str, str]:
    return {**fetcher_env, **CREDENTIALS, "AWS_ENDPOINT_URL": moto_url}


def _tamper(bucket: str, key: str) -> None:
    """Flip a byte of a stored object while S3 keeps its original ETag and checksums."""
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
    assert stored is not None
    _ = stored.etag  # computed lazily from the content: pin it before the content changes
    buffer = stored._value_buffer
    buffer.seek(10)
    byte = buffer.read(1)
    buffer.seek(10)
    buffer.write(bytes([byte[0] ^ 0xFF]))


def _upload_model(url: str, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = _client(url)
    # An uploader that sends no checksum, as older SDKs and tools do: only the ETag remains.
    plain = _client(url, request_checksum_calculation="when_required")
    objects = {
        "model.safetensors": blob(2 * 1024 * 1024, 11),
        "config.json": json.dumps({"architectures": ["MistralForCausalLM"]}).encode(),
        "tokenizer.json": blob(100 * 1024, 12),
        "tokenizer_config.json": b"{}",
        "original/consolidated.pth": blob(10 * 1024, 13),  # in a folder: not fetched
    }
    s3.put_object(Bucket=bucket, Key=prefix, Body=b"")  # folder marker, as the console makes
    for name in ("model.safetensors", "config.json"):
        s3.put_object(
            Bucket=bucket, Key=prefix + name, Body=objects[name], ChecksumAlgorithm="SHA256"
        )
    for name in ("tokenizer.json", "tokenizer_config.json", "original/consolidated.pth"):
        plain.put_object(Bucket=bucket, Key=prefix + name, Body=objects[name])
    # A multipart object: its checksum and ETag are per part, so only its size can be checked.
    big = blob(6 * 1024 * 1024, 14)
    objects["model-extra.safetensors"] = big
    s3.upload_fileobj(
        io.BytesIO(big),
        bucket,
        prefix + "model-extra.safetensors",
        Config=TransferConfig(
            multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
        ),
        ExtraArgs={"ChecksumAlgorithm": "SHA256"},
    )
    return objects


def test_complete_fetch_from_s3(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    objects = _upload_model(moto_url, bucket, "llm/v1/")
    source = f"s3://{bucket}/llm/v1"

    run = run_fetcher(s3_env, source, str(tmp_path))

    assert run.returncode == 0, run.stderr
    folder = Path(model_dir(source, str(tmp_path)))
    assert run.stdout.splitlines() == [str(folder)]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    by_path = {e["path"]: e for e in manifest["files"]}
    assert sorted(by_path) == [
        "config.json",
        "model-extra.safetensors",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    for path, entry in by_path.items():
        assert (folder / path).read_bytes() == objects[path]
        assert entry["sha256"] == hashlib.sha256(objects[path]).hexdigest()
    assert by_path["model.safetensors"]["verified_by"] == "size+sha256"
    assert by_path["tokenizer.json"]["verified_by"] == "size+md5"
    assert by_path["model-extra.safetensors"]["verified_by"] == "size"
    assert manifest["resolved_revision"].startswith("listing-sha256:")

    again = run_fetcher(s3_env, f"s3://{bucket}/llm/v1/", str(tmp_path))
    assert again.returncode == 0 and again.last_line == str(folder)
    assert [e["event"] for e in again.events()] == ["present"]


def test_s3_content_that_does_not_match_its_etag_is_rejected(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    _upload_model(moto_url, bucket, "m/")
    _tamper(bucket, "m/tokenizer.json")

    run = run_fetcher(s3_env, f"s3://{bucket}/m/", str(tmp_path))

    assert run.returncode == 5, run.stderr
    assert "tokenizer.json: md5 mismatch" in run.events()[-1]["message"]
    assert not Path(model_dir(f"s3://{bucket}/m/", str(tmp_path))).exists()


def test_s3_content_that_does_not_match_its_sha256_is_rejected(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    _upload_model(moto_url, bucket, "m/")
    _tamper(bucket, "m/model.safetensors")

    run = run_fetcher(s3_env, f"s3://{bucket}/m/", str(tmp_path))

    assert run.returncode == 5, run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    assert "model.safetensors" in run.events()[-1]["message"], run.stderr
    assert not Path(model_dir(f"s3://{bucket}/m/", str(tmp_path))).exists()


def test_missing_bucket_prefix_and_credentials(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    _upload_model(moto_url, bucket, "m/")
    no_bucket = run_fetcher(s3_env, "s3://no-such-bucket-here/m/", str(tmp_path))
    no_prefix = run_fetcher(s3_env, f"s3://{bucket}/nothing-here/", str(tmp_path))
    anonymous_env = {k: v for k, v in s3_env.items() if k not in CREDENTIALS}
    no_credentials = run_fetcher(anonymous_env, f"s3://{bucket}/m/", str(tmp_path))

    assert no_bucket.returncode == 3 and "does not exist" in no_bucket.stderr
    assert no_prefix.returncode == 3 and "no objects under this prefix" in no_prefix.stderr
    assert no_credentials.returncode == 4 and "no AWS credentials" in no_credentials.stderr
    for run in (no_bucket, no_prefix, no_credentials):
        assert run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr


def test_s3_rerun_after_a_kill_keeps_downloaded_files_and_drops_temporaries(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    objects = _upload_model(moto_url, bucket, "m/")
    source = f"s3://{bucket}/m/"
    folder = Path(run_fetcher(s3_env, source, str(tmp_path)).last_line)
    # What a fetcher killed mid-way leaves: finished files not yet recorded as verified, a
    # file still missing, and an s3transfer temporary file.
    staging = tmp_path / ".modelfleet" / f"{folder.name}.partial"
    folder.rename(staging)
    (staging / MANIFEST_NAME).unlink()
    (staging / "tokenizer.json").unlink()
    (staging / "model.safetensors.6fA1b2C3").write_bytes(b"partial")

    rerun = run_fetcher(s3_env, source, str(tmp_path))

    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["downloaded_bytes"] == len(objects["tokenizer.json"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(e["path"] for e in manifest["files"]), MANIFEST_NAME]
    )
    assert not staging.exists()


def test_odd_keys_are_ignored_unless_they_would_be_fetched(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 15 item 12: keys with '//', '.' or '..' under the prefix, as S3 allows them."""
    objects = _upload_model(moto_url, bucket, "m/")
    s3 = _client(moto_url)
    for key in ("m//notes.md", "m/./README.md", "m/docs/../x.txt", "m/extra//tokenizer.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"odd")
    source = f"s3://{bucket}/m/"

    fetched = run_fetcher(s3_env, source, str(tmp_path))
    # The same keys, but one of them is what an --include asks for: refused, naming the key.
    refused = run_fetcher(s3_env, source, str(tmp_path / "other"), "--include", "extra/*")

    assert fetched.returncode == 0, fetched.stderr
    folder = Path(fetched.last_line)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (folder / name).read_bytes() == objects[name]
    assert refused.returncode == 9, refused.stderr
    message = refused.events()[-1]["message"]
    assert "object key 'm/extra//tokenizer.json'" in message
    assert "Traceback" not in refused.stderr and refused.stdout == ""


def test_s3_copy_of_a_fetched_folder_skips_the_fetchers_records(
    moto_url: str, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 15 item 9: `aws s3 sync` of a fetched folder, fetched from S3 later."""
    _upload_model(moto_url, bucket, "m/")
    source = f"s3://{bucket}/m/"
    folder = Path(run_fetcher(s3_env, source, str(tmp_path / "first")).last_line)
    s3 = _client(moto_url)
    s3.put_object(
        Bucket=bucket, Key="m/" + MANIFEST_NAME, Body=(folder / MANIFEST_NAME).read_bytes()
    )
    s3.put_object(Bucket=bucket, Key="m/.modelfleet-verified.json", Body=b'{"files": {}}')
    s3.put_object(Bucket=bucket, Key="m/.modelfleet-verified.jsonl", Body=b"")

    first = run_fetcher(s3_env, source, str(tmp_path))
    again = run_fetcher(s3_env, source, str(tmp_path))

    assert first.returncode == 0, first.stderr
    assert any(e["event"] == "skipped" for e in first.events())
    manifest = json.loads((Path(first.last_line) / MANIFEST_NAME).read_text())
    assert all(not e["path"].startswith(".modelfleet") for e in manifest["files"])
    assert again.returncode == 0, again.stderr
    assert [e["event"] for e in again.events()] == ["present"]

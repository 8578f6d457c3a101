"""End to end against the fake Hub, running ``python -m fetcher`` as a process."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fetcher.fetch import Options, fetch
from fetcher.paths import MANIFEST_NAME, model_dir
from fetcher.progress import Reporter
from fetcher.source import parse_source
from fetcher_fakehub import FakeHub
from fetcher_helpers import COMMIT, EXPECTED_FILES, REPO, run_fetcher


def test_complete_fetch_pins_verifies_and_reports(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    run = run_fetcher(env, f"hf://{REPO}@main", str(dest))

    assert run.returncode == 0, run.stderr
    folder = model_dir(f"hf://{REPO}@main", str(dest))
    assert run.stdout.splitlines() == [folder]
    files = sorted(p.name for p in Path(folder).iterdir())
    assert files == sorted([*EXPECTED_FILES, MANIFEST_NAME])
    manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text())
    assert manifest["source"] == f"hf://{REPO}@main"
    assert manifest["resolved_revision"] == COMMIT
    repo = hub.repos[REPO]
    for entry in manifest["files"]:
        data = repo.files[entry["path"]]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert {e["path"] for e in manifest["files"]} == set(EXPECTED_FILES)
    assert manifest["seconds"] > 0 and manifest["bytes_per_second"] > 0
    assert manifest["downloaded_bytes"] == sum(len(repo.files[p]) for p in EXPECTED_FILES)
    # Nothing but the model is left behind: no partial folder, no huggingface_hub bookkeeping.
    assert sorted(os.listdir(dest / ".modelfleet")) == [Path(folder).name + ".lock"]
    events = run.events()
    resolved = [e for e in events if e["event"] == "resolved"]
    assert resolved and resolved[0]["commit"] == COMMIT
    assert events[-1]["event"] == "done"
    assert hub.unknown_requests() == []
    # Every file at the pinned commit, never at the branch that could move meanwhile.
    assert all("/resolve/main/" not in r.path for r in hub.log)


def test_rerun_on_complete_model_is_a_fast_no_op(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    pinned = f"hf://{REPO}@{COMMIT}"
    first = run_fetcher(env, pinned, str(tmp_path))
    assert first.returncode == 0, first.stderr
    requests_before = len(hub.log)

    again = run_fetcher(env, pinned, str(tmp_path))

    assert again.returncode == 0, again.stderr
    assert again.last_line == first.last_line
    assert len(hub.log) == requests_before  # a pinned commit: no network at all
    # Present, and nothing was hashed or moved: the manifest alone decides (no timing here;
    # speed is not asserted in tests, a loaded machine made the old bound flaky).
    assert [e["event"] for e in again.events()] == ["present"]
    outcome = fetch(parse_source(pinned), str(tmp_path), Options(), Reporter("json"))
    assert outcome.status == "present"
    assert len(hub.log) == requests_before

    # A branch costs one API call per run: what it points to now is what decides.
    branch = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    assert branch.returncode == 0, branch.stderr
    requests_before = len(hub.log)
    branch_again = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    assert branch_again.returncode == 0, branch_again.stderr
    assert [r.path for r in hub.log[requests_before:]] == [f"/api/models/{REPO}/revision/main"]
    present = branch_again.events()
    assert [e["event"] for e in present] == ["present"]
    assert present[0]["resolved_revision"] == COMMIT


def test_checksum_mismatch_fails_and_leaves_no_model(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    hub.repos[REPO].corrupt.add("model-00002-of-00002.safetensors")
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    run = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))

    assert run.returncode == 5
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    error = run.events()[-1]
    assert error["event"] == "error" and error["exit_code"] == 5
    assert "model-00002-of-00002.safetensors: sha256 mismatch" in error["message"]
    folder = Path(model_dir(f"hf://{REPO}@main", str(tmp_path)))
    assert not folder.exists()
    staging = tmp_path / ".modelfleet" / (folder.name + ".partial")
    assert not (staging / "model-00002-of-00002.safetensors").exists()


def test_missing_repository_and_revision_fail_with_one_line(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    dest = tmp_path / "models"
    missing_repo = run_fetcher(env, "hf://acme/nope@main", str(dest))
    # Anonymous callers cannot tell a missing repository from a private one (the Hub answers 401).
    assert missing_repo.returncode == 4
    assert "not found, or private and HF_TOKEN is not set" in missing_repo.stderr

    env_token = {**env, "HF_TOKEN": "hf_valid"}
    hub.valid_tokens.add("hf_valid")
    missing_with_token = run_fetcher(env_token, "hf://acme/nope@main", str(dest))
    assert missing_with_token.returncode == 3
    missing_rev = run_fetcher(env, f"hf://{REPO}@no-such-branch", str(dest))
    assert missing_rev.returncode == 3
    assert "revision 'no-such-branch' not found" in missing_rev.stderr

    for run in (missing_repo, missing_with_token, missing_rev):
        assert run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
    # A branch is resolved before anything is created under DEST_ROOT.
    assert not dest.exists()


def test_private_repository_needs_a_valid_token_that_is_never_logged(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    secret = "hf_s3cr3tT0kenValue"
    hub.valid_tokens.add(secret)
    hub.repos[REPO].token = secret
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    anonymous = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    rejected = run_fetcher({**env, "HF_TOKEN": "hf_wrong"}, f"hf://{REPO}@main", str(tmp_path))
    accepted = run_fetcher({**env, "HF_TOKEN": secret}, f"hf://{REPO}@main", str(tmp_path))

    assert anonymous.returncode == 4
    assert rejected.returncode == 4 and "HF_TOKEN was rejected" in rejected.stderr
    assert accepted.returncode == 0, accepted.stderr
    for run in (anonymous, rejected, accepted):
        assert secret not in run.stdout + run.stderr
        assert "hf_wrong" not in run.stdout + run.stderr
    manifest = (Path(accepted.last_line) / MANIFEST_NAME).read_text()
    assert secret not in manifest
    # The token goes to the Hub only, never to the CDN that LFS files are redirected to.
    cdn_auth = [r.authorization for r in hub.log if r.path.startswith("/blobs/")]
    assert cdn_auth and all(a is None for a in cdn_auth)


def test_commit_and_tag_sources_land_in_their_own_folders(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    by_commit = run_fetcher(env, f"hf://{REPO}@{COMMIT}", str(tmp_path))
    by_tag = run_fetcher(env, f"hf://{REPO}@v1", str(tmp_path))

    assert by_commit.returncode == 0 and by_tag.returncode == 0
    assert by_commit.last_line.endswith(f"hf--acme--tiny-llm--{COMMIT}")
    assert by_tag.last_line.endswith("hf--acme--tiny-llm--v1")
    assert not [e for e in by_commit.events() if e["event"] == "resolved"]


def test_folder_with_a_file_deleted_by_hand_is_repaired(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    first = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    folder = Path(first.last_line)
    (folder / "tokenizer.json").unlink()

    repaired = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))

    assert repaired.returncode == 0, repaired.stderr
    assert (folder / "tokenizer.json").read_bytes() == hub.repos[REPO].files["tokenizer.json"]
    # The other files were re-verified in place, not downloaded again.
    assert hub.downloads(REPO, "model-00002-of-00002.safetensors") == 1
    assert hub.downloads(REPO, "tokenizer.json") == 2


def test_transient_hub_errors_are_retried(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    hub.failures = {"api": 1, "model-00002-of-00002.safetensors": 1}
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    run = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))

    assert run.returncode == 0, run.stderr
    retries = [e for e in run.events() if e["event"] == "retry"]
    assert len(retries) == 2
    assert hub.failures == {"api": 0, "model-00002-of-00002.safetensors": 0}


def test_verify_rehashes_a_complete_model_without_touching_it(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    folder = Path(run_fetcher(env, f"hf://{REPO}@main", str(tmp_path)).last_line)
    assert run_fetcher(env, f"hf://{REPO}@main", str(tmp_path), "--verify").returncode == 0
    shard = folder / "model-00001-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF  # same size: the quick check cannot see it
    shard.write_bytes(bytes(data))

    quick = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path))
    verified = run_fetcher(env, f"hf://{REPO}@main", str(tmp_path), "--verify")

    assert quick.returncode == 0
    assert verified.returncode == 5 and verified.stdout == ""
    assert "model-00001-of-00002.safetensors" in verified.events()[-1]["message"]
    assert shard.read_bytes() == bytes(data)  # reported, not repaired under running readers


def test_gated_repository_without_accepted_terms_is_an_auth_error(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    hub.valid_tokens.update({"hf_accepted", "hf_other"})
    hub.repos[REPO].gated_for = {"hf_accepted"}
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}

    refused = run_fetcher({**env, "HF_TOKEN": "hf_other"}, f"hf://{REPO}@main", str(tmp_path))
    allowed = run_fetcher({**env, "HF_TOKEN": "hf_accepted"}, f"hf://{REPO}@main", str(tmp_path))

    assert refused.returncode == 4
    assert "is gated" in refused.events()[-1]["message"]
    assert allowed.returncode == 0, allowed.stderr

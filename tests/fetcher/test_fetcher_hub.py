"""End to end against the fake Hub, running ``python -m fetcher`` as a process."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fetcher_helpers import COMMIT, EXPECTED_FILES, REPO, run_fetcher
from fetcher_fakehub import FakeHub

from fetcher.paths import MANIFEST_NAME, model_dir


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

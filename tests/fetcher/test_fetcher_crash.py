"""Killed fetchers and fetchers started together: real processes, a deliberately slow Hub."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from fetcher.manifest import JOURNAL_NAME
from fetcher.paths import MANIFEST_NAME, model_dir
from fetcher_fakehub import FakeHub
from fetcher_helpers import EXPECTED_FILES, REPO, finish, run_fetcher, start_fetcher, wait_for

SOURCE = f"hf://{REPO}@main"
BIG = "model-00002-of-00002.safetensors"
SMALL = "model-00001-of-00002.safetensors"


def _verified(staging: Path) -> set[str]:
    """The paths in the verified-files journal (complete lines only)."""
    try:
        text = (staging / JOURNAL_NAME).read_text()
    except OSError:
        return set()
    return {
        json.loads(line)["path"] for line in text.splitlines(keepends=True) if line.endswith("\n")
    }


def test_kill_mid_download_then_rerun_reuses_verified_files(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    folder = Path(model_dir(SOURCE, str(tmp_path)))
    staging = tmp_path / ".modelfleet" / (folder.name + ".partial")
    hub.delays[BIG] = 0.2  # ~10 s for the big shard: the kill lands mid-file
    started = time.monotonic()
    proc = start_fetcher(env, SOURCE, str(tmp_path))
    wait_for(
        lambda: hub.served_bytes(REPO, BIG) >= 256 * 1024 and SMALL in _verified(staging),
        what="the small shard verified while the big one streams",
    )
    proc.send_signal(signal.SIGKILL)
    killed = finish(proc, started)
    assert killed.returncode == -signal.SIGKILL
    assert not folder.exists()  # nothing half-written where vLLM looks

    hub.delays.clear()
    rerun = run_fetcher(env, SOURCE, str(tmp_path))

    assert rerun.returncode == 0, rerun.stderr
    assert rerun.last_line == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*EXPECTED_FILES, MANIFEST_NAME])
    assert (folder / BIG).read_bytes() == hub.repos[REPO].files[BIG]
    assert hub.downloads(REPO, SMALL) == 1  # verified before the kill, reused after it
    assert hub.downloads(REPO, BIG) == 2
    plan = next(e for e in rerun.events() if e["event"] == "plan")
    assert plan["files_reused"] >= 1
    assert not staging.exists()


def test_three_concurrent_fetchers_download_once(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    hub.delays[BIG] = 0.06  # about three seconds, so that the three overlap
    started = time.monotonic()
    procs = [start_fetcher(env, SOURCE, str(tmp_path), "--poll-interval", "0.1") for _ in range(3)]
    runs = [finish(p, started) for p in procs]

    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert {r.last_line for r in runs} == {model_dir(SOURCE, str(tmp_path))}
    for path in EXPECTED_FILES:
        assert hub.downloads(REPO, path) == 1, path
    fetched = [r for r in runs if any(e["event"] == "done" for e in r.events())]
    assert len(fetched) == 1
    waited = [r for r in runs if any(e["event"] == "waiting" for e in r.events())]
    assert len(waited) >= 1


def test_waiter_takes_over_from_a_killed_holder(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    folder = Path(model_dir(SOURCE, str(tmp_path)))
    staging = tmp_path / ".modelfleet" / (folder.name + ".partial")
    hub.delays[BIG] = 0.2
    started = time.monotonic()
    holder = start_fetcher(env, SOURCE, str(tmp_path))
    wait_for(lambda: SMALL in _verified(staging), what="the holder to verify a file")
    waiter_log = tmp_path / "waiter.log"
    waiter = start_fetcher(
        env, SOURCE, str(tmp_path), "--poll-interval", "0.1", stderr_file=waiter_log
    )
    wait_for(lambda: '"waiting"' in waiter_log.read_text(), what="the waiter to wait")
    assert hub.served_bytes(REPO, BIG) < len(hub.repos[REPO].files[BIG])
    holder.send_signal(signal.SIGKILL)
    finish(holder, started)
    hub.delays.clear()

    took_over = finish(waiter, started, stderr_file=waiter_log)

    assert took_over.returncode == 0, took_over.stderr
    events = [e["event"] for e in took_over.events()]
    assert "waiting" in events and "lock" in events and events[-1] == "done"
    assert (folder / BIG).read_bytes() == hub.repos[REPO].files[BIG]
    assert hub.downloads(REPO, SMALL) == 1


def test_waiter_gives_up_after_the_wait_timeout(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    hub.delays[BIG] = 0.2
    started = time.monotonic()
    holder = start_fetcher(env, SOURCE, str(tmp_path))
    wait_for(lambda: hub.served_bytes(REPO, BIG) > 0, what="the holder to start")

    waiter = run_fetcher(
        env, SOURCE, str(tmp_path), "--wait-timeout", "0.5", "--poll-interval", "0.1"
    )

    holder.send_signal(signal.SIGKILL)
    finish(holder, started)
    assert waiter.returncode == 7
    assert "timed out after" in waiter.events()[-1]["message"]
    assert waiter.stdout == ""


def test_sigterm_stops_the_downloads_with_one_line(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    hub.delays[BIG] = 0.2
    started = time.monotonic()
    proc = start_fetcher(env, SOURCE, str(tmp_path))
    wait_for(lambda: hub.served_bytes(REPO, BIG) > 0, what="the download to start")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    run = finish(proc, started)

    assert run.returncode == 130
    assert time.monotonic() - signalled < 5
    assert run.events()[-1]["event"] == "error"
    assert "interrupted" in run.events()[-1]["message"]
    assert "Traceback" not in run.stderr
    assert not Path(model_dir(SOURCE, str(tmp_path))).exists()


def test_random_kills_leave_no_model_or_a_complete_one(
    hub: FakeHub, fetcher_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL at random moments (seeded), through downloads, journal appends and the rename.

    After every kill the model folder is absent or complete and verified; the last run finishes.
    """
    import hashlib
    import random

    repo = hub.repos[REPO]
    for i in range(40):
        repo.files[f"extra-{i:02d}.json"] = json.dumps({"i": i}).encode()
    hub.delays[BIG] = 0.04
    env = {**fetcher_env, "HF_ENDPOINT": hub.url}
    folder = Path(model_dir(SOURCE, str(tmp_path)))
    rng = random.Random(20261201)
    kills = 0
    for _ in range(12):
        started = time.monotonic()
        proc = start_fetcher(env, SOURCE, str(tmp_path))
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        run = finish(proc, started)
        kills += run.returncode == -signal.SIGKILL
        if folder.exists():
            manifest = json.loads((folder / MANIFEST_NAME).read_text())
            for entry in manifest["files"]:
                data = (folder / entry["path"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
            break
    final = run_fetcher(env, SOURCE, str(tmp_path), timeout=60)
    assert final.returncode == 0, final.stderr
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for entry in manifest["files"]:
        assert (folder / entry["path"]).read_bytes() == repo.files[entry["path"]]
    print(
        f"\n{kills} kills before the model completed; big shard served "
        f"{hub.downloads(REPO, BIG)} times"
    )
    assert kills >= 1

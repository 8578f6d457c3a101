"""Fixtures for the fetcher tests: a fake Hub and a clean environment for the fetcher process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fetcher_fakehub import FakeHub, FakeRepo
from fetcher_helpers import COMMIT, OLD_COMMIT, REPO, clean_env, tiny_model_files


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    files, lfs = tiny_model_files()
    fake.repos[REPO] = FakeRepo(
        files=files, lfs=lfs, revisions={"main": COMMIT, "v1": COMMIT, "old": OLD_COMMIT}
    )
    yield fake
    fake.stop()


@pytest.fixture
def fetcher_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)

"""Helpers for the fetcher tests: test data, the fetcher as a process, waiting."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
REPO = "acme/tiny-llm"


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def tiny_model_files() -> tuple[dict[str, bytes], set[str]]:
    """A small repository shaped like a real one: two shards, tokenizer, extras to skip."""
    files = {
        "model-00001-of-00002.safetensors": blob(512 * 1024, 1),
        "model-00002-of-00002.safetensors": blob(3 * 1024 * 1024, 2),
        "model.safetensors.index.json": json.dumps(
            {
                "metadata": {"total_size": 3670016},
                "weight_map": {
                    "embed.weight": "model-00001-of-00002.safetensors",
                    "lm_head.weight": "model-00002-of-00002.safetensors",
                },
            }
        ).encode(),
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}).encode(),
        "generation_config.json": b'{"temperature": 0.6}',
        "tokenizer.json": blob(200 * 1024, 3),
        "tokenizer_config.json": b'{"model_max_length": 8192}',
        "special_tokens_map.json": b"{}",
        "README.md": b"# tiny\n",
        ".gitattributes": b"*.safetensors filter=lfs\n",
        "pytorch_model.bin": blob(64 * 1024, 4),
        "original/consolidated.00.pth": blob(128 * 1024, 5),
    }
    lfs = {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
        "pytorch_model.bin",
        "original/consolidated.00.pth",
    }
    return files, lfs


EXPECTED_FILES = sorted(
    [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    @property
    def last_line(self) -> str:
        lines = self.stdout.splitlines()
        return lines[-1] if lines else ""


def start_fetcher(
    env: dict[str, str], *args: str, stderr_file: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m fetcher``; with ``stderr_file``, its log can be read while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "fetcher", *args, "--log-format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr_file is None else stderr_file.open("w"),
        text=True,
    )


def finish(
    proc: subprocess.Popen[str],
    started: float,
    timeout: float = 30,
    stderr_file: Path | None = None,
) -> Run:
    out, err = proc.communicate(timeout=timeout)
    if stderr_file is not None:
        err = stderr_file.read_text()
    return Run(proc.returncode, out, err, time.monotonic() - started)


def run_fetcher(env: dict[str, str], *args: str, timeout: float = 30) -> Run:
    started = time.monotonic()
    return finish(start_fetcher(env, *args), started, timeout)


def wait_for(condition: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def clean_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no proxies, no AWS or HF credentials unless a test adds them."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "PYTHONUNBUFFERED": "1",
    }

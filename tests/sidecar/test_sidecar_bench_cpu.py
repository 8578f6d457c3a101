"""The benchmark's CPU-per-request figure: /proc accounting of a process and its children."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sidecar_bench.py"

# A parent that forks a worker (as nginx's master does); the worker renames itself to a
# command name with a space and parentheses, spends CPU, reports, and waits for stdin.
CHILD = textwrap.dedent(
    """
    import os, sys
    pid = os.fork()
    if pid == 0:
        with open("/proc/self/comm", "w") as comm:
            comm.write("w) x (y")
        total = 0
        for i in range(3_000_000):
            total += i * i
        print(os.getpid(), flush=True)
        sys.stdin.read()
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sidecar_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up by name.
    sys.modules["sidecar_bench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_cpu_of_a_process_includes_its_forked_worker() -> None:
    bench = _bench()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        assert bench.process_tree(proc.pid) == [proc.pid, worker]
        assert Path(f"/proc/{worker}/comm").read_text().strip() == "w) x (y"
        worker_cpu = bench.cpu_seconds(worker)
        # The worker's busy loop is counted (the odd command name parses), and counted
        # again through its parent, whose own share is only starting Python and forking.
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        parent_own = (int(fields[11]) + int(fields[12])) / bench._CLOCK_TICKS
        assert parent_own < worker_cpu
        assert bench.cpu_seconds(proc.pid) >= worker_cpu > 0
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    # A process that is gone counts nothing rather than failing the run.
    assert bench.cpu_seconds(proc.pid) == 0

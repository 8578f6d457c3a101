"""Sidecar vs nginx on loopback, against the same instant stand-in engine.

    make bench-sidecar            # or: .venv/bin/python bench/sidecar_bench.py

Starts the stand-in engine (bench/sidecar_engine.py), nginx as a plain pass-through
(one worker, upstream keep-alive, no buffering) and the sidecar (one worker, auth on,
rate limiter on with limits nobody reaches), then drives each with wrk:

- requests/s for JSON chat completions and for 16-chunk SSE streams,
- median latency at one connection, direct to the engine and through each proxy,
- CPU microseconds per request of the proxy process (user + system time from
  ``/proc/<pid>/stat`` of the process and its children, before and after each wrk run,
  divided by the requests that run completed),

in alternating rounds, reporting the median of the per-round ratios. Requests/s on a
machine shared with other work are noisy; CPU time per request is what the proxy itself
spends, so it moves far less with the neighbours' load, and it is printed beside the
ratios (the bars stay on requests/s). The proxy under
test gets a CPU of its own (taskset), the engine and wrk share the others; --no-pin
leaves placement to the scheduler.

The bars (issue 15): JSON >= 0.40 x nginx, streams >= 0.80 x nginx, added median
latency <= 0.5 ms, zero errors. Exits non-zero when a bar is missed or a run had errors.

--baseline REF also runs the sidecar as it was at git REF (``git archive``; e.g. the
commit an issue was filed against) in the same rounds, on the same CPU, against the same
engine, and prints its ratios beside this one's: "no worse than before" measured in one
run rather than across days on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-0123456789abcdef"
BODY_JSON = (
    '{"model":"bench-model","messages":[{"role":"user","content":"Hello!"}],"max_tokens":16}'
)
BODY_STREAM = (
    '{"model":"bench-model","messages":[{"role":"user","content":"Hello!"}],'
    '"max_tokens":16,"stream":true}'
)


@dataclass
class Run:
    rps: float
    p50_ms: float
    errors: int
    requests: int
    cpu_us: float | None = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx serves from a worker its master forked)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants, from /proc/<pid>/stat."""
    ticks = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start at field 3:
        # utime and stime are fields 14 and 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def extract(ref: str, into: Path) -> Path:
    """The sidecar package as it was at git ``ref``; returns the directory to run it from."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "docker/sidecar"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "docker" / "sidecar"


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on port {port} after {timeout}s")


def ensure_tools() -> tuple[str, str]:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)
    nginx, wrk = shutil.which("nginx"), shutil.which("wrk")
    if nginx is None or wrk is None:
        raise SystemExit(
            "the benchmark needs nginx and wrk on PATH: sudo apt-get install -y nginx wrk"
        )
    return nginx, wrk


def nginx_config(workdir: Path, port: int, engine_port: int) -> Path:
    user = "user root;" if os.geteuid() == 0 else ""
    conf = workdir / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            {user}
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                upstream engine {{ server 127.0.0.1:{engine_port}; keepalive 128; }}
                server {{
                    listen 127.0.0.1:{port} backlog=4096;
                    keepalive_requests 1000000;
                    location / {{
                        proxy_pass http://engine;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                    }}
                }}
            }}
            """
        )
    )
    return conf


def wrk_script(workdir: Path, body: str, name: str) -> Path:
    path = workdir / f"{name}.lua"
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        textwrap.dedent(
            f"""
            wrk.method = "POST"
            wrk.body = "{escaped}"
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "Bearer {KEY}"
            """
        )
    )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


# CPU sets: the proxy under test gets a core of its own, the engine and the load generator
# share the rest, so nginx and the sidecar are measured under the same conditions instead
# of wherever the scheduler happens to put them. Empty when pinning is off.
PROXY_CPUS: list[str] = []
DRIVER_CPUS: list[str] = []


def pinned(cpus: list[str], command: list[str]) -> list[str]:
    return ["taskset", "-c", ",".join(cpus), *command] if cpus else command


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    connections: int,
    seconds: int,
    threads: int = 1,
    proxy_pid: int | None = None,
) -> Run:
    before = cpu_seconds(proxy_pid) if proxy_pid is not None else 0.0
    out = subprocess.run(
        pinned(DRIVER_CPUS, [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(script), url,
        ]),
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    assert p50 is not None, out
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(value) for value in sock.groups())
    total = re.search(r"(\d+) requests in", out)
    requests = int(total.group(1)) if total else 0
    cpu_us = None
    if proxy_pid is not None and requests:
        cpu_us = (cpu_seconds(proxy_pid) - before) * 1e6 / requests
    return Run(
        rps=rps,
        p50_ms=float(p50.group(1)) * _UNITS[p50.group(2)],
        errors=errors,
        requests=requests,
        cpu_us=cpu_us,
    )


def report(round_no: int, kind: str, name: str, run: Run) -> None:
    cpu = f"  cpu {run.cpu_us:6.1f} us/req" if run.cpu_us is not None else ""
    print(
        f"round {round_no}  {kind:7} {name:8} {run.rps:9.0f} req/s  p50 {run.p50_ms:7.3f} ms  "
        f"requests {run.requests:7d}  errors {run.errors}{cpu}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--connections", type=int, default=64, help="connections for req/s")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not give the proxy a CPU of its own"
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="also run the sidecar as it was at git REF"
    )
    args = parser.parse_args()
    nginx, wrk = ensure_tools()
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2 and shutil.which("taskset"):
        PROXY_CPUS[:] = [str(cpus[-1])]
        DRIVER_CPUS[:] = [str(cpu) for cpu in cpus[:-1]]
        print(f"proxy on CPU {PROXY_CPUS[0]}; engine and wrk on CPU {','.join(DRIVER_CPUS)}")
    procs: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    try:
        engine_port, nginx_port, sidecar_port = free_port(), free_port(), free_port()
        baseline_port = free_port()
        procs.append(
            subprocess.Popen(
                pinned(
                    DRIVER_CPUS,
                    [sys.executable, str(ROOT / "bench" / "sidecar_engine.py"), str(engine_port)],
                ),
                stdout=subprocess.DEVNULL,
            )
        )
        conf = nginx_config(workdir, nginx_port, engine_port)
        procs.append(
            subprocess.Popen(
                pinned(
                    PROXY_CPUS, [nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
                ),
                stdout=subprocess.DEVNULL,
            )
        )
        env = dict(
            os.environ,
            SIDECAR_HOST="127.0.0.1",
            SIDECAR_PORT=str(sidecar_port),
            SIDECAR_UPSTREAM_URL=f"http://127.0.0.1:{engine_port}",
            SIDECAR_API_KEYS=f"bench:{KEY}",
            SIDECAR_WORKERS="1",
            SIDECAR_RPM="1000000000",
            SIDECAR_TPM="1000000000000",
            SIDECAR_MAX_INFLIGHT="4096",
        )
        procs.append(
            subprocess.Popen(
                pinned(PROXY_CPUS, [sys.executable, "-m", "sidecar"]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        ports = [engine_port, nginx_port, sidecar_port]
        names = ["nginx", "sidecar"]
        if args.baseline:
            # `python -m` puts the working directory first on sys.path, so the archived
            # package is imported rather than the checkout's.
            tree = extract(args.baseline, workdir / "baseline")
            procs.append(
                subprocess.Popen(
                    pinned(PROXY_CPUS, [sys.executable, "-m", "sidecar"]),
                    env={**env, "SIDECAR_PORT": str(baseline_port)},
                    cwd=tree,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports.append(baseline_port)
            names.append("baseline")
        for port in ports:
            wait_port(port)
        json_lua = wrk_script(workdir, BODY_JSON, "json")
        stream_lua = wrk_script(workdir, BODY_STREAM, "stream")
        path = "/v1/chat/completions"
        urls = {
            "engine": f"http://127.0.0.1:{engine_port}{path}",
            "nginx": f"http://127.0.0.1:{nginx_port}{path}",
            "sidecar": f"http://127.0.0.1:{sidecar_port}{path}",
            "baseline": f"http://127.0.0.1:{baseline_port}{path}",
        }
        # Popen's pid is the server itself (taskset execs it); nginx's worker is its child.
        pids = {"engine": procs[0].pid, "nginx": procs[1].pid, "sidecar": procs[2].pid}
        if args.baseline:
            pids["baseline"] = procs[3].pid
        for name in names:
            run_wrk(wrk, urls[name], json_lua, args.connections, 1)  # warm-up
        # Rounds alternate the targets, so a neighbour's burst of CPU use on a shared
        # machine lands on both sides of a ratio; the medians of the rounds are reported.
        ratios: dict[str, list[float]] = {"json": [], "stream": []}
        base_ratios: dict[str, list[float]] = {"json": [], "stream": []}
        cpu: dict[tuple[str, str], list[float]] = {
            (kind, name): [] for kind in ("json", "stream") for name in names
        }
        added_ms: list[float] = []
        added_base_ms: list[float] = []
        added_nginx_ms: list[float] = []
        errors = 0
        plan = [("json", json_lua, args.connections), ("stream", stream_lua, args.connections)]
        for round_no in range(1, args.rounds + 1):
            for kind, script, connections in plan:
                runs = {}
                for name in names:
                    runs[name] = run_wrk(
                        wrk, urls[name], script, connections, args.seconds, proxy_pid=pids[name]
                    )
                    errors += runs[name].errors
                    report(round_no, kind, name, runs[name])
                    cpu[(kind, name)].append(runs[name].cpu_us or 0.0)
                ratios[kind].append(runs["sidecar"].rps / runs["nginx"].rps)
                if args.baseline:
                    base_ratios[kind].append(runs["baseline"].rps / runs["nginx"].rps)
            runs = {}
            for name in ("engine", *names):
                runs[name] = run_wrk(
                    wrk, urls[name], json_lua, 1, args.seconds, proxy_pid=pids[name]
                )
                errors += runs[name].errors
                report(round_no, "1-conn", name, runs[name])
            added_ms.append(runs["sidecar"].p50_ms - runs["engine"].p50_ms)
            added_nginx_ms.append(runs["nginx"].p50_ms - runs["engine"].p50_ms)
            if args.baseline:
                added_base_ms.append(runs["baseline"].p50_ms - runs["engine"].p50_ms)
        json_ratio = statistics.median(ratios["json"])
        stream_ratio = statistics.median(ratios["stream"])
        added = statistics.median(added_ms)
        added_nginx = statistics.median(added_nginx_ms)
        checks = [
            ("JSON req/s, sidecar / nginx", f"{json_ratio:.2f}", ">= 0.40", json_ratio >= 0.40),
            ("SSE req/s, sidecar / nginx", f"{stream_ratio:.2f}", ">= 0.80", stream_ratio >= 0.80),
            ("added median latency, 1 conn", f"{added:.3f} ms", "<= 0.5 ms", added <= 0.5),
            ("errors in all runs", str(errors), "== 0", errors == 0),
        ]
        print(
            "\nper round: JSON "
            + " ".join(f"{r:.2f}" for r in ratios["json"])
            + " | SSE "
            + " ".join(f"{r:.2f}" for r in ratios["stream"])
            + " | added ms "
            + " ".join(f"{a:.3f}" for a in added_ms)
        )
        print(f"\n(nginx adds {added_nginx:.3f} ms median at one connection)")
        print("proxy CPU per request (median of rounds; user + system time of the process):")
        for kind in ("json", "stream"):
            nginx_us = statistics.median(cpu[(kind, "nginx")])
            sidecar_us = statistics.median(cpu[(kind, "sidecar")])
            print(
                f"  {kind:6}  nginx {nginx_us:6.1f} us   sidecar {sidecar_us:6.1f} us   "
                f"nginx / sidecar {nginx_us / sidecar_us if sidecar_us else 0.0:.2f}   "
                "(per round, sidecar: "
                + " ".join(f"{value:.1f}" for value in cpu[(kind, "sidecar")])
                + ")"
            )
        if args.baseline:
            print(f"baseline {args.baseline} in the same rounds (this sidecar's figure after /):")
            for kind in ("json", "stream"):
                print(
                    f"  {kind:6}  x nginx {statistics.median(base_ratios[kind]):.2f} / "
                    f"{statistics.median(ratios[kind]):.2f}   CPU per request "
                    f"{statistics.median(cpu[(kind, 'baseline')]):.1f} / "
                    f"{statistics.median(cpu[(kind, 'sidecar')]):.1f} us   (per round: "
                    + " ".join(f"{r:.2f}" for r in base_ratios[kind])
                    + ")"
                )
            print(
                f"  added ms at one connection {statistics.median(added_base_ms):.3f} / {added:.3f}"
            )
        for label, value, bar, ok in checks:
            print(f"{label:32} {value:>10}   {bar:9} {'ok' if ok else 'MISSED'}")
        return 0 if all(ok for *_, ok in checks) else 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if nginx in proc.args else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

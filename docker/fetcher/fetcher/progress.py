"""What the fetcher tells people (a progress line on a terminal) and logs (JSON lines).

Everything goes to stderr: stdout carries only the model folder, so that
``path=$(python -m fetcher SOURCE /models)`` works.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Reporter:
    """Events and byte counts from many download threads, rendered for people or for logs."""

    def __init__(
        self,
        fmt: LogFormat,
        *,
        interval: float = 10.0,
        stream: TextIO | None = None,
        live: bool = False,
    ) -> None:
        self.fmt = fmt
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        # Redraw one line in place only on a terminal; log collectors get whole lines.
        self.live = live and fmt == "text"
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._downloaded = 0
        self._files_total = 0
        self._files_done = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._line_open = False

    # Events ---------------------------------------------------------------------------------

    def event(self, name: str, message: str, **fields: Any) -> None:
        with self._lock:
            self._clear_live_line()
            if self.fmt == "json":
                level = fields.pop("level", "info")
                record = {
                    "ts": round(time.time(), 3),
                    "level": level,
                    "event": name,
                    "message": message,
                    **fields,
                }
                self.stream.write(json.dumps(record, default=str) + "\n")
            else:
                self.stream.write(f"fetcher: {message}\n")
            self.stream.flush()

    def error(self, message: str, exit_code: int) -> None:
        self.stop()
        if self.fmt == "json":
            self.event("error", message, level="error", exit_code=exit_code)
        else:
            self.event("error", f"error: {message}")

    # Byte accounting ------------------------------------------------------------------------

    def start(
        self, *, total_bytes: int, done_bytes: int, files_total: int, files_done: int
    ) -> None:
        with self._lock:
            self._total = total_bytes
            self._done = done_bytes
            self._files_total = files_total
            self._files_done = files_done
            self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._tick, name="fetcher-progress", daemon=True)
        self._thread.start()

    def add_bytes(self, count: int, *, downloaded: bool = True) -> None:
        with self._lock:
            self._done += count
            if downloaded:
                self._downloaded += count

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1

    @property
    def downloaded(self) -> int:
        with self._lock:
            return self._downloaded

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        with self._lock:
            self._clear_live_line()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            rate = self._downloaded / elapsed
            remaining = max(self._total - self._done, 0)
            return {
                "bytes_done": self._done,
                "bytes_total": self._total,
                "percent": round(100 * self._done / self._total, 1) if self._total else 100.0,
                "files_done": self._files_done,
                "files_total": self._files_total,
                "bytes_per_second": round(rate),
                "eta_seconds": round(remaining / rate) if rate > 0 else None,
            }

    def _tick(self) -> None:
        period = 0.5 if self.live else self.interval
        while not self._stop.wait(period):
            self._render()

    def _render(self) -> None:
        snap = self.snapshot()
        if self.fmt == "json":
            self.event("progress", f"{snap['percent']}%", **snap)
            return
        eta = snap["eta_seconds"]
        line = (
            f"fetcher: {human_bytes(snap['bytes_done'])} / {human_bytes(snap['bytes_total'])}"
            f" ({snap['percent']}%), files {snap['files_done']}/{snap['files_total']},"
            f" {human_bytes(snap['bytes_per_second'])}/s"
            + (f", eta {eta}s" if eta is not None else "")
        )
        with self._lock:
            if self.live:
                self.stream.write("\r\x1b[2K" + line)
                self._line_open = True
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _clear_live_line(self) -> None:
        if self._line_open:
            self.stream.write("\r\x1b[2K")
            self._line_open = False

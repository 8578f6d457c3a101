"""Token usage read from responses without parsing whole bodies.

Embedding responses can be megabytes of floats; parsing them just to read three
integers would cost more than proxying them, so the ``usage`` object is located by
byte search and only that slice is parsed. Inside a JSON string every quote is
escaped, so the raw bytes ``"usage"`` only occur as a key.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

import orjson

__all__ = ["SseUsageScanner", "Usage", "usage_from_json"]

_KEY: Final = b'"usage"'
# Enough for the final usage event however the stream was cut into chunks.
_TAIL_BYTES: Final = 8 * 1024


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _parse_at(data: bytes, key_at: int) -> Usage | None:
    after = key_at + len(_KEY)
    start = data.find(b"{", after, after + 64)
    if start < 0:
        return None
    between = data[after:start].strip()
    if between != b":":
        return None
    # Find the closing brace by counting braces with bytes.find/count (C speed): usage
    # holds only numbers and nested detail objects, never strings with braces in them.
    end = start
    limit = min(len(data), start + 4096)
    while True:
        end = data.find(b"}", end + 1, limit)
        if end < 0:
            return None
        segment = data[start : end + 1]
        if segment.count(b"{") == segment.count(b"}"):
            break
    try:
        obj = orjson.loads(segment)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    # A count that is not a non-negative integer counts as 0: an engine that reports
    # negative usage must never drive budgets or counters backwards.
    return Usage(_count(obj.get("prompt_tokens")), _count(obj.get("completion_tokens")))


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_from_json(body: bytes) -> Usage | None:
    """Usage of a complete JSON response; the top-level key is the last one vLLM writes."""
    at = body.rfind(_KEY)
    if at < 0:
        return None
    return _parse_at(body, at)


class SseUsageScanner:
    """Follows an SSE stream: the number of events, and the last usage object in it.

    vLLM sends usage in the last event before ``[DONE]`` (cumulative when it is sent with
    every chunk), so only the stream's tail is kept, by reference, and searched once at
    the end: per chunk this costs a count and an append, never a copy.
    """

    __slots__ = ("_size", "_tail", "done", "events")

    def __init__(self) -> None:
        self._tail: deque[bytes] = deque()
        self._size = 0
        self.events = 0
        self.done = 0

    def feed(self, chunk: bytes) -> None:
        self.events += chunk.count(b"data:")
        if b"[DONE]" in chunk:
            self.done += chunk.count(b"data: [DONE]")
        tail = self._tail
        tail.append(chunk)
        self._size += len(chunk)
        while self._size - len(tail[0]) >= _TAIL_BYTES:
            self._size -= len(tail.popleft())

    @property
    def usage(self) -> Usage | None:
        if not self._tail:
            return None
        data = b"".join(self._tail)
        at = data.rfind(_KEY)
        return _parse_at(data, at) if at >= 0 else None

"""Deadlines of in-flight requests: one shared clock tick, and a guard per request.

A timer per request (arm, then cancel) costs more than the rest of the bookkeeping of a
fast request, so every request's deadlines (first byte, idle, total), its SSE keep-alives
and the start of its client-disconnect watcher are checked by one periodic tick. Expiry
cancels the request task with a reason that the gateway turns into an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Protocol

from .settings import Settings

__all__ = ["KEEPALIVE_COMMENT", "Clock", "Deadline", "Guard"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The disconnect watcher (a task per request) starts only for requests that last longer.
_WATCH_AFTER: Final = 0.02
KEEPALIVE_COMMENT: Final = b": keep-alive\n\n"


class _Watched(Protocol):
    def check(self, now: float) -> None: ...

    def trip(self, reason: str) -> None: ...


class Clock:
    """One periodic tick that checks every in-flight request's deadlines.

    A timer per request (arm, then cancel) costs more than the rest of the bookkeeping
    of a fast request; a shared tick costs a set insertion and removal. Deadlines are
    seconds long, so a tick of a few tens of milliseconds is precise enough.
    """

    TICK: Final = 0.025

    def __init__(
        self, loop: asyncio.AbstractEventLoop, housekeeping: Callable[[], None] | None = None
    ) -> None:
        self.loop = loop
        self.active: set[_Watched] = set()
        self._housekeeping = housekeeping
        self._ticks = 0
        self._handle: asyncio.TimerHandle | None = loop.call_later(self.TICK, self._tick)

    def _tick(self) -> None:
        if self.active:
            now = self.loop.time()
            for guard in list(self.active):
                guard.check(now)
        self._ticks += 1
        if self._housekeeping is not None and self._ticks % 40 == 0:
            self._housekeeping()
        self._handle = self.loop.call_later(self.TICK, self._tick)

    def trip_all(self, reason: str) -> int:
        """End every request in flight with ``reason`` (the drain budget ran out)."""
        guards = list(self.active)
        for guard in guards:
            guard.trip(reason)
        return len(guards)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Deadlines:
    """One request's first-byte, idle and total deadlines, as the clock tick checks them.

    The phase is "first_byte" until the engine's head arrives, then "idle": expired when
    the engine has been silent for the idle timeout while the request waits on it
    (``reading``; a request blocked on a slow client is not idle). The total deadline
    holds throughout.
    """

    __slots__ = ("_clock", "_idle", "done", "last", "phase", "phase_at", "reading", "total_at")

    def __init__(self, clock: Clock, now: float, settings: Settings, *, reading: bool) -> None:
        self._clock = clock
        self._idle = settings.idle_timeout
        self.total_at = now + settings.total_timeout
        self.phase = "first_byte"
        self.phase_at = now + settings.first_byte_timeout
        self.last = now
        self.reading = reading
        self.done = False

    def _expired(self, now: float) -> str | None:
        """The deadline that has passed at ``now``, if any."""
        if now >= self.total_at:
            return "total"
        if self.phase == "idle":
            if not self.reading:
                # Blocked on a slow client, not on the engine: not idle.
                self.last = now
            elif now >= self.last + self._idle:
                return "idle"
        elif now >= self.phase_at:
            return self.phase
        return None

    def enter_idle(self, now: float) -> None:
        """The engine's head arrived; from now on only a silence longer than idle expires."""
        self.phase = "idle"
        self.last = now


class Guard(_Deadlines):
    """Deadlines, SSE keep-alives and the client-disconnect signal for one request.

    Checked on every clock tick; moving a deadline later (every chunk does) costs an
    attribute write. Expiry cancels the request task; the handler turns that into an error.
    """

    __slots__ = (
        "_keepalive", "_receive", "_send", "_task", "_watch_at", "_watcher", "awaiting_first",
        "committed", "headers", "keepalive_at", "pending", "reason", "streaming",
    )  # fmt: skip

    def __init__(
        self,
        clock: Clock,
        task: asyncio.Task[Any],
        now: float,
        settings: Settings,
        *,
        streaming: bool,
        send: Send,
        receive: Receive,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._task = task
        self._send = send
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        # Most requests through a busy proxy finish within milliseconds; the disconnect
        # watcher (a task per request) is only started for those that take longer. A
        # client that left earlier is still noticed, at that moment.
        self._watch_at = now + _WATCH_AFTER
        self.headers = headers
        self._keepalive = settings.keepalive_seconds
        self.streaming = streaming
        self.awaiting_first = streaming
        self.keepalive_at = now + settings.keepalive_seconds
        self.committed = False
        self.pending: asyncio.Task[None] | None = None
        self.reason: str | None = None
        super().__init__(clock, now, settings, reading=False)
        clock.active.add(self)

    def check(self, now: float) -> None:
        if self.done or self.reason is not None:
            return
        loop = self._clock.loop
        if self._watcher is None and now >= self._watch_at:
            self._watcher = loop.create_task(self._watch())
        expired = self._expired(now)
        if expired is not None:
            self.trip(expired)
            return
        if self.awaiting_first and now >= self.keepalive_at:
            self.keepalive_at = now + self._keepalive
            start = not self.committed
            self.committed = True
            previous = self.pending
            self.pending = loop.create_task(self._send_keepalive(start, previous))

    async def _send_keepalive(self, start: bool, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous
        if start:
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": self.headers}
            )
        await self._send(
            {"type": "http.response.body", "body": KEEPALIVE_COMMENT, "more_body": True}
        )

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.trip("client")
                return

    async def settle(self) -> None:
        """Wait for a keep-alive write in progress, so writes never interleave."""
        while self.pending is not None:
            pending = self.pending
            await pending
            if self.pending is pending:
                self.pending = None

    def enter_first_byte(self, now: float, first_byte_timeout: float) -> None:
        self.phase = "first_byte"
        self.phase_at = min(now + first_byte_timeout, self.total_at)

    def first_chunk(self) -> None:
        self.awaiting_first = False

    def trip(self, reason: str) -> None:
        if self.reason is None and not self.done:
            self.reason = reason
            self._task.cancel()

    def take_reason(self) -> str | None:
        reason, self.reason = self.reason, None
        if reason is not None:
            self._task.uncancel()
        return reason

    def close(self) -> None:
        self.done = True
        self._clock.active.discard(self)
        if self._watcher is not None:
            self._watcher.cancel()
        if self.pending is not None and not self.pending.done():
            self.pending.cancel()


def _expired(reason: str) -> None:
    """A closed deadline's callback: it never fires again."""


class Deadline(_Deadlines):
    """The deadlines of a request served by callbacks, with no task to cancel.

    ``Gateway.serve_direct`` answers a complete, non-streamed request without a task;
    its first-byte, idle and total deadlines and the drain's cut are checked by the same
    clock tick as a ``Guard``'s, and expiry calls ``on_expire(reason)``, which hands the
    request to a task that ends it the way a ``Guard``'s cancellation would.
    """

    __slots__ = ("_on_expire",)

    def __init__(
        self,
        clock: Clock,
        now: float,
        settings: Settings,
        on_expire: Callable[[str], None],
    ) -> None:
        self._on_expire = on_expire
        # Always waiting on the engine: the answer goes to the client in one write.
        super().__init__(clock, now, settings, reading=True)
        clock.active.add(self)

    def check(self, now: float) -> None:
        if not self.done:
            expired = self._expired(now)
            if expired is not None:
                self.trip(expired)

    def trip(self, reason: str) -> None:
        if not self.done:
            on_expire = self._on_expire
            self.close()
            on_expire(reason)

    def close(self) -> None:
        self.done = True
        self._clock.active.discard(self)
        # The callback is the request's bound method, which holds this deadline: drop it,
        # so a finished request leaves no reference cycle for the garbage collector.
        self._on_expire = _expired

"""API keys and per-key request and token budgets."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable

from .settings import ApiKey

__all__ = ["Authenticator", "Bucket", "KeyLimits"]


class Authenticator:
    """Maps a bearer token to its team.

    Every configured digest is compared with ``hmac.compare_digest`` and the loop never
    stops early, so the time taken does not reveal which key (or how much of one) matched.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def team_for(self, authorization: bytes | None) -> str | None:
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        digest = hashlib.sha256(authorization[7:].strip()).digest()
        team: str | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                team = key.team
        return team


class Bucket:
    """A token bucket that may go into debt, so usage counted after a response still counts."""

    __slots__ = ("_level", "_rate", "_stamp", "capacity")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._level = self.capacity
        self._stamp = now

    def _refill(self, now: float) -> float:
        if now > self._stamp:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
            self._stamp = now
        return self._level

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is available; 0 when it is available now."""
        level = self._refill(now)
        if level >= amount:
            return 0.0
        return (amount - level) / self._rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self._level -= amount

    def try_take(self, amount: float, now: float) -> float:
        """Take ``amount`` if it is available now (0 returned); else the seconds to wait."""
        level = self._refill(now)
        if level >= amount:
            self._level = level - amount
            return 0.0
        return (amount - level) / self._rate


class KeyLimits:
    """RPM and TPM budgets for every team (per process: see the README on workers)."""

    __slots__ = ("_requests", "_rpm", "_tokens", "_tpm")

    def __init__(self, rpm: int, tpm: int) -> None:
        self._rpm = rpm
        self._tpm = tpm
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._rpm or self._tpm)

    def admit(self, team: str, now: float) -> tuple[str, int] | None:
        """Take one request from the team's budget, or return (limit, retry_after_seconds)."""
        if self._tpm:
            tokens = self._tokens.get(team)
            if tokens is None:
                tokens = self._tokens[team] = Bucket(self._tpm, now)
            # Admit while the balance is positive; usage is only known afterwards.
            wait = tokens.wait_for(1e-9, now)
            if wait > 0:
                return "tokens", max(1, math.ceil(wait))
        if self._rpm:
            requests = self._requests.get(team)
            if requests is None:
                requests = self._requests[team] = Bucket(self._rpm, now)
            wait = requests.try_take(1.0, now)
            if wait > 0:
                return "requests", max(1, math.ceil(wait))
        return None

    def spend_tokens(self, team: str, tokens: int, now: float) -> None:
        if self._tpm and tokens > 0:
            bucket = self._tokens.get(team)
            if bucket is None:
                bucket = self._tokens[team] = Bucket(self._tpm, now)
            bucket.take(float(tokens), now)

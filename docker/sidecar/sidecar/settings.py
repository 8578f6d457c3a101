"""Sidecar configuration, read once from ``SIDECAR_*`` environment variables."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = ["ENV_VARS", "ApiKey", "Settings", "SettingsError"]


class SettingsError(ValueError):
    """A bad environment value; the message names the variable and never echoes secrets."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class ApiKey:
    team: str
    # Only the digest is kept, so a heap dump or a debugger never shows a usable key.
    digest: bytes


_TEAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PREFIX_RE = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SECRET_VARS = frozenset({"SIDECAR_API_KEYS", "SIDECAR_FALLBACK_API_KEY"})


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "0.0.0.0"  # noqa: S104 - the ALB reaches the task on its private address
    port: int = Field(8080, ge=0, le=65535)
    upstream_url: str = "http://127.0.0.1:8000"
    route_prefix: str = ""
    api_keys: SecretStr = SecretStr("")
    allow_no_auth: bool = False
    rpm: int = Field(0, ge=0)
    tpm: int = Field(0, ge=0)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_inflight: int = Field(1024, ge=0)
    workers: int = Field(1, ge=1, le=64)
    fallback_url: str = ""
    fallback_api_key: SecretStr = SecretStr("")
    fallback_model: str = ""
    connect_timeout: float = Field(3.0, gt=0, le=600)
    first_byte_timeout: float = Field(300.0, gt=0, le=86400)
    idle_timeout: float = Field(60.0, gt=0, le=86400)
    total_timeout: float = Field(900.0, gt=0, le=86400)
    drain_seconds: float = Field(25.0, ge=0, le=3600)
    keepalive_seconds: float = Field(15.0, gt=0, le=3600)
    header_timeout: float = Field(10.0, gt=0, le=3600)
    body_timeout: float = Field(30.0, gt=0, le=3600)
    # The plan's estimate of how long the engine takes from container start to ready
    # (image, weights, engine start); while it is not ready, requests get 503 with a
    # Retry-After derived from it.
    engine_start_seconds: float = Field(120.0, ge=0, le=86400)
    http_keepalive_seconds: float = Field(620.0, gt=0, le=86400)
    emf_namespace: str = Field("modelfleet", min_length=1, max_length=255)
    emf_interval: float = Field(10.0, ge=0, le=3600)
    # Where EMF documents go: "" for stdout (ECS's awslogs driver extracts them), or the
    # CloudWatch agent's EMF listener, udp://HOST:PORT (EKS: the node's agent on 25888).
    emf_endpoint: str = ""
    model_name: str = ""
    service_name: str = "modelfleet-sidecar"

    @field_validator("upstream_url", "fallback_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("emf_endpoint")
    @classmethod
    def _emf_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^udp://[^\s/:]+:\d{1,5}$", value):
            raise ValueError("expected udp://HOST:PORT (the CloudWatch agent's EMF listener)")
        return value

    @field_validator("route_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not _PREFIX_RE.match(value):
            raise ValueError("expected a single path segment such as /llama-8b")
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator(
        "connect_timeout",
        "first_byte_timeout",
        "idle_timeout",
        "total_timeout",
        "drain_seconds",
        "keepalive_seconds",
        "header_timeout",
        "body_timeout",
        "engine_start_seconds",
        "http_keepalive_seconds",
        "emf_interval",
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("expected a finite number of seconds")
        return value

    def keys(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_keys.get_secret_value())

    @property
    def fallback_enabled(self) -> bool:
        return bool(self.fallback_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for var, field in ENV_VARS.items():
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            if field in _BOOL_FIELDS:
                values[field] = _parse_bool(var, raw)
            else:
                values[field] = raw.strip()
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise _first_error(exc) from None
        settings._check_cross_fields()
        return settings

    def _check_cross_fields(self) -> None:
        if not self.keys() and not self.allow_no_auth:
            raise SettingsError(
                "SIDECAR_API_KEYS",
                "no API keys configured; set team:key entries, or SIDECAR_ALLOW_NO_AUTH=1 "
                "for local development only",
            )
        if self.fallback_url and not self.fallback_model:
            raise SettingsError(
                "SIDECAR_FALLBACK_MODEL", "required when SIDECAR_FALLBACK_URL is set"
            )
        if self.total_timeout < self.first_byte_timeout:
            raise SettingsError(
                "SIDECAR_TOTAL_TIMEOUT", "must be at least SIDECAR_FIRST_BYTE_TIMEOUT"
            )


ENV_VARS: dict[str, str] = {
    "SIDECAR_HOST": "host",
    "SIDECAR_PORT": "port",
    "SIDECAR_UPSTREAM_URL": "upstream_url",
    "SIDECAR_ROUTE_PREFIX": "route_prefix",
    "SIDECAR_API_KEYS": "api_keys",
    "SIDECAR_ALLOW_NO_AUTH": "allow_no_auth",
    "SIDECAR_RPM": "rpm",
    "SIDECAR_TPM": "tpm",
    "SIDECAR_MAX_BODY_BYTES": "max_body_bytes",
    "SIDECAR_MAX_INFLIGHT": "max_inflight",
    "SIDECAR_WORKERS": "workers",
    "SIDECAR_FALLBACK_URL": "fallback_url",
    "SIDECAR_FALLBACK_API_KEY": "fallback_api_key",
    "SIDECAR_FALLBACK_MODEL": "fallback_model",
    "SIDECAR_CONNECT_TIMEOUT": "connect_timeout",
    "SIDECAR_FIRST_BYTE_TIMEOUT": "first_byte_timeout",
    "SIDECAR_IDLE_TIMEOUT": "idle_timeout",
    "SIDECAR_TOTAL_TIMEOUT": "total_timeout",
    "SIDECAR_DRAIN_SECONDS": "drain_seconds",
    "SIDECAR_KEEPALIVE_SECONDS": "keepalive_seconds",
    "SIDECAR_HEADER_TIMEOUT": "header_timeout",
    "SIDECAR_BODY_TIMEOUT": "body_timeout",
    "SIDECAR_ENGINE_START_SECONDS": "engine_start_seconds",
    "SIDECAR_HTTP_KEEPALIVE_SECONDS": "http_keepalive_seconds",
    "SIDECAR_EMF_NAMESPACE": "emf_namespace",
    "SIDECAR_EMF_INTERVAL": "emf_interval",
    "SIDECAR_EMF_ENDPOINT": "emf_endpoint",
    "SIDECAR_MODEL_NAME": "model_name",
    "SIDECAR_SERVICE_NAME": "service_name",
}
_FIELD_TO_VAR = {field: var for var, field in ENV_VARS.items()}
_BOOL_FIELDS = frozenset({"allow_no_auth"})


def _parse_bool(var: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(var, f"expected 1 or 0, got {raw!r}")


def _first_error(exc: ValidationError) -> SettingsError:
    error = exc.errors(include_url=False, include_input=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    var = _FIELD_TO_VAR.get(field, field)
    message = str(error["msg"]).removeprefix("Value error, ")
    if var not in _SECRET_VARS:
        value = exc.errors(include_url=False)[0].get("input")
        if isinstance(value, str):
            message = f"{message} (got {value!r})"
    return SettingsError(var, message)


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    keys: list[ApiKey] = []
    seen: set[bytes] = set()
    for position, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        team, sep, key = entry.partition(":")
        team, key = team.strip(), key.strip()
        # Positions, never values: the variable holds secrets.
        if not sep or not team or not key:
            raise ValueError(f"entry {position + 1} is not in team:key form")
        if not _TEAM_RE.match(team):
            raise ValueError(f"entry {position + 1} has an invalid team name")
        if len(key) < 8:
            raise ValueError(f"entry {position + 1} has a key shorter than 8 characters")
        digest = hashlib.sha256(key.encode()).digest()
        if digest in seen:
            raise ValueError(f"entry {position + 1} repeats a key")
        seen.add(digest)
        keys.append(ApiKey(team=team, digest=digest))
    return tuple(keys)

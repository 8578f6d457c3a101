"""``python -m sidecar``: validate the environment, then serve with uvicorn."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from .settings import Settings, SettingsError

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _log_config() -> dict[str, Any]:
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "stream": "ext://sys.stdout",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "sidecar.observability.JsonLogFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "sidecar": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"sidecar: invalid configuration: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from .app import EMF_LOCK_ENV
    from .serving import SidecarHttpProtocol

    scratch: str | None = None
    if settings.workers > 1:
        # Workers are separate processes: Prometheus aggregates through files here, and
        # one worker at a time holds the lock that lets it publish QueueDepth.
        scratch = tempfile.mkdtemp(prefix="sidecar-")
        os.environ[_MULTIPROC_ENV] = scratch
        os.environ[EMF_LOCK_ENV] = os.path.join(scratch, "emf.lock")
    try:
        uvicorn.run(
            "sidecar.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http=SidecarHttpProtocol,
            lifespan="on",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            # Longer than the ALB idle timeout, so the ALB (not us) closes idle connections
            # and never sends a request on a socket we are closing (a spurious 502).
            timeout_keep_alive=int(settings.http_keepalive_seconds),
            # The drain step has already waited; this bounds the final close.
            timeout_graceful_shutdown=2,
            log_config=_log_config(),
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m sidecar`` with a record of how each proxied request was served.

Test-only: it wraps ``Gateway.serve_direct`` (the callback path) and ``Gateway._resume``
(its hand-over to a task) and prints one JSON line per call, which the harness collects
with the sidecar's own log lines. Nothing else changes: the same app, protocol and
uvicorn as ``python -m sidecar``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sidecar import proxy
from sidecar.__main__ import main


def _request_id(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return str(value.decode())
    return None


def _install() -> None:
    serve_direct = proxy.Gateway.serve_direct
    resume = proxy.Gateway._resume

    def spied_direct(self: proxy.Gateway, route: Any, cycle: Any, body: bytes) -> bool:
        served = serve_direct(self, route, cycle, body)
        record = {"msg": "spy", "direct": served, "request_id": _request_id(cycle.scope)}
        print(json.dumps(record), flush=True)
        return served

    def spied_resume(self: proxy.Gateway, ex: Any, *args: Any, **kwargs: Any) -> Any:
        cut = kwargs.get("cut")
        record = {
            "msg": "spy",
            "resume": type(cut).__name__ if cut is not None else "opened",
            "code": getattr(cut, "code", None),
            "status": getattr(kwargs.get("opened"), "status", None),
            "request_id": ex.request_id.decode(),
        }
        print(json.dumps(record), flush=True)
        return resume(self, ex, *args, **kwargs)

    proxy.Gateway.serve_direct = spied_direct  # type: ignore[method-assign]
    proxy.Gateway._resume = spied_resume  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    sys.exit(main())

"""Application assembly: FastAPI for the control routes, the Gateway in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType

import aiohttp
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import error_body
from .observability import DatagramWriter, EmfPublisher, LineWriter, Metrics
from .proxy import Gateway
from .serving import configure as configure_serving
from .settings import Settings

__all__ = ["EMF_LOCK_ENV", "build_app", "create_app"]

log = logging.getLogger("sidecar")

# Set by the launcher when several workers share one engine; see EmfPublisher._is_leader.
EMF_LOCK_ENV = "SIDECAR_INTERNAL_EMF_LOCK"
# After the drain budget, how long requests that were cut get to send their error.
_CUT_GRACE = 1.0


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def build_app(settings: Settings) -> Gateway:
    writer = LineWriter()
    metrics = Metrics()
    gateway_ref: list[Gateway] = []

    async def fetch_engine_metrics() -> str:
        session = gateway_ref[0].session
        assert session is not None
        async with session.get(
            gateway_ref[0].metrics_url, timeout=aiohttp.ClientTimeout(total=5)
        ) as resp:
            resp.raise_for_status()
            return await resp.text()

    emf = (
        EmfPublisher(
            namespace=settings.emf_namespace,
            service=settings.service_name,
            model=settings.model_name,
            writer=DatagramWriter(settings.emf_endpoint) if settings.emf_endpoint else writer,
            fetch_metrics=fetch_engine_metrics,
            metrics=metrics,
            lock_path=os.environ.get(EMF_LOCK_ENV) or None,
        )
        if settings.emf_interval > 0
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gateway = gateway_ref[0]
        await gateway.start()
        restore = _install_drain_handler(gateway)
        emf_task = asyncio.create_task(emf.run(settings.emf_interval)) if emf is not None else None
        log.info("sidecar ready to serve; upstream %s", settings.upstream_url)
        try:
            yield
        finally:
            if emf_task is not None:
                emf_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await emf_task
            if emf is not None:
                emf.close()
            restore()
            await gateway.stop()
            writer.flush()

    api = FastAPI(
        title="modelfleet sidecar",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @api.get("/health")
    async def health() -> Response:
        return _json(200, b'{"status":"ok"}')

    @api.get("/ready")
    async def ready() -> Response:
        gateway = gateway_ref[0]
        if gateway.draining:
            return _json(503, b'{"status":"draining"}')
        session = gateway.session
        assert session is not None
        try:
            async with session.get(
                gateway.health_url, timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            return _json(503, b'{"status":"engine not ready"}')
        # The load balancer may ask before the gateway's own probe does; serve at once.
        gateway.engine.ready = True
        return _json(200, b'{"status":"ready"}')

    @api.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        code = "not_found" if exc.status_code == 404 else "http_error"
        return _json(exc.status_code, error_body(exc.status_code, message, code))

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _json(400, error_body(400, "Invalid request", "invalid_request_error"))

    gateway = Gateway(settings, api, metrics=metrics, writer=writer, emf=emf)
    gateway_ref.append(gateway)
    return gateway


def _install_drain_handler(gateway: Gateway) -> Callable[[], None]:
    """Chain a drain step in front of the server's own SIGTERM handling.

    uvicorn stops accepting and cancels in-flight work on SIGTERM. First the sidecar turns
    unready (so the load balancer stops sending), keeps serving, and waits until in-flight
    requests finish or the drain budget runs out; then it hands the signal to uvicorn.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    tasks: list[asyncio.Task[None]] = []

    def forward() -> None:
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    async def drain() -> None:
        budget = gateway.settings.drain_seconds
        log.info("SIGTERM: draining for up to %.1fs, %d in flight", budget, gateway.open_requests)
        if not await gateway.wait_idle(budget):
            # Budget spent: end what is left with an error (an SSE error event at an
            # event boundary, or a 503), so no stream looks finished when it was cut.
            cut = gateway.cut("drain")
            log.warning("drain budget spent; ending %d request(s) with an error", cut)
            await gateway.wait_idle(_CUT_GRACE)
        log.info("drain finished with %d in flight; shutting down", gateway.open_requests)
        forward()

    def start_drain() -> None:
        if tasks:
            # A second SIGTERM: stop waiting.
            forward()
            return
        gateway.draining = True
        tasks.append(loop.create_task(drain()))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Python runs this between bytecodes of the main thread; defer to the loop.
        loop.call_soon_threadsafe(start_drain)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore


def create_app() -> Gateway:
    """uvicorn factory: each worker process builds its app from the environment."""
    settings = Settings.from_env(os.environ)
    configure_serving(header_timeout=settings.header_timeout)
    return build_app(settings)

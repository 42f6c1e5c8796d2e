"""The kiosk's FastAPI app: pages, static files and the JSON API under ``/api/`` (docs/kiosk.md).

``create_app(config, analyzer)`` wires a :class:`~.store.Store` and an
:class:`~.analysis.AnalysisQueue` into a :class:`~.context.KioskContext` and includes the routers
(``routes_pages``, ``routes_auth``, ``routes_encounters``, ``routes_export``,
``routes_admin``, ``routes_bundles``). Handlers never run
inference themselves: uploads are sniffed, size-checked, queued for a worker thread and stored
(media file, then one committed transaction) before the 201.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from hai_edge import __version__
from hai_edge.apps.kiosk.analysis import AnalysisQueue, Analyzer
from hai_edge.apps.kiosk.config import KioskConfig
from hai_edge.apps.kiosk.context import (STATIC, KioskContext, MicFactory, default_mic,
                                         kiosk_mic_available)
from hai_edge.apps.kiosk.routes_admin import admin_routes, void_routes
from hai_edge.apps.kiosk.routes_auth import session_routes, user_routes
from hai_edge.apps.kiosk.routes_bundles import bundle_routes
from hai_edge.apps.kiosk.routes_encounters import capture_routes, encounter_routes
from hai_edge.apps.kiosk.routes_export import export_routes
from hai_edge.apps.kiosk.routes_pages import page_routes
from hai_edge.apps.kiosk.store import Store
from hai_edge.apps.kiosk.updates import BundleSlots
from hai_edge.apps.kiosk.web import ApiError, BodyLimit, HostCheck, SecurityHeaders, error_response
from hai_edge.errors import HaiEdgeError, InputError

__all__ = ["create_app"]


def create_app(config: KioskConfig, analyzer: Analyzer, *, mic_factory: MicFactory | None = None,
               tls_ca: Path | None = None) -> FastAPI:
    """The ASGI app. ``tls_ca``: the CA certificate offered on /phone when serving HTTPS."""
    ctx = _context(config, analyzer, mic_factory, tls_ca)
    app = FastAPI(title="hai-edge kiosk", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=_lifespan(ctx))
    app.state.store, app.state.jobs, app.state.config = ctx.store, ctx.jobs, config
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    if config.allowed_hosts:
        app.add_middleware(HostCheck, allowed=config.allowed_hosts)
    app.add_middleware(SecurityHeaders, hsts=config.https)
    _add_error_handlers(app)
    app.include_router(page_routes(ctx))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (session_routes(ctx), user_routes(ctx), encounter_routes(ctx),
                   capture_routes(ctx), export_routes(ctx), void_routes(ctx), admin_routes(ctx),
                   bundle_routes(ctx, BundleSlots(config.data_dir))):
        app.include_router(router)
    return app


def _context(config: KioskConfig, analyzer: Analyzer, mic_factory: MicFactory | None,
             tls_ca: Path | None) -> KioskContext:
    """Open the store (sweep, retention), the secret for subject pseudonyms and the queue."""
    store = Store(config.data_dir)
    store.sweep()
    store.apply_retention(config.retention_days)
    pseudonym_key = store.secret("pseudonym")
    jobs = AnalysisQueue(analyzer, depth=config.queue_depth, workers=config.workers,
                         photo_workers=config.photo_workers)
    if mic_factory is None:
        mic_factory = default_mic
        mic_ok = config.mic_enabled and kiosk_mic_available(config.mic_device)
    else:
        mic_ok = config.mic_enabled
    return KioskContext(config=config, analyzer=analyzer, store=store, jobs=jobs,
                        pseudonym_key=pseudonym_key, mic_factory=mic_factory, mic_ok=mic_ok,
                        tls_ca=tls_ca)


def _lifespan(ctx: KioskContext) -> Any:
    """Hourly retention while the app runs; on shutdown stop the queue, analyzer and store."""
    stop = threading.Event()

    def retention_loop() -> None:
        while not stop.wait(3600):
            ctx.store.apply_retention(ctx.config.retention_days)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        t = threading.Thread(target=retention_loop, name="kiosk-retention", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            ctx.jobs.close()
            ctx.analyzer.close()
            ctx.store.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": "<one line>", "status": <code>}`` (docs/kiosk.md)."""

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_r: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(InputError)
    async def _input_error(_r: Request, exc: InputError) -> Response:
        return error_response(422, str(exc))

    @app.exception_handler(HaiEdgeError)
    async def _hai_error(_r: Request, exc: HaiEdgeError) -> Response:
        return error_response(500, str(exc))

    @app.exception_handler(Exception)
    async def _bug(_r: Request, exc: Exception) -> Response:  # logged by uvicorn, one line here
        return error_response(500, f"internal error: {type(exc).__name__}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

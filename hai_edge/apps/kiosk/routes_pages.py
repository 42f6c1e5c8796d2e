"""Kiosk routes: the single-page app, the favicon, the shared message catalogue (/shared/) and
the phone-pairing pages (/phone, /ca.pem)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from hai_edge.apps.kiosk.context import SHARED_UI, STATIC, KioskContext
from hai_edge.apps.kiosk.web import ApiError

__all__ = ["SHARED_FILES", "page_routes"]

SHARED_FILES = {"messages.json": "application/json",
                "plain.js": "text/javascript; charset=utf-8"}


def page_routes(ctx: KioskContext) -> APIRouter:
    """``/``, ``/favicon.ico``, ``/phone`` and ``/ca.pem`` (the static files are mounted by
    ``create_app``)."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    @router.get("/shared/{name}", include_in_schema=False)
    async def shared(name: str) -> Response:
        """The message catalogue and helpers the phone app uses too (one wording)."""
        if name not in SHARED_FILES:
            raise ApiError(404, "not found")
        return FileResponse(SHARED_UI / name, media_type=SHARED_FILES[name],
                            headers={"cache-control": "no-cache"})

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @router.get("/phone", include_in_schema=False)
    async def phone(request: Request) -> Response:
        from hai_edge.apps.kiosk.pages import phone_page

        return Response(phone_page(str(request.base_url), ctx.tls_ca), media_type="text/html")

    @router.get("/ca.pem", include_in_schema=False)
    async def ca_pem() -> Response:
        if ctx.tls_ca is None:
            raise ApiError(404, "this kiosk is not serving HTTPS, so there is no CA to install")
        return Response(ctx.tls_ca.read_bytes(), media_type="application/x-x509-ca-cert",
                        headers={"content-disposition":
                                 'attachment; filename="hai-edge-kiosk-ca.crt"'})

    return router

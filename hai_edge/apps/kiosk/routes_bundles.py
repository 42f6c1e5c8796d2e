"""Admin routes for the kiosk's models: which bundles it serves, install a signed update, roll
back (docs/kiosk.md, docs/security.md). The update itself is :mod:`.updates`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hai_edge.apps.kiosk.context import KioskContext
from hai_edge.apps.kiosk.updates import BundleSlots, InstallResult, Slot, UpdateError
from hai_edge.apps.kiosk.web import ApiError, BodyTooLarge

__all__ = ["bundle_routes"]

_MAX_UPDATE_BYTES = 256 * 1024 * 1024


def _result(res: InstallResult) -> dict[str, Any]:
    return {"modality": res.slot.value, "installed": res.installed, "previous": res.previous}


async def _archive(request: Request) -> bytes:
    try:
        form = await request.form(max_files=1, max_fields=2)
    except BodyTooLarge:
        raise
    except Exception:  # malformed multipart (starlette raises several kinds)
        raise ApiError(400, "expected a multipart/form-data upload with a 'file' field") from None
    up = form.get("file")
    if up is None or isinstance(up, str):
        raise ApiError(400, "expected a multipart/form-data upload with a 'file' field")
    data = await up.read(_MAX_UPDATE_BYTES + 1)
    await up.close()
    if not data or len(data) > _MAX_UPDATE_BYTES:
        raise ApiError(400, "the update must be a non-empty .zip or .tar.gz of a bundle folder")
    return data


def bundle_routes(ctx: KioskContext, slots: BundleSlots) -> APIRouter:
    """``GET /api/admin/bundles``, ``POST /api/admin/bundles`` (upload) and
    ``POST /api/admin/bundles/{modality}/rollback``; admins only, CSRF as every POST."""
    router = APIRouter()

    def switch(res: InstallResult) -> None:
        if hasattr(ctx.analyzer, "replace_bundle"):
            ctx.analyzer.replace_bundle(res.slot.value, res.bundle)

    @router.get("/api/admin/bundles")
    async def bundles(request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        state = await run_in_threadpool(slots.state)
        return JSONResponse({"serving": ctx.analyzer.info(), "installed": state,
                             "trusted_keys": sorted((await run_in_threadpool(
                                 slots.trust_store)).keys)})

    @router.post("/api/admin/bundles")
    async def install(request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        data = await _archive(request)
        try:
            res = await run_in_threadpool(slots.install, data)
            await run_in_threadpool(switch, res)
        except UpdateError as exc:
            raise ApiError(400, str(exc)) from None
        return JSONResponse(_result(res))

    @router.post("/api/admin/bundles/{modality}/rollback")
    async def rollback(modality: str, request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        if modality not in {s.value for s in Slot}:
            raise ApiError(404, f"no bundle slot {modality!r} (audio or image)")
        try:
            res = await run_in_threadpool(slots.rollback, modality)
            await run_in_threadpool(switch, res)
        except UpdateError as exc:
            raise ApiError(409, str(exc)) from None
        return JSONResponse(_result(res))

    return router

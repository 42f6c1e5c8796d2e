"""Kiosk routes: export of encounters (zip download or a folder under the export root) and the
retention policy run on demand."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hai_edge.apps.kiosk.context import KioskContext
from hai_edge.apps.kiosk.audit import AuditAction
from hai_edge.apps.kiosk.export import (ExportPathError, build_export, export_name, without_voided,
                                       write_export_dir, zip_export)
from hai_edge.apps.kiosk.web import ApiError, field, json_body

__all__ = ["export_routes"]


def export_routes(ctx: KioskContext) -> APIRouter:
    """``/api/export`` and ``/api/retention/apply`` (admin)."""
    router = APIRouter()

    @router.post("/api/export")
    async def export(request: Request) -> Response:
        op = await ctx.op_async(request)
        body = await json_body(request)
        ids = field(body, "encounter_ids", list)
        if not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 10000:
            raise ApiError(400, "encounter_ids must be a non-empty list of encounter ids")
        dest = field(body, "destination", str, "download")
        with_emb = field(body, "embeddings", bool, True)
        with_voided = field(body, "include_voided", bool, False)
        if dest not in ("download", "folder"):
            raise ApiError(400, "destination must be 'download' or 'folder'")
        folder = field(body, "folder", str, "", max_len=255) if dest == "folder" else ""
        encs = []
        for eid in dict.fromkeys(ids):
            encs.append(await ctx.load_encounter(eid))
        encs = without_voided(encs, with_voided)
        if not encs:
            raise ApiError(400, "every selected encounter is voided: nothing to export (tick "
                                "'include voided records' to export them anyway)")
        files = await run_in_threadpool(build_export, ctx.store, encs, with_emb)
        name = export_name()
        detail = (f"{dest} {name}: {len(encs)} encounter(s)"
                  + (", voided included" if with_voided else "") + ": "
                  + " ".join(e.id for e in encs))
        await run_in_threadpool(ctx.store.audit, op.user.username, AuditAction.EXPORT, "export",
                                name, detail[:2000])
        if dest == "download":
            blob = await run_in_threadpool(zip_export, files, name)
            return Response(blob, media_type="application/zip", headers={
                "content-disposition": f'attachment; filename="{name}.zip"'})
        try:
            out = await run_in_threadpool(write_export_dir, ctx.config.exports, folder or ".",
                                          files, name)
        except ExportPathError as exc:
            raise ApiError(400, str(exc)) from None
        except FileExistsError:
            raise ApiError(409, "an export with this name already exists; try again") from None
        except OSError as exc:
            raise ApiError(500, f"export failed: {exc.strerror}") from None
        rel = out.resolve().relative_to(ctx.config.exports.resolve())
        return JSONResponse({"folder": str(rel), "export_root": str(ctx.config.exports),
                             "files": sorted(files), "encounters": len(encs)}, status_code=201)

    @router.post("/api/retention/apply")
    async def retention(request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        n = await run_in_threadpool(ctx.store.apply_retention, ctx.config.retention_days)
        return JSONResponse({"deleted_media": n, "retention_days": ctx.config.retention_days})

    return router

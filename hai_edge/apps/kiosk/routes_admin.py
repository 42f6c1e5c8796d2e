"""Kiosk routes for corrections and administration (docs/kiosk.md): void an encounter or a
capture (any signed-in operator, with a reason), the operators page's actions (admins: disable,
enable, reset a PIN) and the audit log (admins: read, download as CSV). Same session, CSRF and
Origin rules as every other route."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.audit import AuditAction, audit_csv
from hai_edge.apps.kiosk.context import KioskContext
from hai_edge.apps.kiosk.store import StoreError
from hai_edge.apps.kiosk.web import ApiError, field, json_body

__all__ = ["admin_routes", "void_routes"]

_MAX_REASON = 500


async def _reason(request: Request) -> str:
    body = await json_body(request)
    reason = " ".join(field(body, "reason", str, "", max_len=_MAX_REASON).split())
    if not reason:
        raise ApiError(400, "say why this is voided (field 'reason')")
    return reason


def _conflict_or_missing(exc: StoreError) -> ApiError:
    msg = str(exc)
    return ApiError(409 if "already" in msg else 404, msg)


def void_routes(ctx: KioskContext) -> APIRouter:
    """``POST /api/encounters/{eid}/void`` and ``POST /api/encounters/{eid}/captures/{cid}/void``
    with ``{"reason": "..."}``: the record stays, marked, and leaves exports."""
    router = APIRouter()

    @router.post("/api/encounters/{eid}/void")
    async def void_encounter(eid: str, request: Request) -> Response:
        op = await ctx.op_async(request)
        reason = await _reason(request)
        try:
            await run_in_threadpool(ctx.store.void_encounter, eid, op.user.username, reason)
        except StoreError as exc:
            raise _conflict_or_missing(exc) from None
        return JSONResponse((await ctx.load_encounter(eid)).to_dict())

    @router.post("/api/encounters/{eid}/captures/{cid}/void")
    async def void_capture(eid: str, cid: str, request: Request) -> Response:
        op = await ctx.op_async(request)
        reason = await _reason(request)
        try:
            await run_in_threadpool(ctx.store.void_capture, eid, cid, op.user.username, reason)
        except StoreError as exc:
            raise _conflict_or_missing(exc) from None
        return JSONResponse((await ctx.load_encounter(eid)).to_dict())

    return router


def admin_routes(ctx: KioskContext) -> APIRouter:
    """``/api/users/{username}/disable|enable|password`` and ``/api/audit`` (+ ``/export``)."""
    router = APIRouter()

    async def change(request: Request, username: str, action: AuditAction,
                     pw_hash: str | None = None) -> Response:
        op = await ctx.op_async(request, admin=True)
        if action is AuditAction.USER_DISABLE:
            if username.lower() == op.user.username.lower():
                raise ApiError(409, "you cannot disable your own account")
            admins = await run_in_threadpool(ctx.store.active_admins)
            if [a.lower() for a in admins] == [username.lower()]:
                raise ApiError(409, "this is the last active admin; add another admin first")
        try:
            await run_in_threadpool(ctx.store.user_change, username, op.user.username, action,
                                    pw_hash)
        except StoreError as exc:
            raise ApiError(404, str(exc)) from None
        user = await run_in_threadpool(ctx.store.user, username)
        return JSONResponse({"user": user.admin_dict() if user else None})

    @router.post("/api/users/{username}/disable")
    async def disable(username: str, request: Request) -> Response:
        return await change(request, username, AuditAction.USER_DISABLE)

    @router.post("/api/users/{username}/enable")
    async def enable(username: str, request: Request) -> Response:
        return await change(request, username, AuditAction.USER_ENABLE)

    @router.post("/api/users/{username}/password")
    async def reset_pin(username: str, request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        secret = field(await json_body(request), "password", str, max_len=auth.MAX_SECRET_LEN)
        problem = auth.validate_password(secret)
        if problem:
            raise ApiError(400, problem)
        pw_hash = await run_in_threadpool(auth.hash_password, secret)
        return await change(request, username, AuditAction.USER_RESET_PIN, pw_hash)

    @router.get("/api/audit")
    async def audit(request: Request, limit: int = 200, offset: int = 0) -> Response:
        await ctx.op_async(request, admin=True)
        total, entries = await run_in_threadpool(ctx.store.audit_log, max(1, min(limit, 1000)),
                                                 max(0, offset))
        return JSONResponse({"total": total, "items": [e.to_dict() for e in entries]})

    @router.post("/api/audit/export")
    async def audit_export(request: Request) -> Response:
        op = await ctx.op_async(request, admin=True)
        await run_in_threadpool(ctx.store.audit, op.user.username, AuditAction.AUDIT_EXPORT,
                                "audit", "all")
        _total, entries = await run_in_threadpool(ctx.store.audit_log, None)
        name = time.strftime("hai-edge-kiosk-audit-%Y%m%dT%H%M%SZ", time.gmtime())
        return Response(audit_csv(entries), media_type="text/csv", headers={
            "content-disposition": f'attachment; filename="{name}.csv"'})

    return router

"""Kiosk routes: health, session, first-run setup, sign-in/out, users and kiosk info
(docs/kiosk.md)."""

from __future__ import annotations

import functools
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hai_edge import __version__
from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.audit import AuditAction
from hai_edge.apps.kiosk.config import is_loopback
from hai_edge.apps.kiosk.context import KioskContext
from hai_edge.apps.kiosk.store import StoreError
from hai_edge.apps.kiosk.web import ApiError, Operator, check_csrf, field, json_body

__all__ = ["session_routes", "user_routes"]


def _anonymous_csrf(request: Request) -> None:
    check_csrf(request, request.cookies.get(auth.CSRF_COOKIE))


def session_routes(ctx: KioskContext) -> APIRouter:
    """``/api/health``, ``/api/session``, ``/api/setup``, ``/api/login``, ``/api/logout``."""
    router = APIRouter()

    @router.get("/api/health")
    async def health() -> Response:
        return JSONResponse({"ok": True, "version": __version__,
                             "schema": ctx.store.schema_versions(), "queue": ctx.jobs.pending()})

    @router.get("/api/session")
    async def session(request: Request) -> Response:
        try:
            op: Operator | None = await ctx.op_async(request)
        except ApiError:
            op = None
        setup = (await run_in_threadpool(ctx.store.count_users)) == 0
        csrf = op.csrf if op else (request.cookies.get(auth.CSRF_COOKIE) or auth.new_token())
        resp = JSONResponse({"user": op.user.to_dict() if op else None, "setup_required": setup,
                             "csrf": csrf})
        if request.cookies.get(auth.CSRF_COOKIE) != csrf:
            resp.set_cookie(auth.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                            secure=ctx.config.https, path="/")
        return resp

    @router.post("/api/setup")
    async def setup(request: Request) -> Response:
        _anonymous_csrf(request)
        client = request.client.host if request.client else ""
        if not is_loopback(client):
            raise ApiError(403, "first-run setup is only allowed on the kiosk itself "
                                "(http://127.0.0.1), or use `hai-edge kiosk adduser`")
        body = await json_body(request)
        name = field(body, "username", str, max_len=64)
        secret = field(body, "password", str, max_len=auth.MAX_SECRET_LEN)
        for problem in (auth.validate_username(name), auth.validate_password(secret)):
            if problem:
                raise ApiError(400, problem)
        pw_hash = await run_in_threadpool(auth.hash_password, secret)

        def create() -> Any:
            if ctx.store.count_users():
                raise ApiError(409, "setup is already done; sign in")
            return ctx.store.add_user(name, pw_hash, "admin", actor=name)

        user = await run_in_threadpool(create)
        token, csrf = await run_in_threadpool(ctx.new_session, user.id)
        resp = JSONResponse({"user": user.to_dict(), "csrf": csrf}, status_code=201)
        ctx.set_session_cookies(resp, token, csrf)
        return resp

    @router.post("/api/login")
    async def login(request: Request) -> Response:
        _anonymous_csrf(request)
        body = await json_body(request)
        name = field(body, "username", str, max_len=64)
        secret = field(body, "password", str, max_len=auth.MAX_SECRET_LEN)
        user = await run_in_threadpool(ctx.store.user, name)
        if user is None:
            await run_in_threadpool(auth.burn_time, secret)
            raise ApiError(401, "wrong user name or PIN/password")
        if user.locked_until > time.time():
            wait = int(user.locked_until - time.time()) + 1
            raise ApiError(429, f"too many failed sign-ins: account locked for {wait} s "
                                "(an admin can unlock it)", {"retry-after": str(wait)})
        ok = await run_in_threadpool(auth.verify_password, secret, user.pw_hash)
        user = await run_in_threadpool(ctx.store.record_login, user.id, ok, ctx.config.max_failures,
                                       ctx.config.lockout_s)
        if not ok:
            raise ApiError(401, "wrong user name or PIN/password")
        if user.disabled:
            raise ApiError(403, "this account is disabled: ask an admin")
        token, csrf = await run_in_threadpool(ctx.new_session, user.id)
        resp = JSONResponse({"user": user.to_dict(), "csrf": csrf})
        ctx.set_session_cookies(resp, token, csrf)
        return resp

    @router.post("/api/logout")
    async def logout(request: Request) -> Response:
        op = await ctx.op_async(request)
        await run_in_threadpool(ctx.store.delete_session, op.token_hash)
        resp = Response(status_code=204)
        resp.delete_cookie(auth.SESSION_COOKIE, path="/")
        return resp

    return router


def user_routes(ctx: KioskContext) -> APIRouter:
    """``/api/users`` (admin), ``/api/users/{username}/unlock`` (admin), ``/api/info``."""
    router = APIRouter()

    @router.get("/api/users")
    async def list_users(request: Request) -> Response:
        await ctx.op_async(request, admin=True)
        return JSONResponse({"users": [u.admin_dict() for u in
                                       await run_in_threadpool(ctx.store.users)]})

    @router.post("/api/users")
    async def add_user(request: Request) -> Response:
        op = await ctx.op_async(request, admin=True)
        body = await json_body(request)
        name = field(body, "username", str, max_len=64)
        secret = field(body, "password", str, max_len=auth.MAX_SECRET_LEN)
        role = field(body, "role", str, "operator")
        if role not in ("admin", "operator"):
            raise ApiError(400, "role must be 'admin' or 'operator'")
        for problem in (auth.validate_username(name), auth.validate_password(secret)):
            if problem:
                raise ApiError(400, problem)
        pw_hash = await run_in_threadpool(auth.hash_password, secret)
        try:
            user = await run_in_threadpool(functools.partial(ctx.store.add_user, name, pw_hash,
                                                             role, actor=op.user.username))
        except StoreError as exc:
            raise ApiError(409, str(exc)) from None
        return JSONResponse({"user": user.to_dict()}, status_code=201)

    @router.post("/api/users/{username}/unlock")
    async def unlock(username: str, request: Request) -> Response:
        op = await ctx.op_async(request, admin=True)
        try:
            await run_in_threadpool(ctx.store.user_change, username, op.user.username,
                                    AuditAction.USER_UNLOCK)
        except StoreError as exc:
            raise ApiError(404, str(exc)) from None
        return Response(status_code=204)

    @router.get("/api/info")
    async def info(request: Request) -> Response:
        await ctx.op_async(request)
        return JSONResponse({
            "version": __version__, "analyzer": ctx.analyzer.info(), "https": ctx.config.https,
            "mic": ctx.mic_ok, "retention_days": ctx.config.retention_days,
            "limits": {"photo_bytes": ctx.config.max_photo_bytes,
                       "audio_bytes": ctx.config.max_audio_bytes,
                       "mic_seconds": ctx.config.max_mic_seconds,
                       "queue_depth": ctx.config.queue_depth},
            "export_root": str(ctx.config.exports)})

    return router

"""The kiosk's FastAPI app: pages, static files and the JSON API under ``/api/`` (docs/kiosk.md).

``create_app(config, analyzer)`` wires a :class:`~.store.Store`, an :class:`~.analysis.AnalysisQueue`
and the routes. Handlers never run inference themselves: uploads are sniffed, size-checked, queued
for a worker thread and stored (media file, then one committed transaction) before the 201.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from hai_edge import __version__
from hai_edge.errors import HaiEdgeError, InputError
from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.analysis import Analysis, AnalysisQueue, Analyzer, Kind, Overloaded, sniff
from hai_edge.apps.kiosk.config import KioskConfig, is_loopback
from hai_edge.apps.kiosk.export import ExportPathError, build_export, export_name, write_export_dir, zip_export
from hai_edge.apps.kiosk.store import Store, StoreError
from hai_edge.apps.kiosk.web import (
    ApiError,
    BodyLimit,
    BodyTooLarge,
    HostCheck,
    Operator,
    SecurityHeaders,
    check_csrf,
    current_operator,
    error_response,
    field,
    json_body,
)

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
MicFactory = Callable[[int, "str | None"], Any]


def _b32(data: bytes, n: int) -> str:
    v = int.from_bytes(data, "big")
    return "".join(_B32[(v >> (5 * i)) & 31] for i in range(n))


def _wav_bytes(samples: Any, rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _default_mic(rate: int, device: str | None) -> Any:
    from hai_edge.runtime.mic import MicCapture

    dev: int | str | None = int(device) if device and device.isdigit() else device
    return MicCapture(rate, dev, meter=False)


def create_app(config: KioskConfig, analyzer: Analyzer, *, mic_factory: MicFactory | None = None,
               tls_ca: Path | None = None) -> FastAPI:
    """The ASGI app. ``tls_ca``: the CA certificate offered on /phone when serving HTTPS."""
    store = Store(config.data_dir)
    store.sweep()
    store.apply_retention(config.retention_days)
    pseudonym_key = store.secret("pseudonym")
    jobs = AnalysisQueue(analyzer, depth=config.queue_depth, workers=config.workers,
                         photo_workers=config.photo_workers)
    mic_lock = threading.Lock()
    if mic_factory is None:
        import importlib.util

        mic_factory = _default_mic
        mic_ok = config.mic_enabled and importlib.util.find_spec("sounddevice") is not None
    else:
        mic_ok = config.mic_enabled
    stop = threading.Event()

    def retention_loop() -> None:
        while not stop.wait(3600):
            store.apply_retention(config.retention_days)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        t = threading.Thread(target=retention_loop, name="kiosk-retention", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            jobs.close()
            analyzer.close()
            store.close()

    app = FastAPI(title="hai-edge kiosk", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.jobs, app.state.config = store, jobs, config
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    if config.allowed_hosts:
        app.add_middleware(HostCheck, allowed=config.allowed_hosts)
    app.add_middleware(SecurityHeaders, hsts=config.https)

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

    def operator(request: Request, admin: bool = False) -> Operator:
        return current_operator(store, request, config.session_idle_s, config.session_max_s,
                                admin)

    async def op_async(request: Request, admin: bool = False) -> Operator:
        return await run_in_threadpool(operator, request, admin)

    def set_session_cookies(resp: Response, token: str, csrf: str) -> None:
        secure = config.https
        resp.set_cookie(auth.SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure, path="/", max_age=int(config.session_max_s))
        resp.set_cookie(auth.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                        secure=secure, path="/")

    def pseudonym(ref: str) -> str:
        norm = " ".join(ref.split()).upper()
        return "P-" + _b32(hmac.new(pseudonym_key, norm.encode(), hashlib.sha256).digest(), 10)

    # ------------------------------------------------------------------------------- pages
    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/phone", include_in_schema=False)
    async def phone(request: Request) -> Response:
        from hai_edge.apps.kiosk.pages import phone_page

        return Response(phone_page(str(request.base_url), tls_ca), media_type="text/html")

    @app.get("/ca.pem", include_in_schema=False)
    async def ca_pem() -> Response:
        if tls_ca is None:
            raise ApiError(404, "this kiosk is not serving HTTPS, so there is no CA to install")
        return Response(tls_ca.read_bytes(), media_type="application/x-x509-ca-cert",
                        headers={"content-disposition":
                                 'attachment; filename="hai-edge-kiosk-ca.crt"'})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ------------------------------------------------------------------------ session/auth
    @app.get("/api/health")
    async def health() -> Response:
        return JSONResponse({"ok": True, "version": __version__,
                             "schema": store.schema_versions(), "queue": jobs.pending()})

    @app.get("/api/session")
    async def session(request: Request) -> Response:
        try:
            op: Operator | None = await op_async(request)
        except ApiError:
            op = None
        setup = (await run_in_threadpool(store.count_users)) == 0
        csrf = op.csrf if op else (request.cookies.get(auth.CSRF_COOKIE) or auth.new_token())
        resp = JSONResponse({"user": op.user.to_dict() if op else None, "setup_required": setup,
                             "csrf": csrf})
        if request.cookies.get(auth.CSRF_COOKIE) != csrf:
            resp.set_cookie(auth.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                            secure=config.https, path="/")
        return resp

    def anonymous_csrf(request: Request) -> None:
        check_csrf(request, request.cookies.get(auth.CSRF_COOKIE))

    def new_session(user_id: int) -> tuple[str, str]:
        token, csrf = auth.new_token(), auth.new_token()
        store.create_session(auth.token_hash(token), user_id, csrf)
        return token, csrf

    @app.post("/api/setup")
    async def setup(request: Request) -> Response:
        anonymous_csrf(request)
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
            if store.count_users():
                raise ApiError(409, "setup is already done; sign in")
            return store.add_user(name, pw_hash, "admin")

        user = await run_in_threadpool(create)
        token, csrf = await run_in_threadpool(new_session, user.id)
        resp = JSONResponse({"user": user.to_dict(), "csrf": csrf}, status_code=201)
        set_session_cookies(resp, token, csrf)
        return resp

    @app.post("/api/login")
    async def login(request: Request) -> Response:
        anonymous_csrf(request)
        body = await json_body(request)
        name = field(body, "username", str, max_len=64)
        secret = field(body, "password", str, max_len=auth.MAX_SECRET_LEN)
        user = await run_in_threadpool(store.user, name)
        if user is None:
            await run_in_threadpool(auth.burn_time, secret)
            raise ApiError(401, "wrong user name or PIN/password")
        if user.locked_until > time.time():
            wait = int(user.locked_until - time.time()) + 1
            raise ApiError(429, f"too many failed sign-ins: account locked for {wait} s "
                                "(an admin can unlock it)", {"retry-after": str(wait)})
        ok = await run_in_threadpool(auth.verify_password, secret, user.pw_hash)
        user = await run_in_threadpool(store.record_login, user.id, ok, config.max_failures,
                                       config.lockout_s)
        if not ok:
            raise ApiError(401, "wrong user name or PIN/password")
        token, csrf = await run_in_threadpool(new_session, user.id)
        resp = JSONResponse({"user": user.to_dict(), "csrf": csrf})
        set_session_cookies(resp, token, csrf)
        return resp

    @app.post("/api/logout")
    async def logout(request: Request) -> Response:
        op = await op_async(request)
        await run_in_threadpool(store.delete_session, op.token_hash)
        resp = Response(status_code=204)
        resp.delete_cookie(auth.SESSION_COOKIE, path="/")
        return resp

    @app.get("/api/users")
    async def list_users(request: Request) -> Response:
        await op_async(request, admin=True)
        return JSONResponse({"users": [u.to_dict() for u in
                                       await run_in_threadpool(store.users)]})

    @app.post("/api/users")
    async def add_user(request: Request) -> Response:
        await op_async(request, admin=True)
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
            user = await run_in_threadpool(store.add_user, name, pw_hash, role)
        except StoreError as exc:
            raise ApiError(409, str(exc)) from None
        return JSONResponse({"user": user.to_dict()}, status_code=201)

    @app.post("/api/users/{username}/unlock")
    async def unlock(username: str, request: Request) -> Response:
        await op_async(request, admin=True)
        try:
            await run_in_threadpool(store.unlock, username)
        except StoreError as exc:
            raise ApiError(404, str(exc)) from None
        return Response(status_code=204)

    @app.get("/api/info")
    async def info(request: Request) -> Response:
        await op_async(request)
        return JSONResponse({
            "version": __version__, "analyzer": analyzer.info(), "https": config.https,
            "mic": mic_ok, "retention_days": config.retention_days,
            "limits": {"photo_bytes": config.max_photo_bytes,
                       "audio_bytes": config.max_audio_bytes,
                       "mic_seconds": config.max_mic_seconds, "queue_depth": config.queue_depth},
            "export_root": str(config.exports)})

    # -------------------------------------------------------------------------- encounters
    @app.post("/api/encounters")
    async def create_encounter(request: Request) -> Response:
        op = await op_async(request)
        body = await json_body(request)
        ref = field(body, "subject_ref", str, "", max_len=128).strip()
        note = field(body, "note", str, "", max_len=500).strip()
        request_id = field(body, "request_id", str, "", max_len=64) or None
        subject = pseudonym(ref) if ref else "R-" + _b32(secrets.token_bytes(8), 10)
        enc, created = await run_in_threadpool(store.create_encounter, subject, note,
                                               op.user.id, request_id)
        return JSONResponse(enc.to_dict(), status_code=201 if created else 200)

    @app.get("/api/encounters")
    async def list_encounters(request: Request, q: str = "", limit: int = 50,
                              offset: int = 0) -> Response:
        await op_async(request)
        q = q.strip()[:128]
        subjects = [pseudonym(q)] if q else []
        total, items = await run_in_threadpool(store.search, q, subjects,
                                               max(1, min(limit, 500)), max(0, offset))
        return JSONResponse({"total": total, "items": [e.to_dict(captures=False)
                                                       for e in items]})

    async def load_encounter(eid: str) -> Any:
        enc = await run_in_threadpool(store.encounter, eid)
        if enc is None:
            raise ApiError(404, f"no encounter {eid!r}")
        return enc

    @app.get("/api/encounters/{eid}")
    async def get_encounter(eid: str, request: Request) -> Response:
        await op_async(request)
        return JSONResponse((await load_encounter(eid)).to_dict())

    async def analyse_and_store(eid: str, kind: Kind, data: bytes, name: str, source: str
                                ) -> Response:
        mime = sniff(data, kind)
        if mime is None:
            what = ("an image (JPEG, PNG, WebP, BMP, TIFF, GIF or DICOM)" if kind is Kind.PHOTO
                    else "an audio file (WAV, FLAC, OGG, MP3 or AIFF)")
            raise ApiError(415, f"{name}: not {what}")
        try:
            fut = jobs.submit(kind, data, name)
        except Overloaded as exc:
            raise ApiError(503, str(exc), {"retry-after": str(exc.retry_after_s)}) from None
        try:
            res: Analysis = await asyncio.wrap_future(fut)
        except InputError as exc:
            raise ApiError(422, str(exc)) from None
        except HaiEdgeError as exc:
            raise ApiError(503, str(exc)) from None
        emb = res.embeddings.astype("<f4", copy=False)
        rows, dim = (emb.shape[0], emb.shape[1]) if emb.ndim == 2 else (0, 0)
        try:
            cap = await run_in_threadpool(store.add_capture, eid, kind.value, source, name, data,
                                          mime, res.result, emb.tobytes(), rows, dim)
        except StoreError as exc:
            raise ApiError(500, str(exc)) from None
        return JSONResponse(cap.to_dict(), status_code=201)

    async def upload(request: Request, kind: Kind) -> tuple[bytes, str]:
        limit = config.max_photo_bytes if kind is Kind.PHOTO else config.max_audio_bytes
        try:
            form = await request.form(max_files=1, max_fields=4)
        except BodyTooLarge:
            raise
        except Exception:  # malformed multipart (starlette raises several kinds)
            raise ApiError(400, "expected a multipart/form-data upload with a 'file' field") \
                from None
        up = form.get("file")
        if up is None or isinstance(up, str):
            raise ApiError(400, "expected a multipart/form-data upload with a 'file' field")
        data = await up.read(limit + 1)
        await up.close()
        if len(data) > limit:
            raise ApiError(413, f"{kind.value} upload is larger than the "
                                f"{limit / (1024 * 1024):.0f} MiB limit")
        if not data:
            raise ApiError(422, f"{up.filename or 'upload'}: empty file (0 bytes)")
        name = Path(up.filename or f"{kind.value}.bin").name[:128] or f"{kind.value}.bin"
        return data, name

    @app.post("/api/encounters/{eid}/photo")
    async def add_photo(eid: str, request: Request) -> Response:
        await op_async(request)
        await load_encounter(eid)
        data, name = await upload(request, Kind.PHOTO)
        source = request.query_params.get("source", "upload")
        if source not in ("upload", "camera"):
            source = "upload"
        return await analyse_and_store(eid, Kind.PHOTO, data, name, source)

    @app.post("/api/encounters/{eid}/cough")
    async def add_cough(eid: str, request: Request) -> Response:
        await op_async(request)
        await load_encounter(eid)
        data, name = await upload(request, Kind.COUGH)
        source = request.query_params.get("source", "upload")
        if source not in ("upload", "browser-mic"):
            source = "upload"
        return await analyse_and_store(eid, Kind.COUGH, data, name, source)

    @app.post("/api/encounters/{eid}/cough/mic")
    async def add_cough_mic(eid: str, request: Request) -> Response:
        await op_async(request)
        await load_encounter(eid)
        if not config.mic_enabled:
            raise ApiError(503, "the kiosk's own microphone is disabled (--no-mic)")
        body = await json_body(request)
        seconds = field(body, "seconds", float, 5.0)
        if not 0.5 <= seconds <= config.max_mic_seconds:
            raise ApiError(400, f"seconds must be between 0.5 and {config.max_mic_seconds:g}")
        rate = int(getattr(analyzer, "cough_sample_rate", 16000))
        if not mic_lock.acquire(blocking=False):
            raise ApiError(409, "the kiosk microphone is already recording")
        try:
            def record() -> bytes:
                cap = mic_factory(rate, config.mic_device)
                return _wav_bytes(cap.record(seconds), rate)

            wav = await run_in_threadpool(record)
        except HaiEdgeError as exc:
            raise ApiError(503, str(exc)) from None
        finally:
            mic_lock.release()
        return await analyse_and_store(eid, Kind.COUGH, wav, "kiosk-mic.wav", "kiosk-mic")

    @app.get("/api/media/{sha256}")
    async def media(sha256: str, request: Request) -> Response:
        await op_async(request)
        found = await run_in_threadpool(store.media_info, sha256) if len(sha256) == 64 else None
        if found is None:
            raise ApiError(404, "no such media")
        mime, deleted = found
        if deleted:
            raise ApiError(410, "this media file was deleted by the retention policy; "
                                "its results are kept")
        return Response(await run_in_threadpool(store.media.read, sha256), media_type=mime,
                        headers={"cache-control": "private, max-age=3600",
                                 "content-disposition": "inline"})

    # ------------------------------------------------------------------------------ export
    @app.post("/api/export")
    async def export(request: Request) -> Response:
        await op_async(request)
        body = await json_body(request)
        ids = field(body, "encounter_ids", list)
        if not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 10000:
            raise ApiError(400, "encounter_ids must be a non-empty list of encounter ids")
        dest = field(body, "destination", str, "download")
        with_emb = field(body, "embeddings", bool, True)
        if dest not in ("download", "folder"):
            raise ApiError(400, "destination must be 'download' or 'folder'")
        folder = field(body, "folder", str, "", max_len=255) if dest == "folder" else ""
        encs = []
        for eid in dict.fromkeys(ids):
            encs.append(await load_encounter(eid))
        files = await run_in_threadpool(build_export, store, encs, with_emb)
        name = export_name()
        if dest == "download":
            blob = await run_in_threadpool(zip_export, files, name)
            return Response(blob, media_type="application/zip", headers={
                "content-disposition": f'attachment; filename="{name}.zip"'})
        try:
            out = await run_in_threadpool(write_export_dir, config.exports, folder or ".",
                                          files, name)
        except ExportPathError as exc:
            raise ApiError(400, str(exc)) from None
        except FileExistsError:
            raise ApiError(409, "an export with this name already exists; try again") from None
        except OSError as exc:
            raise ApiError(500, f"export failed: {exc.strerror}") from None
        rel = out.resolve().relative_to(config.exports.resolve())
        return JSONResponse({"folder": str(rel), "export_root": str(config.exports),
                             "files": sorted(files), "encounters": len(encs)}, status_code=201)

    @app.post("/api/retention/apply")
    async def retention(request: Request) -> Response:
        await op_async(request, admin=True)
        n = await run_in_threadpool(store.apply_retention, config.retention_days)
        return JSONResponse({"deleted_media": n, "retention_days": config.retention_days})

    return app

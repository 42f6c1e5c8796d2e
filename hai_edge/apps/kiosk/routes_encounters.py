"""Kiosk routes: encounters, their photo and cough captures (upload, browser or kiosk microphone)
and the stored media. Uploads are analysed off the request threads (``AnalysisQueue``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hai_edge.apps.kiosk.analysis import Analysis, Kind, Overloaded, sniff
from hai_edge.apps.kiosk.context import KioskContext, b32, wav_bytes
from hai_edge.apps.kiosk.store import StoreError
from hai_edge.apps.kiosk.web import ApiError, BodyTooLarge, field, json_body
from hai_edge.apps.messages import message
from hai_edge.errors import HaiEdgeError, InputError

__all__ = ["analyse_and_store", "capture_routes", "encounter_routes", "upload"]

log = logging.getLogger("hai_edge.kiosk")


def encounter_routes(ctx: KioskContext) -> APIRouter:
    """``/api/encounters`` (create, search), ``/api/encounters/{eid}``, ``/api/media/{sha256}``."""
    router = APIRouter()

    @router.post("/api/encounters")
    async def create_encounter(request: Request) -> Response:
        op = await ctx.op_async(request)
        body = await json_body(request)
        ref = field(body, "subject_ref", str, "", max_len=128).strip()
        note = field(body, "note", str, "", max_len=500).strip()
        request_id = field(body, "request_id", str, "", max_len=64) or None
        subject = ctx.pseudonym(ref) if ref else "R-" + b32(secrets.token_bytes(8), 10)
        enc, created = await run_in_threadpool(functools.partial(
            ctx.store.create_encounter, subject, note, op.user.id, request_id,
            actor=op.user.username))
        return JSONResponse(enc.to_dict(), status_code=201 if created else 200)

    @router.get("/api/encounters")
    async def list_encounters(request: Request, q: str = "", limit: int = 50,
                              offset: int = 0) -> Response:
        await ctx.op_async(request)
        q = q.strip()[:128]
        subjects = [ctx.pseudonym(q)] if q else []
        total, items = await run_in_threadpool(ctx.store.search, q, subjects,
                                               max(1, min(limit, 500)), max(0, offset))
        return JSONResponse({"total": total, "items": [e.to_dict(captures=False)
                                                       for e in items]})

    @router.get("/api/encounters/{eid}")
    async def get_encounter(eid: str, request: Request) -> Response:
        await ctx.op_async(request)
        return JSONResponse((await ctx.load_encounter(eid)).to_dict())

    @router.get("/api/media/{sha256}")
    async def media(sha256: str, request: Request) -> Response:
        await ctx.op_async(request)
        found = await run_in_threadpool(ctx.store.media_info, sha256) if len(sha256) == 64 else None
        if found is None:
            raise ApiError(404, "no such media")
        mime, deleted = found
        if deleted:
            raise ApiError(410, "this media file was deleted by the retention policy; "
                                "its results are kept")
        return Response(await run_in_threadpool(ctx.store.media.read, sha256), media_type=mime,
                        headers={"cache-control": "private, max-age=3600",
                                 "content-disposition": "inline"})

    return router


async def analyse_and_store(ctx: KioskContext, eid: str, kind: Kind, data: bytes, name: str,
                            source: str, actor: str | None = None,
                            score_anyway: bool = False) -> Response:
    """Sniff, queue for analysis, store (media file, then one transaction) -> 201 capture.
    ``score_anyway``: score heads that would be withheld (the result says so)."""
    mime = sniff(data, kind)
    if mime is None:
        what = ("an image (JPEG, PNG, WebP, BMP, TIFF, GIF or DICOM)" if kind is Kind.PHOTO
                else "an audio file (WAV, FLAC, OGG, MP3 or AIFF)")
        raise ApiError(415, f"{name}: not {what}")
    try:
        fut = ctx.jobs.submit(kind, data, name, score_anyway)
    except Overloaded as exc:
        raise ApiError(503, str(exc), {"retry-after": str(exc.retry_after_s)}) from None
    try:
        res: Analysis = await asyncio.wrap_future(fut)
    except InputError as exc:
        silent = exc.problem.startswith("audio is silent")  # the runtime's words: for the log
        raise ApiError(422, message("rec.silent") if silent else str(exc)) from None
    except HaiEdgeError as exc:
        raise ApiError(503, str(exc)) from None
    emb = res.embeddings.astype("<f4", copy=False)
    rows, dim = (emb.shape[0], emb.shape[1]) if emb.ndim == 2 else (0, 0)
    try:
        cap = await run_in_threadpool(functools.partial(
            ctx.store.add_capture, eid, kind.value, source, name, data, mime, res.result,
            emb.tobytes(), rows, dim, actor=actor))
    except StoreError as exc:
        raise ApiError(500, str(exc)) from None
    return JSONResponse(cap.to_dict(), status_code=201)

async def upload(ctx: KioskContext, request: Request, kind: Kind) -> tuple[bytes, str]:
    """The ``file`` field of a multipart upload, size-checked: (bytes, safe file name)."""
    limit = ctx.config.max_photo_bytes if kind is Kind.PHOTO else ctx.config.max_audio_bytes
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
        raise ApiError(413, message("upload.server_too_large",
                                    what=message(f"upload.what_one.{kind.value}"),
                                    limit=f"{limit / (1024 * 1024):.0f}"))
    if not data:
        raise ApiError(422, f"{up.filename or 'upload'}: empty file (0 bytes)")
    name = Path(up.filename or f"{kind.value}.bin").name[:128] or f"{kind.value}.bin"
    return data, name


def _score_anyway(request: Request) -> bool:
    """``?score_anyway=1`` (or true/yes): score heads that would be withheld."""
    return request.query_params.get("score_anyway", "").lower() in ("1", "true", "yes")


def capture_routes(ctx: KioskContext) -> APIRouter:
    """``/api/encounters/{eid}/photo``, ``.../cough`` (uploads) and ``.../cough/mic``; each
    takes ``?score_anyway=1`` (the mic route also ``"score_anyway": true`` in its body)."""
    router = APIRouter()

    @router.post("/api/encounters/{eid}/photo")
    async def add_photo(eid: str, request: Request) -> Response:
        op = await ctx.op_async(request)
        await ctx.load_encounter(eid)
        data, name = await upload(ctx, request, Kind.PHOTO)
        source = request.query_params.get("source", "upload")
        if source not in ("upload", "camera"):
            source = "upload"
        return await analyse_and_store(ctx, eid, Kind.PHOTO, data, name, source,
                                       op.user.username, _score_anyway(request))

    @router.post("/api/encounters/{eid}/cough")
    async def add_cough(eid: str, request: Request) -> Response:
        op = await ctx.op_async(request)
        await ctx.load_encounter(eid)
        data, name = await upload(ctx, request, Kind.COUGH)
        source = request.query_params.get("source", "upload")
        if source not in ("upload", "browser-mic"):
            source = "upload"
        return await analyse_and_store(ctx, eid, Kind.COUGH, data, name, source,
                                       op.user.username, _score_anyway(request))

    @router.post("/api/encounters/{eid}/cough/mic")
    async def add_cough_mic(eid: str, request: Request) -> Response:
        op = await ctx.op_async(request)
        await ctx.load_encounter(eid)
        if not ctx.mic_ok:
            raise ApiError(503, message("kiosk_mic.none"))
        body = await json_body(request)
        seconds = field(body, "seconds", float, 5.0)
        anyway = field(body, "score_anyway", bool, False) or _score_anyway(request)
        if not 0.5 <= seconds <= ctx.config.max_mic_seconds:
            raise ApiError(400, f"seconds must be between 0.5 and {ctx.config.max_mic_seconds:g}")
        rate = int(getattr(ctx.analyzer, "cough_sample_rate", 16000))
        if not ctx.mic_lock.acquire(blocking=False):
            raise ApiError(409, "the kiosk microphone is already recording")
        try:
            def record() -> bytes:
                cap = ctx.mic_factory(rate, ctx.config.mic_device)
                return wav_bytes(cap.record(seconds), rate)

            wav = await run_in_threadpool(record)
        except HaiEdgeError as exc:
            log.warning("kiosk microphone: %s", exc)
            raise ApiError(503, message("kiosk_mic.failed")) from None
        finally:
            ctx.mic_lock.release()
        return await analyse_and_store(ctx, eid, Kind.COUGH, wav, "kiosk-mic.wav", "kiosk-mic",
                                       op.user.username, anyway)

    return router

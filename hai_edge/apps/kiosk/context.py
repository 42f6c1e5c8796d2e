"""What every route of the kiosk shares: the store, the analysis queue, the settings and the
session helpers, in one object that ``create_app`` builds and hands to each router.

Route modules (``routes_*.py``) get this object instead of closing over ``create_app``'s locals,
so each group of routes is a small function of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.analysis import AnalysisQueue, Analyzer
from hai_edge.apps.kiosk.config import KioskConfig
from hai_edge.apps.kiosk.store import Store
from hai_edge.apps.kiosk.web import ApiError, Operator, current_operator

__all__ = ["SHARED_UI", "STATIC", "KioskContext", "MicFactory", "b32", "default_mic",
           "kiosk_mic_available", "wav_bytes"]

STATIC = Path(__file__).parent / "static"
SHARED_UI = Path(__file__).parent.parent / "ui_shared"  # the message catalogue + plain.js
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
MicFactory = Callable[[int, "str | None"], Any]


def b32(data: bytes, n: int) -> str:
    """``n`` Crockford base32 digits of ``data`` (subject pseudonyms and random references)."""
    v = int.from_bytes(data, "big")
    return "".join(_B32[(v >> (5 * i)) & 31] for i in range(n))


def wav_bytes(samples: Any, rate: int) -> bytes:
    """A kiosk-microphone recording as the 16-bit WAV that is stored and analysed."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def default_mic(rate: int, device: str | None) -> Any:
    from hai_edge.runtime.mic import MicCapture

    dev: int | str | None = int(device) if device and device.isdigit() else device
    return MicCapture(rate, dev, meter=False)


def kiosk_mic_available(device: str | None) -> bool:
    """Whether the kiosk has a microphone of its own: PortAudio loads and has an input device.
    Without one the page hides the kiosk-microphone button instead of offering a failure."""
    import importlib.util

    if importlib.util.find_spec("sounddevice") is None:
        return False
    try:
        import sounddevice as sd

        dev: int | str | None = int(device) if device and device.isdigit() else device
        info = sd.query_devices(dev, kind="input") if dev is not None else \
            sd.query_devices(kind="input")
        return int(dict(info).get("max_input_channels", 0)) > 0
    except Exception:  # noqa: BLE001 - no PortAudio library, no device, a bad device name
        return False


@dataclasses.dataclass(eq=False)
class KioskContext:
    """The app's shared state. ``tls_ca``: the CA certificate offered on /phone (HTTPS only)."""

    config: KioskConfig
    analyzer: Analyzer
    store: Store
    jobs: AnalysisQueue
    pseudonym_key: bytes
    mic_factory: MicFactory
    mic_ok: bool
    tls_ca: Path | None
    mic_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def operator(self, request: Request, admin: bool = False) -> Operator:
        return current_operator(self.store, request, self.config.session_idle_s,
                                self.config.session_max_s, admin)

    async def op_async(self, request: Request, admin: bool = False) -> Operator:
        return await run_in_threadpool(self.operator, request, admin)

    def set_session_cookies(self, resp: Response, token: str, csrf: str) -> None:
        secure = self.config.https
        resp.set_cookie(auth.SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure, path="/", max_age=int(self.config.session_max_s))
        resp.set_cookie(auth.CSRF_COOKIE, csrf, httponly=False, samesite="strict",
                        secure=secure, path="/")

    def new_session(self, user_id: int) -> tuple[str, str]:
        token, csrf = auth.new_token(), auth.new_token()
        self.store.create_session(auth.token_hash(token), user_id, csrf)
        return token, csrf

    def pseudonym(self, ref: str) -> str:
        norm = " ".join(ref.split()).upper()
        return "P-" + b32(hmac.new(self.pseudonym_key, norm.encode(), hashlib.sha256).digest(),
                          10)

    async def load_encounter(self, eid: str) -> Any:
        enc = await run_in_threadpool(self.store.encounter, eid)
        if enc is None:
            raise ApiError(404, f"no encounter {eid!r}")
        return enc

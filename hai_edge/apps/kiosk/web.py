"""HTTP plumbing shared by the kiosk routes: security headers (strict CSP), body-size limit,
one-line JSON errors, the signed-in operator + CSRF check, and the media-type-safe responses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.store import Store, User

__all__ = ["ApiError", "BodyLimit", "BodyTooLarge", "CSP", "HostCheck", "Operator",
           "SecurityHeaders", "check_csrf", "check_origin", "current_operator", "error_response",
           "field", "json_body"]

# Everything from our own origin; no inline scripts or styles; blob:/data: only for the photo
# preview and the QR code; no framing; forms and connections only back to the kiosk.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; font-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=(), usb=()"),
]


class ApiError(Exception):
    """An expected refusal: HTTP status + one-line message (+ headers such as Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    line = " ".join(str(message).split()) or "error"
    return JSONResponse({"error": line, "status": status}, status_code=status, headers=headers)


class SecurityHeaders:
    """Adds the CSP and friends to every response; API answers are never cached."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [h for h in _HEADERS if h[0] not in have]
                if api and b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-store"))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """400 for a Host header that is not one of the kiosk's names: a page on another site that
    re-binds its DNS name to the kiosk's address then cannot read the kiosk's answers."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
            if host not in self.allowed:
                await error_response(400, "unknown Host header")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body passes the limit; BodyLimit answers 413."""


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, by Content-Length up front and by
    counting while streaming (chunked uploads), before anything is parsed or stored."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        mb = self.limit / (1024 * 1024)
        resp = error_response(413, f"request body is larger than the {mb:.0f} MiB limit",
                              {"connection": "close"})
        await resp(scope, receive, send)


class Operator:
    """The signed-in user of a request and the CSRF token bound to their session."""

    def __init__(self, user: User, csrf: str, token_hash: str) -> None:
        self.user = user
        self.csrf = csrf
        self.token_hash = token_hash

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def check_origin(request: Request) -> None:
    """A POST whose Origin names another site is refused (on top of SameSite and CSRF)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            raise ApiError(403, "cross-origin request refused")


def check_csrf(request: Request, expected: str | None) -> None:
    check_origin(request)
    got = request.headers.get(auth.CSRF_HEADER)
    if not got:
        raise ApiError(403, f"missing CSRF token (send the {auth.CSRF_COOKIE} cookie's value "
                            f"in the X-CSRF-Token header)")
    if not auth.tokens_equal(got, expected):
        raise ApiError(403, "invalid CSRF token")


def current_operator(store: Store, request: Request, idle_s: float, max_s: float,
                     admin: bool = False) -> Operator:
    """The signed-in operator (401 otherwise); POSTs must carry the session's CSRF token."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    found = store.session(auth.token_hash(token), idle_s, max_s) if token else None
    if found is None:
        raise ApiError(401, "sign in first")
    user, csrf = found
    op = Operator(user, csrf, auth.token_hash(token or ""))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf(request, csrf)
    if admin and not op.is_admin:
        raise ApiError(403, "this needs an admin account")
    return op


async def json_body(request: Request, max_bytes: int = 64 * 1024) -> dict[str, Any]:
    """The request's JSON object (400 for anything else)."""
    raw = await request.body()
    if len(raw) > max_bytes:
        raise ApiError(413, f"JSON body is larger than {max_bytes // 1024} KiB")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def field(data: dict[str, Any], name: str, kind: type, default: Any = ..., *,
          max_len: int | None = None) -> Any:
    """One typed field of a JSON body (400 naming the field when wrong)."""
    if name not in data or data[name] is None:
        if default is ...:
            raise ApiError(400, f"missing field {name!r}")
        return default
    value = data[name]
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ApiError(400, f"field {name!r} must be a {kind.__name__}")
    if max_len is not None and len(value) > max_len:
        raise ApiError(400, f"field {name!r} is longer than {max_len}")
    return value


Handler = Callable[..., Awaitable[Response]]

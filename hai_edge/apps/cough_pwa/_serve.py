"""Static server for the built app (``hai-edge pwa serve``), standard library only.

It sends what the app needs and nothing else: explicit MIME types (``.mjs`` as JavaScript and
``.wasm`` as ``application/wasm`` whatever the system's mime tables say), COOP ``same-origin`` +
COEP ``require-corp`` + CORP ``same-origin`` on every response (cross-origin isolation, so
onnxruntime-web may use several WASM threads), ``Cache-Control: no-cache`` (the service worker is
the cache) and ``nosniff``. Browsers give a service worker and the microphone only to secure
origins: ``http://127.0.0.1`` / ``http://localhost`` count, any other host needs HTTPS
(``certfile``/``keyfile``).
"""

from __future__ import annotations

import functools
import http.server
import ipaddress
import os
import ssl
import sys
from pathlib import Path

from hai_edge.errors import HaiEdgeError

__all__ = ["MIME_TYPES", "is_loopback", "make_server"]

MIME_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm", ".onnx": "application/octet-stream",
    ".png": "image/png", ".svg": "image/svg+xml",
}
_ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """True for hosts browsers treat as potentially trustworthy over plain http."""
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    quiet = True
    isolation = True

    def end_headers(self) -> None:
        for k, v in ({**_ISOLATION, **_HEADERS} if self.isolation else _HEADERS).items():
            self.send_header(k, v)
        super().end_headers()

    def list_directory(self, path: str | os.PathLike[str]):  # noqa: ANN201
        self.send_error(404, "not found")  # no directory listings
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if not self.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # the browser went away mid-response (reload, tab closed): not our error
        super().handle_error(request, client_address)


def make_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, *,
                certfile: str | None = None, keyfile: str | None = None,
                quiet: bool = True, isolation: bool = True) -> http.server.ThreadingHTTPServer:
    """A server for ``directory`` (a built app); call ``serve_forever()`` on it.
    ``isolation=False`` leaves out COOP/COEP/CORP (single-threaded WASM; benchmarks only)."""
    root = Path(directory)
    if not (root / "index.html").is_file() or not (root / "sw.js").is_file():
        raise HaiEdgeError(f"{root}: not a built app (run `hai-edge pwa build -o DIR` first)")
    handler = type("Handler", (_Handler,), {"quiet": quiet, "isolation": isolation})
    try:
        server = _Server((host, port), functools.partial(handler, directory=str(root)))
    except OSError as exc:
        raise HaiEdgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise HaiEdgeError(f"{certfile}: cannot load the TLS certificate ({exc})") from None
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server

"""Run the kiosk on uvicorn: bind the socket ourselves (clean one-line error when the port is
taken), set up HTTPS for non-loopback hosts, print where to point the browser."""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.apps.kiosk.config import KioskConfig, is_loopback

__all__ = ["bind_socket", "installed_bundles", "serve"]


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise HaiEdgeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _allowed_hosts(host: str, tls_names: Sequence[str]) -> tuple[str, ...]:
    names = {"127.0.0.1", "localhost", "::1", *tls_names}
    if host not in ("0.0.0.0", "::"):
        names.add(host)
    return tuple(sorted(names))


def _one_blas_thread() -> None:
    """Requests run in parallel worker threads; a multi-threaded BLAS inside each (numpy's
    image resize) only oversubscribes the cores (measured: 31 vs 75 ms per photo resize on 2
    busy cores). Best effort: threadpoolctl is part of the kiosk extra."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def installed_bundles(config: KioskConfig, cough: Path | None, photo: Path | None,
                      explicit: Sequence[str] = ()) -> tuple[Path | None, Path | None]:
    """The bundles to serve: an update installed on this kiosk (self-tested now, rolled back if
    it fails) replaces the default for its modality; ``explicit`` modalities keep the given one."""
    from hai_edge.apps.kiosk.updates import BundleSlots, Slot

    say = lambda m: print(f"hai-edge kiosk: {m}", file=sys.stderr, flush=True)  # noqa: E731
    serving = BundleSlots(config.data_dir).start(say)
    if Slot.AUDIO in serving and "audio" not in explicit:
        cough = serving[Slot.AUDIO]
    if Slot.IMAGE in serving and "image" not in explicit:
        photo = serving[Slot.IMAGE]
    return cough, photo


def serve(config: KioskConfig, cough: Path | None, photo: Path | None, *,
          backend: str | None = None, threads: int | None = None,
          extra_names: Sequence[str] = (), insecure_http: bool = False,
          explicit: Sequence[str] = ()) -> None:
    """Serve the kiosk; ``explicit``: modalities whose bundle the operator named on the command
    line (an installed update does not replace those)."""
    import uvicorn

    from hai_edge.apps.kiosk.analysis import PipelineAnalyzer
    from hai_edge.apps.kiosk.app import create_app
    from hai_edge.apps.kiosk.store import Store

    sock = bind_socket(config.host, config.port)
    _one_blas_thread()
    tls = None
    names: list[str] = []
    if config.https:
        from hai_edge.apps.kiosk.tls import certificate_names, ensure_certificates

        try:
            tls = ensure_certificates(config.data_dir, config.host, extra_names)
        except MissingDependencyError as exc:
            sock.close()
            raise HaiEdgeError(f"{exc} (or pass --insecure-http for plain HTTP on "
                               f"{config.host}: phones then get no camera or microphone)") \
                from None
        names = certificate_names(tls.cert)
    allowed = None if insecure_http else _allowed_hosts(config.host, names)
    config = dataclasses.replace(config, allowed_hosts=allowed)
    store = Store(config.data_dir)
    key = store.secret("pseudonym")
    users = store.count_users()
    store.close()
    cough, photo = installed_bundles(config, cough, photo, explicit)
    analyzer = PipelineAnalyzer(cough, photo, backend=backend, threads=threads,
                                pseudonym_key=key)
    app = create_app(config, analyzer, tls_ca=tls.ca_cert if tls else None)
    scheme = "https" if config.https else "http"
    shown = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    info = analyzer.info()
    say = lambda m: print(f"hai-edge kiosk: {m}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"serving {scheme}://{shown}:{config.port}/  (data: {config.data_dir})")
    say(f"cough bundle: {info.get('cough', {}).get('bundle', 'none')}; photo bundle: "
        f"{info.get('photo', {}).get('bundle', 'none')} ({info['photo_pipeline']})")
    if tls is not None:
        lan = [n for n in names if not is_loopback(n) and n[0].isdigit() and ":" not in n]
        say(f"phones: open {scheme}://{lan[0] if lan else shown}:{config.port}/phone "
            "and install the CA shown there")
    if insecure_http:
        say("WARNING: plain HTTP on a network address: traffic is readable on the LAN and "
            "phones get no camera or microphone")
    if users == 0:
        say(f"no operator yet: open {scheme}://127.0.0.1:{config.port}/ on this machine, or "
            f"run `hai-edge kiosk adduser NAME --data-dir {config.data_dir}`")
    uv = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                        proxy_headers=False, timeout_graceful_shutdown=5,
                        ssl_certfile=str(tls.cert) if tls else None,
                        ssl_keyfile=str(tls.key) if tls else None)
    uvicorn.Server(uv).run(sockets=[sock])

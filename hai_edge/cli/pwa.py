"""``hai-edge pwa build|serve``: the offline cough-screening web app.

Light on purpose (``hai_edge.cli`` imports it to build the parser); the build and server code
load inside the commands.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pwa", help="build or serve the offline cough-screening web app",
        description="The cough-screening progressive web app: records a cough on a phone, finds "
                    "the events and scores them with the bundle's INT8 model in the browser, "
                    "with no network once installed. See docs/pwa.md.")
    sub = p.add_subparsers(dest="pwa_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    b = sub.add_parser("build", help="write the static app for a bundle into a directory")
    b.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (new, empty, or an earlier build, which is replaced)")
    _bundle_args(b)
    b.set_defaults(func=_cmd_build)

    s = sub.add_parser("serve", help="serve the app (offline, from the package) for a bundle")
    _bundle_args(s)
    s.add_argument("--dir", metavar="DIR", help="serve an existing build instead of building")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; phones on the LAN need "
                        "--certfile/--keyfile: browsers give no service worker or microphone "
                        "to plain http except on localhost)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    s.add_argument("--certfile", help="TLS certificate (PEM) to serve https")
    s.add_argument("--keyfile", help="TLS private key (PEM), if not in --certfile")
    s.add_argument("--verbose", "-v", action="store_true", help="log every request to stderr")
    s.set_defaults(func=_cmd_serve)


def _bundle_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--bundle", "-b", help="audio bundle (default: the built-in cough-demo)")
    q.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="which ONNX model of the bundle to ship (default int8)")


def _report(rep: Any) -> str:
    return (f"built the cough app for {rep.bundle} ({rep.model_id}) in {rep.directory}: "
            f"{len(rep.files)} files, {rep.total_bytes / 1e6:.2f} MB, version {rep.version}"
            + (" (onnxruntime-web fetched with npm ci)" if rep.ran_npm else ""))


def _cmd_build(args: argparse.Namespace) -> int:
    from hai_edge.apps.cough_pwa import build_app

    rep = build_app(args.output, args.bundle, precision=args.precision)
    print(_report(rep))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from hai_edge.apps.cough_pwa import build_app, is_loopback, make_server
    from hai_edge.errors import HaiEdgeError

    if args.keyfile and not args.certfile:
        raise HaiEdgeError("--keyfile needs --certfile")
    tmp = None
    try:
        if args.dir:
            root = args.dir
        else:
            tmp = tempfile.mkdtemp(prefix="hai-pwa-")
            rep = build_app(f"{tmp}/app", args.bundle, precision=args.precision)
            print(_report(rep), file=sys.stderr)
            root = rep.directory
        server = make_server(root, args.host, args.port, certfile=args.certfile,
                             keyfile=args.keyfile, quiet=not args.verbose)
        host, port = server.server_address[:2]
        scheme = "https" if args.certfile else "http"
        shown = f"[{host}]" if ":" in str(host) else host
        if not args.certfile and not is_loopback(args.host):
            print(f"hai-edge: warning: plain http on {args.host}: browsers on other devices get no "
                  "service worker (no offline use) and no microphone; use --certfile/--keyfile "
                  "or open http://127.0.0.1 on this machine", file=sys.stderr)
        print(f"serving the cough app at {scheme}://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
        def _stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # SIGTERM ends like Ctrl-C: the temporary build is removed

        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0

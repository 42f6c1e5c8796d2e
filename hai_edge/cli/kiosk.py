"""``hai-edge kiosk`` (serve) and ``hai-edge kiosk adduser``. Light: FastAPI, uvicorn and the
pipelines load inside the command functions."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError, MissingDependencyError

__all__ = ["register", "resolve_bundles"]


def register(subparsers: Any) -> None:
    k = subparsers.add_parser(
        "kiosk", help="offline clinic kiosk: local web app for photos and cough recordings",
        usage="hai-edge kiosk [--host H] [--port P] [--data-dir DIR] [--bundle-dir DIR] ... | "
              "hai-edge kiosk adduser USER [--admin] | hai-edge kiosk trust KEY.pub | "
              "hai-edge kiosk install-bundle PATH",
        description="Serve the kiosk web app (JSON API under /api/, see docs/kiosk.md). On the "
                    "loopback address it serves plain HTTP; on any other address HTTPS with a "
                    "locally generated CA (the /phone page shows how to install it).")
    k.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; "
                   "0.0.0.0 = every interface, HTTPS)")
    k.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    k.add_argument("--data-dir", metavar="DIR",
                   help="database, media and certificates (default $HAI_EDGE_KIOSK_DATA or "
                        "~/.local/share/hai-edge/kiosk)")
    k.add_argument("--bundle-dir", metavar="DIR",
                   help="a bundle, or a folder of bundles (one audio, one image); default: the "
                        "built-in cough-demo and derm-demo")
    k.add_argument("--cough-bundle", metavar="BUNDLE",
                   help="audio bundle for coughs (path or built-in name)")
    k.add_argument("--photo-bundle", metavar="BUNDLE",
                   help="image bundle for photos (path or built-in name)")
    k.add_argument("--backend", "-e", help="onnxruntime | openvino | tflite")
    k.add_argument("--threads", type=int, default=None,
                   help="engine threads per model (default: half the CPUs, since photos and "
                        "coughs run side by side)")
    k.add_argument("--export-root", metavar="DIR",
                   help="exports to a folder go under here (default DATA_DIR/exports), e.g. a "
                        "USB stick's mount point")
    k.add_argument("--retention-days", type=float, default=None, metavar="N",
                   help="delete photos and recordings older than N days (results are kept); "
                        "default: keep")
    k.add_argument("--https", action="store_true", help="serve HTTPS on loopback too")
    k.add_argument("--insecure-http", action="store_true",
                   help="allow plain HTTP on a non-loopback address (phones then get no camera "
                        "or microphone)")
    k.add_argument("--san", action="append", default=[], metavar="NAME",
                   help="extra host name or IP for the certificate (repeatable)")
    k.add_argument("--no-mic", action="store_true", help="disable the kiosk's own microphone")
    k.add_argument("--mic-device", metavar="DEVICE",
                   help="kiosk microphone: device index or name substring")
    k.add_argument("--queue-depth", type=int, default=16, metavar="N",
                   help="analyses waiting per kind before the kiosk answers 503 (default 16)")
    k.add_argument("--photo-workers", type=int, default=2, metavar="N",
                   help="photos analysed at once (default 2, so a photo rarely waits long "
                        "behind another; coughs: 1)")
    k.add_argument("--max-upload-mb", type=float, default=30, metavar="MB",
                   help="largest photo upload (default 30 MiB; recordings: 20 MiB)")
    k.set_defaults(func=_cmd_serve)
    sub = k.add_subparsers(dest="kiosk_command", metavar="SUBCOMMAND")
    a = sub.add_parser("adduser", help="create an operator (or admin) account",
                       usage="hai-edge kiosk adduser USER [--admin] [--data-dir DIR] "
                             "[--password-stdin] [--reset]")
    a.add_argument("username", help="the account to add (or, with --reset, to change)")
    a.add_argument("--admin", action="store_true", help="may add users and unlock accounts")
    a.add_argument("--data-dir", dest="adduser_data_dir", metavar="DIR",
                   help="as for `hai-edge kiosk`")
    a.add_argument("--password-stdin", action="store_true", help="read the PIN/password from "
                   "the first line of stdin (scripts)")
    a.add_argument("--reset", action="store_true", help="set a new PIN/password for an "
                   "existing user (and unlock it)")
    a.set_defaults(func=_cmd_adduser)
    t = sub.add_parser("trust", help="accept bundle updates signed by this publisher key",
                       usage="hai-edge kiosk trust KEY.pub [--data-dir DIR]")
    t.add_argument("key", help="the publisher's public key (from hai-edge keygen)")
    t.add_argument("--data-dir", dest="sub_data_dir", metavar="DIR", help="as for `hai-edge kiosk`")
    t.set_defaults(func=_cmd_trust)
    i = sub.add_parser("install-bundle", help="install a signed bundle update (folder, .zip or "
                       ".tar.gz), e.g. from a USB stick; checked before it replaces the current",
                       usage="hai-edge kiosk install-bundle PATH [--data-dir DIR]")
    i.add_argument("path", help="bundle folder or archive")
    i.add_argument("--data-dir", dest="sub_data_dir", metavar="DIR", help="as for `hai-edge kiosk`")
    i.set_defaults(func=_cmd_install_bundle)


def _require_kiosk_extra() -> None:
    import importlib.util

    for mod, pkg in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"),
                     ("python_multipart", "python-multipart")):
        if importlib.util.find_spec(mod) is None:
            raise MissingDependencyError("the kiosk", "kiosk", pkg)


def _data_dir(value: str | None) -> Path:
    from hai_edge.apps.kiosk.config import default_data_dir

    return Path(value).expanduser() if value else default_data_dir()


def _cmd_adduser(args: argparse.Namespace) -> int:
    from hai_edge.apps.kiosk import auth
    from hai_edge.apps.kiosk.store import Store

    data_dir = _data_dir(getattr(args, "adduser_data_dir", None) or args.data_dir)
    problem = auth.validate_username(args.username)
    if problem:
        raise HaiEdgeError(problem)
    if args.password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass(f"PIN/password for {args.username}: ")
        if getpass.getpass("again: ") != secret:
            raise HaiEdgeError("the two entries differ")
    problem = auth.validate_password(secret)
    if problem:
        raise HaiEdgeError(problem)
    store = Store(data_dir)
    try:
        pw_hash = auth.hash_password(secret)
        if args.reset:
            store.set_password(args.username, pw_hash)
            print(f"new PIN/password set for {args.username} in {data_dir}", file=sys.stderr)
        else:
            role = "admin" if args.admin or store.count_users() == 0 else "operator"
            store.add_user(args.username, pw_hash, role)
            print(f"added {role} {args.username} to {data_dir}", file=sys.stderr)
    finally:
        store.close()
    return 0


def _cmd_trust(args: argparse.Namespace) -> int:
    import shutil

    from hai_edge.apps.kiosk.updates import BundleSlots
    from hai_edge.bundle.signing import key_id, load_public_key

    slots = BundleSlots(_data_dir(args.sub_data_dir or args.data_dir))
    kid = key_id(load_public_key(args.key))
    shutil.copyfile(args.key, slots.keys / f"{kid}.pub")
    print(f"this kiosk now accepts bundle updates signed by key {kid}", file=sys.stderr)
    return 0


def _cmd_install_bundle(args: argparse.Namespace) -> int:
    from hai_edge.apps.kiosk.updates import BundleSlots

    res = BundleSlots(_data_dir(args.sub_data_dir or args.data_dir)).install(args.path)
    print(f"installed {res.installed} as the {res.slot.value} bundle (previous: "
          f"{res.previous or 'none'}); a running kiosk picks it up at its next start",
          file=sys.stderr)
    return 0


def resolve_bundles(bundle_dir: str | None, cough: str | None, photo: str | None
                    ) -> tuple[Path | None, Path | None]:
    """(audio bundle, image bundle): explicit flags win, then --bundle-dir, then built-ins."""
    from hai_edge.bundle import MANIFEST_NAME, Bundle, builtin_bundles, resolve_bundle

    found: dict[str, list[Path]] = {"audio": [], "image": []}
    if bundle_dir:
        root = Path(bundle_dir)
        if not root.is_dir():
            raise HaiEdgeError(f"{root}: --bundle-dir is not a directory")
        dirs = [root] if (root / MANIFEST_NAME).is_file() else \
            sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file())
        if not dirs:
            raise HaiEdgeError(f"{root}: no bundle (manifest.json) in this folder or its "
                               "sub-folders")
        for d in dirs:
            found[Bundle.load(d, verify=False).manifest.modality.value].append(d.resolve())
    picked: dict[str, Path | None] = {}
    for modality, flag, builtin in (("audio", cough, "cough-demo"),
                                    ("image", photo, "derm-demo")):
        if flag:
            picked[modality] = resolve_bundle(flag)
        elif found[modality]:
            if len(found[modality]) > 1:
                names = ", ".join(p.name for p in found[modality])
                which = "--cough-bundle" if modality == "audio" else "--photo-bundle"
                raise HaiEdgeError(f"{bundle_dir}: several {modality} bundles ({names}); "
                                   f"choose one with {which}")
            picked[modality] = found[modality][0]
        elif not bundle_dir and builtin in builtin_bundles():
            picked[modality] = resolve_bundle(builtin)
        else:
            picked[modality] = None
    if picked["audio"] is None and picked["image"] is None:
        raise HaiEdgeError("no bundle to run: give --bundle-dir DIR (the built-in cough-demo "
                           "and derm-demo bundles are not installed)")
    return picked["audio"], picked["image"]


def _cmd_serve(args: argparse.Namespace) -> int:
    from hai_edge.apps.kiosk.config import KioskConfig, is_loopback

    _require_kiosk_extra()
    loopback = is_loopback(args.host)
    https = args.https or (not loopback and not args.insecure_http)
    if not loopback and not https and not args.insecure_http:  # pragma: no cover (unreachable)
        raise HaiEdgeError("refusing plain HTTP on a non-loopback address")
    if not 0 < args.port < 65536:
        raise HaiEdgeError(f"--port {args.port}: must be 1-65535")
    if args.queue_depth < 1:
        raise HaiEdgeError("--queue-depth must be at least 1")
    if args.retention_days is not None and args.retention_days <= 0:
        raise HaiEdgeError("--retention-days must be positive")
    cough, photo = resolve_bundles(args.bundle_dir, args.cough_bundle, args.photo_bundle)
    config = KioskConfig(
        data_dir=_data_dir(args.data_dir), host=args.host, port=args.port,
        export_root=Path(args.export_root).expanduser() if args.export_root else None,
        retention_days=args.retention_days,
        max_photo_bytes=int(args.max_upload_mb * 1024 * 1024), queue_depth=args.queue_depth,
        https=https, mic_enabled=not args.no_mic, mic_device=args.mic_device,
        photo_workers=max(1, args.photo_workers))
    from hai_edge.apps.kiosk.server import serve

    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    explicit = [m for m, flag in (("audio", args.cough_bundle), ("image", args.photo_bundle))
                if flag]
    serve(config, cough, photo, backend=args.backend, threads=threads,
          extra_names=args.san, insecure_http=args.insecure_http and not loopback,
          explicit=explicit)
    return 0

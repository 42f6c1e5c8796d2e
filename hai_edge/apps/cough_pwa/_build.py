"""``hai-edge pwa build``: assemble the offline cough-screening web app for one bundle.

The output directory is a static site: the app's own files, the three onnxruntime-web files the
WASM execution provider loads (vendored in the package, refreshed from the lockfile with
``npm ci`` only when missing or stale), and the bundle's manifest, INT8 ONNX model, golden vectors
and head files under ``bundle/``. ``sw.js`` gets the list of every file and a version hash of their
contents, so the service worker precaches exactly what was built and a rebuild gets a new cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hai_edge.bundle import Bundle, ModelFormat, Precision, resolve_bundle, sha256_file
from hai_edge.fileio import replace_dir
from hai_edge.errors import BundleError, HaiEdgeError

__all__ = ["APP_DIR", "DEFAULT_BUNDLE", "ORT_FILES", "BuildReport", "build_app", "ensure_ort",
           "ort_version"]

APP_DIR = Path(__file__).resolve().parent
STATIC_DIR = APP_DIR / "static"
VENDOR_DIR = STATIC_DIR / "vendor" / "ort"
DEFAULT_BUNDLE = "cough-demo"
# The only onnxruntime-web files the plain WASM execution provider fetches (ESM entry, its
# worker/loader module, and the one SIMD+threads binary that serves 1 and N threads alike).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_STAMP = "ORT.json"  # {"version", "files": {name: sha256}}: what the vendored copy is
# App files, relative to static/ (sw.js is generated from its template).
APP_FILES = ("index.html", "app.js", "style.css", "capture-worklet.js", "manifest.webmanifest",
             "icon-192.png", "icon-512.png", "js/bundle.js", "js/cough.js", "js/engine.js",
             "js/events.js", "js/features.js", "js/golden.js", "js/heads.js", "js/mic.js",
             "js/render.js", "js/resample.js", "js/store.js", "js/util.js")
# The message catalogue and helpers shared with the kiosk (one wording), copied to shared/.
SHARED_DIR = APP_DIR.parent / "ui_shared"
SHARED_FILES = ("messages.json", "plain.js")
_BUILD_MARK = "app.json"


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What a build wrote: the directory, the bundle and model used, files and their bytes."""

    directory: Path
    bundle: str
    model_id: str
    version: str
    files: dict[str, int]
    ran_npm: bool

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def ort_version() -> str:
    """The onnxruntime-web version pinned by the package's lockfile."""
    lock = json.loads((APP_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/onnxruntime-web"]["version"])


def _vendored_ok(directory: Path, version: str) -> bool:
    stamp = directory / ORT_STAMP
    if not stamp.is_file():
        return False
    try:
        info = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if info.get("version") != version:
        return False
    files = info.get("files") or {}
    return all((directory / f).is_file() and files.get(f) == sha256_file(directory / f)
               for f in ORT_FILES)


def _npm_ci(dest: Path, version: str) -> None:
    """``npm ci`` of the lockfile in a scratch directory; copy the three files to ``dest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise HaiEdgeError("the vendored onnxruntime-web files are missing or stale and npm is not "
                           "installed to fetch them (install Node.js 18+ with npm, or reinstall "
                           "hai-edge)")
    with tempfile.TemporaryDirectory(prefix="hai-pwa-npm-") as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(APP_DIR / name, Path(tmp) / name)
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                              cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["npm failed"])[-1]
            raise HaiEdgeError(f"npm ci failed: {last}")
        dist = Path(tmp) / "node_modules" / "onnxruntime-web" / "dist"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ORT_FILES:
            shutil.copyfile(dist / f, dest / f)
    stamp = {"version": version, "license": "MIT (c) Microsoft Corporation",
             "files": {f: sha256_file(dest / f) for f in ORT_FILES}}
    (dest / ORT_STAMP).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")


def ensure_ort() -> tuple[Path, bool]:
    """Directory holding the pinned onnxruntime-web files, and whether npm had to run.

    The package's vendored copy when it is complete and matches the lockfile; otherwise ``npm
    ci`` refreshes it (in a source checkout) or a per-user cache (read-only installs).
    """
    version = ort_version()
    if _vendored_ok(VENDOR_DIR, version):
        return VENDOR_DIR, False
    target = VENDOR_DIR if os.access(VENDOR_DIR.parent, os.W_OK) else (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hai-edge" /
        f"onnxruntime-web-{version}")
    if target is not VENDOR_DIR and _vendored_ok(target, version):
        return target, False
    _npm_ci(target, version)
    return target, True


def _pick_model(bundle: Bundle, precision: Precision):  # noqa: ANN202
    entries = [e for e in bundle.manifest.models
               if e.format is ModelFormat.ONNX and e.precision is precision]
    if not entries:
        have = ", ".join(e.id for e in bundle.manifest.models) or "none"
        raise BundleError(f"{bundle.root}: no {precision.value.upper()} ONNX model in this bundle "
                          f"(it has: {have}); export one with `hai-edge export`")
    entry = entries[0]
    if len(entry.files) != 1:
        raise BundleError(f"{bundle.root}: model {entry.id} uses ONNX external data, which the "
                          "web app does not load; export it as a single .onnx file")
    return entry


def _bundle_files(bundle: Bundle, model_files: tuple[str, ...]) -> list[str]:
    m = bundle.manifest
    if m.modality.value != "audio":
        raise BundleError(f"{bundle.root}: bundle {m.name} is not an audio bundle; the cough app "
                          "needs one")
    if not m.golden or not m.golden.get("file"):
        raise BundleError(f"{bundle.root}: bundle has no golden vectors, so the app could not "
                          "check itself on load (re-export it)")
    names = list(model_files) + [str(m.golden["file"])]
    # probes and the detector; the manifest checked that each file is listed in its files
    names += [h.file for h in m.all_head_entries() if h.file is not None]
    return list(dict.fromkeys(names))


COMPACTED = frozenset(f for f in APP_FILES if f.endswith(".js"))


def _compact(rel: str, text: str) -> str:
    """The app's own scripts without their comment lines, the catalogue without indentation:
    every cached byte counts against the phone's budget (docs/pwa.md)."""
    if rel.endswith(".json"):
        cat = json.loads(text)
        cat.pop("about", None)
        return json.dumps(cat, separators=(",", ":"), ensure_ascii=False)
    out, in_doc = [], False
    for line in text.splitlines():
        s = line.strip()
        if in_doc:
            in_doc = not s.endswith("*/")
            continue
        if s.startswith("/**") or s.startswith("/*"):
            in_doc = not s.endswith("*/")
            continue
        if s.startswith("//"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _looks_like_build(path: Path) -> bool:
    return (path / _BUILD_MARK).is_file() and (path / "sw.js").is_file()


def build_app(out: str | os.PathLike[str], bundle: str | os.PathLike[str] | None = None, *,
              precision: str = "int8") -> BuildReport:
    """Build the app for ``bundle`` (default: built-in ``cough-demo``) into ``out``, atomically.

    An existing ``out`` is replaced only when it is empty or an earlier build of this app, so a
    typo cannot wipe an unrelated directory.
    """
    from hai_edge import __version__

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _looks_like_build(out))):
        raise HaiEdgeError(f"{out}: exists and is not an earlier build of the app; choose an "
                           "empty or new directory")
    try:
        root = resolve_bundle(bundle if bundle is not None else DEFAULT_BUNDLE)
    except BundleError:
        if bundle is None:
            raise HaiEdgeError(f"no --bundle given and the built-in {DEFAULT_BUNDLE} bundle is not "
                               "installed; pass --bundle DIR") from None
        raise
    b = Bundle.load(root, verify=True)
    entry = _pick_model(b, Precision(precision))
    names = _bundle_files(b, entry.files)
    ort_dir, ran_npm = ensure_ort()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        copies: dict[str, Path] = {rel: STATIC_DIR / rel for rel in APP_FILES}
        copies.update({f"shared/{f}": SHARED_DIR / f for f in SHARED_FILES})
        copies.update({f"vendor/ort/{f}": ort_dir / f for f in ORT_FILES})
        copies.update({f"bundle/{n}": b.path_of(n) for n in names})
        for rel, src in copies.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in COMPACTED or rel.startswith("shared/"):
                dst.write_text(_compact(rel, src.read_text(encoding="utf-8")), encoding="utf-8")
            else:
                shutil.copyfile(src, dst)
        # the manifest is not among its own hashed files: the phone gets it without indentation
        # (the same JSON, about a third smaller: every cached byte counts against the budget)
        manifest = json.loads((b.root / "manifest.json").read_text(encoding="utf-8"))
        (tmp / "bundle").mkdir(exist_ok=True)
        (tmp / "bundle/manifest.json").write_text(
            json.dumps(manifest, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        copies["bundle/manifest.json"] = tmp / "bundle/manifest.json"
        app = {"bundle": b.manifest.name, "model_id": entry.id, "bundle_files": names,
               "onnxruntime_web": ort_version(), "hai_edge_version": __version__}
        (tmp / _BUILD_MARK).write_text(json.dumps(app, indent=1) + "\n", encoding="utf-8")
        rels = sorted([*copies, _BUILD_MARK])
        digest = hashlib.sha256()
        for rel in rels:
            digest.update(rel.encode() + b"\0" + sha256_file(tmp / rel).encode())
        version = digest.hexdigest()[:16]
        precache = [f"./{r}" for r in rels]  # "./" itself is answered with index.html
        sw = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
        sw = sw.replace("'__HAI_VERSION__'", json.dumps(version)).replace(
            "__HAI_PRECACHE__", json.dumps(precache, indent=0).replace("\n", ""))
        (tmp / "sw.js").write_text(sw, encoding="utf-8")
        files = {r: (tmp / r).stat().st_size for r in [*rels, "sw.js"]}
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out.resolve(), b.manifest.name, entry.id, version, files, ran_npm)

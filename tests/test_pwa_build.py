"""`hai-edge pwa build|serve`: what the build copies, the service worker's precache list, the
vendored onnxruntime-web check, the server's headers and MIME types, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hai_edge.apps.cough_pwa import _build
from hai_edge.apps.cough_pwa import ORT_FILES, build_app, is_loopback, make_server, ort_version
from hai_edge.cli import main
from hai_edge.errors import HaiEdgeError

from ._onnx_models import make_onnx_bundle
from ._pwa_bundles import cached_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return cached_bundle(tmp_path_factory, "energy_head")


@pytest.fixture(scope="module")
def app(bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pwaapp") / "app"
    build_app(out, bundle)
    return out


def test_build_copies_only_what_the_app_uses(app, bundle) -> None:
    files = {str(p.relative_to(app)) for p in app.rglob("*") if p.is_file()}
    assert {f"vendor/ort/{f}" for f in ORT_FILES} <= files
    assert not any(f.startswith("vendor/ort/") and f.split("/")[-1] not in ORT_FILES for f in files)
    bundled = {f for f in files if f.startswith("bundle/")}
    assert bundled == {"bundle/manifest.json", "bundle/model_int8.onnx", "bundle/golden.json",
                       "bundle/heads/covid.json", "bundle/heads/cough-detector.json"}
    shipped = (app / "bundle/manifest.json").read_bytes()
    assert json.loads(shipped) == json.loads((bundle / "manifest.json").read_bytes())
    assert b"\n" not in shipped  # the same JSON without indentation (the phone's byte budget)
    for name in bundled - {"bundle/manifest.json"}:  # hashed files travel byte for byte
        assert (app / name).read_bytes() == (bundle / name.removeprefix("bundle/")).read_bytes()
    info = json.loads((app / "app.json").read_text())
    assert info["model_id"] == "onnx-int8" and info["onnxruntime_web"] == ort_version() == "1.30.0"
    # the service worker precaches exactly the built files, under a content-hash cache name
    sw = (app / "sw.js").read_text()
    precache = json.loads(re.search(r"const PRECACHE = (\[.*?\]);", sw).group(1))
    assert sorted(p[2:] for p in precache) == sorted(files - {"sw.js"})
    version = re.search(r"const VERSION = \"([0-9a-f]{16})\";", sw).group(1)
    assert "__HAI_" not in sw
    # rebuilding the same inputs gives the same version; a changed bundle a new one
    again = build_app(app.parent / "again", bundle)
    assert again.version == version and not again.ran_npm
    assert again.total_bytes == sum((app / f).stat().st_size for f in files)


def test_build_errors_are_one_line(bundle, tmp_path, capsys) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["pwa", "build", "-o", str(tmp_path / "mine"), "--bundle", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "not an earlier build" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    fp32_only = make_onnx_bundle(tmp_path / "fp32", "audio", dim=8)
    assert main(["pwa", "build", "-o", str(tmp_path / "o"), "--bundle", str(fp32_only)]) == 2
    assert "no INT8 ONNX model" in capsys.readouterr().err
    assert main(["pwa", "build", "-o", str(tmp_path / "o"), "--bundle", str(fp32_only),
                 "--precision", "fp32"]) == 2
    assert "no golden vectors" in capsys.readouterr().err
    assert main(["pwa", "build", "-o", str(tmp_path / "o"), "-b", str(tmp_path / "nope")]) == 2
    assert "no such bundle" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    from hai_edge.bundle import builtin_bundles

    if "cough-demo" not in builtin_bundles():
        assert main(["pwa", "build", "-o", str(tmp_path / "o")]) == 2
        assert "built-in cough-demo bundle is not installed" in capsys.readouterr().err
    else:  # the default bundle
        assert main(["pwa", "build", "-o", str(tmp_path / "o")]) == 0
        info = json.loads((tmp_path / "o" / "app.json").read_text())
        assert info["bundle"] == "cough-demo" and info["model_id"] == "onnx-int8"


def test_vendored_ort_is_checked_and_npm_runs_only_when_stale(tmp_path, monkeypatch) -> None:
    assert _build.ensure_ort() == (_build.VENDOR_DIR, False)  # shipped copy matches the lock
    stale = tmp_path / "vendor" / "ort"
    stale.mkdir(parents=True)
    for f in ORT_FILES:
        (stale / f).write_bytes((_build.VENDOR_DIR / f).read_bytes())
    stamp = json.loads((_build.VENDOR_DIR / _build.ORT_STAMP).read_text())
    (stale / _build.ORT_STAMP).write_text(json.dumps(stamp))
    assert _build._vendored_ok(stale, "1.30.0")
    (stale / ORT_FILES[0]).write_bytes(b"// truncated")
    assert not _build._vendored_ok(stale, "1.30.0")
    assert not _build._vendored_ok(_build.VENDOR_DIR, "1.31.0")  # lockfile moved on
    calls = []
    monkeypatch.setattr(_build, "VENDOR_DIR", stale)
    monkeypatch.setattr(_build, "_npm_ci", lambda dest, version: calls.append((dest, version)))
    assert _build.ensure_ort() == (stale, True) and calls == [(stale, "1.30.0")]
    monkeypatch.undo()
    monkeypatch.setattr(_build.shutil, "which", lambda name: None)
    with pytest.raises(HaiEdgeError, match="npm is not installed"):
        _build._npm_ci(tmp_path / "x", "1.30.0")


def test_server_sends_isolation_headers_and_mime_types(app) -> None:
    httpd = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        want = {"/": "text/html", "/app.js": "text/javascript",
                "/vendor/ort/ort.wasm.min.mjs": "text/javascript",
                "/vendor/ort/ort-wasm-simd-threaded.wasm": "application/wasm",
                "/manifest.webmanifest": "application/manifest+json",
                "/bundle/manifest.json": "application/json"}
        for path, mime in want.items():
            with urllib.request.urlopen(base + path) as r:
                assert r.headers["Content-Type"].split(";")[0] == mime, path
                assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
                assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base + "/js/")  # no directory listings
        assert exc.value.code == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("192.168.1.20") and not is_loopback("kiosk.local")


def test_serve_command_builds_from_package_data_and_serves(bundle, tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hai_edge.cli", "pwa", "serve", "--bundle",
                             str(bundle), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", line).group(1)
        with urllib.request.urlopen(url + "app.json") as r:
            assert json.loads(r.read())["bundle"] == "pwa-test-energy_head"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    bad = subprocess.run([sys.executable, "-m", "hai_edge.cli", "pwa", "serve", "--dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a built app" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_app_package_imports_no_build_side() -> None:
    code = ("import sys, hai_edge.apps.cough_pwa, hai_edge.cli.pwa\n"
            "bad = [m for m in ('torch', 'onnx', 'tensorflow', 'nncf', 'openvino', 'litert_torch')"
            " if m in sys.modules]\n"
            "assert not bad, bad")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0

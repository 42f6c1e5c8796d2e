#!/usr/bin/env python3
"""Screenshots of every page of the kiosk and the phone app at phone (390x844) and kiosk
(1280x800) sizes, for docs/kiosk.md and docs/pwa.md (issue #23). Regenerate; never edit by hand.

A real ``hai-edge kiosk`` (built-in demo bundles, ``--no-mic``) in a temporary data folder and
the phone app built for the built-in cough-demo bundle, driven by Debian's Chromium through
Python Playwright with a fake camera and a fake microphone fed a generated cough. Each shot is
the visible screen (not the whole page), stored as a 128-colour PNG to keep the docs small.

Usage: python scripts/ui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SIZES = {"phone": (390, 844), "kiosk": (1280, 800)}
USER, PIN = "admin", "docs-pin-2468"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cough_wav(path: Path, rate: int = 44100, seconds: float = 12.0) -> Path:
    """Quiet noise with three decaying bursts (coughs to the energy detector), then silence."""
    rng = np.random.default_rng(7)
    x = 0.003 * rng.standard_normal(int(seconds * rate))
    for start in (1.0, 2.2, 3.4):
        i, k = int(start * rate), int(0.3 * rate)
        x[i:i + k] += 0.5 * np.exp(-np.arange(k) / (0.07 * rate)) * rng.standard_normal(k)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -0.95, 0.95) * 32767).astype("<i2").tobytes())
    return path


def _skin_jpeg(path: Path) -> Path:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(3)
    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 196, 140, 118
    img = (img + rng.integers(0, 18, img.shape)).clip(0, 255).astype(np.uint8)
    pic = Image.fromarray(img)
    ImageDraw.Draw(pic).ellipse((260, 180, 380, 290), fill=(120, 70, 60))
    pic.save(path, "JPEG", quality=85)
    return path


@contextlib.contextmanager
def _kiosk(tmp: Path) -> Iterator[str]:
    import httpx

    port = _port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hai_edge.cli", "kiosk", "--data-dir",
                             str(tmp / "data"), "--port", str(port), "--no-mic"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the kiosk did not start")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _save(page, out: Path, name: str) -> None:
    from PIL import Image

    png = page.screenshot(full_page=False)
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(128)
    img.save(out / f"{name}.png", optimize=True)
    print(f"{out / name}.png")


def kiosk_shots(pw, out: Path, tmp: Path) -> None:
    photo, mic = _skin_jpeg(tmp / "skin.jpg"), _cough_wav(tmp / "mic.wav")
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop"])
    with _kiosk(tmp) as url:
        for size, (w, h) in SIZES.items():
            page = browser.new_context(viewport={"width": w, "height": h}).new_page()
            page.goto(url + "/")
            page.wait_for_selector("#view-setup:not([hidden]), #view-login:not([hidden])")
            if page.is_visible("#view-setup"):
                page.fill("#setup-user", USER)
                page.fill("#setup-pass", PIN)
                page.fill("#setup-pass2", PIN)
                page.click("#setup-form button[type=submit]")
                page.wait_for_selector("#view-history:not([hidden])")
                if page.is_visible("#menu-toggle"):  # phones: the nav is behind a menu
                    page.click("#menu-toggle")
                page.click("#logout")
            page.wait_for_selector("#view-login:not([hidden])")
            _save(page, out, f"kiosk-sign-in-{size}")
            page.fill("#login-user", USER)
            page.fill("#login-pass", PIN)
            page.click("#login-submit")
            page.wait_for_selector("#view-history:not([hidden])")
            page.goto(url + "/#/new")
            page.wait_for_selector("#view-new:not([hidden])")
            page.fill("#new-ref", f"CLINIC-{size.upper()}")
            _save(page, out, f"kiosk-new-encounter-{size}")
            page.click("#new-submit")
            page.wait_for_selector("#view-encounter:not([hidden])")
            page.set_input_files("#photo-file", str(photo))
            page.wait_for_selector(".capture[data-kind=photo]", timeout=60000)
            page.fill("#rec-seconds", "5")
            page.click("#rec-start")
            page.wait_for_selector(".capture[data-kind=cough]", timeout=60000)
            page.locator("#results").scroll_into_view_if_needed()
            _save(page, out, f"kiosk-results-{size}")
            page.locator(".capture[data-kind=cough] details.cap-more summary").click()
            page.locator(".capture[data-kind=cough] details.cap-more").scroll_into_view_if_needed()
            _save(page, out, f"kiosk-result-details-{size}")
            for hash_, view, name in (("#/", "history", "encounters"),
                                      ("#/operators", "operators", "operators"),
                                      ("#/audit", "audit", "activity-log")):
                page.goto(f"{url}/{hash_}")
                page.wait_for_selector(f"#view-{view}:not([hidden]) tbody tr")
                _save(page, out, f"kiosk-{name}-{size}")
            page.context.close()
    browser.close()


def pwa_shots(pw, out: Path, tmp: Path) -> None:
    from hai_edge.apps.cough_pwa import build_app, make_server

    app = tmp / "pwa"
    build_app(app)
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    mic = _cough_wav(tmp / "pwa-mic.wav")
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop"])
    try:
        for size, (w, h) in SIZES.items():
            page = browser.new_context(viewport={"width": w, "height": h}).new_page()
            page.goto(url)
            page.wait_for_function("() => window.__pwa && window.__pwa.phase === 'ready'",
                                   timeout=120000)
            _save(page, out, f"pwa-ready-{size}")
            page.click("#record")
            page.wait_for_timeout(2500)
            _save(page, out, f"pwa-recording-{size}")
            page.wait_for_function("() => ['done', 'failed'].includes(window.__pwa.phase)",
                                   timeout=120000)
            page.locator("#res-title").scroll_into_view_if_needed()
            _save(page, out, f"pwa-result-{size}")
            page.context.close()
    finally:
        browser.close()
        server.shutdown()
        server.server_close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hai-ui-shots-") as tmp, sync_playwright() as pw:
        kiosk_shots(pw, args.out, Path(tmp))
        pwa_shots(pw, args.out, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

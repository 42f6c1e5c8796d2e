"""Issue #23 for the phone app in Debian Chromium (Python Playwright): at 390x844 and 1280x800
no sideways scroll and no internal terms outside Details; a silent microphone is flagged within
3 s and Stop ends the recording early; a new recording clears the previous result; a denied
microphone says so (never "Recording: cough now")."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from hai_edge.cli import main

from ._pwa_bundles import cached_bundle, cough_wav, write_wav
from .test_kiosk_people import INTERNAL, NO_SIDE_SCROLL, SIZES, VISIBLE_TEXT
from .test_pwa_app import _Server, _wait_phase

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
READY = ("ready", "refused", "error")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pwa-people") / "app"
    bundle = cached_bundle(tmp_path_factory, "energy")
    assert main(["pwa", "build", "-o", str(out), "--bundle", str(bundle)]) == 0
    return out


@pytest.fixture(scope="module")
def pw():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


def _silent(path: Path, seconds: float = 30.0, rate: int = 44100) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), "<i2").tobytes())
    return path


def _browser(pw, wav: Path | None, allow_mic: bool = True):  # noqa: ANN202
    args = ["--use-fake-device-for-media-stream"]
    if allow_mic:
        args.append("--use-fake-ui-for-media-stream")
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def _open(browser, url: str, size: str):  # noqa: ANN202
    w, h = SIZES[size]
    ctx = browser.new_context(viewport={"width": w, "height": h})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    assert _wait_phase(page, READY) == "ready", page.evaluate("window.__pwa")
    return ctx, page, errors


def _check(page, where: str) -> None:
    sw, iw = page.evaluate(NO_SIDE_SCROLL)
    assert sw <= iw, f"{where}: scrolls sideways ({sw} > {iw})"
    text = page.evaluate(VISIBLE_TEXT)
    bad = sorted({m.group(0) for m in INTERNAL.finditer(text)})
    assert not bad, f"{where}: internal terms {bad} outside Details in: {text[:600]}"


@pytest.mark.parametrize("size", SIZES)
def test_result_page_fits_and_speaks_plainly(app, pw, tmp_path, size: str) -> None:
    wav = write_wav(tmp_path / "coughs.wav", cough_wav(44100), 44100)
    server = _Server(app)
    browser = _browser(pw, wav)
    try:
        ctx, page, errors = _open(browser, server.url, size)
        _check(page, f"{size} ready")
        assert "not for clinical use" in page.inner_text("#notices")
        page.select_option("#duration", "10")
        page.click("#record")
        page.wait_for_selector("#stop:not([hidden])")
        page.wait_for_timeout(4000)
        page.click("#stop")  # ends the 10 s recording early
        assert _wait_phase(page, ("done", "failed"), 60_000) == "done", page.evaluate("window.__pwa.error")
        captured = page.evaluate("window.__pwa.result.capture.captured_s")
        assert 3.0 < captured < 8.0, captured
        _check(page, f"{size} result")
        shown = page.inner_text("#results")
        assert "Details" in shown and ("positive" in shown or "negative" in shown)
        assert "(UTC" in page.inner_text("#history")  # local time with its offset
        page.click("#results details summary")
        sw, iw = page.evaluate(NO_SIDE_SCROLL)
        assert sw <= iw, f"{size}: open Details scroll sideways ({sw} > {iw})"
        # the next recording clears this result at once
        page.click("#record")
        page.wait_for_function("() => document.getElementById('results').textContent.includes('Recording')")
        assert "Details" not in page.inner_text("#results")
        page.click("#stop")
        _wait_phase(page, ("done", "failed"), 60_000)
        assert not errors
        ctx.close()
    finally:
        browser.close()
        server.stop()


def test_silent_microphone_is_flagged_within_3_s(app, pw, tmp_path) -> None:
    server = _Server(app)
    browser = _browser(pw, _silent(tmp_path / "silence.wav"))
    try:
        ctx, page, errors = _open(browser, server.url, "phone")
        page.click("#record")
        t0 = time.monotonic()
        page.wait_for_selector("#rec-hint.warn", timeout=3000)
        assert time.monotonic() - t0 <= 3.0
        assert "cannot hear anything" in page.inner_text("#rec-hint")
        page.click("#stop")
        assert _wait_phase(page, ("done", "failed"), 60_000) == "failed"
        msg = page.inner_text("#results")
        assert "Nothing was heard" in msg and not INTERNAL.search(msg), msg
        assert not errors
        ctx.close()
    finally:
        browser.close()
        server.stop()


def test_denied_microphone_is_said_plainly(app, pw) -> None:
    server = _Server(app)
    browser = _browser(pw, None, allow_mic=False)
    try:
        ctx, page, errors = _open(browser, server.url, "phone")
        page.click("#record")
        assert _wait_phase(page, ("done", "failed"), 30_000) == "failed"
        prompt = page.inner_text("#prompt")
        assert "cough now" not in prompt and "blocked" in prompt, prompt
        assert "blocked" in page.inner_text("#results")
        assert page.is_enabled("#record") and not page.is_visible("#stop")
        assert not errors
        ctx.close()
    finally:
        browser.close()
        server.stop()

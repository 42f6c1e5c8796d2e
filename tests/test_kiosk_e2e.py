"""End to end in headless Debian Chromium (Python Playwright, never a downloaded browser).

A real ``hai-edge kiosk`` server on tiny real bundles; Chromium's fake camera and a fake
microphone fed from a 44.1 kHz WAV (two cough-like bursts, padded with silence because
``%noloop`` otherwise repeats the last 10 ms forever, see /work/shared/notes/browser.md).
First-run setup, sign out, sign in, new encounter, photo upload, camera photo, cough recorded in
the page, results, export (download + folder), the phone page. Every request must go to the
kiosk itself. Screenshots of each page go to ``$KIOSK_E2E_ARTIFACTS`` or the test's tmp dir.
"""

from __future__ import annotations

import io
import os
import wave
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (CI installs Debian's chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[dev]')")
pytest.importorskip("fastapi")
pytest.importorskip("onnx")
httpx = pytest.importorskip("httpx")

from ._kiosk_fixtures import cough_like, jpeg_bytes
from ._kiosk_server import running_kiosk

PASSWORD = "e2e-pin-2468"
RECORD_S = 3


@pytest.fixture()
def kiosk(tmp_path: Path):
    with running_kiosk(tmp_path) as url:
        yield url, tmp_path


def _fake_mic_wav(path: Path) -> Path:
    rate = 44100
    x = cough_like(seconds=2.6, rate=rate, seed=5, tail_silence_s=RECORD_S + 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_browser_end_to_end(kiosk, tmp_path: Path) -> None:
    url, tmp = kiosk
    shots = Path(os.environ.get("KIOSK_E2E_ARTIFACTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    mic = _fake_mic_wav(tmp / "fake-mic.wav")
    photo = tmp / "lesion.jpg"
    photo.write_bytes(jpeg_bytes(320, 240, seed=9))
    own = urlsplit(url).netloc
    foreign: list[str] = []
    problems: list[str] = []

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}%noloop"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)

        def guard(route) -> None:  # anything not for the kiosk is recorded and blocked
            u = urlsplit(route.request.url)
            if u.scheme in ("http", "https", "ws", "wss") and u.netloc != own:
                foreign.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        ctx.route("**/*", guard)
        ctx.on("request", lambda r: None if urlsplit(r.url).netloc in (own, "")
               or urlsplit(r.url).scheme in ("blob", "data") else foreign.append(r.url))
        page = ctx.new_page()
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # first-run setup, then sign out and sign in again
        page.goto(url + "/")
        page.wait_for_selector("#view-setup:not([hidden])")
        shot("01-setup")
        page.fill("#setup-user", "admin")
        page.fill("#setup-pass", PASSWORD)
        page.fill("#setup-pass2", PASSWORD)
        page.click("#setup-form button[type=submit]")
        page.wait_for_selector("#view-history:not([hidden])")
        page.click("#logout")
        page.wait_for_selector("#view-login:not([hidden])")
        page.fill("#login-user", "admin")
        page.fill("#login-pass", "wrong-pin")
        page.click("#login-submit")
        page.wait_for_selector("#status.error")
        shot("02-login-refused")
        page.fill("#login-pass", PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#view-history:not([hidden])")
        shot("03-history-empty")

        # new encounter
        page.click("#history-new")
        page.wait_for_selector("#view-new:not([hidden])")
        page.fill("#new-ref", "CLINIC-0815")
        page.fill("#new-note", "e2e visit")
        shot("04-new-encounter")
        page.click("#new-submit")
        page.wait_for_selector("#view-encounter:not([hidden])")
        subject = page.inner_text("#enc-subject")
        assert subject.startswith("P-") and "0815" not in subject

        # photo upload
        page.set_input_files("#photo-file", str(photo))
        page.wait_for_selector(".capture[data-kind=photo]", timeout=30000)
        card = page.locator(".capture[data-kind=photo]").first
        assert "photo-demo" in card.locator(".findings").inner_text()  # in plain words ...
        card.locator("details.cap-more summary").click()  # ... the numbers behind "Details"
        assert "photo-demo" in card.locator(".scores").inner_text()
        assert "test head, not for clinical use" in card.locator(".notices").inner_text()
        page.wait_for_function(  # arrow functions: a string would need eval, which the CSP forbids
            "() => document.querySelector('.capture .cap-img').naturalWidth > 0")

        # photo from the (fake) camera
        page.click("#camera-start")
        page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0",
                               timeout=15000)
        shot("05-camera")
        page.click("#camera-shoot")
        page.wait_for_selector(".capture[data-kind=photo] >> text=camera: camera.jpg",
                               timeout=30000)

        # cough recorded in the page from the fake microphone
        page.fill("#rec-seconds", str(RECORD_S))
        page.click("#rec-start")
        page.wait_for_selector(".capture[data-kind=cough]", timeout=30000)
        cough = page.locator(".capture[data-kind=cough]").first
        cough.locator("details.cap-more summary").click()
        assert "cough-demo" in cough.locator(".scores").inner_text()
        assert "no cough was detected" not in cough.inner_text()
        assert "Timings (ms)" in cough.inner_text()
        shot("06-results")

        # the recording reached the server as 16-bit mono WAV at the page's 44.1 kHz
        enc_id = page.evaluate("() => location.hash").split("/")[-1]
        enc = page.evaluate(f"() => fetch('/api/encounters/{enc_id}').then(r => r.json())")
        caps = {c["source"]: c for c in enc["captures"]}
        assert set(caps) == {"upload", "camera", "browser-mic"}
        rec = caps["browser-mic"]
        assert abs(rec["result"]["duration_s"] - RECORD_S) < 0.05
        assert len(rec["result"]["events"]) >= 1
        media = page.request.get(f"{url}/api/media/{rec['media_sha256']}")  # session cookie
        assert media.ok
        with wave.open(io.BytesIO(media.body())) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (44100, 1, 2)
            got = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767.0
        assert np.abs(got).max() > 0.3  # the bursts came through (no AGC / suppression)

        # history with search, then export
        page.goto(url + "/#/")
        page.wait_for_selector("#history-rows tr")
        page.fill("#search-q", "clinic-0815")
        page.click("#search-form button")
        page.wait_for_selector("#history-count >> text=1 encounter(s)")
        page.check(f"#history-rows tr[data-id='{enc_id}'] .pick")
        with page.expect_download() as dl:
            page.click("#export-download")
        zpath = tmp / "export.zip"
        dl.value.save_as(zpath)
        names = {Path(n).name for n in zipfile.ZipFile(zpath).namelist()}
        assert {"encounters.jsonl", "captures.csv", "embeddings.npy"} <= names
        page.fill("#export-folder", "usb/e2e")
        page.click("#export-to-folder")
        page.wait_for_selector("#export-result >> text=Wrote")
        shot("07-export")
        assert list((tmp / "exports" / "usb" / "e2e").iterdir())

        page.goto(url + "/phone")
        shot("08-phone")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(f"{url}/#/encounter/{enc_id}")
        page.wait_for_selector(".capture[data-kind=cough]")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 400  # no h-scroll
        shot("09-encounter-on-a-phone")
        ctx.close()
        browser.close()

    assert foreign == [], f"requests to other hosts: {foreign}"
    real = [m for m in problems if "favicon" not in m]
    assert real == [] or all("401" in m for m in real), real  # the refused sign-in logs a 401
    assert sorted(f.name for f in shots.glob("*.png"))[0] == "01-setup.png"
    assert len(list(shots.glob("*.png"))) == 9

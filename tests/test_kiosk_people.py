"""Issue #23 in the browser (Debian Chromium, Python Playwright): the kiosk for the people who
use it. At phone (390x844) and kiosk (1280x800) sizes: no page scrolls sideways and no message
outside a Details disclosure uses internal terms; the operators page adds and unlocks an
operator; voiding a capture removes it from an export and records it in the activity log; a
silent microphone is flagged within 3 s; an over-size upload shows the kiosk's own message; times
are local with their offset."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ._kiosk_server import CHROMIUM, launch_chromium, running_kiosk, sign_in

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("fastapi")
pytest.importorskip("onnx")
httpx = pytest.importorskip("httpx")

from ._kiosk_fixtures import jpeg_bytes, wav_bytes  # noqa: E402

ADMIN, PIN = "admin", "people-pin-2468"
SIZES = {"phone": (390, 844), "kiosk": (1280, 800)}
CATALOGUE = Path(__file__).resolve().parents[1] / "hai_edge" / "apps" / "ui_shared" / "messages.json"
INTERNAL = re.compile(r"\b(RMS|dBFS|sha-?256|heads?|embeddings?|thresholds?|logits?|ONNX|PortAudio|"
                      r"inference|probabilit(y|ies)|exposure_over|exposure_under|not_skin|"
                      r"cough_events|golden|QDQ|Request Entity Too Large)\b", re.I)
# the text a person sees: rendered text nodes outside <details>, <template> and hidden elements
VISIBLE_TEXT = """() => {
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  while (w.nextNode()) {
    const p = w.currentNode.parentElement;
    if (!p || p.closest('details, template, script, style, [hidden]') || !p.getClientRects().length) continue;
    out.push(w.currentNode.textContent.trim());
  }
  return out.filter(Boolean).join(' | ');
}"""
NO_SIDE_SCROLL = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kiosk-people")
    with running_kiosk(tmp) as url:
        yield url, tmp


@pytest.fixture(scope="module")
def pw():
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw):
    b = launch_chromium(pw)
    yield b
    b.close()


def _page(browser, size: str = "kiosk", **kw):  # noqa: ANN202
    w, h = SIZES[size]
    ctx = browser.new_context(viewport={"width": w, "height": h}, accept_downloads=True, **kw)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, page, errors


def _new_encounter(page, note: str) -> str:
    page.goto(page.url.split("#")[0] + "#/new")
    page.wait_for_selector("#view-new:not([hidden])")
    page.fill("#new-note", note)
    page.click("#new-submit")
    page.wait_for_selector("#view-encounter:not([hidden])")
    return page.evaluate("() => location.hash").split("/")[-1]


def _add_photo_and_cough(page, tmp: Path) -> None:
    photo, rec = tmp / "lesion.jpg", tmp / "cough.wav"
    photo.write_bytes(jpeg_bytes(320, 240, seed=9))
    rec.write_bytes(wav_bytes())
    page.set_input_files("#photo-file", str(photo))
    page.wait_for_selector(".capture[data-kind=photo]", timeout=30000)
    page.set_input_files("#cough-file", str(rec))
    page.wait_for_selector(".capture[data-kind=cough]", timeout=30000)


def _check_page(page, where: str) -> None:
    sw, iw = page.evaluate(NO_SIDE_SCROLL)
    assert sw <= iw, f"{where}: the page scrolls sideways ({sw} > {iw} px)"
    text = page.evaluate(VISIBLE_TEXT)
    bad = sorted({m.group(0) for m in INTERNAL.finditer(text)})
    assert not bad, f"{where}: internal terms {bad} outside Details in: {text[:600]}"


def test_the_message_catalogue_is_plain_and_translatable() -> None:
    cat = json.loads(CATALOGUE.read_text())
    assert cat["default"] in cat["languages"]
    words = cat["languages"]["en"]
    for key, text in words.items():  # the keys are the code's names; the texts are shown
        assert not INTERNAL.search(text), (key, text)
    assert {"check.exposure_over", "check.level", "mic.denied", "error.413"} <= set(words)
    assert INTERNAL.search("peak window RMS -inf dBFS") and INTERNAL.search("sha256 mismatch")


@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_and_speaks_plainly(kiosk, browser, size: str) -> None:
    url, tmp = kiosk
    ctx, page, errors = _page(browser, size, timezone_id="Asia/Kolkata")
    sign_in(page, url, ADMIN, PIN)
    _check_page(page, f"{size} encounters")
    eid = _new_encounter(page, f"layout {size}")
    _add_photo_and_cough(page, tmp)
    page.wait_for_selector("#status.ok")
    _check_page(page, f"{size} encounter with results")
    card = page.locator(".capture[data-kind=photo]").first
    assert "photo-demo" in card.locator(".findings").inner_text()
    assert "not for clinical use" in card.inner_text()
    assert "(UTC+05:30)" in card.locator(".cap-when").inner_text()  # local time, offset shown
    assert not card.locator(".scores").is_visible()  # the numbers wait behind Details
    card.locator("details.cap-more summary").click()
    assert card.locator(".scores").is_visible() and "Threshold" in card.inner_text()
    sw, iw = page.evaluate(NO_SIDE_SCROLL)
    assert sw <= iw, f"{size}: open Details scroll sideways ({sw} > {iw})"
    for hash_, view in (("#/", "history"), ("#/new", "new"), ("#/operators", "operators"),
                        ("#/audit", "audit")):
        page.goto(f"{url}/{hash_}")
        page.wait_for_selector(f"#view-{view}:not([hidden])" + (" tbody tr" if view != "new" else ""))
        _check_page(page, f"{size} {view}")
    assert page.evaluate(f"() => fetch('/api/encounters/{eid}').then(r => r.json())")["counts"] \
        == {"photo": 1, "cough": 1}
    if size == "phone":  # the nav folds into a menu instead of wrapping over the page
        assert not page.is_visible("#nav-new")
        page.click("#menu-toggle")
        assert page.is_visible("#nav-new")
    assert not errors
    ctx.close()


_BORDERLINE_CARD = """async () => {
  const { renderCapture } = await import('/static/results.js');
  const score = (mean, verdict, label) => ({ mean, max: mean, count: 2, threshold: 0.7, band: 0.01,
    verdict, positive: verdict === 'positive', borderline: verdict === 'borderline', label });
  const c = { id: 'c-borderline', kind: 'cough', source: 'upload', name: 'b.wav', created: new Date().toISOString(),
    media_sha256: '0'.repeat(64), media_deleted: false, voided: null,
    result: { kind: 'cough', events: [], notices: [], withheld: {}, quality: { passed: true, checks: [] },
      scores: { 'covid-demo': score(0.695, 'borderline', 'borderline'), 'tb-demo': score(0.9, 'positive', 'positive') } } };
  const node = renderCapture(c, () => {});
  node.id = 'borderline-card';
  document.querySelector('main').prepend(node);
}"""


def test_a_borderline_score_is_too_close_to_call_in_plain_words(kiosk, browser) -> None:
    """A score within the head's band (issue #18): no verdict, what to do next in the
    catalogue's words; the threshold and band only inside Details."""
    url, _ = kiosk
    ctx, page, errors = _page(browser, "phone")
    sign_in(page, url, ADMIN, PIN)
    page.evaluate(_BORDERLINE_CARD)
    card = page.locator("#borderline-card")
    found = card.locator(".findings").inner_text()
    assert "covid-demo: too close to call" in found
    assert "within the margin where devices can disagree" in found
    assert "Record again, or rely on clinical judgement." in found
    assert "tb-demo: positive" in found
    assert card.locator(".finding.borderline").count() == 1
    _check_page(page, "borderline card")
    assert not card.locator(".scores").is_visible()
    card.locator("details.cap-more summary").click()
    table = card.locator(".scores").inner_text()
    assert "0.700 ± 0.010" in table and "borderline: no verdict within ±0.010" in table
    assert card.locator(".scores td.borderline").count() == 1
    assert not errors
    ctx.close()


def test_operators_page_adds_and_unlocks_an_operator(kiosk, browser) -> None:
    url, _tmp = kiosk
    ctx, page, errors = _page(browser, "phone")
    sign_in(page, url, ADMIN, PIN)
    page.goto(url + "/#/operators")
    page.wait_for_selector("#view-operators:not([hidden])")
    page.fill("#op-user", "nurse1")
    page.fill("#op-pass", "nurse-pin-1357")
    page.click("#op-add")
    page.wait_for_selector("#operator-rows tr[data-user=nurse1]")
    assert page.inner_text("#operator-rows tr[data-user=nurse1] .state") == "active"
    with httpx.Client(base_url=url) as c:  # five wrong PINs lock the account
        token = c.get("/api/session").json()["csrf"]
        for _ in range(5):
            c.post("/api/login", json={"username": "nurse1", "password": "wrong-pin"},
                   headers={"X-CSRF-Token": token})
        r = c.post("/api/login", json={"username": "nurse1", "password": "nurse-pin-1357"},
                   headers={"X-CSRF-Token": token})
        assert r.status_code == 429
    page.reload()
    page.wait_for_selector("#operator-rows tr[data-user=nurse1] .unlock")
    assert page.inner_text("#operator-rows tr[data-user=nurse1] .state") == "locked out"
    page.click("#operator-rows tr[data-user=nurse1] .unlock")
    page.wait_for_selector("#operator-rows tr[data-user=nurse1]:not(:has(.unlock))")
    assert page.inner_text("#operator-rows tr[data-user=nurse1] .state") == "active"
    # reset the PIN, then disable: the new PIN works until the account is disabled
    page.fill("#operator-rows tr[data-user=nurse1] .pin", "nurse-pin-2468")
    page.click("#operator-rows tr[data-user=nurse1] .reset")
    page.wait_for_selector("#status.ok")
    with httpx.Client(base_url=url) as c:
        token = c.get("/api/session").json()["csrf"]
        login = {"username": "nurse1", "password": "nurse-pin-2468"}
        assert c.post("/api/login", json=login, headers={"X-CSRF-Token": token}).status_code == 200
        page.click("#operator-rows tr[data-user=nurse1] .disable")
        page.wait_for_selector("#operator-rows tr[data-user=nurse1].voided")
        assert c.get("/api/info").status_code == 401  # the session ended with the account
        r = c.post("/api/login", json=login,
                   headers={"X-CSRF-Token": c.cookies.get("kiosk_csrf")})
        assert r.status_code == 403 and "disabled" in r.json()["error"]
    page.goto(url + "/#/audit")
    page.wait_for_selector("#audit-rows tr")
    log = page.inner_text("#audit-rows")
    for action in ("user.add", "user.unlock", "user.reset_pin", "user.disable"):
        assert action in log
    assert not errors
    ctx.close()


def test_voiding_a_capture_removes_it_from_the_export_and_is_audited(kiosk, browser) -> None:
    url, tmp = kiosk
    ctx, page, errors = _page(browser, "kiosk")
    sign_in(page, url, ADMIN, PIN)
    eid = _new_encounter(page, "void me")
    _add_photo_and_cough(page, tmp)
    card = page.locator(".capture[data-kind=photo]").first
    cid = card.get_attribute("data-id")
    card.locator(".void-open").click()
    card.locator(".void-form input").fill("wrong patient's photo")
    card.locator(".void-form button[type=submit]").click()
    page.wait_for_selector(f".capture.voided[data-id='{cid}']")
    voided = page.locator(f".capture[data-id='{cid}']")
    assert "wrong patient's photo" in voided.inner_text()
    assert voided.locator(".cap-title").evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "line-through"

    def export(include: bool) -> list[dict]:
        page.goto(url + "/#/")
        page.wait_for_selector(f"#history-rows tr[data-id='{eid}']")
        page.check(f"#history-rows tr[data-id='{eid}'] .pick")
        page.set_checked("#export-voided", include)
        with page.expect_download() as dl:
            page.click("#export-download")
        z = zipfile.ZipFile(dl.value.path())
        name = next(n for n in z.namelist() if n.endswith("captures.csv"))
        return list(csv.DictReader(io.StringIO(z.read(name).decode())))

    rows = export(False)
    assert cid not in {r["capture_id"] for r in rows} and {r["kind"] for r in rows} == {"cough"}
    rows = export(True)
    assert {r["capture_id"]: r["voided"] for r in rows}[cid] == "True"
    page.goto(url + "/#/audit")
    page.wait_for_selector("#audit-rows tr")
    log = page.inner_text("#audit-rows")
    assert "capture.void" in log and "wrong patient's photo" in log and "export" in log
    with page.expect_download() as dl:
        page.click("#audit-download")
    entries = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    void = [e for e in entries if e["action"] == "capture.void"]
    assert void and void[-1]["target_id"] == cid and void[-1]["actor"] == ADMIN
    assert [e for e in entries if e["action"] == "export" and eid in e["detail"]]
    assert entries[-1]["action"] == "audit.export"
    assert not errors
    ctx.close()


def test_an_over_size_upload_shows_the_kiosk_own_message(kiosk, browser, tmp_path) -> None:
    url, _tmp = kiosk
    ctx, page, errors = _page(browser, "phone")
    sign_in(page, url, ADMIN, PIN)
    _new_encounter(page, "too big")
    big = tmp_path / "long.wav"
    big.write_bytes(b"RIFF" + b"\0" * (21 * 1024 * 1024))  # recordings: 20 MiB at most
    page.set_input_files("#cough-file", str(big))
    page.wait_for_selector("#status.error")
    msg = page.inner_text("#status")
    assert "20 MB" in msg and "recordings" in msg, msg
    # a proxy in between that answers 413 in its own words: the catalogue's message instead
    page.route("**/photo?*", lambda r: r.fulfill(status=413, body="Request Entity Too Large",
                                                 content_type="text/plain"))
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes())
    page.set_input_files("#photo-file", str(photo))
    page.wait_for_function("() => document.getElementById('status').textContent.includes('too large for this kiosk')")
    assert "Entity" not in page.inner_text("#status")
    page.unroute("**/photo?*")
    page.click("#enc-void-box .void-open")  # the next action clears the banner
    assert not page.is_visible("#status")
    assert not errors
    ctx.close()


def _silent_wav(path: Path, seconds: float = 10.0, rate: int = 44100) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), "<i2").tobytes())
    return path


def test_a_silent_microphone_is_flagged_within_3_s(kiosk, pw, tmp_path) -> None:
    url, _tmp = kiosk
    b = launch_chromium(pw, _silent_wav(tmp_path / "silence.wav"))
    try:
        ctx = b.new_context(viewport={"width": 390, "height": 844})
        page = ctx.new_page()
        sign_in(page, url, ADMIN, PIN)
        _new_encounter(page, "silent")
        assert not page.is_visible("#mic-kiosk")  # this kiosk has no microphone of its own
        page.fill("#rec-seconds", "6")
        page.click("#rec-start")
        t0 = time.monotonic()
        page.wait_for_selector("#rec-hint.warn", timeout=3000)
        assert time.monotonic() - t0 <= 3.0
        assert "cannot hear anything" in page.inner_text("#rec-hint")
        page.click("#rec-stop")  # all zeros: the kiosk refuses it, in its own words
        page.wait_for_selector("#status.error", timeout=30000)
        msg = page.inner_text("#status")
        assert "Nothing was heard" in msg and not INTERNAL.search(msg), msg
        ctx.close()
    finally:
        b.close()

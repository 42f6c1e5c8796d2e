"""The cough PWA end to end in headless Debian Chromium (Python Playwright): load once, service
worker control, offline reload with the server stopped, a recording from a fake-microphone WAV,
and the app's windows, embeddings and scores against `hai-edge cough` on the same audio; the
energy_head detector; a bundle whose golden vectors disagree is refused; no request leaves the
origin; payload size; 360 x 740 layout."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from hai_edge.cli import main

from ._pwa_bundles import cached_bundle, cough_wav, with_golden_offset, write_wav

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
SR_WAV = 44100
PAYLOAD_LIMIT = 15_000_000
READY = ("ready", "refused", "error")  # the phases that end loading


# ------------------------------------------------------------------------------- fixtures
class _Server:
    """The app's own server (make_server) on a free loopback port, in a thread."""

    def __init__(self, root: Path) -> None:
        from hai_edge.apps.cough_pwa import make_server

        self.httpd = make_server(root, "127.0.0.1", 0)
        self.paths: list[str] = []  # every request the server answered
        paths = self.paths
        self.httpd.RequestHandlerClass.func.log_message = lambda h, *a: paths.append(h.path)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pwa")
    energy = cached_bundle(tmp_path_factory, "energy")
    head0 = cached_bundle(tmp_path_factory, "energy_head")
    pcm = cough_wav(SR_WAV)
    wav = write_wav(root / "coughs.wav", pcm, SR_WAV)
    # detector threshold in the widest gap of the candidates' p(cough): some kept, some not
    p = sorted(_candidate_probabilities(head0, pcm.astype(np.float32) / 32768.0))
    gaps = [(b - a, (a + b) / 2) for a, b in zip(p, p[1:])]
    threshold = round(max(gaps)[1], 6) if gaps else 0.5
    head = cached_bundle(tmp_path_factory, "energy_head", threshold)
    bad = with_golden_offset(energy, root / "b-bad")
    return {"root": root, "energy": energy, "head": head, "bad": bad, "wav": wav}


@pytest.fixture(scope="module")
def pw():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


def _launch(pw, wav: Path | None = None):  # noqa: ANN202
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def _build(fx, name: str) -> Path:
    out = fx["root"] / f"app-{name}"
    if not out.exists():
        assert main(["pwa", "build", "-o", str(out), "--bundle", str(fx[name])]) == 0
    return out


def _page(browser, server: _Server, requests: list[str]):  # noqa: ANN202
    ctx = browser.new_context(viewport={"width": 360, "height": 740})
    ctx.on("request", lambda r: requests.append(r.url))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    return ctx, page, errors


def _wait_phase(page, phases: tuple[str, ...], timeout_ms: int = 60_000) -> str:
    page.wait_for_function(
        f"window.__pwa && {json.dumps(list(phases))}.includes(window.__pwa.phase)",
        timeout=timeout_ms)
    return page.evaluate("window.__pwa.phase")


def _record(page) -> dict:
    page.click("#record")
    phase = _wait_phase(page, ("done", "failed"), 60_000)
    assert phase == "done", page.evaluate("window.__pwa.error")
    return page.evaluate("""() => {
        const p = window.__pwa, s = p.capture.samples;
        const u8 = new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
        let bin = '';
        for (let i = 0; i < u8.length; i += 32768)
            bin += String.fromCharCode.apply(null, u8.subarray(i, i + 32768));
        return {result: p.result, rate: p.capture.sampleRate, samples: btoa(bin),
                windows: p.raw.windows.map(w => ({start_s: w.start_s, end_s: w.end_s,
                    scores: w.scores, embedding: Array.from(w.embedding)})),
                events: p.raw.events, candidates: p.raw.candidates, scores: p.raw.scores};
    }""")


def _captured(rec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(rec["samples"]), dtype="<f4")


def _align(captured: np.ndarray, wav: Path) -> list[int]:
    """Asserts the capture is the WAV's audio in order (up to int16 scaling): every 10 ms probe,
    every 0.5 s, is found sample-exact in the WAV near where the previous one was. Returns the
    lag (WAV index - capture index) of each probe: the fake device starts the file late and,
    when the machine is busy, may repeat or drop a 10 ms block, which shifts later lags."""
    import soundfile as sf
    from numpy.lib.stride_tricks import sliding_window_view

    ref, _ = sf.read(str(wav), dtype="float32")
    lead = int(np.argmax(captured != 0))
    assert not np.any(captured[:lead])
    blk, lag, lags = 441, 0, []
    for start in range(lead, captured.size - blk, SR_WAV // 2):
        probe = captured[start:start + blk]
        lo = max(0, start + lag - SR_WAV // 5)
        cand = sliding_window_view(ref[lo:start + lag + SR_WAV // 5 + blk], blk)
        d = np.max(np.abs(cand - probe), axis=1)
        k = int(np.argmin(d))
        assert d[k] < 1e-4, f"capture sample {start} is not in the WAV"
        lag = lo + k - start
        lags.append(lag)
    return lags

def _cough_json(tmp: Path, samples: np.ndarray, bundle: Path, capsys) -> dict:
    """`hai-edge cough FILE --json --windows` on the captured audio (float WAV, lossless)."""
    wav = write_wav(tmp, samples.astype(np.float32), SR_WAV)
    capsys.readouterr()
    assert main(["cough", str(wav), "--bundle", str(bundle), "--json", "--windows"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _compare(rec: dict, py: dict) -> tuple[list[float], float]:
    """Per-window cosines and the largest recording-score delta; asserts the acceptance."""
    assert len(rec["windows"]) == len(py["windows"]) >= 2
    cosines = []
    for w, v in zip(rec["windows"], py["windows"]):
        assert abs(w["start_s"] - v["start_s"]) < 2e-3 and abs(w["end_s"] - v["end_s"]) < 2e-3
        cosines.append(_cosine(w["embedding"], v["embedding"]))
    assert min(cosines) >= 0.99, cosines
    # the comparison can fail: neighbouring windows' embeddings are far apart
    assert _cosine(rec["windows"][0]["embedding"], py["windows"][1]["embedding"]) < 0.95
    deltas = [abs(rec["scores"][h]["mean"] - s["mean"]) for h, s in py["scores"].items()]
    assert py["scores"] and max(deltas) <= 0.02
    assert all(rec["scores"][h]["positive"] == s["positive"] for h, s in py["scores"].items())
    assert all(rec["result"]["scores"][h]["verdict"] == s["verdict"]
               for h, s in py["scores"].items())
    return cosines, max(deltas)


def _payload(page) -> int:
    return page.evaluate("""async () => {
        let total = 0;
        for (const name of await caches.keys()) {
            const c = await caches.open(name);
            for (const req of await c.keys())
                total += (await (await c.match(req)).arrayBuffer()).byteLength;
        }
        return total;
    }""")


def _candidate_probabilities(bundle: Path, samples: np.ndarray) -> list[float]:
    """p(cough) of every energy candidate, from the Python energy_head detector (threshold 0)."""
    from hai_edge.runtime.cough import CoughPipeline
    from hai_edge.runtime.frontends import resample

    with CoughPipeline(str(bundle)) as pipe:
        det = pipe.detector
        assert det.name == "energy_head"
        det.threshold = 0.0
        return [e.confidence for e in det.detect(resample(samples, SR_WAV, pipe.spec.sample_rate))]


# ---------------------------------------------------------------------------------- tests
def test_offline_recording_matches_hai_edge_cough(fx, pw, tmp_path, capsys) -> None:
    """Load once, offline reload, record the fake-mic WAV; the app (energy_head detector) vs
    `hai-edge cough` on the captured audio, and its energy candidates vs EnergyDetector."""
    from hai_edge.runtime.events import EnergyDetector
    from hai_edge.runtime.frontends import resample

    app = _build(fx, "head")
    server = _Server(app)
    browser = _launch(pw, fx["wav"])
    requests: list[str] = []
    try:
        ctx, page, errors = _page(browser, server, requests)
        assert _wait_phase(page, READY) == "ready", page.evaluate("window.__pwa")
        assert page.evaluate("navigator.serviceWorker.controller !== null")
        st = page.evaluate("window.__pwa.selftest")
        assert st["passed"] and st["frontend"][0]["max_abs_diff"] <= 1e-3
        payload = _payload(page)
        assert payload <= PAYLOAD_LIMIT
        # ORT loads only once the worker controls the page: the 14 MB wasm crossed the wire once
        assert server.paths.count("/vendor/ort/ort-wasm-simd-threaded.wasm") == 1
        # offline: server stopped and the context offline, then reload
        server.stop()
        ctx.set_offline(True)
        page.reload()
        assert _wait_phase(page, READY) == "ready", page.evaluate("window.__pwa")
        assert page.evaluate("window.__pwa.serviceWorker") == "controlled"
        assert page.evaluate("fetch('/not-precached.txt').then(() => 'reached', () => 'failed')") \
            == "failed"  # the network is really gone
        # layout at 360 x 740: no horizontal scroll, touch targets >= 48 px, notice visible
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        small = page.evaluate("""[...document.querySelectorAll('button, select, summary')]
            .filter(e => e.offsetParent).map(e => e.getBoundingClientRect())
            .filter(r => r.height < 48 || r.width < 48).length""")
        assert small == 0
        assert "not for clinical use" in page.inner_text("#notices")
        qdq = page.evaluate("window.__pwa.qdq")
        assert qdq == "fused"  # ORT's int8 kernels: what the Python runtime computes
        # scoring runs after the recording, on every core (at most 4); the parity below holds
        # at that thread count
        assert page.evaluate("window.__pwa.crossOriginIsolated") is True
        assert page.evaluate("window.__pwa.threads") == page.evaluate(
            "Math.min(4, navigator.hardwareConcurrency)")
        rec = _record(page)
        assert "not for clinical use" in " ".join(rec["result"]["notices"])
        assert rec["result"]["capture"]["processing"] == {  # as reported by the track
            "echoCancellation": False, "noiseSuppression": False, "autoGainControl": False}
        shown = page.inner_text("#results")
        assert "positive" in shown or "negative" in shown
        assert page.get_attribute("#results", "aria-live") == "polite"
        history = page.evaluate("import('./js/store.js').then(m => m.listResults())")
        assert len(history) == 1 and history[0]["scores"] == rec["result"]["scores"]
        with page.expect_download() as dl:  # export: the result as a JSON file
            page.click("#export")
        saved = json.loads(Path(dl.value.path()).read_text())
        assert saved["scores"] == rec["result"]["scores"]
        assert saved["events"] == rec["result"]["events"]
        assert not errors
        ctx.close()
    finally:
        browser.close()
        server.stop()
    origin = server.url
    assert requests and all(u.startswith(origin + "/") for u in requests), \
        [u for u in requests if not u.startswith(origin)]
    captured = _captured(rec)
    assert rec["rate"] == SR_WAV and captured.size == 10 * SR_WAV
    lags = _align(captured, fx["wav"])
    # the energy detector's candidates, then the whole result with the energy_head detector
    energy = EnergyDetector(16000).detect(resample(captured, SR_WAV, 16000))
    assert len(rec["candidates"]) == len(energy) >= 3
    for a, b in zip(rec["candidates"], energy):
        assert abs(a["start_s"] - b.start_s) < 1e-9 and abs(a["end_s"] - b.end_s) < 1e-9
    assert rec["result"]["detector"] == "energy_head"
    assert len(rec["candidates"]) > len(rec["events"]) >= 2  # the head rejected some candidates
    py = _cough_json(tmp_path / "captured.wav", captured, fx["head"], capsys)
    assert py["detector"] == "energy_head" and len(rec["events"]) == len(py["events"])
    for a, b in zip(rec["events"], py["events"]):
        assert abs(a["start_s"] - b["start_s"]) < 1e-3 and abs(a["end_s"] - b["end_s"]) < 1e-3
        assert abs(a["confidence"] - b["confidence"]) < 1e-3
    cosines, delta = _compare(rec, py)
    capsys.readouterr()
    assert main(["cough", str(fx["wav"]), "--bundle", str(fx["head"]), "--json"]) == 0
    on_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    file_delta = abs(on_file["scores"]["covid"]["mean"] - rec["scores"]["covid"]["mean"])
    print(f"\nPWA (QDQ {qdq}): WAV lags {sorted(set(lags))} samples, payload {payload} bytes, "
          f"{len(rec['candidates'])} candidates, {len(rec['events'])} kept, {len(cosines)} "
          f"windows, min cosine {min(cosines):.6f}, score delta {delta:.2e} (vs hai-edge cough "
          f"on the WAV file itself: {file_delta:.2e})")


def test_golden_mismatch_is_refused_with_a_visible_message(fx, pw) -> None:
    app = _build(fx, "bad")
    server = _Server(app)
    browser = _launch(pw)
    try:
        ctx, page, errors = _page(browser, server, [])
        assert _wait_phase(page, READY) == "refused"
        assert page.is_visible("#refusal")
        text = page.inner_text("#refusal")
        assert "cannot score" in text and "golden" in text
        assert page.is_disabled("#record")
        assert page.evaluate("window.__pwa.selftest.model.min_cosine") < 0.9
        assert not errors
    finally:
        browser.close()
        server.stop()


def _speech_like_pcm(sr: int = SR_WAV, seconds: float = 11.0) -> np.ndarray:
    """int16: a sustained voiced 'vowel' (harmonics of a gliding pitch, slow loudness changes,
    no transient), then digital silence: voice-like, with no cough in it."""
    t = np.arange(int((seconds - 1.0) * sr)) / sr
    phase = 2 * np.pi * np.cumsum(125 + 15 * np.sin(2 * np.pi * 0.7 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 16))
    x *= (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2) * np.minimum(1.0, np.minimum(
        t, t[-1] - t) / 0.3)
    x = 0.2 * x / np.max(np.abs(x))
    return (np.concatenate([x, np.zeros(sr)]) * 32767).astype(np.int16)


def test_recording_without_a_cough_shows_not_scored(fx, pw) -> None:
    """No cough event: every head "not scored" with the reason, no verdict; ?score_anyway=1
    scores the plain windows and says so."""
    wav = write_wav(fx["root"] / "speech.wav", _speech_like_pcm(), SR_WAV)
    app = _build(fx, "energy")
    server = _Server(app)
    browser = _launch(pw, wav)
    try:
        for query, anyway in (("", False), ("?score_anyway=1", True)):
            ctx = browser.new_context(viewport={"width": 360, "height": 740})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/" + query)
            assert _wait_phase(page, READY) == "ready", page.evaluate("window.__pwa")
            page.click("#record")
            assert _wait_phase(page, ("done", "failed"), 60_000) == "done", \
                page.evaluate("window.__pwa.error")
            res = page.evaluate("window.__pwa.result")
            text = page.inner_text("#results")
            assert res["events"] == [] and res["scores"] and res["scored_anyway"] is anyway
            if not anyway:
                assert all(v is None for v in res["scores"].values())
                assert set(res["withheld"].values()) == {"no cough detected"}
                # the catalogue's plain words for the runtime's reason (apps/ui_shared)
                assert "not scored: no cough was heard" in text
                assert page.locator("#results .positive, #results .negative").count() == 0
                assert "not scored" in page.inner_text("#history")
            else:
                assert all(v is not None for v in res["scores"].values())
                # plain words on the card; the overridden reason is behind Details
                assert res["withheld"] == {} and "advised against" in text
            assert not errors
            ctx.close()
    finally:
        browser.close()
        server.stop()

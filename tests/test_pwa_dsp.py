"""The PWA's JavaScript DSP against the Python run side, in node (no browser): resampler taps and
outputs, log-mel/PCEN features, the energy detector, window planning and heads."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hai_edge.runtime.cough import WindowPlanner, event_window
from hai_edge.runtime.events import EnergyDetector, EnergyDetectorConfig
from hai_edge.runtime.frontends import AudioFrontendSpec, prepare_audio, resample
from hai_edge.runtime.frontends._resample import _polyphase
from hai_edge.runtime.heads import Calibration, CalibrationKind, Head, verdict_for

JS = Path(__file__).resolve().parents[1] / "hai_edge" / "apps" / "cough_pwa" / "static" / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

_DRIVER = r"""
import { readFileSync } from 'node:fs';
const JS = process.argv[2];
const R = await import(JS + '/resample.js');
const F = await import(JS + '/features.js');
const E = await import(JS + '/events.js');
const C = await import(JS + '/cough.js');
const H = await import(JS + '/heads.js');
const f32 = (b) => new Float32Array(new Uint8Array(Buffer.from(b, 'base64')).buffer);
const b64 = (a) => Buffer.from(new Float32Array(a).buffer).toString('base64');
const jobs = JSON.parse(readFileSync(0, 'utf8'));
const out = [];
for (const j of jobs) {
  if (j.op === 'taps') { const p = R.polyphase(j.up, j.down); out.push({ table: b64(p.table), Q: p.Q, half: p.half }); }
  else if (j.op === 'resample') out.push(b64(R.resample(f32(j.x), j.from, j.to)));
  else if (j.op === 'stream_resample') {
    const s = new R.StreamResampler(j.from, j.to), x = f32(j.x), parts = [];
    for (let i = 0; i < x.length; i += j.chunk) parts.push(...s.push(x.subarray(i, i + j.chunk)));
    parts.push(...s.flush()); out.push(b64(parts));
  } else if (j.op === 'prepare') {
    const spec = F.audioSpec(j.spec), r = F.prepareAudio(f32(j.x), j.rate, spec);
    out.push({ windows: r.windows.map((w) => [w.index, w.start_s, w.end_s]), inputs: r.inputs.map(b64) });
  } else if (j.op === 'events') {
    const d = new E.EnergyDetector(j.rate, j.params); const x = f32(j.x);
    const s = d.stream(), ev = [];
    for (let i = 0; i < x.length; i += j.chunk) ev.push(...s.push(x.subarray(i, i + j.chunk)));
    ev.push(...s.flush()); out.push(ev);
  } else if (j.op === 'plan') {
    const spec = F.audioSpec(j.spec), p = new C.WindowPlanner(spec.window_s), g = [], x = f32(j.x);
    j.events.forEach((e, i) => g.push(...p.add(i, e))); g.push(...p.finish());
    out.push(g.map(([idx, c]) => { const w = C.eventWindow(x, c, spec); return [idx, c, w.start, w.real]; }));
  } else if (j.op === 'vwin') {
    const spec = F.audioSpec(j.spec), x = f32(j.x);
    out.push(j.events.map((e) => b64(C.verificationWindow(x, e, j.after_s, spec).samples)));
  } else if (j.op === 'analyze') {
    // the whole recording path of the app (cough.analyze) with a stand-in model: band means
    const m = JSON.parse(readFileSync(j.bundle + '/manifest.json', 'utf8'));
    const spec = F.audioSpec(m.preprocessing);
    const file = (f) => JSON.parse(readFileSync(j.bundle + '/' + f, 'utf8'));
    const heads = m.heads.filter((h) => (h.role ?? 'head') === 'head').map((h) => H.headFromEntry(h, file(h.file), m.embedding_dim));
    const det = m.heads.find((h) => h.role === 'detector');
    const shared = det && Object.fromEntries(['name', 'file', 'threshold', 'labels'].filter((k) => k in det).map((k) => [k, det[k]]));
    const detector = det && det.kind === 'energy_head'
      ? new C.EnergyHeadDetector(spec, det, H.headFromEntry(shared, file(det.file), m.embedding_dim))
      : new C.EnergyOnlyDetector(spec.sample_rate, det);
    const per = spec.input_size / m.embedding_dim;
    const embed = async (xs) => xs.map((x) => Float32Array.from({ length: m.embedding_dim }, (_, d) => {
      let s = 0; for (let i = d * per; i < (d + 1) * per; i++) s += x[i]; return s / per; }));
    const mono = R.resample(f32(j.x), j.rate, spec.sample_rate);
    const { result } = await C.analyze(mono, 'x', { spec, detector, heads, embed, notices: m.notices, meta: {}, scoreAnyway: !!j.score_anyway });
    out.push(result);
  } else if (j.op === 'head') {
    const h = new H.Head(j.head); out.push(j.x.map((v) => h.predictProba(v)));
  } else if (j.op === 'verdict') {
    out.push(j.cases.map(([s, t, b]) => H.verdictFor(s, t, b)));
  } else if (j.op === 'head_verdicts') {
    const h = new H.Head(j.head); out.push(j.scores.map((s) => h.verdict(s)));
  } else if (j.op === 'head_error') {
    try { H.headFromEntry(j.entry, j.head, j.dim); out.push(null); } catch (e) { out.push(String(e.message)); }
  }
}
process.stdout.write(JSON.stringify(out));
"""


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def _f32(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


@pytest.fixture(scope="module")
def run_js(tmp_path_factory):
    driver = tmp_path_factory.mktemp("node") / "driver.mjs"
    driver.write_text(_DRIVER)

    def run(jobs: list[dict]) -> list:
        proc = subprocess.run([NODE, str(driver), JS.as_uri()], input=json.dumps(jobs),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)
    return run


def _coughs(sr: int, seconds: float, times: list[float], seed: int = 0) -> np.ndarray:
    """Noise floor plus broadband bursts with a fast decay (cough-like transients)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 0.002 * rng.standard_normal(n)
    for t0 in times:
        i = int(t0 * sr)
        m = int(0.25 * sr)
        env = np.exp(-np.arange(m) / (0.06 * sr)) * np.minimum(1.0, np.arange(m) / (0.004 * sr))
        x[i:i + m] += 0.3 * env * rng.standard_normal(m)[: len(x[i:i + m])]
    return x.astype(np.float32)


def test_resampler_taps_and_outputs_match_python(run_js) -> None:
    rng = np.random.default_rng(1)
    x44 = rng.standard_normal(44100 + 37).astype(np.float32) * 0.3
    x8 = rng.standard_normal(8000 + 5).astype(np.float32) * 0.3
    jobs = [{"op": "taps", "up": 160, "down": 441},
            {"op": "resample", "x": _b64(x44), "from": 44100, "to": 16000},
            {"op": "resample", "x": _b64(x44[:48000 // 3]), "from": 48000, "to": 16000},
            {"op": "resample", "x": _b64(x8), "from": 8000, "to": 16000},
            {"op": "stream_resample", "x": _b64(x44), "from": 44100, "to": 16000, "chunk": 128}]
    taps, y44, y48, y8, ys = run_js(jobs)
    table, half, q = _polyphase(160, 441)
    assert taps["Q"] == q and taps["half"] == half
    js_table = _f32(taps["table"]).reshape(table.shape)
    assert np.max(np.abs(js_table - table)) <= 1e-9  # the same float32 taps
    for got, (x, a, b) in zip((y44, y48, y8), ((x44, 44100, 16000), (x44[:16000], 48000, 16000),
                                              (x8, 8000, 16000))):
        ref = resample(x, a, b)
        got = _f32(got)
        assert got.shape == ref.shape
        assert np.max(np.abs(got - ref)) < 1e-5
    assert np.array_equal(_f32(ys), _f32(y44))  # streaming == whole signal, bit for bit


@pytest.mark.parametrize("spec", [
    AudioFrontendSpec(),  # HeAR-like log-mel 64 x 200
    AudioFrontendSpec(window_s=1.0, hop_s=0.5, min_clip_s=0.25, n_mels=32,
                      clip_normalization="peak", feature_mean=-6.0, feature_std=4.0),
    AudioFrontendSpec(features="pcen", clip_normalization="minmax", n_fft=400, skip_quiet_db=None),
])
def test_features_match_python(run_js, spec) -> None:
    x = _coughs(44100, 3.3, [0.4, 1.9], seed=2)
    [got] = run_js([{"op": "prepare", "spec": spec.to_dict(), "x": _b64(x), "rate": 44100}])
    windows, inputs = prepare_audio(x, 44100, spec, "t")
    assert [w[0] for w in got["windows"]] == [w.index for w in windows]
    assert np.allclose([w[1:] for w in got["windows"]], [[w.start_s, w.end_s] for w in windows])
    js = np.stack([_f32(v) for v in got["inputs"]]).reshape(inputs.shape)
    assert np.max(np.abs(js - inputs)) < 1e-4


def test_energy_detector_matches_python_streaming(run_js) -> None:
    sr = 16000
    x = _coughs(sr, 6.0, [0.8, 1.05, 2.6, 4.2, 4.35, 5.1], seed=3)
    x[int(3.2 * sr):int(3.5 * sr)] += 0.2 * np.sin(2 * np.pi * 1000 * np.arange(int(0.3 * sr)) / sr)
    params = {"on_db": 11.0, "merge_gap_s": 0.12}
    gaps = x.copy()  # digital silence at the start and in a gap: never lowers the noise floor
    gaps[: sr] = 0.0
    gaps[int(2.2 * sr):int(2.5 * sr)] = 0.0
    got, got_default, got_gaps = run_js([
        {"op": "events", "x": _b64(x), "rate": sr, "params": params, "chunk": 333},
        {"op": "events", "x": _b64(x), "rate": sr, "params": {}, "chunk": 16000},
        {"op": "events", "x": _b64(gaps), "rate": sr, "params": {}, "chunk": 160},
    ])
    for js, cfg, sig in ((got, EnergyDetectorConfig.from_dict(params), x),
                         (got_default, None, x), (got_gaps, None, gaps)):
        ref = EnergyDetector(sr, cfg).detect(sig)
        assert len(ref) >= 3 and len(js) == len(ref)
        for a, b in zip(js, ref):
            assert abs(a["start_s"] - b.start_s) < 1e-9 and abs(a["end_s"] - b.end_s) < 1e-9
            assert abs(a["confidence"] - b.confidence) < 1e-6


def test_window_planner_and_event_windows_match_python(run_js) -> None:
    spec = AudioFrontendSpec()
    x = np.zeros(int(5.5 * 16000), dtype=np.float32)
    events = [(0.1, 0.3), (0.5, 0.7), (2.0, 2.2), (2.1, 4.05), (5.3, 5.45)]
    from hai_edge.runtime.events import Event

    evs = [Event(a, b, 0.5) for a, b in events]
    [got] = run_js([{"op": "plan", "spec": spec.to_dict(), "x": _b64(x),
                     "events": [{"start_s": a, "end_s": b} for a, b in events]}])
    planner = WindowPlanner(spec.window_s)
    groups = [g for i, e in enumerate(evs) for g in planner.add(i, e)] + planner.finish()
    ref = [[list(idx), c, *event_window(x, c, spec)[:2]] for idx, c in groups]
    assert got == ref


def test_energy_head_verification_windows_match_python(run_js) -> None:
    from hai_edge.runtime.events_learned import verification_window

    spec = AudioFrontendSpec()
    x = np.random.default_rng(4).standard_normal(int(3.1 * 16000)).astype(np.float32)
    ends = [0.3, 1.2, 2.0, 2.95, 3.09]  # early (zeros in front), middle, near and at the end
    [got] = run_js([{"op": "vwin", "spec": spec.to_dict(), "x": _b64(x), "after_s": 0.25,
                     "events": [{"start_s": e - 0.1, "end_s": e} for e in ends]}])
    for e, w in zip(ends, got):
        assert np.array_equal(_f32(w), verification_window(x, x.size, e, 0.25, spec))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("onnx")
    from ._pwa_bundles import cached_bundle

    return {k: cached_bundle(tmp_path_factory, k) for k in ("energy", "energy_head")}


@pytest.mark.parametrize("kind,audio", [("energy", "coughs"), ("energy_head", "coughs"),
                                        ("energy", "noise"), ("energy", "quiet-coughs"),
                                        ("energy", "noise-withheld")])
def test_whole_recording_analysis_matches_cough_pipeline(run_js, bundles, kind, audio) -> None:
    """cough.analyze in node vs CoughPipeline, the same stand-in model on both sides (mean of
    each embedding-size slice of the features): events, windows (incl. the fallback to sliding
    windows with score_anyway, quiet skipping, heads withheld without a cough), head scores and
    notices."""
    from hai_edge.runtime.backends import MockBackend
    from hai_edge.runtime.cough import CoughPipeline

    rng = np.random.default_rng(7)
    anyway = audio == "noise"
    if audio.startswith("noise"):  # no events: withheld, or the plain sliding windows scored
        x = (0.01 * rng.standard_normal(int(7.3 * 44100))).astype(np.float32)
    elif audio == "quiet-coughs":  # digital silence, a cough and a faint one (its window is
        # below skip_quiet_db: skipped, while the event itself is reported)
        loud, faint = _coughs(44100, 9.0, [1.0], seed=8), _coughs(44100, 9.0, [6.0], seed=10)
        x = np.zeros_like(loud)
        x[39690:61740] = loud[39690:61740]
        x[260190:282240] = 0.05 * faint[260190:282240]
    else:
        x = _coughs(44100, 9.0, [0.3, 1.5, 1.8, 4.0, 7.9], seed=9)

    def handler(inputs):
        v = next(iter(inputs.values())).astype(np.float64)
        return {"embedding": v.reshape(len(v), 32, -1).mean(axis=2).astype(np.float32)}

    [js] = run_js([{"op": "analyze", "bundle": str(bundles[kind]), "x": _b64(x), "rate": 44100,
                    "score_anyway": anyway}])
    with CoughPipeline(str(bundles[kind]), engine=MockBackend(handler)) as pipe:
        py = pipe.analyze(x, 44100, "x", score_anyway=anyway).to_dict()
    assert js["withheld"] == py["withheld"] and js["scored_anyway"] == py["scored_anyway"]
    assert js.get("would_withhold") == py.get("would_withhold")
    assert js["fallback_windows"] == py["fallback_windows"]
    assert js["notices"] == py["notices"]
    assert len(js["events"]) == len(py["events"])
    for a, b in zip(js["events"], py["events"]):
        assert abs(a["start_s"] - b["start_s"]) <= 1e-4 and abs(a["end_s"] - b["end_s"]) <= 1e-4
        assert abs(a["confidence"] - b["confidence"]) <= 1e-4
    assert [(w["start_s"], w["end_s"], w["events"]) for w in js["windows"]] == \
        [(w["start_s"], w["end_s"], w["events"]) for w in py["windows"]]
    for h, s in py["scores"].items():
        if s is None:
            assert js["scores"][h] is None
            continue
        assert abs(js["scores"][h]["mean"] - s["mean"]) <= 1e-5
        assert js["scores"][h]["count"] == s["count"]
    if audio == "noise":
        assert py["fallback_windows"] and not py["events"]
    elif audio == "quiet-coughs":
        assert len(py["events"]) == 2 and len(py["windows"]) == 1
    if audio == "noise-withheld":
        assert py["scores"] and all(v is None for v in py["scores"].values())
        assert set(py["withheld"].values()) == {"no cough detected"} and not py["windows"]


@pytest.mark.parametrize("cal", [
    Calibration(), Calibration(CalibrationKind.PLATT, a=1.7, b=-0.4),
    Calibration(CalibrationKind.ISOTONIC, x=(-1.0, 0.0, 2.0), y=(0.1, 0.2, 0.9)),
])
def test_heads_match_python(run_js, cal) -> None:
    rng = np.random.default_rng(0)
    head = Head(name="h", weights=rng.standard_normal(8), bias=0.3, mean=rng.standard_normal(8),
                scale=rng.uniform(0.5, 2, 8), threshold=0.4, calibration=cal)
    x = rng.standard_normal((6, 8)) * 2
    [got] = run_js([{"op": "head", "head": head.to_dict(), "x": x.tolist()}])
    np.testing.assert_allclose(got, head.predict_proba(x), rtol=1e-12, atol=1e-15)


def test_verdicts_match_python_with_a_borderline_band(run_js) -> None:
    """verdictFor == runtime.heads.verdict_for on the band's edges (the same float sums), and a
    head reads its band from the file (default 0) and must agree with its manifest entry."""
    cases = [(s, t, b) for t in (0.0, 0.3, 0.5, 0.7, 1.0) for b in (0.0, 0.01, 0.1, 0.25)
             for s in {0.0, 1.0, t, t + b, t - b, t + b - 1e-12, t - b - 1e-12, t + 0.5 * b,
                       0.1 + 0.2, 0.7 + 0.01, 0.69}]
    rng = np.random.default_rng(3)
    head = Head(name="h", weights=rng.standard_normal(8), bias=0.3, mean=np.zeros(8),
                scale=np.ones(8), threshold=0.4, borderline=0.05)
    scores = [0.3, 0.35, 0.3500001, 0.4, 0.449999, 0.45, 0.9]
    plain = {k: v for k, v in head.to_dict().items() if k != "borderline"}
    entry = head.manifest_entry("heads/h.json")
    got, hv, hv0, *errors = run_js([
        {"op": "verdict", "cases": cases},
        {"op": "head_verdicts", "head": head.to_dict(), "scores": scores},
        {"op": "head_verdicts", "head": plain, "scores": scores},
        {"op": "head_error", "entry": entry, "head": head.to_dict(), "dim": 8},
        {"op": "head_error", "entry": dict(entry, borderline=0.02), "head": head.to_dict(),
         "dim": 8},
        {"op": "head_error", "entry": {k: v for k, v in entry.items() if k != "borderline"},
         "head": head.to_dict(), "dim": 8},
        {"op": "head_error", "entry": entry, "head": dict(head.to_dict(), borderline=0.5),
         "dim": 8},
    ])
    assert got == [verdict_for(*c).value for c in cases]
    assert hv == [head.verdict(s).value for s in scores]
    assert "borderline" in hv and hv0 == [verdict_for(s, 0.4).value for s in scores]
    assert errors[0] is None
    assert all("borderline differs" in e for e in errors[1:3]), errors
    assert "borderline must be within [0, 0.5)" in errors[3]


def test_whole_recording_analysis_matches_with_a_score_in_the_band(run_js, bundles,
                                                                   tmp_path) -> None:
    """A head whose threshold sits just above the recording score, with a band around it: the
    app and CoughPipeline both give no verdict, with the same JSON fields."""
    from hai_edge.runtime.backends import MockBackend
    from hai_edge.runtime.cough import CoughPipeline

    from ._pwa_bundles import with_head_band

    x = _coughs(44100, 9.0, [0.3, 1.5, 1.8, 4.0, 7.9], seed=9)

    def handler(inputs):
        v = next(iter(inputs.values())).astype(np.float64)
        return {"embedding": v.reshape(len(v), 32, -1).mean(axis=2).astype(np.float32)}

    with CoughPipeline(str(bundles["energy"]), engine=MockBackend(handler)) as pipe:
        mean = pipe.analyze(x, 44100, "x").scores["covid"].mean
    for key, thr, band, want in (("band", mean + 0.003, 0.01, "borderline"),
                                 ("above", mean - 0.02, 0.01, "positive"),
                                 ("below", mean + 0.02, 0.01, "negative")):
        b = with_head_band(bundles["energy"], tmp_path / key, thr, band)
        [js] = run_js([{"op": "analyze", "bundle": str(b), "x": _b64(x), "rate": 44100}])
        with CoughPipeline(str(b), engine=MockBackend(handler)) as pipe:
            py = pipe.analyze(x, 44100, "x").to_dict()
        j, p = js["scores"]["covid"], py["scores"]["covid"]
        assert p["verdict"] == want and p["band"] == band
        assert list(j) == list(p)
        assert abs(j["mean"] - p["mean"]) <= 1e-5
        assert {k: v for k, v in j.items() if k not in ("mean", "max")} == \
            {k: v for k, v in p.items() if k not in ("mean", "max")}

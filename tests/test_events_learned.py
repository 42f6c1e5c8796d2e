"""The learned cough detector (``energy_head``): window placement, verification, streaming ==
offline, latency, manifest wiring through CoughPipeline, and refusal of broken entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.errors import BundleError
from hai_edge.runtime.cough import CoughPipeline
from hai_edge.runtime.events import EnergyDetector
from hai_edge.runtime.events_learned import VerifiedDetector, verification_window
from hai_edge.runtime.frontends import AudioFrontendSpec
from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

from ._onnx_models import AUDIO_SPEC, make_onnx_bundle
from .test_events import synth_coughs

SR = 16000
SPEC = AudioFrontendSpec(window_s=1.0, hop_s=0.5, min_clip_s=0.25, n_mels=32, n_fft=512)


def test_verification_window_ends_after_the_event_with_zeros_outside() -> None:
    x = np.arange(1, 3 * SR + 1, dtype=np.float32)
    w = verification_window(x, x.size, end_s=1.5, after_s=0.25, spec=SPEC)
    assert w.size == SR and w[-1] == x[int(1.75 * SR) - 1] and w[0] == x[int(0.75 * SR)]
    early = verification_window(x, x.size, end_s=0.2, after_s=0.25, spec=SPEC)
    n_real = int(0.45 * SR)
    assert np.all(early[: SR - n_real] == 0) and np.array_equal(early[SR - n_real:], x[:n_real])
    late = verification_window(x, x.size, end_s=2.95, after_s=0.25, spec=SPEC)  # past the end
    assert np.array_equal(late, x[-SR:])
    short = verification_window(x[:4000], 4000, end_s=0.1, after_s=0.25, spec=SPEC)
    assert np.all(short[: SR - 4000] == 0) and np.array_equal(short[SR - 4000:], x[:4000])
    # streaming keeps only recent audio: same window from an offset buffer
    off = verification_window(x[SR:], x.size, end_s=2.5, after_s=0.25, spec=SPEC, offset=SR)
    assert np.array_equal(off, verification_window(x, x.size, 2.5, 0.25, SPEC))


def _loud_last_quarter(features: np.ndarray) -> np.ndarray:
    """A stand-in 'embedding': level in 35-80 % of the window (where an event that ends 0.25 s
    before the window's end lies) minus the rest, so the head says 'cough' only when the
    window is placed right after a loud event."""
    f = features.reshape(features.shape[0], features.shape[-2], -1)
    n = f.shape[-1]
    inside = np.zeros(n, dtype=bool)
    inside[int(0.35 * n) : int(0.8 * n)] = True
    return np.stack([f[:, :, inside].mean(axis=(1, 2)) - f[:, :, ~inside].mean(axis=(1, 2)),
                     np.zeros(f.shape[0])], axis=1)


HEAD = Head(name="cough-detector", weights=np.array([1.0, 0.0]), bias=-2.0, mean=np.zeros(2),
            scale=np.ones(2), threshold=0.5, labels=("other", "cough"))


def test_verified_detector_keeps_events_by_head_and_streams_like_offline() -> None:
    x = synth_coughs([0.5, 1.7, 3.1], 4.5, noise_db=-60, seed=2)
    det = VerifiedDetector(SPEC, HEAD, _loud_last_quarter, after_s=0.25)
    cands = EnergyDetector(SR).detect(x)
    assert len(cands) == 3
    offline = det.detect(x)
    assert [round(e.start_s, 3) for e in offline] == [round(c.start_s, 3) for c in cands]
    for e in offline:  # confidence is the head's probability of the window
        win = verification_window(x, x.size, e.end_s, 0.25, SPEC)
        from hai_edge.runtime.frontends import window_features

        p = HEAD.predict_proba(_loud_last_quarter(window_features(win[None], SPEC)))[0]
        assert e.confidence == pytest.approx(p) and p >= 0.5 and e.label == "cough"
    for block in (160, 320, 4410, 16000):
        s = det.stream()
        got, latency = [], []
        for i in range(0, x.size, block):
            for e in s.push(x[i : i + block]):
                got.append(e)
                latency.append(min(i + block, x.size) / SR - e.end_s)
        got += s.flush()
        assert got == offline, block
        assert max(latency) <= s.max_latency_s + block / SR + 1e-9
    assert det.stream().max_latency_s == pytest.approx(0.25 + EnergyDetector(SR).stream().max_latency_s)
    # a head that never says cough keeps nothing; a lower threshold keeps everything
    never = VerifiedDetector(SPEC, HEAD, lambda f: np.tile([-50.0, 0.0], (len(f), 1)))
    assert never.detect(x) == []
    everything = VerifiedDetector(SPEC, HEAD, lambda f: np.tile([-50.0, 0.0], (len(f), 1)),
                                  threshold=0.0)
    assert len(everything.detect(x)) == 3


def test_stream_buffer_stays_bounded() -> None:
    det = VerifiedDetector(SPEC, HEAD, _loud_last_quarter)
    s = det.stream()
    x = synth_coughs([0.5 + 1.3 * k for k in range(40)], 55.0, noise_db=-60, seed=4)
    for i in range(0, x.size, 320):
        s.push(x[i : i + 320])
    assert s.audio.size <= s.keep + 320
    s.flush()


@pytest.fixture(scope="module")
def detector_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("det")
    plain = make_onnx_bundle(root / "plain", "audio", dim=16)
    rng = np.random.default_rng(1)
    head = Head(name="cough-detector", weights=rng.standard_normal(16), bias=3.0,
                mean=np.zeros(16), scale=np.ones(16), threshold=0.3,
                calibration=Calibration(CalibrationKind.PLATT, a=1.0, b=0.0),
                labels=("other", "cough"))
    entry = {"name": "cough-detector", "role": "detector", "kind": "energy_head", "params": {},
             "file": "heads/cough-detector.json", "threshold": 0.3, "labels": ["other", "cough"],
             "align": "end", "after_s": 0.25}
    return add_head_to_bundle(Bundle.load(plain), head, str(root / "det"), entry=entry).root


def test_cough_pipeline_uses_the_bundle_detector(detector_bundle: Path) -> None:
    x = synth_coughs([0.6, 2.4, 4.0], 5.0, noise_db=-55, seed=3)
    with CoughPipeline(detector_bundle, heads=()) as pipe:
        assert isinstance(pipe.detector, VerifiedDetector) and pipe.meta["detector"] == "energy_head"
        res = pipe.analyze(x, SR)
        # the same events the detector gives on its own, with the head's probabilities
        expected = pipe.detector.detect(x)
        assert [e.start_s for e in res.events] == [e.start_s for e in expected]
        feats_embed = pipe.embedder.embed_inputs
        for e in res.events:
            from hai_edge.runtime.frontends import window_features

            win = verification_window(x, x.size, e.end_s, 0.25, AUDIO_SPEC)
            p = pipe.detector.head.predict_proba(feats_embed(window_features(win[None], AUDIO_SPEC)))
            assert e.confidence == pytest.approx(float(p[0]), abs=1e-6)
            assert e.confidence >= 0.3


def _with_entry(src: Path, dest: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dest)
    m = json.loads((dest / "manifest.json").read_text())
    for h in m["heads"]:
        if h.get("role") == "detector":
            h.update(changes)
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


@pytest.mark.parametrize("changes,message", [
    ({"threshold": 0.9}, "threshold differs from the head file"),
    ({"align": "centre"}, "align 'centre' is not supported"),
    ({"file": "heads/missing.json"}, "is not listed in the manifest's files"),
    ({"kind": "energy_mlp"}, "upgrade hai-edge"),
])
def test_broken_detector_entries_are_refused(detector_bundle: Path, tmp_path: Path,
                                             changes: dict, message: str) -> None:
    bad = _with_entry(detector_bundle, tmp_path / "bad", **changes)
    with pytest.raises(BundleError, match=message):
        CoughPipeline(bad, heads=())


def test_tampered_detector_head_file_is_refused(detector_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(detector_bundle, bad)
    f = bad / "heads" / "cough-detector.json"
    d = json.loads(f.read_text())
    d["bias"] = -99.0
    f.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="cough-detector.json"):
        CoughPipeline(bad, heads=())

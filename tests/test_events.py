"""Cough event detection: synthetic coughs at known times, things that are not coughs, streaming."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hai_edge.errors import BundleError
from hai_edge.runtime.events import (
    EnergyDetector,
    EnergyDetectorConfig,
    Event,
    EventDetector,
    StreamingDetector,
    detector_from_bundle,
)

SR = 16000


def synth_coughs(times: list[float], seconds: float, *, noise_db: float = -50.0,
                 peak: float = 0.3, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Background noise plus cough-like bursts: broadband noise with a 60 ms exponential decay
    (plus a weaker 'voiced' tail), starting exactly at ``times``."""
    rng = np.random.default_rng(seed)
    x = 10 ** (noise_db / 20) * rng.standard_normal(int(seconds * sr))
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    for start in times:
        i = int(round(start * sr))
        burst = rng.standard_normal(n) * np.exp(-t / 0.06)
        burst += 0.3 * np.sin(2 * np.pi * 300 * t) * np.exp(-t / 0.1) * (t > 0.05)
        x[i : i + n] += peak * burst[: x.size - i]
    return x.astype(np.float32)


TIMES = [0.8, 2.1, 3.0, 4.4, 6.2, 7.05]


@pytest.mark.parametrize("noise_db,peak", [(-60.0, 0.3), (-40.0, 0.3), (-45.0, 0.05)])
def test_each_synthetic_cough_is_found_within_0_1_s(noise_db: float, peak: float) -> None:
    x = synth_coughs(TIMES, 8.0, noise_db=noise_db, peak=peak, seed=int(-noise_db))
    events = EnergyDetector(SR).detect(x)
    assert len(events) == len(TIMES), [(round(e.start_s, 3), round(e.end_s, 3)) for e in events]
    for truth, ev in zip(TIMES, events):
        assert abs(ev.start_s - truth) <= 0.1
        assert ev.start_s < ev.end_s <= truth + 0.45  # ends with the burst's decay
        assert 0.0 <= ev.confidence <= 1.0 and ev.label == "cough"


def test_louder_coughs_get_higher_confidence() -> None:
    quiet = EnergyDetector(SR).detect(synth_coughs([1.0], 2.0, noise_db=-50, peak=0.02))
    loud = EnergyDetector(SR).detect(synth_coughs([1.0], 2.0, noise_db=-50, peak=0.5))
    assert len(quiet) == len(loud) == 1
    assert loud[0].confidence > quiet[0].confidence


def test_other_sample_rates_give_the_same_times() -> None:
    from hai_edge.runtime.frontends import resample

    x = synth_coughs([0.7, 2.2], 3.0)
    ev16 = EnergyDetector(SR).detect(x)
    ev44 = EnergyDetector(44100).detect(resample(x, SR, 44100))
    assert len(ev16) == len(ev44) == 2
    for a, b in zip(ev16, ev44):
        assert abs(a.start_s - b.start_s) < 0.02


def _hum(seconds: float, f0: float = 50.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 10))


@pytest.mark.parametrize("kind", ["white", "brown", "hum", "hum+noise", "silence", "quiet"])
def test_steady_sounds_give_no_events(kind: str) -> None:
    rng = np.random.default_rng(1)
    n = 10 * SR
    x = {
        "white": lambda: 0.1 * rng.standard_normal(n),
        "brown": lambda: np.cumsum(rng.standard_normal(n)) * 1e-3,
        "hum": lambda: _hum(10.0),
        "hum+noise": lambda: _hum(10.0, 60.0) + 0.01 * rng.standard_normal(n),
        "silence": lambda: np.zeros(n),
        "quiet": lambda: 1e-4 * rng.standard_normal(n),  # below the absolute level gate
    }[kind]()
    assert EnergyDetector(SR).detect(x) == []


def test_a_soft_tone_beep_and_a_click_are_not_events() -> None:
    """A tone with a 10 ms ramp is narrow-band (onset flux gate); a 3 ms click is too short."""
    rng = np.random.default_rng(2)
    x = 0.003 * rng.standard_normal(4 * SR)
    t = np.arange(int(0.3 * SR)) / SR
    beep = 0.3 * np.sin(2 * np.pi * 1000 * t)
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    x[SR : SR + t.size] += beep * ramp
    x[int(2.5 * SR) : int(2.5 * SR) + 48] += 0.8 * rng.standard_normal(48)
    assert EnergyDetector(SR).detect(x) == []
    # control: a broadband burst at the same level and length is an event
    x2 = 0.003 * rng.standard_normal(4 * SR)
    x2[SR : SR + t.size] += 0.3 * rng.standard_normal(t.size) * np.exp(-t / 0.06)
    assert len(EnergyDetector(SR).detect(x2)) == 1


def test_sustained_sound_is_not_an_event_and_detection_resumes() -> None:
    """A 4 s loud noise (speech, a level change) exceeds max_event_s: dropped; a cough 3 s after
    it ends is still found."""
    rng = np.random.default_rng(3)
    x = synth_coughs([10.0], 12.0, noise_db=-55)
    x[2 * SR : 6 * SR] += 0.1 * rng.standard_normal(4 * SR)
    events = EnergyDetector(SR).detect(x)
    assert [round(e.start_s) for e in events] == [10]


@pytest.mark.parametrize("zeros_s", [0.03, 0.5, 2.0])
def test_digital_silence_does_not_blind_the_detector(zeros_s: float) -> None:
    """A browser stream or a file that starts (or has a gap) with exact zeros: silence says
    nothing about the room's noise floor, so it must not pull the floor down to -120 dB (which
    made the noise bed after it look like one long sound and hid the coughs in it)."""
    coughs = [0.4, 1.6, 3.0]
    x = synth_coughs(coughs, 4.0, noise_db=-50, seed=11)
    n0 = int(zeros_s * SR)
    padded = np.concatenate([np.zeros(n0, np.float32), x[:2 * SR], np.zeros(n0, np.float32),
                             x[2 * SR:]])
    events = EnergyDetector(SR).detect(padded)
    truth = [t + zeros_s for t in coughs[:2]] + [coughs[2] + 2 * zeros_s]
    assert len(events) == 3, [(round(e.start_s, 3), round(e.end_s, 3)) for e in events]
    for t, ev in zip(truth, events):
        assert abs(ev.start_s - t) <= 0.1
    assert EnergyDetector(SR).detect(np.zeros(3 * SR, np.float32)) == []


def test_level_step_to_louder_background_is_not_an_event() -> None:
    rng = np.random.default_rng(4)
    x = 0.002 * rng.standard_normal(10 * SR)
    x[3 * SR :] += 0.05 * rng.standard_normal(7 * SR)
    assert EnergyDetector(SR).detect(x) == []


def test_close_bursts_merge_and_far_ones_do_not() -> None:
    # bursts of ~0.25 s: 0.1 s apart merge (gap < merge_gap_s), 0.5 s apart do not
    cfg = EnergyDetectorConfig()
    x = synth_coughs([1.0, 1.33, 3.0, 3.8], 5.0, noise_db=-60)
    events = EnergyDetector(SR, cfg).detect(x)
    assert len(events) == 3
    assert abs(events[0].start_s - 1.0) < 0.1 and events[0].end_s > 1.4


@pytest.mark.parametrize("chunk", [1, 160, 333, 4096])
def test_streaming_equals_offline_and_latency_is_bounded(chunk: int) -> None:
    x = synth_coughs(TIMES, 8.0, noise_db=-45)
    det = EnergyDetector(SR)
    offline = det.detect(x)
    stream = det.stream()
    assert isinstance(stream, StreamingDetector) and isinstance(det, EventDetector)
    got: list[Event] = []
    latencies = []
    step = chunk if chunk > 1 else 7
    for i in range(0, x.size, step):
        for ev in stream.push(x[i : i + step]):
            got.append(ev)
            latencies.append(min(x.size, i + step) / SR - ev.end_s)
    tail = stream.flush()
    assert got + tail == offline
    assert len(got) == len(offline)  # every event came out live, none only at flush
    chunk_s = step / SR
    assert max(latencies) <= min(0.5, stream.max_latency_s + chunk_s)
    assert stream.max_latency_s <= 0.5


def test_event_at_the_very_end_comes_out_at_flush() -> None:
    x = synth_coughs([1.9], 2.1, noise_db=-55)
    stream = EnergyDetector(SR).stream()
    assert stream.push(x) == []
    tail = stream.flush()
    assert len(tail) == 1 and abs(tail[0].start_s - 1.9) < 0.1
    with pytest.raises(RuntimeError):
        stream.push(x)


def _fake_bundle(heads: tuple) -> SimpleNamespace:
    from hai_edge.runtime.frontends import AudioFrontendSpec

    manifest = SimpleNamespace(heads=heads, preprocessing=AudioFrontendSpec(sample_rate=22050))
    return SimpleNamespace(manifest=manifest, root="B")


def test_detector_from_bundle_default_params_and_unknown_kind() -> None:
    d = detector_from_bundle(_fake_bundle(()))
    assert isinstance(d, EnergyDetector) and d.sample_rate == 22050
    d = detector_from_bundle(_fake_bundle(({"name": "covid", "kind": "logistic"},
                                           {"name": "ev", "role": "detector", "kind": "energy",
                                            "params": {"on_db": 20, "merge_gap_s": 0.3}})))
    assert d.config.on_db == 20.0 and d.config.merge_gap_s == 0.3
    with pytest.raises(BundleError, match="learned-v9.*upgrade"):
        detector_from_bundle(_fake_bundle(({"role": "detector", "kind": "learned-v9"},)))
    with pytest.raises(BundleError, match="unknown parameter"):
        detector_from_bundle(_fake_bundle(({"role": "detector", "kind": "energy",
                                            "params": {"bogus": 1}},)))

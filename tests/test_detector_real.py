"""The real-data detector recipe (``heads.detector_real``) on generated sounds, no ../shared:
a head trained on generated speech-like and cough-like clips must reject held-out speech-like
clips that the energy detector alone flags, and keep the cough-like ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hai_edge.bundle import Bundle, builtin_bundles
from hai_edge.heads.detector_data import (
    Channel,
    DetectorClip,
    SoundType,
    clip_scene,
    stable_unit,
)
from hai_edge.heads.detector_real import clip_scores, worst_case_threshold

pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

SR = 16000


def speech_like(rng: np.random.Generator) -> np.ndarray:
    """Voiced, harmonic (f0 90-220 Hz, two formants), syllables at 3-6 Hz with short gaps."""
    dur = rng.uniform(1.5, 3.0)
    t = np.arange(int(dur * SR)) / SR
    f0 = rng.uniform(90, 220) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    f1, f2 = rng.uniform(400, 800), rng.uniform(1000, 2200)
    x = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0.mean()
        if fk > 4000:
            break
        amp = np.exp(-((fk - f1) / 200) ** 2) + 0.6 * np.exp(-((fk - f2) / 300) ** 2) + 0.02
        x += amp * np.sin(k * phase)
    rate = rng.uniform(3, 6)  # syllables per second: raised-cosine bumps, floor between them
    env = np.maximum(0.0, np.sin(np.pi * rate * t)) ** 2
    return (x * env).astype(np.float32)


def cough_like(rng: np.random.Generator) -> np.ndarray:
    """1-3 broadband noise bursts: 3-8 ms attack, 30-120 ms exponential decay, 0.3 s apart."""
    out = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(0.35 * SR)
        i = np.arange(n)
        attack = int(rng.uniform(0.003, 0.008) * SR)
        env = np.minimum(1.0, i / attack) * np.exp(-np.maximum(0, i - attack)
                                                   / (rng.uniform(0.03, 0.12) * SR))
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 50.0)
        burst = np.fft.irfft(spec / f ** (rng.uniform(0, 1) / 2), n)
        out += [burst / np.std(burst) * env, np.zeros(int(0.3 * SR))]
    return np.concatenate(out).astype(np.float32)


def _clips(tmp: Path, n: int, seed: int, held: bool) -> list[DetectorClip]:
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        for sound, make in ((SoundType.COUGH, cough_like), (SoundType.SPEECH, speech_like)):
            path = tmp / f"{sound.value}-{seed}-{i}.wav"
            sf.write(path, make(rng) * 0.3, SR, subtype="PCM_16")
            clips.append(DetectorClip(path.name, path, sound, "generated", f"g{seed}-{i}", held,
                                      Channel.PHONE_8K if i % 3 == 0 else Channel.NATIVE))
    return clips


def test_worst_case_threshold_maximises_the_worst_type() -> None:
    sounds = [SoundType.COUGH] * 4 + [SoundType.SPEECH] * 4 + [SoundType.CRY] * 2
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.6, 0.0, 0.75, 0.1])
    t, worst = worst_case_threshold(scores, sounds)
    assert t == pytest.approx(0.8) and worst == pytest.approx(0.5)  # 0.7-0.8 tie: higher
    assert np.array_equal(clip_scores(np.array([0.2, 0.9, 0.4]), np.array([0, 0, 2]), 4),
                          [0.9, 0.0, 0.4, 0.0])
    assert 0 <= stable_unit("a") < 1 and stable_unit("a") == stable_unit("a")


def test_tiny_detector_separates_speech_like_from_cough_like(tmp_path: Path) -> None:
    from hai_edge.heads.detector_real import train_real_detector
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.events import EnergyDetector
    from hai_edge.runtime.events_learned import VerifiedDetector

    bundle = Bundle.load(builtin_bundles()["cough-demo"])
    train = _clips(tmp_path, 30, 1, held=False)
    held = _clips(tmp_path, 15, 2, held=True)
    head = train_real_detector(bundle, train, log=None)
    assert head.training["clips_by_type"]["speech"] == 30
    energy = EnergyDetector(SR)
    with Embedder(bundle, "onnxruntime", threads=1) as emb:
        det = VerifiedDetector(emb.spec, head, emb.embed_inputs)
        alarms = {SoundType.COUGH: [], SoundType.SPEECH: []}
        energy_alarms = []
        for clip in held:
            audio, start, end = clip_scene(clip)
            events = det.detect(audio)
            alarms[clip.sound].append(bool(events))
            assert all(start - 0.3 <= e.start_s <= end + 0.3 for e in events)
            if clip.sound is SoundType.SPEECH:
                energy_alarms.append(bool(energy.detect(audio)))
    # the energy detector alone fires on speech-like clips, so the head does the separating
    assert np.mean(energy_alarms) >= 0.8
    assert np.mean(alarms[SoundType.COUGH]) >= 0.9
    assert 1 - np.mean(alarms[SoundType.SPEECH]) >= 0.9

"""Tests of the audio front end against independent float64 reference implementations.

The references are deliberately naive: Python loops for framing and for the TensorFlow mel formula,
an explicit complex-exponential DFT matrix instead of np.fft, a scalar loop for PCEN. Tolerances:
log-mel and PCEN features must match to 1e-4 absolute + 1e-5 relative (the front end computes in
float64 and rounds to float32 at the end, so this is float32 rounding, with margin); the mel
matrix to 1e-12.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hai_edge.errors import InputError
from hai_edge.runtime.frontends import (
    AudioFeatures,
    AudioFrontendSpec,
    AudioWindow,
    ClipNormalization,
    mel_filterbank,
    prepare_audio,
    resample,
    split_windows,
    to_mono,
    window_features,
)

# ---------------------------------------------------------------------------------------------
# independent references


def ref_mel_matrix(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """tf.signal.linear_to_mel_weight_matrix written out with scalar loops."""

    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    n_bins = n_fft // 2 + 1
    lo, hi = mel(fmin), mel(fmax)
    edges = [lo + (hi - lo) * i / (n_mels + 1) for i in range(n_mels + 2)]
    out = np.zeros((n_bins, n_mels))
    for b in range(1, n_bins):  # the DC bin keeps weight 0
        m = mel(b * (sr / 2.0) / (n_bins - 1))
        for j in range(n_mels):
            lower, centre, upper = edges[j], edges[j + 1], edges[j + 2]
            rising = (m - lower) / (centre - lower)
            falling = (upper - m) / (upper - centre)
            out[b, j] = max(0.0, min(rising, falling))
    return out


def ref_mel_power(window: np.ndarray, spec: AudioFrontendSpec) -> np.ndarray:
    """[n_frames, n_mels] mel power of one window: loop framing + explicit DFT matrix."""
    n, hop, wl, n_fft = window.size, spec.hop_length, spec.win_length, spec.n_fft
    n_frames = math.ceil(n / hop)
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / wl) for i in range(wl)])
    k = np.arange(n_fft // 2 + 1)[:, None]
    t = np.arange(n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * t / n_fft)  # [bins, n_fft]
    mel = ref_mel_matrix(spec.sample_rate, n_fft, spec.n_mels, spec.fmin, spec.fmax)
    out = np.zeros((n_frames, spec.n_mels))
    for f in range(n_frames):
        frame = np.zeros(n_fft)  # windowed frame, left-aligned, zero-padded to n_fft
        for i in range(wl):
            s = f * hop + i
            frame[i] = (window[s] if s < n else 0.0) * hann[i]
        spectrum = dft @ frame
        power = spectrum.real**2 + spectrum.imag**2
        out[f] = power @ mel
    return out


def ref_pcen(e: np.ndarray, spec: AudioFrontendSpec) -> np.ndarray:
    """Scalar-loop PCEN of [n_frames, n_mels] with M[-1] = E[0]."""
    out = np.zeros_like(e)
    for c in range(e.shape[1]):
        m = e[0, c]
        for t in range(e.shape[0]):
            m = (1 - spec.pcen_smooth) * m + spec.pcen_smooth * e[t, c]
            g = (e[t, c] / (spec.pcen_floor + m) ** spec.pcen_alpha + spec.pcen_delta) ** (
                1 / spec.pcen_root
            )
            out[t, c] = g - spec.pcen_delta ** (1 / spec.pcen_root)
    return out


def _test_signal(n: int, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1870 * t + 1.0)
    return x + 0.05 * rng.standard_normal(n)


SPECS = [
    AudioFrontendSpec(window_s=0.5, hop_s=0.5),  # HeAR-like: 512/400/160, 64 mels @ 16 kHz
    AudioFrontendSpec(window_s=0.25, hop_s=0.25, n_fft=256, win_length=256, hop_length=128,
                      n_mels=32, fmin=0.0, fmax=8000.0, min_clip_s=0.1),
    AudioFrontendSpec(sample_rate=8000, window_s=0.3, hop_s=0.3, n_fft=1024, win_length=600,
                      hop_length=250, n_mels=40, fmin=20.0, fmax=4000.0, min_clip_s=0.1),
    AudioFrontendSpec(sample_rate=22050, window_s=0.2, hop_s=0.2, n_fft=512, win_length=300,
                      hop_length=97, n_mels=48, fmin=125.0, fmax=7500.0, min_clip_s=0.1,
                      feature_mean=-3.0, feature_std=2.5),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# mel filterbank


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [(16000, 512, 64, 60.0, 7800.0), (16000, 256, 32, 0.0, 8000.0), (8000, 1024, 40, 20.0, 4000.0),
     (44100, 2048, 128, 30.0, 16000.0)],
)  # fmt: skip
def test_mel_filterbank_matches_loop_reference(sr, n_fft, n_mels, fmin, fmax) -> None:
    m = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert m.shape == (n_fft // 2 + 1, n_mels)
    assert m.dtype == np.float64
    np.testing.assert_allclose(m, ref_mel_matrix(sr, n_fft, n_mels, fmin, fmax), atol=1e-12)
    assert np.all(m[0] == 0.0)  # DC bin row is zero
    assert np.all(m >= 0.0) and np.all(m <= 1.0)


def test_mel_filterbank_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError):
        mel_filterbank(16000, 512, 64, 60.0, 8001.0)  # above Nyquist
    with pytest.raises(ValueError):
        mel_filterbank(16000, 512, 64, 500.0, 400.0)


def test_mel_filters_peak_at_their_centre_frequency() -> None:
    sr, n_fft, n_mels, fmin, fmax = 16000, 1024, 40, 60.0, 7800.0
    m = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    mel_lo, mel_hi = 1127 * math.log1p(fmin / 700), 1127 * math.log1p(fmax / 700)
    bin_hz = sr / n_fft
    for j in range(n_mels):
        centre_mel = mel_lo + (mel_hi - mel_lo) * (j + 1) / (n_mels + 1)
        centre_hz = 700 * (math.exp(centre_mel / 1127) - 1)
        peak_hz = int(np.argmax(m[:, j])) * bin_hz
        assert abs(peak_hz - centre_hz) <= bin_hz, (j, peak_hz, centre_hz)
        assert m[:, j].max() > 0.5


# ---------------------------------------------------------------------------------------------
# window_features


def _spec_id(s: AudioFrontendSpec) -> str:
    return f"{s.sample_rate}-{s.n_fft}-{s.win_length}-{s.hop_length}"


@pytest.mark.parametrize("spec", SPECS, ids=_spec_id)
def test_log_mel_matches_reference(spec: AudioFrontendSpec) -> None:
    n, sr = spec.window_samples, spec.sample_rate
    windows = np.stack([_test_signal(n, sr, seed) for seed in (0, 1, 2)]).astype(np.float32)
    out = window_features(windows, spec)
    assert out.shape == (3, 1, spec.n_mels, spec.n_frames)
    assert out.dtype == np.float32
    assert spec.n_frames == math.ceil(spec.window_samples / spec.hop_length)
    for b in range(3):
        ref = np.log(ref_mel_power(windows[b].astype(np.float64), spec) + spec.log_offset)
        ref = ((ref - spec.feature_mean) / spec.feature_std).T  # [n_mels, n_frames]
        np.testing.assert_allclose(out[b, 0], ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("spec", SPECS[:2], ids=["hear", "small"])
def test_pcen_matches_loop_reference(spec: AudioFrontendSpec) -> None:
    spec = dataclasses.replace(spec, features=AudioFeatures.PCEN, feature_mean=0.1, feature_std=0.7)
    rng = np.random.default_rng(5)
    x = _test_signal(spec.window_samples, spec.sample_rate, 7)
    x[: spec.window_samples // 2] *= 0.01  # quiet start, loud end: the smoother matters
    windows = np.stack([x, 0.5 * rng.standard_normal(spec.window_samples)]).astype(np.float32)
    out = window_features(windows, spec)
    assert out.shape == (2, 1, spec.n_mels, spec.n_frames)
    for b in range(2):
        e = ref_mel_power(windows[b].astype(np.float64), spec)
        ref = ((ref_pcen(e, spec) - 0.1) / 0.7).T
        np.testing.assert_allclose(out[b, 0], ref, atol=1e-4, rtol=1e-5)


def test_frame_convention_is_tf_pad_end() -> None:
    # 1000 samples, hop 160 -> ceil(1000 / 160) = 7 frames; an impulse in the last sample lands
    # only in frames whose span (after end padding) covers it: frames 4, 5, 6 (starts 640..960).
    spec = AudioFrontendSpec(window_s=1000 / 16000, hop_s=1000 / 16000, min_clip_s=0.01,
                             fmin=0.0, fmax=8000.0)  # fmt: skip
    assert spec.n_frames == 7
    x = np.zeros(1000, dtype=np.float32)
    x[999] = 1.0
    energy = np.exp(window_features(x, spec)[0, 0].astype(np.float64)) - spec.log_offset
    frame_energy = energy.sum(axis=0)
    assert np.all(frame_energy[:4] < 1e-9)
    assert np.all(frame_energy[4:] > 1e-4)


def test_waveform_features_and_clip_normalisation() -> None:
    spec = AudioFrontendSpec(window_s=0.5, hop_s=0.5, features=AudioFeatures.WAVEFORM)
    n = spec.window_samples
    x = np.stack([np.linspace(-0.25, 0.5, n), np.full(n, 0.3), np.zeros(n)]).astype(np.float32)
    out = window_features(x, spec)
    assert out.shape == (3, n) and out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    one = window_features(x[0], spec)  # a single 1-D window gets a batch dimension
    assert one.shape == (1, n)

    peak = window_features(x, dataclasses.replace(spec, clip_normalization=ClipNormalization.PEAK))
    np.testing.assert_allclose(peak[0], x[0] / 0.5, atol=1e-6)
    np.testing.assert_allclose(peak[1], 1.0, atol=1e-6)
    np.testing.assert_array_equal(peak[2], 0.0)  # all-zero window stays zero

    mm = window_features(x, dataclasses.replace(spec, clip_normalization="minmax"))
    np.testing.assert_allclose(mm[0], np.linspace(-1.0, 1.0, n), atol=1e-6)
    np.testing.assert_array_equal(mm[1], 0.0)  # constant window -> zeros
    np.testing.assert_array_equal(mm[2], 0.0)


def test_clip_normalisation_applies_before_log_mel() -> None:
    spec = AudioFrontendSpec(window_s=0.5, hop_s=0.5, clip_normalization=ClipNormalization.PEAK)
    x = _test_signal(spec.window_samples, 16000, 3)
    a = window_features((0.01 * x).astype(np.float32), spec)
    b = window_features((0.9 * x).astype(np.float32), spec)
    np.testing.assert_allclose(a, b, atol=1e-4)  # level-independent after peak normalisation


def test_window_features_rejects_wrong_length() -> None:
    spec = AudioFrontendSpec(window_s=0.5, hop_s=0.5)
    with pytest.raises(ValueError, match="8000"):
        window_features(np.zeros((2, 7999), dtype=np.float32), spec)


# ---------------------------------------------------------------------------------------------
# split_windows

SR = 16000


def _tone(seconds: float, amp: float = 0.5) -> np.ndarray:
    n = int(round(seconds * SR))
    return (amp * np.sin(2 * np.pi * 440 * np.arange(n) / SR)).astype(np.float32)


def test_too_short_clip_is_rejected_with_source_name() -> None:
    with pytest.raises(InputError) as info:
        split_windows(_tone(0.4), AudioFrontendSpec(), "cough_07.wav")
    assert info.value.source == "cough_07.wav"
    assert str(info.value) == "cough_07.wav: audio is 0.40 s long; at least 0.50 s is needed"
    with pytest.raises(InputError, match="0.00 s long"):
        split_windows(np.zeros(0, dtype=np.float32), AudioFrontendSpec(), "empty.wav")


def test_short_clip_becomes_one_padded_window() -> None:
    for pad_last in (True, False):
        spec = AudioFrontendSpec(pad_last=pad_last)
        wins = split_windows(_tone(1.0), spec, "a.wav")
        assert len(wins) == 1
        w = wins[0]
        assert isinstance(w, AudioWindow)
        assert (w.index, w.start_s, w.end_s) == (0, 0.0, 1.0)
        assert w.samples.shape == (32000,) and w.samples.dtype == np.float32
        np.testing.assert_array_equal(w.samples[:16000], _tone(1.0))
        assert np.all(w.samples[16000:] == 0.0)
        assert w.rms_db == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)


def test_exact_window_and_longer_clips() -> None:
    spec = AudioFrontendSpec()  # 2 s windows, 1.8 s hop, min 0.5 s
    two = split_windows(_tone(2.0), spec, "b.wav")
    assert [(w.index, w.start_s, w.end_s) for w in two] == [(0, 0.0, 2.0)]

    wins = split_windows(_tone(5.3), spec, "c.wav")
    got = [(w.index, round(w.start_s, 6), round(w.end_s, 6)) for w in wins]
    assert got == [(0, 0.0, 2.0), (1, 1.8, 3.8), (2, 3.6, 5.3)]
    last = wins[-1].samples
    np.testing.assert_array_equal(last[: int(1.7 * SR)], _tone(5.3)[int(3.6 * SR) :])
    assert np.all(last[int(1.7 * SR) :] == 0.0)

    no_pad = split_windows(_tone(5.3), dataclasses.replace(spec, pad_last=False), "c.wav")
    assert [w.index for w in no_pad] == [0, 1]

    # the tail window of 3.9 s holds only 0.3 s (< min_clip_s) of audio: dropped
    assert [w.end_s for w in split_windows(_tone(3.9), spec, "d.wav")] == [2.0, 3.8]


def test_no_window_after_the_one_that_reaches_the_end() -> None:
    # 2.0 s with a 0.1 s minimum: the 0.2 s tail at 1.8 s is already inside window 0
    spec = AudioFrontendSpec(min_clip_s=0.1)
    assert [w.start_s for w in split_windows(_tone(2.0), spec, "g")] == [0.0]
    # small hop: windows at 0, 0.5, 1.0; the one at 1.0 ends at 3.0 == the end, so none after it
    spec = AudioFrontendSpec(hop_s=0.5)
    assert [w.start_s for w in split_windows(_tone(3.0), spec, "g")] == [0.0, 0.5, 1.0]
    assert [w.start_s for w in split_windows(_tone(3.2), spec, "g")] == [0.0, 0.5, 1.0, 1.5]


def test_hop_longer_than_window() -> None:
    spec = AudioFrontendSpec(window_s=1.0, hop_s=1.5)
    assert [(w.start_s, w.end_s) for w in split_windows(_tone(2.2), spec, "e")] == [
        (0.0, 1.0),
        (1.5, 2.2),
    ]
    assert [w.start_s for w in split_windows(_tone(2.6), spec, "e")] == [0.0, 1.5]


def test_quiet_windows_are_skipped() -> None:
    x = _tone(5.3)
    x[int(1.8 * SR) : int(3.8 * SR)] = 0.0  # window 1 [1.8, 3.8) is digital silence
    x[int(3.8 * SR) :] *= 0.01  # window 2 [3.6, 5.3): 0.2 s silence, 1.5 s at 0.005 amplitude
    spec = AudioFrontendSpec()
    kept = split_windows(x, dataclasses.replace(spec, skip_quiet_db=None), "f.wav")
    assert [w.index for w in kept] == [0, 1, 2]
    assert kept[1].rms_db == -math.inf
    level = 20 * math.log10(0.005 / math.sqrt(2) * math.sqrt(1.5 / 1.7))  # RMS of real samples
    assert kept[2].rms_db == pytest.approx(level, abs=0.01)
    wins = split_windows(x, dataclasses.replace(spec, skip_quiet_db=level - 0.5), "f.wav")
    assert [w.index for w in wins] == [0, 2]
    assert wins[1].start_s == pytest.approx(3.6)
    np.testing.assert_array_equal(wins[1].samples, kept[2].samples)
    wins = split_windows(x, dataclasses.replace(spec, skip_quiet_db=level + 0.5), "f.wav")
    assert [w.index for w in wins] == [0]


def test_all_silent_is_an_error() -> None:
    with pytest.raises(InputError) as info:
        split_windows(np.zeros(3 * SR, dtype=np.float32), AudioFrontendSpec(), "silence.wav")
    assert str(info.value) == (
        "silence.wav: audio is silent (peak window RMS -inf dBFS, threshold -50 dBFS)"
    )
    quiet = _tone(1.0, amp=math.sqrt(2) * 10 ** (-62.3 / 20))  # RMS -62.3 dBFS
    with pytest.raises(InputError, match=r"peak window RMS -62\.3 dBFS, threshold -50 dBFS"):
        split_windows(quiet, AudioFrontendSpec(), "quiet.wav")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(bad: float) -> None:
    x = _tone(1.0)
    x[100] = bad
    with pytest.raises(InputError, match="contains NaN or infinite samples") as info:
        split_windows(x, AudioFrontendSpec(), "nan.wav")
    assert "nan.wav" in str(info.value)
    with pytest.raises(InputError, match="NaN or infinite"):
        prepare_audio(x, 44100, AudioFrontendSpec(), "nan.wav")


# ---------------------------------------------------------------------------------------------
# to_mono / prepare_audio


def test_to_mono() -> None:
    stereo = np.stack([np.full(10, 0.5), np.full(10, -0.25)], axis=1)
    mono = to_mono(stereo)
    assert mono.shape == (10,) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, 0.125)
    np.testing.assert_array_equal(to_mono(np.arange(4.0)), np.arange(4.0, dtype=np.float32))
    np.testing.assert_allclose(to_mono(np.array([-32768, 16384], dtype=np.int16)), [-1.0, 0.5])
    np.testing.assert_allclose(to_mono(np.array([0, 128, 192], dtype=np.uint8)), [-1.0, 0.0, 0.5])
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 3, 4)))


def test_prepare_audio_pipeline() -> None:
    sr = 44100
    t = np.arange(int(4.2 * sr)) / sr
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 1000 * t)
    samples = np.stack([left, right], axis=1).astype(np.float32)
    spec = AudioFrontendSpec()
    windows, inputs = prepare_audio(samples, sr, spec, "rec.wav")
    assert [w.index for w in windows] == [0, 1, 2]  # starts 0, 1.8, 3.6 (0.6 s tail kept)
    assert inputs.shape == (3, 1, 64, 200) and inputs.dtype == np.float32
    expected_mono = resample(to_mono(samples), sr, 16000)
    np.testing.assert_array_equal(windows[1].samples, expected_mono[28800:60800])  # 1.8..3.8 s
    assert windows[2].end_s == pytest.approx(4.2)
    stacked = np.stack([w.samples for w in windows])
    np.testing.assert_allclose(inputs, window_features(stacked, spec))

    wave_spec = dataclasses.replace(spec, features="waveform")
    _, wave = prepare_audio(samples, sr, wave_spec, "rec.wav")
    assert wave.shape == (3, 32000)


def test_prepare_audio_rejects_bad_input() -> None:
    spec = AudioFrontendSpec()
    with pytest.raises(InputError, match="bad.wav: invalid sample rate"):
        prepare_audio(np.zeros(16000, dtype=np.float32), 0, spec, "bad.wav")
    with pytest.raises(InputError, match="bad.wav: audio samples must be"):
        prepare_audio(np.zeros((2, 3, 4), dtype=np.float32), 16000, spec, "bad.wav")
    with pytest.raises(InputError, match="0.25 s long"):
        prepare_audio(np.full(4000, 0.1, dtype=np.float32), 16000, spec, "bad.wav")


def test_front_ends_run_numpy_blas_on_one_thread() -> None:
    """The run side's small matrices on a multi-threaded BLAS cost 10x on a busy machine: the
    pipelines run their front ends under hai_edge.tools.one_blas_thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from hai_edge.runtime._embedder import Embedder
    from hai_edge.tools import one_blas_thread

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with one_blas_thread():
            assert blas_threads() == {1}
        assert blas_threads() == {2}  # restored
        seen: list[set[int]] = []
        original = Embedder.embed_inputs
        Embedder.embed_inputs = lambda self, x: (seen.append(blas_threads()), original(self, x))[1]
        try:
            with Embedder("cough-demo") as emb:
                emb.embed_audio(np.zeros(32000, np.float32) + 0.01, 16000)
        finally:
            Embedder.embed_inputs = original
        assert seen and seen[0] == {1}

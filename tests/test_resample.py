"""Tests of the numpy polyphase resampler against analytic signals (no scipy needed).

Tolerances: the Kaiser(beta=5) design has a pass-band ripple of about -52 dB, so a sine well inside
the pass band (<= 0.75 of the lower Nyquist) is reproduced to within 2.5e-3 of its amplitude; the
first/last 50 ms are ignored (the signal is cut off there, not band-limited). Tones at >= 1.25x
the new Nyquist must be attenuated by >= 50 dB (the brief asks for >= 40 dB).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from hai_edge.runtime.frontends import _resample as rs
from hai_edge.runtime.frontends import resample

PAIRS = [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)]
EDGE_S = 0.05


def _sine(freq: float, sr: int, n: int, amp: float = 0.9, phase: float = 0.3) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / sr
    return amp * np.sin(2 * np.pi * freq * t + phase)


@pytest.mark.parametrize(("orig_sr", "target_sr"), PAIRS)
def test_sines_match_analytic_signal(orig_sr: int, target_sr: int) -> None:
    lower_nyquist = min(orig_sr, target_sr) / 2
    freqs = [f for f in (50, 440, 1000, 2000, 3000, 5000) if f <= 0.75 * lower_nyquist]
    assert len(freqs) >= 4
    amp = 0.9
    for freq in freqs:
        x = _sine(freq, orig_sr, orig_sr).astype(np.float32)  # 1 s
        y = resample(x, orig_sr, target_sr)
        assert y.dtype == np.float32 and y.ndim == 1
        ref = _sine(freq, target_sr, y.size, amp=amp)
        edge = int(EDGE_S * target_sr)
        err = np.max(np.abs(y[edge:-edge] - ref[edge:-edge]))
        assert err <= 2.5e-3 * amp, f"{orig_sr}->{target_sr} at {freq} Hz: max error {err:.2e}"


@pytest.mark.parametrize(
    ("orig_sr", "freqs"),
    [(44100, (10000, 12000, 15000)), (48000, (10000, 15000, 20000)), (22050, (10000,))],
)
def test_tones_above_new_nyquist_are_attenuated(orig_sr: int, freqs: tuple[int, ...]) -> None:
    target_sr = 16000
    for freq in freqs:
        x = _sine(freq, orig_sr, orig_sr, amp=1.0).astype(np.float32)
        y = resample(x, orig_sr, target_sr)
        edge = int(EDGE_S * target_sr)
        rms = np.sqrt(np.mean(y[edge:-edge].astype(np.float64) ** 2))
        gain_db = 20 * math.log10(rms / math.sqrt(0.5))
        assert gain_db <= -50.0, f"{freq} Hz only attenuated to {gain_db:.1f} dB"


@pytest.mark.parametrize(("orig_sr", "target_sr"), [*PAIRS, (16000, 44100), (44101, 16000)])
def test_output_length_rule(orig_sr: int, target_sr: int) -> None:
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    for n in (0, 1, 2, 3, 5, 440, 441, 1000, 4411):
        y = resample(np.ones(n, dtype=np.float32), orig_sr, target_sr)
        assert y.shape == (-(-n * up // down),), (n, y.shape)
        assert y.dtype == np.float32


@pytest.mark.parametrize(("orig_sr", "target_sr"), PAIRS)
def test_no_time_shift(orig_sr: int, target_sr: int) -> None:
    # A band-limited Gaussian pulse (sigma 1 ms: negligible energy above 1 kHz) at 0.3 s.
    def pulse(sr: int, n: int) -> np.ndarray:
        t = np.arange(n) / sr
        return np.exp(-0.5 * ((t - 0.3) / 1e-3) ** 2)

    x = pulse(orig_sr, int(0.6 * orig_sr)).astype(np.float32)
    y = resample(x, orig_sr, target_sr).astype(np.float64)
    ref = pulse(target_sr, y.size)
    xc = np.correlate(y, ref, mode="full")
    lag = int(np.argmax(xc)) - (ref.size - 1)
    assert lag == 0
    # and the pulse's centroid is within 1 % of a target sample of the truth
    centroid = np.sum(np.arange(y.size) * y) / np.sum(y)
    assert abs(centroid - 0.3 * target_sr) < 0.01
    assert np.max(np.abs(y - ref)) < 2e-3


def test_identity_when_rates_equal() -> None:
    x = np.linspace(-1, 1, 1001)
    y = resample(x, 16000, 16000)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))
    x32 = x.astype(np.float32)
    assert resample(x32, 16000, 16000) is not x32


def test_dc_gain_is_one() -> None:
    for orig_sr, target_sr in PAIRS:
        y = resample(np.full(orig_sr, 0.5, dtype=np.float32), orig_sr, target_sr)
        edge = int(EDGE_S * target_sr)
        np.testing.assert_allclose(y[edge:-edge], 0.5, atol=2e-3)


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(44100).astype(np.float32)
    whole = resample(x, 44100, 16000)
    whole_up = resample(x, 8000, 16000)
    monkeypatch.setattr(rs, "_CHUNK_ELEMENTS", 3000)  # many small chunks, odd boundaries
    np.testing.assert_allclose(resample(x, 44100, 16000), whole, atol=1e-6)
    np.testing.assert_allclose(resample(x, 8000, 16000), whole_up, atol=1e-6)


def test_gather_path_matches_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(20000).astype(np.float32)
    for orig_sr, target_sr in [(44100, 16000), (8000, 16000), (48000, 16000)]:
        dense = resample(x, orig_sr, target_sr)
        g = math.gcd(orig_sr, target_sr)
        up, down = target_sr // g, orig_sr // g
        n_out = -(-x.size * up // down)
        gathered = rs._resample_gather(x, up, down, n_out)
        np.testing.assert_allclose(gathered, dense, atol=1e-5)
    ref = resample(x, 44100, 16000)
    monkeypatch.setattr(rs, "_CHUNK_ELEMENTS", 5000)  # several gather chunks
    np.testing.assert_allclose(rs._resample_gather(x, 160, 441, ref.size), ref, atol=1e-5)


def test_odd_rate_pair_uses_gather_path_and_is_accurate() -> None:
    orig_sr, target_sr = 44101, 16000  # gcd 1: L = 16000, M = 44101
    assert rs._block_matrix(16000, 44101) is None
    x = _sine(1000, orig_sr, orig_sr // 2).astype(np.float32)
    y = resample(x, orig_sr, target_sr)
    ref = _sine(1000, target_sr, y.size)
    edge = int(EDGE_S * target_sr)
    assert np.max(np.abs(y[edge:-edge] - ref[edge:-edge])) <= 2.5e-3 * 0.9


def test_filter_design() -> None:
    h = rs._lowpass(160, 441)
    assert h.size == 2 * 10 * 441 + 1
    np.testing.assert_allclose(h.sum(), 160.0)
    np.testing.assert_allclose(h, h[::-1])  # symmetric: zero phase once centred
    assert int(np.argmax(h)) == 10 * 441


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        resample(np.zeros((10, 2)), 16000, 8000)
    with pytest.raises(ValueError):
        resample(np.zeros(10), 0, 8000)


def test_matches_scipy_resample_poly() -> None:
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(3)
    for orig_sr, target_sr in [*PAIRS, (16000, 44100)]:
        x = rng.standard_normal(orig_sr // 2)
        g = math.gcd(orig_sr, target_sr)
        ref = signal.resample_poly(x, target_sr // g, orig_sr // g)
        y = resample(x.astype(np.float32), orig_sr, target_sr)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, atol=1e-5)

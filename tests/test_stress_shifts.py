"""Each shift of ``hai-edge stress`` is deterministic under a seed and does what it says:
measured band edges, SNR, reverberation time, codec bitrate, JPEG quality, exposure."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("scipy")

from hai_edge.stress import SHIFTS, ShiftContext, rng_for, select_shifts  # noqa: E402
from hai_edge.stress import audio as A  # noqa: E402
from hai_edge.stress import image as I  # noqa: E402

SR = 16000


def _noise(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(SR * seconds))).astype(np.float32)


def _photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:200, 0:256]  # defocus r 0.5% = 1 px
    base = np.stack([120 + 60 * np.sin(xx / 9), 90 + 50 * np.cos(yy / 7), 80 + 0 * xx], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _gain_db(x: np.ndarray, y: np.ndarray, f_lo: float, f_hi: float) -> float:
    """Power gain of y over x within [f_lo, f_hi] Hz (Welch PSDs)."""
    from scipy.signal import welch

    f, px = welch(x, SR, nperseg=2048)
    _, py = welch(y, SR, nperseg=2048)
    band = (f >= f_lo) & (f <= f_hi)
    return float(10 * np.log10(py[band].sum() / px[band].sum()))


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_every_shift_is_deterministic_and_keeps_shape(name: str) -> None:
    shift = SHIFTS[name]
    if shift.modality.value == "audio":
        ctx = ShiftContext(SR, (_noise(1.0, 7),), "test noise")
        x = _noise()
    else:
        ctx, x = ShiftContext(), _photo()
    for sev in range(1, len(shift.levels) + 1):
        a = shift.apply(x, ctx, sev, rng_for(3, name, sev, "item-1"))
        b = shift.apply(x, ctx, sev, rng_for(3, name, sev, "item-1"))
        assert np.array_equal(a, b), (name, sev)
        assert a.dtype == x.dtype
        if name == "crop":
            assert a.shape[2] == 3 and a.shape[0] < x.shape[0]
        else:
            assert a.shape == x.shape
        assert not np.array_equal(a, x), f"{name} {sev} changed nothing"
    if name in ("noise", "noise-real", "reverb", "motion", "crop"):  # random parts follow the seed
        k = len(shift.levels)
        c = shift.apply(x, ctx, k, rng_for(4, name, k, "item-1"))
        assert not np.array_equal(c, shift.apply(x, ctx, k, rng_for(3, name, k, "item-1")))


def test_telephone_band_limits_are_measured_where_stated() -> None:
    x = _noise(4.0)
    y = A.telephone(x, SR, 300.0, 3400.0)
    assert _gain_db(x, y, 800, 2500) > -1.5  # pass band kept
    assert _gain_db(x, y, 20, 150) < -20  # below the band: gone
    assert _gain_db(x, y, 4000, 8000) < -40  # above 4 kHz: an 8 kHz line has nothing
    assert -6 < _gain_db(x, y, 3300, 3400) < 0  # the edge: about -3 dB


@pytest.mark.parametrize(("low", "high"), [(600.0, None), (None, 2000.0)])
def test_microphone_filters_are_minus_3_db_at_the_cutoff(low, high) -> None:
    from scipy.signal import freqz_zpk, butter

    z, p, k = butter(4, low or high, "highpass" if low else "lowpass", fs=SR, output="zpk")
    _, h = freqz_zpk(z, p, k, worN=[low or high], fs=SR)
    assert abs(20 * np.log10(abs(h[0])) + 3.01) < 0.05
    x = _noise(4.0)
    y = A.band_filter(x, SR, low, high)
    if low:
        assert _gain_db(x, y, 20, low / 4) < -30 and _gain_db(x, y, 2 * low, 7000) > -1
    else:
        assert _gain_db(x, y, 3 * high, 7900) < -40 and _gain_db(x, y, 50, high / 2) > -1


@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0])
def test_added_noise_has_the_stated_snr(snr: float) -> None:
    x = _noise()
    for noise in (A.pink_noise(len(x), np.random.default_rng(1)), _noise(0.7, 9)):
        y = A.add_noise(x, A.loop_to(noise, len(x), np.random.default_rng(2)), snr)
        measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2)
                                 / np.mean((y - x).astype(np.float64) ** 2))
        assert abs(measured - snr) < 0.01


def test_pink_noise_falls_3_db_per_octave() -> None:
    from scipy.signal import welch

    f, p = welch(A.pink_noise(SR * 8, np.random.default_rng(0)), SR, nperseg=4096)
    slope = np.polyfit(np.log2(f[(f > 100) & (f < 6000)]), 10 * np.log10(p[(f > 100) & (f < 6000)]), 1)[0]
    assert -3.6 < slope < -2.4


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_reverb_has_the_stated_rt60_and_keeps_the_level(rt60: float) -> None:
    rir = A.stochastic_rir(SR, rt60, np.random.default_rng(0))
    assert abs(A.rt60_of(rir, SR) - rt60) / rt60 < 0.1
    x = _noise()
    y = A.reverb(x, SR, rt60, np.random.default_rng(0))
    assert abs(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) - 1) < 1e-6


def test_clipping_and_gain() -> None:
    x = _noise()
    y = A.clip(x, 12.0)
    assert np.max(np.abs(y)) <= 1.0 and np.mean(np.abs(y) == 1.0) > 0.01
    assert abs(20 * np.log10(np.std(A.gain(x, -20.0)) / np.std(x)) + 20) < 1e-4


@pytest.mark.parametrize(("codec", "kbps"), [("mp3", 32.0), ("mp3", 16.0), ("opus", 12.0)])
def test_codecs_run_near_the_stated_bitrate(codec: str, kbps: float) -> None:
    import soundfile as sf

    if codec.upper() == "MP3" and "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    measured = A.codec_bitrate_kbps(codec, SR, kbps)
    assert abs(measured - kbps) / kbps < 0.35, measured
    x = _noise()
    y = A.codec_roundtrip(x, SR, codec, kbps)
    assert y.shape == x.shape
    # a lossy codec changes the waveform, but it stays aligned and correlated with the input
    assert 0.3 < np.corrcoef(x, y)[0, 1] < 0.999


def test_g711_is_8_bit_mu_law_at_8_khz() -> None:
    x = _noise()
    y = A.mulaw_roundtrip(x, SR)
    assert _gain_db(x, y, 4200, 8000) < -30  # 8 kHz: nothing above 4 kHz
    err = y - A.resample_poly(A.resample_poly(x, SR, 8000), 8000, SR)
    snr = 10 * np.log10(np.mean(x**2) / np.mean(err**2))
    assert 25 < snr < 45  # mu-law's ~38 dB quantisation SNR, not lossless


@pytest.mark.parametrize("quality", [90, 50, 20])
def test_jpeg_is_written_at_the_stated_quality(quality: int) -> None:
    from PIL import Image

    data = I.jpeg_bytes(_photo(), quality)
    im = Image.open(io.BytesIO(data))
    # libjpeg's quality scaling of the standard luminance table's DC entry (16)
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    assert im.quantization[0][0] == max(1, min(255, (16 * scale + 50) // 100))
    assert im.layer[0][1:3] == (2, 2)  # 4:2:0 chroma subsampling


def test_lower_jpeg_quality_loses_more() -> None:
    x = _photo().astype(float)
    errs = [np.mean((I.jpeg_roundtrip(_photo(), q) - x) ** 2) for q in (90, 50, 20)]
    assert errs[0] < errs[1] < errs[2]


def test_photo_shifts_do_what_they_say() -> None:
    x = _photo()
    grey = np.full((40, 40, 3), 128, np.uint8)
    assert abs(float(np.mean(I.exposure(grey, -1.0))) - 93.0) < 2  # half the linear light
    warm = I.white_balance(grey, 3000.0)
    assert warm[..., 0].mean() > grey[..., 0].mean() > warm[..., 2].mean()  # redder, less blue
    cool = I.white_balance(grey, 10000.0)
    assert cool[..., 2].mean() > cool[..., 0].mean()
    assert np.array_equal(I.white_balance(x, 6500.0), x) or \
        np.max(np.abs(I.white_balance(x, 6500.0).astype(int) - x)) <= 1
    sharp = np.abs(np.diff(x.astype(float), axis=1)).mean()
    for blurred in (I.defocus(x, 3.0), I.motion_blur(x, 9.0, 30.0), I.downscale(x, 4.0)):
        assert np.abs(np.diff(blurred.astype(float), axis=1)).mean() < 0.6 * sharp
    assert np.array_equal(I.rotate(x, 0.0), x)
    c = I.crop(x, 0.5, np.random.default_rng(0))
    assert c.shape == (100, 128, 3)


def test_select_shifts_checks_names_and_modality() -> None:
    from hai_edge.errors import HaiEdgeError

    assert {s.name for s in select_shifts("audio")} >= {"telephone", "mp3", "opus", "g711",
                                                         "noise", "reverb", "clipping"}
    assert [s.name for s in select_shifts("image", ["jpeg", "crop"])] == ["jpeg", "crop"]
    with pytest.raises(HaiEdgeError, match="unknown image shift 'mp3'"):
        select_shifts("image", ["mp3"])

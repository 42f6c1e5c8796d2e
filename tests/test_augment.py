"""Augmentations: exact replays, and each op does what it says (numpy + Pillow only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hai_edge.distill.augment import (
    AudioAug,
    ImageAug,
    apply_audio_aug,
    apply_image_aug,
    aug_from_json,
    aug_to_json,
    sample_audio_aug,
    sample_image_aug,
)

SR = 16000


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 255 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ audio
def test_audio_replay_is_exact_and_json_round_trips() -> None:
    rng = np.random.default_rng(1)
    x = _tone(440) + _tone(5000, amp=0.1)
    for _ in range(20):
        aug = sample_audio_aug(rng)
        again = aug_from_json(aug_to_json(aug))
        assert again == aug
        np.testing.assert_array_equal(apply_audio_aug(x, SR, aug), apply_audio_aug(x, SR, again))
    assert aug_to_json(None) == "" and aug_from_json("") is None


def test_sampling_is_deterministic_and_varied() -> None:
    a = [sample_audio_aug(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    many = [sample_audio_aug(np.random.default_rng(s)) for s in range(40)]
    assert len({m.gain_db for m in many}) == 40
    assert {m.phone_band for m in many} == {True, False}
    assert {m.noise_snr_db is None for m in many} == {True, False}


def test_gain_changes_rms_by_the_db() -> None:
    x = _tone(300)
    for db in (-6.0, 3.5):
        y = apply_audio_aug(x, SR, AudioAug(gain_db=db))
        assert 20 * np.log10(_rms(y) / _rms(x)) == pytest.approx(db, abs=1e-4)


def test_phone_band_removes_energy_above_4khz_and_keeps_speech_band() -> None:
    hi, lo = _tone(6000), _tone(1000)
    y_hi = apply_audio_aug(hi, SR, AudioAug(phone_band=True))
    y_lo = apply_audio_aug(lo, SR, AudioAug(phone_band=True))
    assert y_hi.shape == hi.shape
    assert _band_energy(y_hi, 4000, 8000) < 1e-4 * _band_energy(hi, 4000, 8000)
    assert _band_energy(y_lo, 900, 1100) == pytest.approx(_band_energy(lo, 900, 1100), rel=0.01)


def test_noise_hits_the_snr_and_is_seeded() -> None:
    x = _tone(500, seconds=2.0)
    y = apply_audio_aug(x, SR, AudioAug(noise_snr_db=10.0, seed=3))
    noise = y.astype(np.float64) - x
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2)) == \
        pytest.approx(10.0, abs=1e-3)
    z = apply_audio_aug(x, SR, AudioAug(noise_snr_db=10.0, seed=4))
    assert not np.allclose(y, z)
    silent = np.zeros(SR, np.float32)  # no signal: no noise (SNR is undefined)
    np.testing.assert_array_equal(apply_audio_aug(silent, SR, AudioAug(noise_snr_db=10.0)), silent)


def test_shift_delays_and_advances_with_zero_fill() -> None:
    x = np.arange(1, SR + 1, dtype=np.float32)
    y = apply_audio_aug(x, SR, AudioAug(shift_s=0.01))  # 160 samples later
    assert np.all(y[:160] == 0) and np.array_equal(y[160:], x[:-160])
    y = apply_audio_aug(x, SR, AudioAug(shift_s=-0.01))
    assert np.array_equal(y[:-160], x[160:]) and np.all(y[-160:] == 0)


# ------------------------------------------------------------------------------------ image
def test_image_replay_is_exact_and_json_round_trips() -> None:
    rng = np.random.default_rng(2)
    img = _photo()
    seen_jpeg = seen_blur = False
    for _ in range(30):
        aug = sample_image_aug(rng)
        again = aug_from_json(aug_to_json(aug))
        assert again == aug
        np.testing.assert_array_equal(apply_image_aug(img, aug), apply_image_aug(img, again))
        seen_jpeg |= aug.jpeg_quality is not None
        seen_blur |= aug.blur_sigma > 0
    assert seen_jpeg and seen_blur


def test_identity_view_is_the_input() -> None:
    img = _photo()
    np.testing.assert_array_equal(apply_image_aug(img, ImageAug()), img)


def test_flip_mirrors() -> None:
    img = _photo()
    np.testing.assert_array_equal(apply_image_aug(img, ImageAug(flip=True)), img[:, ::-1])


def test_crop_takes_the_fractional_box() -> None:
    img = _photo(40, 80)
    out = apply_image_aug(img, ImageAug(crop=(0.25, 0.5, 0.5, 0.25)))
    np.testing.assert_array_equal(out, img[10:30, 40:60])


def test_brightness_contrast_saturation() -> None:
    img = _photo()
    bright = apply_image_aug(img, ImageAug(brightness=0.5)).astype(float)
    assert bright.mean() == pytest.approx(img.mean() * 0.5, abs=0.6)
    low = apply_image_aug(img, ImageAug(contrast=0.5)).astype(float)
    assert low.std() == pytest.approx(img.astype(float).std() * 0.5, rel=0.02)
    grey = apply_image_aug(img, ImageAug(saturation=0.0)).astype(int)
    assert np.abs(np.diff(grey, axis=-1)).max() <= 1


def test_blur_smooths_and_jpeg_recompresses() -> None:
    img = _photo()
    blurred = apply_image_aug(img, ImageAug(blur_sigma=2.0)).astype(float)
    sharp = np.abs(np.diff(img.astype(float), axis=1)).mean()
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * sharp
    jpeg = apply_image_aug(img, ImageAug(jpeg_quality=30))
    assert jpeg.shape == img.shape and jpeg.dtype == np.uint8
    err = np.abs(jpeg.astype(float) - img).mean()
    assert 0.5 < err < 30


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        ImageAug(crop=(0.0, 0.0, 1.5, 1.0))
    with pytest.raises(ValueError):
        ImageAug(jpeg_quality=0)
    with pytest.raises(ValueError):
        apply_image_aug(np.zeros((4, 4), np.uint8), ImageAug())
    with pytest.raises(ValueError):
        aug_from_json('{"kind": "video"}')
    assert dataclasses.is_dataclass(AudioAug) and AudioAug.__dataclass_params__.frozen

"""Deterministic, parameterised augmentations for extra teacher views (numpy + Pillow).

Distillation shows the student augmented copies of each item together with the *teacher's*
embedding of the same augmented copy. Every view is therefore described by a small frozen
parameter record (stored as JSON next to the embedding), and applying the same record to the same
input always gives the same output: replays are exact, including the noise (seeded by ``seed``).

Audio ops, in this order: time shift (zero-filled, length kept) -> phone band (resample to 8 kHz
and back: removes everything above 4 kHz, like a narrow-band phone line) -> gain (dB) -> white
noise at an SNR (dB) relative to the signal after gain.

Image ops, in this order: crop (fractions of the height/width; the result keeps the crop's size,
teachers resize anyway) -> horizontal flip -> brightness, contrast, saturation factors (1 = none;
contrast around the mean grey level and saturation towards per-pixel grey, as Pillow's
``ImageEnhance``) -> Gaussian blur (Pillow, sigma in pixels) -> JPEG re-compression (Pillow).
No hue changes: colour carries diagnostic information in skin photos.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np

from hai_edge.runtime.frontends import resample

__all__ = [
    "AudioAug",
    "ImageAug",
    "aug_from_json",
    "aug_to_json",
    "apply_audio_aug",
    "apply_image_aug",
    "sample_audio_aug",
    "sample_image_aug",
]

PHONE_RATE = 8000
_GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's "L" conversion


@dataclasses.dataclass(frozen=True)
class AudioAug:
    gain_db: float = 0.0
    noise_snr_db: float | None = None  # None: no noise
    shift_s: float = 0.0  # > 0 delays the sound (zeros enter at the start)
    phone_band: bool = False
    seed: int = 0  # noise generator seed

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.gain_db, self.shift_s)):
            raise ValueError("gain_db and shift_s must be finite")


@dataclasses.dataclass(frozen=True)
class ImageAug:
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # top, left, height, width
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    blur_sigma: float = 0.0  # 0: no blur
    jpeg_quality: int | None = None  # None: no re-compression
    seed: int = 0

    def __post_init__(self) -> None:
        crop = tuple(float(v) for v in self.crop)
        object.__setattr__(self, "crop", crop)
        top, left, h, w = crop if len(crop) == 4 else (None,) * 4
        if top is None or not (0 <= top < 1 and 0 <= left < 1 and 0 < h <= 1 and 0 < w <= 1):
            raise ValueError(f"crop must be (top, left, height, width) fractions, got {self.crop}")
        if min(self.brightness, self.contrast, self.saturation) < 0 or self.blur_sigma < 0:
            raise ValueError("colour factors and blur_sigma must be >= 0")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError("jpeg_quality must be in 1..100")


# ------------------------------------------------------------------------------------ audio
def sample_audio_aug(rng: np.random.Generator) -> AudioAug:
    """Random audio view: gain +-6 dB, noise at 10..40 dB SNR (half the time), shift +-0.2 s,
    phone band a quarter of the time."""
    gain = float(rng.uniform(-6.0, 6.0))
    noise = float(rng.uniform(10.0, 40.0)) if rng.random() < 0.5 else None
    shift = float(rng.uniform(-0.2, 0.2))
    phone = bool(rng.random() < 0.25)
    return AudioAug(gain, noise, shift, phone, seed=int(rng.integers(0, 2**31 - 1)))


def _shift(x: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(x)
    if n >= 0:
        out[n:] = x[: x.size - n] if n < x.size else x[:0]
    else:
        out[: x.size + n] = x[-n:]
    return out


def apply_audio_aug(x: np.ndarray, sr: int, aug: AudioAug) -> np.ndarray:
    """Augmented copy of mono float ``x [n]`` at ``sr`` Hz; same length, float32."""
    y = np.asarray(x, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"apply_audio_aug expects mono [n] samples, got shape {y.shape}")
    n = y.size
    shift = int(round(aug.shift_s * sr))
    if shift:
        y = _shift(y, max(-n, min(n, shift)))
    if aug.phone_band and sr > PHONE_RATE:
        narrow = resample(y.astype(np.float32), sr, PHONE_RATE)
        back = resample(narrow, PHONE_RATE, sr).astype(np.float64)
        y = np.zeros(n)
        m = min(n, back.size)
        y[:m] = back[:m]
    y = y * 10.0 ** (aug.gain_db / 20.0)
    if aug.noise_snr_db is not None:
        power = float(np.mean(y**2)) if n else 0.0
        if power > 0:
            noise = np.random.default_rng(aug.seed).standard_normal(n)
            noise *= math.sqrt(power / 10.0 ** (aug.noise_snr_db / 10.0) / float(np.mean(noise**2)))
            y = y + noise
    return y.astype(np.float32)


# ------------------------------------------------------------------------------------ image
def sample_image_aug(rng: np.random.Generator) -> ImageAug:
    """Random image view: a crop of 60..100% of the area (aspect 3/4..4/3), flip half the time,
    colour factors 0.8..1.2, blur a fifth of the time, JPEG q40..95 a third of the time."""
    area = rng.uniform(0.6, 1.0)
    aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    h = min(1.0, math.sqrt(area / aspect))
    w = min(1.0, math.sqrt(area * aspect))
    top = float(rng.uniform(0.0, 1.0 - h)) if h < 1 else 0.0
    left = float(rng.uniform(0.0, 1.0 - w)) if w < 1 else 0.0
    flip = bool(rng.random() < 0.5)
    bright, contrast, sat = (float(v) for v in rng.uniform(0.8, 1.2, size=3))
    blur = float(rng.uniform(0.3, 1.5)) if rng.random() < 0.2 else 0.0
    quality = int(rng.integers(40, 96)) if rng.random() < 0.3 else None
    return ImageAug((top, left, float(h), float(w)), flip, bright, contrast, sat, blur, quality,
                    seed=int(rng.integers(0, 2**31 - 1)))


def _crop_box(height: int, width: int, crop: tuple[float, float, float, float]) -> tuple[int, ...]:
    top, left, h, w = crop
    t = min(height - 1, int(round(top * height)))
    lft = min(width - 1, int(round(left * width)))
    ch = max(1, min(height - t, int(round(h * height))))
    cw = max(1, min(width - lft, int(round(w * width))))
    return t, lft, ch, cw


def apply_image_aug(rgb: np.ndarray, aug: ImageAug) -> np.ndarray:
    """Augmented copy of an RGB uint8 ``[H, W, 3]`` photo (uint8; the crop sets the size)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"apply_image_aug expects uint8 [H, W, 3], got {a.dtype} {a.shape}")
    t, lft, ch, cw = _crop_box(a.shape[0], a.shape[1], aug.crop)
    a = a[t : t + ch, lft : lft + cw]
    if aug.flip:
        a = a[:, ::-1]
    if (aug.brightness, aug.contrast, aug.saturation) != (1.0, 1.0, 1.0):
        v = a.astype(np.float64) * aug.brightness
        if aug.contrast != 1.0:
            mean = float(np.mean(v @ _GREY))
            v = mean + (v - mean) * aug.contrast
        if aug.saturation != 1.0:
            grey = (v @ _GREY)[..., None]
            v = grey + (v - grey) * aug.saturation
        a = np.floor(np.clip(v, 0.0, 255.0) + 0.5).astype(np.uint8)
    if aug.blur_sigma > 0 or aug.jpeg_quality is not None:
        from PIL import Image, ImageFilter

        img = Image.fromarray(np.ascontiguousarray(a), "RGB")
        if aug.blur_sigma > 0:
            img = img.filter(ImageFilter.GaussianBlur(radius=aug.blur_sigma))
        if aug.jpeg_quality is not None:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=int(aug.jpeg_quality))
            buf.seek(0)
            img = Image.open(buf).convert("RGB")
        a = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(a)


# ------------------------------------------------------------------------------------- JSON
def aug_to_json(aug: AudioAug | ImageAug | None) -> str:
    """Compact JSON of a view's parameters (``""`` for the clean view)."""
    if aug is None:
        return ""
    kind = "audio" if isinstance(aug, AudioAug) else "image"
    d = dataclasses.asdict(aug)
    if kind == "image":
        d["crop"] = list(aug.crop)
    return json.dumps({"kind": kind, **d}, separators=(",", ":"), sort_keys=True)


def aug_from_json(text: str) -> AudioAug | ImageAug | None:
    if not text:
        return None
    d = json.loads(text)
    kind = d.pop("kind", None)
    if kind == "audio":
        return AudioAug(**d)
    if kind == "image":
        d["crop"] = tuple(d["crop"])
        return ImageAug(**d)
    raise ValueError(f"unknown augmentation kind {kind!r}")

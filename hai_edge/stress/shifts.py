"""The shift suite: named, documented shifts with three severities each, seeded per item.

A shift is applied to decoded media (mono float32 at the bundle's rate, or an RGB uint8 photo)
before the models' own front ends, exactly as a different microphone, line, codec, room or camera
would have changed the file. ``rng_for(seed, shift, severity, item_id)`` makes every random choice
(noise, room, motion direction, crop position) a function of those four values only, so a run is
reproducible item by item and independent of the order or number of items.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.stress import audio as A
from hai_edge.stress import image as I

__all__ = [
    "SHIFTS",
    "Level",
    "Shift",
    "ShiftContext",
    "ShiftModality",
    "rng_for",
    "select_shifts",
]


class ShiftModality(str, enum.Enum):
    AUDIO = "audio"
    IMAGE = "image"


@dataclasses.dataclass(frozen=True)
class Level:
    """One severity: a label for tables and the parameters the shift function takes."""

    label: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ShiftContext:
    """What some shifts need besides the media: the sample rate and real noise recordings
    (mono float32 at ``sample_rate``; empty when none were given)."""

    sample_rate: int = 16000
    noise: tuple[np.ndarray, ...] = ()
    noise_source: str = ""


Fn = Callable[[np.ndarray, ShiftContext, Mapping[str, Any], np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Shift:
    name: str
    modality: ShiftModality
    description: str
    levels: tuple[Level, ...]  # severity 1, 2, 3: mild to severe
    fn: Fn

    def apply(self, x: np.ndarray, ctx: ShiftContext, severity: int, rng: np.random.Generator
              ) -> np.ndarray:
        return self.fn(x, ctx, self.levels[severity - 1].params, rng)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality.value,
                "description": self.description,
                "levels": [{"severity": i + 1, "label": lv.label, **dict(lv.params)}
                           for i, lv in enumerate(self.levels)]}


def rng_for(seed: int, shift: str, severity: int, item_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{shift}|{severity}|{item_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _real_noise(x: np.ndarray, ctx: ShiftContext, p: Mapping[str, Any],
                rng: np.random.Generator) -> np.ndarray:
    if not ctx.noise:
        raise HaiEdgeError("shift noise-real needs noise recordings (--noise-dir)")
    clip = ctx.noise[int(rng.integers(0, len(ctx.noise)))]
    return A.add_noise(x, A.loop_to(clip, len(x), rng), p["snr_db"])


def _lv(label: str, **params: Any) -> Level:
    return Level(label, params)


_AUDIO = (
    Shift("telephone", ShiftModality.AUDIO,
          "narrow-band phone line: resampled to 8 kHz, order-8 Butterworth voice band, back to "
          "the model rate (scipy.signal)",
          (_lv("200-3800 Hz", low_hz=200.0, high_hz=3800.0),
           _lv("300-3400 Hz", low_hz=300.0, high_hz=3400.0),
           _lv("500-3000 Hz", low_hz=500.0, high_hz=3000.0)),
          lambda x, c, p, r: A.telephone(x, c.sample_rate, p["low_hz"], p["high_hz"])),
    Shift("g711", ShiftModality.AUDIO,
          "G.711 mu-law at 8 kHz (libsndfile ULAW); one severity",
          (_lv("mu-law 8 kHz"),), lambda x, c, p, r: A.mulaw_roundtrip(x, c.sample_rate)),
    Shift("mp3", ShiftModality.AUDIO,
          "MP3 (LAME via libsndfile), constant bitrate at the model rate",
          (_lv("32 kbps", kbps=32.0), _lv("16 kbps", kbps=16.0), _lv("8 kbps", kbps=8.0)),
          lambda x, c, p, r: A.codec_roundtrip(x, c.sample_rate, "mp3", p["kbps"])),
    Shift("opus", ShiftModality.AUDIO,
          "Opus in Ogg (libopus via libsndfile) at the model rate",
          (_lv("24 kbps", kbps=24.0), _lv("12 kbps", kbps=12.0), _lv("6 kbps", kbps=6.0)),
          lambda x, c, p, r: A.codec_roundtrip(x, c.sample_rate, "opus", p["kbps"])),
    Shift("noise", ShiftModality.AUDIO,
          "generated pink (1/f) Gaussian noise at an SNR over the whole recording",
          (_lv("20 dB SNR", snr_db=20.0), _lv("10 dB SNR", snr_db=10.0),
           _lv("5 dB SNR", snr_db=5.0)),
          lambda x, c, p, r: A.add_noise(x, A.pink_noise(len(x), r), p["snr_db"])),
    Shift("noise-real", ShiftModality.AUDIO,
          "real background recordings (--noise-dir; default: donateacry infant cries, a clinic "
          "waiting room) looped from a random offset, at an SNR over the whole recording",
          (_lv("20 dB SNR", snr_db=20.0), _lv("10 dB SNR", snr_db=10.0),
           _lv("5 dB SNR", snr_db=5.0)), _real_noise),
    Shift("reverb", ShiftModality.AUDIO,
          "room reverberation: Polack stochastic impulse response (direct path + exponentially "
          "decaying diffuse tail, 0 dB direct-to-reverberant ratio), scipy fftconvolve, RMS kept",
          (_lv("RT60 0.3 s", rt60_s=0.3), _lv("RT60 0.6 s", rt60_s=0.6),
           _lv("RT60 1.0 s", rt60_s=1.0)),
          lambda x, c, p, r: A.reverb(x, c.sample_rate, p["rt60_s"], r)),
    Shift("gain", ShiftModality.AUDIO, "a quiet microphone: digital gain",
          (_lv("-10 dB", db=-10.0), _lv("-20 dB", db=-20.0), _lv("-30 dB", db=-30.0)),
          lambda x, c, p, r: A.gain(x, p["db"])),
    Shift("clipping", ShiftModality.AUDIO,
          "an overdriven input: peak-normalised, amplified, hard-clipped at full scale",
          (_lv("+6 dB", drive_db=6.0), _lv("+12 dB", drive_db=12.0),
           _lv("+20 dB", drive_db=20.0)),
          lambda x, c, p, r: A.clip(x, p["drive_db"])),
    Shift("highpass", ShiftModality.AUDIO,
          "small-capsule microphone without bass: order-4 Butterworth high-pass (scipy.signal)",
          (_lv("300 Hz", cutoff_hz=300.0), _lv("600 Hz", cutoff_hz=600.0),
           _lv("1000 Hz", cutoff_hz=1000.0)),
          lambda x, c, p, r: A.band_filter(x, c.sample_rate, p["cutoff_hz"], None)),
    Shift("lowpass", ShiftModality.AUDIO,
          "muffled microphone (pocket, mask, cheap headset): order-4 Butterworth low-pass",
          (_lv("4000 Hz", cutoff_hz=4000.0), _lv("2000 Hz", cutoff_hz=2000.0),
           _lv("1000 Hz", cutoff_hz=1000.0)),
          lambda x, c, p, r: A.band_filter(x, c.sample_rate, None, p["cutoff_hz"])),
)

_IMAGE = (
    Shift("jpeg", ShiftModality.IMAGE, "JPEG re-compression (Pillow/libjpeg, 4:2:0)",
          (_lv("quality 90", quality=90), _lv("quality 50", quality=50),
           _lv("quality 20", quality=20)),
          lambda x, c, p, r: I.jpeg_roundtrip(x, p["quality"])),
    Shift("downscale", ShiftModality.IMAGE,
          "low-resolution camera: shrunk (Lanczos) and enlarged back (bicubic)",
          (_lv("1/2", factor=2.0), _lv("1/4", factor=4.0), _lv("1/8", factor=8.0)),
          lambda x, c, p, r: I.downscale(x, p["factor"])),
    Shift("defocus", ShiftModality.IMAGE,
          "out of focus: uniform-disk blur, radius as a fraction of the shorter side",
          (_lv("r 0.5%", radius=0.005), _lv("r 1%", radius=0.01), _lv("r 2%", radius=0.02)),
          lambda x, c, p, r: I.defocus(x, p["radius"] * min(x.shape[:2]))),
    Shift("motion", ShiftModality.IMAGE,
          "camera shake: line-kernel blur at a seeded random angle, length as a fraction of the "
          "shorter side",
          (_lv("1%", length=0.01), _lv("3%", length=0.03), _lv("6%", length=0.06)),
          lambda x, c, p, r: I.motion_blur(x, p["length"] * min(x.shape[:2]),
                                           float(r.uniform(0, 180)))),
    Shift("warm-light", ShiftModality.IMAGE,
          "lit by a warmer light than the daylight white balance (6500 K) assumes",
          (_lv("5000 K", kelvin=5000.0), _lv("4000 K", kelvin=4000.0),
           _lv("3000 K", kelvin=3000.0)),
          lambda x, c, p, r: I.white_balance(x, p["kelvin"])),
    Shift("cool-light", ShiftModality.IMAGE,
          "lit by a cooler light (shade, blue sky) than the daylight white balance assumes",
          (_lv("8000 K", kelvin=8000.0), _lv("10000 K", kelvin=10000.0),
           _lv("13000 K", kelvin=13000.0)),
          lambda x, c, p, r: I.white_balance(x, p["kelvin"])),
    Shift("underexposure", ShiftModality.IMAGE, "too dark: linear light times 2^EV",
          (_lv("-0.5 EV", ev=-0.5), _lv("-1 EV", ev=-1.0), _lv("-2 EV", ev=-2.0)),
          lambda x, c, p, r: I.exposure(x, p["ev"])),
    Shift("overexposure", ShiftModality.IMAGE, "too bright: linear light times 2^EV, clipped",
          (_lv("+0.5 EV", ev=0.5), _lv("+1 EV", ev=1.0), _lv("+1.5 EV", ev=1.5)),
          lambda x, c, p, r: I.exposure(x, p["ev"])),
    Shift("rotation", ShiftModality.IMAGE,
          "rotated about the centre (bicubic), uncovered corners filled with the median colour",
          (_lv("15 deg", degrees=15.0), _lv("45 deg", degrees=45.0),
           _lv("90 deg", degrees=90.0)),
          lambda x, c, p, r: I.rotate(x, p["degrees"])),
    Shift("crop", ShiftModality.IMAGE,
          "tighter, off-centre framing: a window of each side at a seeded random position",
          (_lv("80%", keep=0.8), _lv("60%", keep=0.6), _lv("40%", keep=0.4)),
          lambda x, c, p, r: I.crop(x, p["keep"], r)),
)

SHIFTS: dict[str, Shift] = {s.name: s for s in (*_AUDIO, *_IMAGE)}


def select_shifts(modality: str, names: Sequence[str] | None = None) -> list[Shift]:
    """The shifts for ``modality``, all by default; an unknown or wrong-modality name is an
    error that lists the valid ones."""
    mine = [s for s in SHIFTS.values() if s.modality.value == modality]
    if not names:
        return mine
    valid = {s.name: s for s in mine}
    bad = [n for n in names if n not in valid]
    if bad:
        raise HaiEdgeError(f"unknown {modality} shift {bad[0]!r} (valid: {', '.join(valid)})")
    return [valid[n] for n in names]

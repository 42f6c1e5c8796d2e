"""Preprocessing specs: the part of the manifest that says how raw media becomes model input.

Frozen dataclasses with enums (not free strings), validated on construction and round-tripped
through plain JSON dicts by ``to_dict``/``from_dict``. The same spec drives the Python runtime, the
export/calibration code and the JavaScript app, so every field here must be implementable in JS.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from hai_edge.errors import BundleError

__all__ = [
    "AudioFeatures",
    "AudioFrontendSpec",
    "ClipNormalization",
    "ImageFrontendSpec",
    "ResizeMode",
    "spec_from_dict",
]


class AudioFeatures(str, enum.Enum):
    """What the model's input tensor holds for one audio window."""

    WAVEFORM = "waveform"  # [N, samples]: raw window (a HeAR-style contract)
    LOG_MEL = "log_mel"  # [N, 1, n_mels, n_frames]: log(mel power + log_offset)
    PCEN = "pcen"  # [N, 1, n_mels, n_frames]: per-channel energy normalised mel power


class ClipNormalization(str, enum.Enum):
    """Per-window waveform normalisation, applied before features (per clip, never per batch)."""

    NONE = "none"
    PEAK = "peak"  # divide by max |x|
    MINMAX = "minmax"  # affine map of [min, max] to [-1, 1] (HeAR-pytorch's recipe, per clip)


class ResizeMode(str, enum.Enum):
    """How a photo of any aspect ratio becomes the model's fixed input size."""

    SHORTER_SIDE_CENTER_CROP = "shorter_side_center_crop"  # scale shorter side, crop centre
    STRETCH = "stretch"  # scale both sides independently
    PAD = "pad"  # scale longer side, pad with pad_value to square


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BundleError(f"invalid preprocessing spec: {msg}")


def _from_fields(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {"kind"})
    _check(not unknown, f"unknown field(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(f.type, str) and f.type.startswith("tuple") and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"invalid preprocessing spec: {exc}") from None


@dataclasses.dataclass(frozen=True)
class AudioFrontendSpec:
    """Audio: decode -> mono -> resample -> fixed windows -> per-window features.

    Frame convention (TensorFlow ``pad_end``): ``n_frames = ceil(window_samples / hop_length)``; the
    window is zero-padded at the end to ``(n_frames - 1) * hop_length + win_length`` samples.
    STFT uses a periodic Hann window of ``win_length`` zero-padded to ``n_fft``; power spectrum.
    Mel: triangles in the (HTK) mel domain, TF ``linear_to_mel_weight_matrix`` convention (DC bin
    gets no weight). Output feature layout is [n_mels, n_frames] (mel = rows, time = columns).
    """

    sample_rate: int = 16000
    window_s: float = 2.0
    hop_s: float = 1.8  # 10% overlap between windows, as in HeAR's notebooks
    min_clip_s: float = 0.5  # shorter recordings are rejected; between this and window_s: zero-pad
    pad_last: bool = True  # keep a zero-padded last window when >= min_clip_s of audio remains
    skip_quiet_db: float | None = -50.0  # windows with RMS below this (dBFS) are skipped; None: keep
    clip_normalization: ClipNormalization = ClipNormalization.NONE
    features: AudioFeatures = AudioFeatures.LOG_MEL
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 60.0
    fmax: float = 7800.0
    log_offset: float = 1e-6
    # PCEN parameters (used when features == PCEN); HeAR-pytorch's values by default
    pcen_alpha: float = 0.8
    pcen_smooth: float = 0.04
    pcen_delta: float = 2.0
    pcen_root: float = 2.0
    pcen_floor: float = 1e-8
    # optional feature standardisation with constants fixed at export: (x - mean) / std
    feature_mean: float = 0.0
    feature_std: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_normalization", ClipNormalization(self.clip_normalization))
        object.__setattr__(self, "features", AudioFeatures(self.features))
        _check(8000 <= self.sample_rate <= 48000, "sample_rate must be within 8000..48000")
        _check(self.window_s > 0 and self.hop_s > 0, "window_s and hop_s must be positive")
        _check(0 < self.min_clip_s <= self.window_s, "min_clip_s must be in (0, window_s]")
        _check(self.win_length <= self.n_fft, "win_length must be <= n_fft")
        _check(self.hop_length > 0 and self.n_mels > 0, "hop_length and n_mels must be positive")
        _check(0 <= self.fmin < self.fmax <= self.sample_rate / 2, "need 0 <= fmin < fmax <= sr/2")
        _check(self.log_offset > 0 and self.feature_std > 0, "log_offset/feature_std must be > 0")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return -(-self.window_samples // self.hop_length)

    @property
    def shared_frames(self) -> tuple[int, int]:
        """``(count, step)``: frames a window shares with the window ``hop_samples`` before it.

        When ``hop_samples`` is a whole number of frame hops (``step`` frames), frame ``f`` of a
        window is frame ``f + step`` of the one before, for every frame wholly inside both (the
        last frames of a window run past its end and are zero-padded, so they are its own).
        ``(0, 0)`` when there is nothing to share: clip normalisation (it rescales each window on
        its own), or hops that do not line up.
        """
        step, rem = divmod(self.hop_samples, self.hop_length)
        inside = min(self.n_frames,
                     max(0, (self.window_samples - self.win_length) // self.hop_length + 1))
        if self.clip_normalization is not ClipNormalization.NONE or rem or step <= 0 \
                or inside <= step:
            return 0, 0
        return inside - step, step

    def input_shape(self) -> tuple[int, ...]:
        """Shape of one window's model input (without the batch dimension)."""
        if self.features is AudioFeatures.WAVEFORM:
            return (self.window_samples,)
        return (1, self.n_mels, self.n_frames)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clip_normalization"] = self.clip_normalization.value
        d["features"] = self.features.value
        return {"kind": "audio", **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AudioFrontendSpec:
        return _from_fields(cls, data)


@dataclasses.dataclass(frozen=True)
class ImageFrontendSpec:
    """Image: decode -> EXIF transpose -> RGB -> resize/crop -> [0,1] -> (x - mean) / std.

    Resizing is antialiased bilinear (triangle filter widened by the downscale factor, the same
    maths as Pillow's BILINEAR ``resize``), computed in float in numpy so every runtime agrees.
    """

    height: int = 224
    width: int = 224
    resize: ResizeMode = ResizeMode.SHORTER_SIDE_CENTER_CROP
    crop_fraction: float = 1.0  # centre crop keeps this fraction of the shorter side
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pad_value: float = 0.0  # in [0,1] pixel units, before mean/std
    layout: str = "NCHW"  # or "NHWC" (TFLite-native)
    min_side: int = 32  # smaller photos are rejected as unusable
    max_pixels: int = 100_000_000  # decompression-bomb limit, checked from the header

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", ResizeMode(self.resize))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        _check(self.height > 0 and self.width > 0, "height and width must be positive")
        _check(0 < self.crop_fraction <= 1, "crop_fraction must be in (0, 1]")
        _check(len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values")
        _check(all(s > 0 for s in self.std), "std values must be > 0")
        _check(self.layout in ("NCHW", "NHWC"), "layout must be NCHW or NHWC")
        _check(self.min_side >= 1 and self.max_pixels >= 1, "min_side/max_pixels must be >= 1")

    def input_shape(self) -> tuple[int, ...]:
        if self.layout == "NCHW":
            return (3, self.height, self.width)
        return (self.height, self.width, 3)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resize"] = self.resize.value
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return {"kind": "image", **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageFrontendSpec:
        return _from_fields(cls, data)


def spec_from_dict(data: dict[str, Any]) -> AudioFrontendSpec | ImageFrontendSpec:
    """Parse the manifest's ``preprocessing`` object (tagged by ``kind``)."""
    if not isinstance(data, dict):
        raise BundleError("invalid preprocessing spec: expected a JSON object")
    kind = data.get("kind")
    if kind == "audio":
        return AudioFrontendSpec.from_dict(data)
    if kind == "image":
        return ImageFrontendSpec.from_dict(data)
    raise BundleError(f"invalid preprocessing spec: unknown kind {kind!r} (audio|image)")

"""Photo quality checks for the derm pipeline: warn about photos that give unreliable embeddings.

:class:`QualityReport` and :class:`Flag` are shared with the cough recording checks
(:mod:`hai_edge.runtime.cough_quality`): both modalities report quality in one shape.

Numpy only, and cheap (2-3 ms on the reduced decode of a 12 MP photo): every check works on one
small **analysis image**, the photo scaled (antialiased, never enlarged) so that its shorter
side is :data:`ANALYSIS_SIDE` pixels. A fixed analysis scale makes the sharpness score
independent of the camera's resolution: a 12 MP photo and its 300 px copy get the same score,
and blur that does not show at that scale barely changes what a 160-224 px model input sees.
It also means the pipeline can run the checks on the reduced-scale JPEG decode.

Each check gives a :class:`QualityCheck` with a score, its threshold, a pass/warn flag and a
short reason. Thresholds were calibrated on the 686 PAD-UFES-20 photos with synthetic blur,
exposure changes and non-skin images (``benchmarks/quality_calibration.py``; figures in
docs/derm.md). Checks only warn: the photo is still embedded and scored.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hai_edge.runtime.frontends import resize_antialiased, to_rgb

__all__ = [
    "ANALYSIS_SIDE",
    "ASPECT_MAX",
    "BLUR_BLOCK",
    "BLUR_MIN",
    "Check",
    "CheckName",
    "Flag",
    "OVER_BLOCK",
    "OVER_MAX",
    "QualityCheck",
    "QualityReport",
    "SKIN_MIN",
    "UNDER_BLOCK",
    "UNDER_MIN",
    "analysis_image",
    "assess_quality",
    "blocking_checks",
    "blocking_reason",
]

ANALYSIS_SIDE = 128
"""Shorter side (pixels) of the image every check reads (close to the model inputs)."""

# ------------------------------------------------------------------ calibrated thresholds
# From benchmarks/quality_calibration.py on PAD-UFES-20 (686 photos); docs/derm.md has the
# tables. False-flag rate on the originals / pooled recall on the target degradations:
# blur 0.051 / 0.967, over 0.079 / 0.922, under 0.052 / 0.935, not skin 0.064 / 0.943.
BLUR_MIN = 0.24
"""Sharpness ratio below which a photo is flagged as blurred (see :func:`sharpness`)."""
OVER_MAX = 175.0
"""Mean luma (0..255) above which a photo is flagged as over-exposed."""
UNDER_MIN = 110.0
"""Mean luma (0..255) below which a photo is flagged as under-exposed."""
SKIN_MIN = 0.25
"""Skin-tone fraction below which a photo is flagged as likely not a skin photo."""

# ------------------------------------------------------------------- blocking thresholds
# A check that only warns leaves the score to the user's judgement; these far stricter limits
# withhold the heads' scores instead (runtime.abstain). Chosen on PAD-UFES-20 so that almost no
# in-distribution photo is blocked (benchmarks/derm_abstain.py; figures in docs/derm.md).
# not_skin never blocks: the skin-colour box misreads lesion close-ups under warm light (a
# bundled demo photo reads 0% skin colours); the heads' out-of-distribution gate catches photos
# that are not skin instead.
BLUR_BLOCK = 0.12
"""Sharpness ratio below which the heads' scores are withheld (far beyond :data:`BLUR_MIN`)."""
OVER_BLOCK = 225.0
"""Mean luma above which the heads' scores are withheld (nearly white)."""
UNDER_BLOCK = 45.0
"""Mean luma below which the heads' scores are withheld (nearly black)."""

# --------------------------------------------------------------- geometric thresholds
ASPECT_MAX = 2.0
"""Longer / shorter side above which the model's centre crop drops more than half the photo."""


class CheckName(str, enum.Enum):
    BLUR = "blur"
    EXPOSURE_OVER = "exposure_over"
    EXPOSURE_UNDER = "exposure_under"
    TOO_SMALL = "too_small"
    ASPECT_RATIO = "aspect_ratio"
    NOT_SKIN = "not_skin"


class Flag(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"


@dataclasses.dataclass(frozen=True)
class QualityCheck:
    """One check. ``reason`` is a short sentence when the flag is WARN, else empty."""

    name: CheckName
    score: float
    threshold: float
    flag: Flag
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.flag is Flag.PASS

    @property
    def warns_when(self) -> str:
        """Which side of the threshold warns: ``"below"`` (blur, darkness, size, skin) or
        ``"above"`` (over-exposure, aspect ratio)."""
        return "above" if self.name in (CheckName.EXPOSURE_OVER, CheckName.ASPECT_RATIO) \
            else "below"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name.value, "score": round(float(self.score), 4),
                "threshold": round(float(self.threshold), 4), "warns_when": self.warns_when,
                "flag": self.flag.value, "reason": self.reason}


class Check(Protocol):
    """What a report holds: a photo :class:`QualityCheck` or a cough recording check."""

    @property
    def name(self) -> enum.Enum: ...

    @property
    def flag(self) -> Flag: ...

    @property
    def passed(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class QualityReport:
    """All checks of one photo (or one recording); ``passed`` is False when any check warns."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def check(self, name: enum.Enum | str) -> Check:
        """The check called ``name`` (its enum or its value); ValueError if there is none."""
        key = name.value if isinstance(name, enum.Enum) else str(name)
        for c in self.checks:
            if c.name.value == key:
                return c
        raise ValueError(f"no quality check {key!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


# ---------------------------------------------------------------------- analysis image
def _box_reduce(a: np.ndarray, k: int) -> np.ndarray:
    """Exact k x k box average of uint8/float ``[H, W, C]`` (partial edge blocks dropped).

    Sums of k strided slices per axis: numpy adds whole planes at a time, which is several
    times faster than a reduction over a reshaped block axis.
    """
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    acc = np.uint16 if a.dtype == np.uint8 and k * k <= 257 else np.float32  # exact integers
    rows = a[0:h:k, :w].astype(acc)
    for i in range(1, k):
        rows += a[i:h:k, :w]
    out = rows[:, 0::k].copy()
    for j in range(1, k):
        out += rows[:, j::k]
    return out.astype(np.float32) * np.float32(1.0 / (k * k))


def analysis_image(rgb: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Upright RGB uint8 ``[H, W, 3]`` -> float32 ``[h, w, 3]`` in 0..255, shorter side ``side``.

    Larger inputs are first box-averaged by the integer factor ``shorter // side`` (exact,
    cheap), then resized by less than 2x with the front end's antialiased bilinear filter.
    Smaller photos are kept as they are.
    """
    a = np.asarray(rgb)
    h, w = a.shape[:2]
    short = min(h, w)
    if short <= side:
        return a.astype(np.float32)
    k = short // side
    if k >= 2:  # exact integer box average first: the final resize is then by less than 2x
        a = _box_reduce(a, k)
        h, w = a.shape[:2]
        short = min(h, w)
    else:
        a = a.astype(np.float32)
    scale = side / short
    out_h = side if h == short else max(1, int(np.floor(h * scale + 0.5)))
    out_w = side if w == short else max(1, int(np.floor(w * scale + 0.5)))
    return resize_antialiased(a, out_h, out_w)


def _luma(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in 0..255 (channel planes, not a reduction over the last axis: faster)."""
    return img[..., 0] * np.float32(0.299) + img[..., 1] * np.float32(0.587) \
        + img[..., 2] * np.float32(0.114)


# ---------------------------------------------------------------------------- scores
def _halve(y: np.ndarray) -> np.ndarray:
    """2 x 2 box average (odd last row/column dropped)."""
    h, w = y.shape[0] // 2, y.shape[1] // 2
    y = y[: 2 * h, : 2 * w]
    return 0.25 * (y[0::2, 0::2] + y[1::2, 0::2] + y[0::2, 1::2] + y[1::2, 1::2])


def _laplacian_var(y: np.ndarray) -> float:
    if min(y.shape) < 3:
        return 0.0
    lap = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]) - 4.0 * y[1:-1, 1:-1]
    return float(lap.var(dtype=np.float64))


def sharpness(luma: np.ndarray) -> float:
    """Fine-to-coarse detail ratio: ``var(Lap(y)) / (var(Lap(y2)) + 1)``.

    ``y`` is the analysis luma (128 px shorter side), ``y2`` the same box-averaged by 2 (64 px),
    ``Lap`` the 4-neighbour Laplacian. Blur removes fine detail first, so the ratio falls;
    being a ratio it does not depend on the photo's contrast, and measuring at a coarse scale
    keeps it robust to sensor noise, which fools the same ratio at full resolution
    (docs/derm.md). The ``+ 1`` (in squared 8-bit units) keeps nearly featureless images low
    instead of dividing noise by noise.
    """
    y = np.asarray(luma, dtype=np.float32)
    return _laplacian_var(y) / (_laplacian_var(_halve(y)) + 1.0)


def mean_luma(luma: np.ndarray) -> float:
    """Mean Rec. 601 luma (0..255) of the analysis image."""
    return float(np.mean(luma, dtype=np.float64))


def overexposure(img: np.ndarray, luma: np.ndarray) -> float:
    """Exposure-over score: the mean luma (high = washed out)."""
    return mean_luma(luma)


def underexposure(img: np.ndarray, luma: np.ndarray) -> float:
    """Exposure-under score: the mean luma (low = too dark)."""
    return mean_luma(luma)


def clipped_fraction(img: np.ndarray) -> float:
    """Fraction of pixels with a channel at >= 250 (blown highlights); shown in the reason."""
    top = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2])
    return float(np.count_nonzero(top >= 250.0) / max(top.size, 1))


def skin_fraction(img: np.ndarray) -> float:
    """Fraction of pixels in the YCbCr skin box of Chai & Ngan (1999): 77 <= Cb <= 127,
    133 <= Cr <= 173, with luma >= 30 (very dark pixels have no reliable chroma)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    f = np.float32
    y = _luma(img)
    cb = f(128.0) - f(0.168736) * r - f(0.331264) * g + f(0.5) * b
    cr = f(128.0) + f(0.5) * r - f(0.418688) * g - f(0.081312) * b
    skin = (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173) & (y >= 30)
    return float(np.count_nonzero(skin) / max(skin.size, 1))


# ---------------------------------------------------------------------------- checks
def _check(name: CheckName, score: float, threshold: float, bad: bool, reason: str
           ) -> QualityCheck:
    return QualityCheck(name, float(score), float(threshold), Flag.WARN if bad else Flag.PASS,
                        reason if bad else "")


def assess_quality(
    pixels: np.ndarray,
    orientation: int = 1,
    *,
    full_size: tuple[int, int] | None = None,
    min_side: int = 224,
) -> QualityReport:
    """All checks on one decoded photo.

    ``pixels`` are the decoded pixels (possibly from a reduced-scale decode); ``orientation``,
    the EXIF orientation, changes no score (see below); ``full_size`` = (width, height) of the
    photo before any reduced-scale decode (default: the pixels' own size), upright for the
    reason texts (the checks use only the shorter and longer sides); ``min_side`` is the
    shorter side below which the photo is flagged as too small (the pipeline passes the
    model's input size).
    """
    # Every score is invariant under the EXIF transposes (rotations/mirrors by multiples of
    # 90 degrees), so the stored pixels are read as they are: no rotated copy of a big photo.
    del orientation
    rgb = to_rgb(pixels)
    if full_size is None:
        full_size = (int(rgb.shape[1]), int(rgb.shape[0]))
    img = analysis_image(rgb)
    luma = _luma(img)
    return QualityReport(tuple(_checks(img, luma, full_size, min_side)))


def _checks(img: np.ndarray, luma: np.ndarray, full_size: Sequence[int], min_side: int
            ) -> list[QualityCheck]:
    w, h = int(full_size[0]), int(full_size[1])
    short, long = min(w, h), max(w, h)
    sharp = sharpness(luma)
    over = overexposure(img, luma)
    under = underexposure(img, luma)
    clipped = clipped_fraction(img)
    skin = skin_fraction(img)
    aspect = long / max(short, 1)
    return [
        _check(CheckName.BLUR, sharp, BLUR_MIN, sharp < BLUR_MIN,
               "the photo looks blurred or out of focus; hold the camera steady and refocus"),
        _check(CheckName.EXPOSURE_OVER, over, OVER_MAX, over > OVER_MAX,
               f"the photo looks over-exposed (mean brightness {over:.0f} of 255, "
               f"{clipped:.0%} clipped); reduce light or avoid the flash"),
        _check(CheckName.EXPOSURE_UNDER, under, UNDER_MIN, under < UNDER_MIN,
               f"the photo looks under-exposed (mean brightness {under:.0f} of 255); "
               "add light"),
        _check(CheckName.TOO_SMALL, float(short), float(min_side), short < min_side,
               f"the photo is {w}x{h} pixels, smaller than the model's {min_side} px input"),
        _check(CheckName.ASPECT_RATIO, aspect, ASPECT_MAX, aspect > ASPECT_MAX,
               f"the photo is {aspect:.1f} times longer than wide; the model sees only its "
               "centre"),
        _check(CheckName.NOT_SKIN, skin, SKIN_MIN, skin < SKIN_MIN,
               f"only {skin:.0%} of the photo has skin colours; it may not be a skin photo"),
    ]


# ----------------------------------------------------------------------------- blocks
_BLOCKS = {CheckName.BLUR: (lambda v: v < BLUR_BLOCK, "the photo is too blurred to score"),
           CheckName.EXPOSURE_OVER: (lambda v: v > OVER_BLOCK, "the photo is too bright to score"),
           CheckName.EXPOSURE_UNDER: (lambda v: v < UNDER_BLOCK, "the photo is too dark to score")}


def blocking_checks(report: QualityReport) -> tuple[QualityCheck, ...]:
    """The photo checks whose score is past its *blocking* limit: the heads' scores are then
    withheld (``hai_edge.runtime.abstain``), not just warned about."""
    out = []
    for c in report.checks:
        rule = _BLOCKS.get(c.name) if isinstance(c, QualityCheck) else None
        if rule is not None and rule[0](c.score):
            out.append(c)
    return tuple(out)


def blocking_reason(report: QualityReport) -> str:
    """Plain words for the blocking checks ("" when none blocks)."""
    return "; ".join(_BLOCKS[c.name][1] for c in blocking_checks(report))

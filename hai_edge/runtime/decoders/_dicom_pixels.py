"""DICOM pixel values -> uint8 grey/RGB (MONOCHROME1/2 with the window, RGB, YBR, PALETTE COLOR).

Error texts are fixed: they quote only technical codes (never a header's free text, which can be
PHI), as everywhere in the DICOM decoder.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hai_edge.errors import InputError

__all__ = ["CORRUPT", "MONO", "YBR", "safe_name", "to_uint8"]

CORRUPT = (
    "DICOM pixel data is corrupt or its length does not match "
    "Rows x Columns x SamplesPerPixel x frames"
)
MONO = ("MONOCHROME1", "MONOCHROME2")
YBR = ("YBR_FULL", "YBR_FULL_422")


def safe_name(text: str) -> str:
    """A technical code (photometric interpretation) or a placeholder: never free text."""
    return text if re.fullmatch(r"[A-Z0-9_ ]{1,16}", text) else "(invalid value)"


def to_uint8(
    pydicom: Any, ds: Any, arr: np.ndarray, pi: str, geo: dict[str, Any], src: str
) -> np.ndarray:
    spp = geo["spp"]
    if pi in MONO:
        if spp != 1:
            raise InputError(src, f"DICOM {pi} image must have 1 sample per pixel")
        out = _mono_to_uint8(ds, arr, geo)
        return 255 - out if pi == "MONOCHROME1" else out
    if pi in YBR:  # the decoder left YCbCr (should not happen with as_rgb=True)
        if spp != 3:
            raise InputError(src, f"DICOM {pi} image must have 3 samples per pixel")
        from pydicom.pixels import convert_color_space

        try:
            arr = convert_color_space(arr, "YBR_FULL", "RGB")
        except Exception:
            raise InputError(src, CORRUPT) from None
        pi = "RGB"
    if pi == "RGB":
        if spp != 3:
            raise InputError(src, "DICOM RGB image must have 3 samples per pixel")
        return _scale_unsigned(arr, geo["bits_stored"])
    if pi == "PALETTE COLOR":
        return _palette_to_rgb(ds, arr, src)
    raise InputError(
        src, f"unsupported DICOM photometric interpretation: {safe_name(pi)}"
    )


def _scale_unsigned(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits_stored >= 8:
        return arr
    hi = float((1 << bits_stored) - 1)
    a = np.clip(arr.astype(np.float64), 0, hi)
    return np.rint(a * (255.0 / hi)).astype(np.uint8)


def _first_float(value: Any) -> float | None:
    try:
        if value is None or value == "":
            return None
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        out = float(value)
    except Exception:
        return None
    return out if np.isfinite(out) else None


def _mono_to_uint8(ds: Any, arr: np.ndarray, geo: dict[str, Any]) -> np.ndarray:
    bits, signed = geo["bits_stored"], geo["signed"]
    if not signed and bits <= 8:  # 8 bits as stored; fewer (1-bit masks too) stretched to 0..255
        return _scale_unsigned(arr, bits)
    a = arr.astype(np.float64)
    if bits <= 8:  # signed 8-bit: shift to 0..255
        return np.clip(a + 128.0, 0, 255).astype(np.uint8)
    center = _first_float(ds.get("WindowCenter", None))
    width = _first_float(ds.get("WindowWidth", None))
    if center is not None and width is not None and width >= 1:
        slope = _first_float(ds.get("RescaleSlope", None))
        intercept = _first_float(ds.get("RescaleIntercept", None))
        v = a * (1.0 if slope is None else slope) + (0.0 if intercept is None else intercept)
        if width == 1:  # DICOM PS3.3 C.11.2.1.2.1: a step at the centre
            y = np.where(v > center - 0.5, 1.0, 0.0)
        else:
            y = (v - (center - 0.5)) / (width - 1.0) + 0.5
        return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)
    lo, hi = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
    y = (np.clip(a, lo, hi) - lo) * (255.0 / (hi - lo))
    return np.rint(y).astype(np.uint8)


def _palette_to_rgb(ds: Any, arr: np.ndarray, src: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        rgb = np.asarray(apply_color_lut(arr, ds))
    except Exception:
        raise InputError(
            src, "DICOM palette colour lookup table is missing or invalid"
        ) from None
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.size and int(rgb.max()) <= 255 and _lut_bits(ds) == 8:
        return rgb.astype(np.uint8)
    return np.rint(np.clip(rgb.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)


def _lut_bits(ds: Any) -> int:
    try:
        return int(ds.RedPaletteColorLookupTableDescriptor[2])
    except Exception:
        return 16

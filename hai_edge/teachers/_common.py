"""Input checks and resizing shared by the teacher adapters (numpy only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.frontends import resize_antialiased

__all__ = [
    "as_float_images",
    "audio_batch",
    "check_rgb",
    "first_line",
    "read_json",
    "resize_rgb_uint8",
]


def audio_batch(batch: Sequence[np.ndarray], window_samples: int, who: str) -> np.ndarray:
    """Stack mono windows into float32 ``[N, window_samples]``; any other length is an error."""
    if len(batch) == 0:
        raise HaiEdgeError(f"{who}: empty batch")
    rows = []
    for a in batch:
        x = np.asarray(a, dtype=np.float32)
        if x.ndim != 1 or x.size != window_samples:
            raise HaiEdgeError(f"{who} takes mono windows of exactly {window_samples} samples, "
                               f"got shape {x.shape}")
        rows.append(x)
    return np.stack(rows)


def check_rgb(img: np.ndarray, who: str) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise HaiEdgeError(f"{who} takes RGB uint8 [H, W, 3] images, got {a.dtype} {a.shape}")
    return a


def resize_rgb_uint8(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch to ``height x width`` with Pillow's antialiased BILINEAR maths, rounded to uint8
    (what a Pillow ``resize`` of the 8-bit photo gives, up to +-1 from Pillow's fixed point)."""
    if img.shape[:2] == (height, width):
        return np.ascontiguousarray(img)
    out = resize_antialiased(img.astype(np.float32), height, width)
    return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)


def as_float_images(
    batch: Sequence[np.ndarray], height: int, width: int, who: str, *, round_uint8: bool = True
) -> np.ndarray:
    """RGB uint8 images of any size -> float32 ``[N, 3, height, width]`` in [0, 1] (stretched)."""
    if len(batch) == 0:
        raise HaiEdgeError(f"{who}: empty batch")
    out = np.empty((len(batch), 3, height, width), dtype=np.float32)
    for i, img in enumerate(batch):
        a = check_rgb(img, who)
        if round_uint8:
            r = resize_rgb_uint8(a, height, width).astype(np.float32)
        else:
            r = resize_antialiased(a.astype(np.float32), height, width)
        out[i] = np.transpose(r, (2, 0, 1)) / np.float32(255.0)
    return out


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:limit] if text else type(exc).__name__


def read_json(path: Path) -> dict:
    """A JSON object file, or ``{}`` when absent; malformed JSON is a HaiEdgeError."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HaiEdgeError(f"{path}: unreadable JSON: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise HaiEdgeError(f"{path}: expected a JSON object")
    return data

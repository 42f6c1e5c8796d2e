"""Shared helpers of the decoder tests (audio, image, DICOM)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hai_edge.errors import InputError


def input_error(fn, *args, **kwargs) -> InputError:  # noqa: ANN001, ANN002, ANN003
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return info.value


def gradient(h: int, w: int) -> np.ndarray:
    """A deterministic RGB test pattern (values 0..255, not yet uint8)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), (x + y) % 256], -1)


def save(img: Any, path: Path, fmt: str, **kw: Any) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def jpeg_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(gradient(300, 400).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def wav_bytes(n: int = 16000, sr: int = 16000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(n, np.int16), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()

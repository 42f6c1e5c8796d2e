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


def make_dicom(
    path: Path,
    pixels: np.ndarray | None,
    *,
    pi: str = "RGB",
    frames: int = 1,
    ts: str = "1.2.840.10008.1.2.1",
    pixel_data: bytes | None = None,
    bits_stored: int | None = None,
    signed: bool = False,
    phi: dict[str, str] | None = None,
    **extra,
) -> Path:
    """A VL Photographic DICOM of ``pixels`` (frames first when ``frames`` > 1), uncompressed
    unless ``ts``/``pixel_data`` say otherwise; ``phi``: header values to plant."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(ts)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XC"
    for k, v in (phi or {}).items():
        setattr(ds, k, v)
    if pixels is not None:
        shape = pixels.shape[1:] if frames > 1 else pixels.shape
        ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
        ds.SamplesPerPixel = 3 if len(shape) == 3 else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = pi
        bits = pixels.dtype.itemsize * 8
        ds.BitsAllocated = bits
        ds.BitsStored = bits_stored or bits
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path

"""DICOM decoding with pydicom 3 (VL Photographic, secondary capture and other 2-D images).

Every frame becomes one :class:`DecodedImage` of uint8 pixels: RGB for colour data (YBR_FULL and
YBR_FULL_422 converted, compressed or not; PALETTE COLOR looked up), grey for MONOCHROME1/2
(MONOCHROME1 inverted; more than 8 stored bits mapped to 8 through the window centre/width when
present, else through the full stored range).

JPEG-baseline frames (how VL Photographic files usually carry a camera's JPEG) are decoded
exactly as a JPEG photo is: by libjpeg through Pillow, at the reduced DCT scale when the
reduction policy applies. A DICOM wrapping a photo's JPEG then gives the photo's pixels bit for
bit, and a 12 MP frame decodes in milliseconds instead of in full and then box-reduced.

Privacy: DICOM headers carry patient data. Error messages here are fixed texts that only ever
include technical values (rows, columns, frames, the transfer syntax name and the photometric
interpretation); pydicom's own exception texts and warnings are never passed on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hai_edge.errors import InputError, MissingDependencyError
from hai_edge.runtime.decoders._dicom_pixels import CORRUPT, MONO, YBR, safe_name, to_uint8
from hai_edge.runtime.decoders._files import (
    check_input_file,
    check_limits,
    megapixels,
    open_input_file,
    source_name,
)
from hai_edge.runtime.decoders._image import (
    DecodedImage,
    _draft,
    decode_image,
    decode_image_bytes,
    reduce_decoded,
    reduction_factor,
)

__all__ = [
    "DICOM_SUFFIXES",
    "decode_dicom",
    "decode_dicom_bytes",
    "is_dicom",
    "is_dicom_bytes",
    "load_images",
    "load_images_bytes",
    "quiet_pydicom",
]

DICOM_SUFFIXES = (".dcm", ".dicom")
# what the decoders may hand over; YBR_ICT/YBR_RCT (JPEG 2000) come back from them as RGB
_SUPPORTED_PI = (*MONO, *YBR, "RGB", "PALETTE COLOR", "YBR_ICT", "YBR_RCT")


def is_dicom(path: str | os.PathLike) -> bool:
    """True for a ``.dcm``/``.dicom`` name or a file with ``DICM`` at byte 128."""
    try:
        p = Path(path)
        if p.suffix.lower() in DICOM_SUFFIXES:
            return True
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except (OSError, TypeError, ValueError):
        return False


def is_dicom_bytes(data: bytes) -> bool:
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[128:132]) == b"DICM"


def load_images(
    path: str | os.PathLike,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
    source: str | None = None,
) -> list[DecodedImage]:
    """All images in a file: one per DICOM frame, else the single decoded photo.

    ``draft_min_side`` applies the same reduction policy to every format (see
    ``decoders._image``): reduced DCT scale for JPEG, a box average for DICOM frames and others.
    """
    if is_dicom(path):
        return decode_dicom(path, max_pixels=max_pixels, min_side=min_side,
                            draft_min_side=draft_min_side, source=source)
    return [
        decode_image(
            path,
            max_pixels=max_pixels,
            min_side=min_side,
            draft_min_side=draft_min_side,
            source=source,
        )
    ]


def load_images_bytes(
    data: bytes,
    source: str,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
) -> list[DecodedImage]:
    """:func:`load_images` for an in-memory file; DICOM is recognised by content or name."""
    if is_dicom_bytes(data) or str(source).lower().endswith(DICOM_SUFFIXES):
        return decode_dicom_bytes(data, source, max_pixels=max_pixels, min_side=min_side,
                                  draft_min_side=draft_min_side)
    return [
        decode_image_bytes(
            data, source, max_pixels=max_pixels, min_side=min_side, draft_min_side=draft_min_side
        )
    ]


def decode_dicom(
    path: str | os.PathLike,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
    source: str | None = None,
) -> list[DecodedImage]:
    """Decode every frame of a DICOM file (``frame`` is set only for multi-frame files).

    With ``draft_min_side`` each frame far larger than needed is box-reduced by the factor a
    JPEG photo of that size would be decoded at (``decoders._image.reduction_factor``).
    """
    src = source_name(path, source)
    check_input_file(path, src)
    with open_input_file(path, src) as fp:
        return _decode(fp, src, max_pixels, min_side, draft_min_side)


def decode_dicom_bytes(
    data: bytes,
    source: str,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
) -> list[DecodedImage]:
    src = str(source)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(src, f"expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InputError(src, "empty file (0 bytes)")
    return _decode(io.BytesIO(bytes(data)), src, max_pixels, min_side, draft_min_side)


# ---------------------------------------------------------------------------------------------


def _import_pydicom() -> Any:
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401
    except ImportError:
        raise MissingDependencyError("DICOM decoding", "dicom", "pydicom") from None
    return pydicom


def _decode(
    fp: BinaryIO, src: str, max_pixels: int, min_side: int, draft_min_side: int | None = None
) -> list[DecodedImage]:
    pydicom = _import_pydicom()
    with quiet_pydicom(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings may quote header values
        ds = _read_dataset(pydicom, fp, src)
        geo = _geometry(ds, src)
        check_limits(src, geo["cols"], geo["rows"], max_pixels, min_side, what="DICOM image")
        total = geo["rows"] * geo["cols"] * geo["frames"]
        if total > max_pixels:
            raise InputError(
                src,
                f"DICOM image has {geo['frames']} frames of {geo['cols']}x{geo['rows']} pixels "
                f"({megapixels(total)} in all); the limit is {megapixels(max_pixels)}",
            )
        ts = _transfer_syntax(pydicom, ds, src)
        fast = _jpeg_baseline_frames(ds, ts, geo, draft_min_side)
        if fast is not None:
            return _images(fast, geo, src, draft_min_side)
        decoder = _decoder_for(ts, src)
        if not ts.is_encapsulated:
            _check_native_length(ds, src)
        elif str(ts) in _ENDS_WITH_EOI:
            _check_frames_complete(ds, geo, src)
        try:
            arr, meta = decoder.as_array(ds, as_rgb=True)
        except MemoryError:
            raise InputError(src, "not enough memory to decode the DICOM pixel data") from None
        except Exception:  # pydicom/plugin texts may carry header values: never pass them on
            raise InputError(src, CORRUPT) from None
        arr = np.asarray(arr)
        frames = geo["frames"]
        spp = geo["spp"]
        expected = (frames, geo["rows"], geo["cols"]) + ((spp,) if spp > 1 else ())
        if frames == 1 and arr.ndim == len(expected) - 1:
            arr = arr[np.newaxis]
        if tuple(arr.shape) != expected:
            raise InputError(src, CORRUPT)
        pi = str(meta.get("photometric_interpretation", geo["pi"]) or geo["pi"]).strip().upper()
        out = to_uint8(pydicom, ds, arr, pi, geo, src)
    return _images(list(out), geo, src, draft_min_side)


def _images(frames: list[np.ndarray], geo: dict[str, Any], src: str,
            draft_min_side: int | None) -> list[DecodedImage]:
    stored = (geo["cols"], geo["rows"])
    images = []
    for i, frame in enumerate(frames):
        pixels, factor = reduce_decoded(frame, stored, draft_min_side)
        images.append(DecodedImage(
            pixels=np.ascontiguousarray(pixels),
            orientation=1,
            source=src,
            frame=i if len(frames) > 1 else None,
            reduction=factor,
            stored_size=stored if factor > 1 else None,
        ))
    return images


_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_PIL_MODE = {("YBR_FULL_422", 3): "RGB", ("YBR_FULL", 3): "RGB", ("MONOCHROME2", 1): "L"}


def _jpeg_baseline_frames(ds: Any, ts: Any, geo: dict[str, Any],
                         draft_min_side: int | None) -> list[np.ndarray] | None:
    """JPEG-baseline 8-bit frames decoded as a JPEG photo is (libjpeg's own YCbCr conversion; the
    reduced DCT scale when the policy reduces), or None when this is not that case or anything is
    unexpected: the general pydicom path then decodes the file and reports errors in its own
    fixed words. (pydicom's Pillow plugin converts YBR itself: up to 13 levels from the photo.)"""
    if str(ts) != _JPEG_BASELINE:
        return None
    mode = _PIL_MODE.get((geo["pi"], geo["spp"]))
    if mode is None or geo["bits_alloc"] != 8 or geo["bits_stored"] != 8 or geo["signed"]:
        return None
    rows, cols = geo["rows"], geo["cols"]
    k = reduction_factor(cols, rows, draft_min_side)
    try:
        from PIL import Image
        from pydicom.encaps import generate_frames

        out = []
        for data in generate_frames(ds.PixelData, number_of_frames=geo["frames"]):
            with Image.open(io.BytesIO(data)) as img:
                if img.format != "JPEG" or img.size != (cols, rows) or img.mode != mode:
                    return None
                _draft(img, cols, rows, k)
                img.load()
                out.append(np.asarray(img))
    except Exception:  # corrupt or unusual: the general path decides
        return None
    return out if len(out) == geo["frames"] else None


class _DropThisThread(logging.Filter):
    """Drops the records logged by one thread (the one decoding), lets other threads' through."""

    def __init__(self) -> None:
        super().__init__()
        self.ident = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.ident


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's loggers for this thread: its records can quote header values (PHI)
    and carry tracebacks of failed plugin attempts, which must never reach the user's logs."""
    drop = _DropThisThread()
    loggers = [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and (name == "pydicom" or name.startswith("pydicom."))
    ]
    for lg in loggers:
        lg.addFilter(drop)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(drop)


def _read_dataset(pydicom: Any, fp: BinaryIO, src: str) -> Any:
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(fp, force=False)
    except InvalidDicomError:
        raise InputError(src, "not a DICOM file (no 'DICM' marker at byte 128)") from None
    except MemoryError:
        raise InputError(src, "not enough memory to read the DICOM file") from None
    except Exception:
        raise InputError(src, "DICOM file is corrupt or truncated (cannot parse its header)") from None


def _int(ds: Any, keyword: str, default: int | None, src: str) -> int:
    try:
        value = ds.get(keyword, None)
        if value is None or value == "":
            if default is None:
                raise InputError(src, f"DICOM image lacks the {keyword} attribute")
            return default
        return int(value)
    except InputError:
        raise
    except Exception:
        raise InputError(src, f"DICOM image has an invalid {keyword} attribute") from None


def _geometry(ds: Any, src: str) -> dict[str, Any]:
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise InputError(src, "DICOM float pixel data is not supported")
        raise InputError(src, "DICOM file has no pixel data")
    rows = _int(ds, "Rows", None, src)
    cols = _int(ds, "Columns", None, src)
    spp = _int(ds, "SamplesPerPixel", 1, src)
    bits_alloc = _int(ds, "BitsAllocated", None, src)
    bits_stored = _int(ds, "BitsStored", bits_alloc, src)
    signed = _int(ds, "PixelRepresentation", 0, src) == 1
    frames = max(_int(ds, "NumberOfFrames", 1, src), 1)
    try:
        pi = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    except Exception:
        pi = ""
    if not pi:
        raise InputError(src, "DICOM image lacks the PhotometricInterpretation attribute")
    if pi not in _SUPPORTED_PI:
        raise InputError(src, f"unsupported DICOM photometric interpretation: {safe_name(pi)}")
    if spp not in (1, 3):
        raise InputError(src, f"DICOM image has an unsupported SamplesPerPixel ({spp})")
    if bits_alloc not in (1, 8, 16, 32) or not 1 <= bits_stored <= bits_alloc:
        raise InputError(src, "DICOM image has unsupported BitsAllocated/BitsStored values")
    return {
        "rows": rows,
        "cols": cols,
        "spp": spp,
        "bits_alloc": bits_alloc,
        "bits_stored": bits_stored,
        "signed": signed,
        "frames": frames,
        "pi": pi,
    }


def _transfer_syntax(pydicom: Any, ds: Any, src: str) -> Any:
    from pydicom import uid

    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if not ts:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is None:
            raise InputError(src, "DICOM file has no transfer syntax")
        ts = (
            uid.ImplicitVRLittleEndian
            if implicit
            else (uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian)
        )
        ds.file_meta.TransferSyntaxUID = ts
    ts = uid.UID(str(ts))
    if not re.fullmatch(r"[0-9.]{1,64}", str(ts)):
        raise InputError(src, "DICOM file has an invalid transfer syntax UID")
    return ts


def _ts_name(ts: Any) -> str:
    name = str(getattr(ts, "name", "") or str(ts))
    return name if re.fullmatch(r"[A-Za-z0-9 .,:()\[\]_/-]{1,120}", name) else str(ts)


def _decoder_for(ts: Any, src: str) -> Any:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError, KeyError):
        raise InputError(src, f"unsupported DICOM transfer syntax: {_ts_name(ts)}") from None
    if not decoder.is_available:
        name = _ts_name(ts)
        if "JPEG-LS" in name:
            package = "pyjpegls"
        elif "2000" in name or "HTJ2K" in name:
            package = "pylibjpeg-openjpeg"
        elif "RLE" in name:
            package = "pylibjpeg-rle"
        else:
            package = "pylibjpeg"
        raise MissingDependencyError(f"decoding DICOM {name}", "dicom", package)
    return decoder


# JPEG, JPEG-LS and JPEG 2000 (incl. HTJ2K) code streams end with FFD9 (EOI / EOC)
_ENDS_WITH_EOI = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})


def _check_frames_complete(ds: Any, geo: dict[str, Any], src: str) -> None:
    """A truncated compressed frame must fail: some plugins (pylibjpeg) decode what is there
    and fill the rest, which would score a half-grey image as if it were the photo."""
    from pydicom.encaps import generate_frames

    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=geo["frames"]))
    except Exception:
        raise InputError(src, CORRUPT) from None
    if len(frames) != geo["frames"] or any(
            not bytes(f).rstrip(b"\x00").endswith(b"\xff\xd9") for f in frames):
        raise InputError(src, CORRUPT)


def _check_native_length(ds: Any, src: str) -> None:
    from pydicom.pixels.utils import get_expected_length

    try:
        expected = int(get_expected_length(ds, "bytes"))
        held = len(ds.PixelData)
    except Exception:
        raise InputError(src, CORRUPT) from None
    if held < expected:
        raise InputError(src, CORRUPT)

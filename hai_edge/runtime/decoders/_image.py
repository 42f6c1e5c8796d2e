"""Photo decoding with Pillow: raw pixels as stored plus the EXIF orientation.

Nothing here rotates or colour-manages an ordinary photo: the image front end applies
``orientation`` and converts to RGB. Only modes numpy cannot represent usefully are mapped
(palette -> RGB/RGBA, CMYK/YCbCr -> RGB, 1-bit -> 0/255, 32-bit int/float -> uint8).

The decompression-bomb limit is checked from the header (``Image.open`` is lazy) before any
pixel is decoded. Pillow's own global limit (``Image.MAX_IMAGE_PIXELS``) is neither relied on nor
changed: its warning is silenced locally, and when its error fires first the header is re-read
without it so that our ``max_pixels`` is the only limit that applies.

Reduction policy (one for every decoder, DICOM included): an image far larger than the model
needs is reduced at decode by the power-of-two factor (2, 4 or 8) that keeps its shorter side
>= ``draft_min_side`` (:func:`reduction_factor`). JPEG gets it from libjpeg's reduced DCT scale
(Pillow draft mode: fast, the full image is never decoded); every other source is decoded in
full and box-averaged by the same factor (:func:`box_reduce`), which is what the DCT scaling
computes too (the mean of each block), so a photo and a DICOM/PNG of the same pixels reach the
front end with nearly the same pixels.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import struct
import warnings
import zlib
from typing import Any, BinaryIO

import numpy as np

from hai_edge.errors import InputError, MissingDependencyError
from hai_edge.runtime.decoders._files import (
    check_input_file,
    check_limits,
    megapixels,
    open_input_file,
    short_reason,
    source_name,
)

__all__ = [
    "DecodedImage",
    "box_reduce",
    "decode_image",
    "decode_image_bytes",
    "reduce_decoded",
    "reduction_factor",
]

_EXIF_ORIENTATION = 0x0112
_JPEG_FORMATS = ("JPEG", "MPO")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class DecodedImage:
    """Pixels exactly as stored (``uint8``/``uint16``, ``[H, W]`` or ``[H, W, C]``, C in 1..4).

    ``orientation`` is the EXIF orientation (1..8; 1 when absent or invalid) still to be applied;
    ``frame`` is the frame index within a multi-frame DICOM file, else ``None``. ``reduction``
    is the factor the decoder reduced the image by (1, 2, 4 or 8; see the module docstring) and
    ``stored_size`` the ``(width, height)`` as stored in the file, before that reduction.
    """

    pixels: np.ndarray
    orientation: int
    source: str
    frame: int | None = None
    reduction: int = 1
    stored_size: tuple[int, int] | None = None  # None: the same as the pixels

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def full_size(self) -> tuple[int, int]:
        """``(width, height)`` of the image as stored (not reduced, not EXIF-rotated)."""
        return self.stored_size if self.stored_size is not None else (self.width, self.height)

    def __repr__(self) -> str:  # never dumps pixel values
        return (
            f"DecodedImage(source={self.source!r}, shape={tuple(self.pixels.shape)}, "
            f"dtype={self.pixels.dtype}, orientation={self.orientation}, frame={self.frame}, "
            f"reduction={self.reduction})"
        )


# ---------------------------------------------------------------------------------------------
# reduction policy (shared with the DICOM decoder)

_FACTORS = (8, 4, 2)


def reduction_factor(width: int, height: int, min_side: int | None) -> int:
    """The power-of-two factor (1, 2, 4 or 8) an image of ``width`` x ``height`` is reduced by.

    Exactly the DCT scale Pillow's JPEG draft mode picks when asked for the smallest size
    whose sides stay >= the image scaled so that its shorter side is ``min_side``: the largest
    ``s`` in (8, 4, 2) with ``s <= min(W // ceil(W f), H // ceil(H f))``, ``f = min_side /
    min(W, H)``; 1 when ``min_side`` is None or the image is not larger than that.
    """
    short = min(width, height)
    if min_side is None or min_side < 1 or short <= min_side:
        return 1
    f = min_side / short
    scale = min(width // max(1, math.ceil(width * f)), height // max(1, math.ceil(height * f)))
    return next((s for s in _FACTORS if scale >= s), 1)


def box_reduce(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of uint8/uint16 ``[H, W]`` / ``[H, W, C]`` pixels.

    The output has the JPEG reduced-scale size ``ceil(H / factor) x ceil(W / factor)`` and the
    input's dtype: each pixel is the mean of its block, rounded half up (partial blocks at the
    right and bottom edges average the pixels they have). With alpha (C = 2 or 4) colours are
    averaged weighted by alpha (premultiplied), so compositing over white afterwards gives the
    mean of the composited block. Strided adds, not a reduction over a reshaped block axis:
    numpy adds whole planes at a time, which is several times faster.
    """
    a = np.asarray(pixels)
    k = int(factor)
    if k not in (1, *_FACTORS):
        raise ValueError(f"box_reduce factor must be 1, 2, 4 or 8, got {factor}")
    if k == 1:
        return a
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"box_reduce expects uint8 or uint16 pixels, got {a.dtype}")
    grey = a.ndim == 2
    if grey:
        a = a[:, :, None]
    h, w, c = a.shape
    if c in (2, 4):
        out = _box_reduce_alpha(a, k)
    else:
        acc = np.uint16 if a.dtype == np.uint8 else np.uint32  # k <= 8: no overflow
        sums = _block_sums(a, k, acc)
        n = k * k  # full blocks: a shift (k is a power of two); partial edge blocks: divide
        out = np.right_shift(sums + acc(n // 2), n.bit_length() - 1).astype(a.dtype)
        if h % k or w % k:
            counts = _block_counts(h, k)[:, None, None] * _block_counts(w, k)[None, :, None]
            for edge in (np.s_[-1:, :], np.s_[:, -1:]):
                c = counts[edge].astype(acc)
                out[edge] = ((sums[edge] + c // 2) // c).astype(a.dtype)
    return out[:, :, 0] if grey else out


def _block_counts(size: int, k: int) -> np.ndarray:
    """Pixels per block along one axis (k, except a partial last block)."""
    counts = np.full(-(-size // k), k, dtype=np.int64)
    if size % k:
        counts[-1] = size % k
    return counts


def _block_sums(a: np.ndarray, k: int, acc: Any) -> np.ndarray:
    """Sums of ``k`` x ``k`` blocks of ``[H, W, C]`` in dtype ``acc`` (partial edge blocks too)."""
    h, w, c = a.shape
    rows = np.zeros((-(-h // k), w, c), dtype=acc)
    for i in range(min(k, h)):
        part = a[i::k]
        np.add(rows[: len(part)], part, out=rows[: len(part)], casting="unsafe")
    out = np.zeros((rows.shape[0], -(-w // k), c), dtype=acc)
    for j in range(min(k, w)):
        part = rows[:, j::k]
        np.add(out[:, : part.shape[1]], part, out=out[:, : part.shape[1]])
    return out


def _box_reduce_alpha(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`box_reduce` for grey/colour + alpha: alpha-weighted colour means (float64)."""
    v = a.astype(np.float64)
    alpha = v[:, :, -1:]
    n = (_block_counts(a.shape[0], k)[:, None, None]
         * _block_counts(a.shape[1], k)[None, :, None]).astype(np.float64)
    alpha_sum = _block_sums(alpha, k, np.float64)
    colour_sum = _block_sums(v[:, :, :-1] * alpha, k, np.float64)
    plain_sum = _block_sums(v[:, :, :-1], k, np.float64)  # fully transparent blocks
    colour = np.where(alpha_sum > 0, colour_sum / np.maximum(alpha_sum, 1e-300), plain_sum / n)
    out = np.concatenate([colour, alpha_sum / n], axis=2)
    top = float(np.iinfo(a.dtype).max)
    return np.clip(np.floor(out + 0.5), 0, top).astype(a.dtype)


def reduce_decoded(
    pixels: np.ndarray, stored_size: tuple[int, int], min_side: int | None
) -> tuple[np.ndarray, int]:
    """Apply the reduction policy to decoded pixels: ``(pixels, factor)``.

    ``stored_size`` is the ``(width, height)`` as stored. Pixels already at the reduced size
    are kept; pixels at full size, or reduced by a smaller power of two (a JPEG decoded at a
    finer DCT scale), are box-reduced the rest of the way; anything else is kept as decoded,
    with factor 1.
    """
    width, height = stored_size
    k = reduction_factor(width, height, min_side)
    a = np.asarray(pixels)
    for done in (k, *(d for d in (4, 2, 1) if d < k)):  # what the decoder already reduced by
        if tuple(a.shape[:2]) == (-(-height // done), -(-width // done)):
            if done == k:
                return a, k
            if a.dtype in (np.uint8, np.uint16):
                return np.ascontiguousarray(box_reduce(a, k // done)), k
    return a, 1


# ---------------------------------------------------------------------------------------------


def _import_pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("image decoding", "image", "pillow") from None
    return Image


def decode_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
    source: str | None = None,
) -> DecodedImage:
    """Decode a JPEG/PNG/WebP/BMP/TIFF/GIF (first frame) file; every bad input is an InputError.

    ``max_pixels`` is checked against the header before decoding; images whose shorter side is
    below ``min_side`` are rejected. With ``draft_min_side`` an image far larger than needed is
    reduced by 2, 4 or 8 keeping its shorter side >= ``draft_min_side`` (the module's reduction
    policy: reduced DCT scale for JPEG, a box average of the full decode otherwise).
    """
    src = source_name(path, source)
    check_input_file(path, src)
    with open_input_file(path, src) as fp:
        return _decode(fp, src, max_pixels, min_side, draft_min_side)


def decode_image_bytes(
    data: bytes,
    source: str,
    *,
    max_pixels: int = 100_000_000,
    min_side: int = 1,
    draft_min_side: int | None = None,
) -> DecodedImage:
    """:func:`decode_image` for an in-memory file (e.g. an upload); ``source`` names it."""
    src = str(source)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(src, f"expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InputError(src, "empty file (0 bytes)")
    return _decode(io.BytesIO(bytes(data)), src, max_pixels, min_side, draft_min_side)


def _decode(
    fp: BinaryIO, src: str, max_pixels: int, min_side: int, draft_min_side: int | None
) -> DecodedImage:
    Image = _import_pil()
    with warnings.catch_warnings():
        # our max_pixels is the limit; Pillow's global one must neither warn nor print
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. corrupt EXIF, truncated TIFF tags
        img = _open(Image, fp, src, max_pixels)
        try:
            width, height = (int(v) for v in img.size)
            check_limits(src, width, height, max_pixels, min_side)
            if draft_min_side is not None and img.format in _JPEG_FORMATS:
                _draft(img, width, height, reduction_factor(width, height, draft_min_side))
            try:
                img.load()
                pixels = _to_array(Image, img, src)
            except InputError:
                raise
            except MemoryError:
                raise InputError(src, "not enough memory to decode the image") from None
            except Image.DecompressionBombError as exc:
                raise InputError(src, f"image exceeds the decoder's size limit ({short_reason(exc)})")
            except Exception as exc:  # Pillow raises OSError/ValueError/SyntaxError/zlib.error...
                raise InputError(
                    src, f"corrupt or truncated image data ({short_reason(exc)})"
                ) from None
            orientation = _orientation(img)
        finally:
            img.close()
    pixels, factor = reduce_decoded(pixels, (width, height), draft_min_side)
    return DecodedImage(pixels=pixels, orientation=orientation, source=src, frame=None,
                        reduction=factor,
                        stored_size=(width, height) if factor > 1 else None)


def _open(Image: Any, fp: BinaryIO, src: str, max_pixels: int) -> Any:
    """``Image.open`` (header only) with Pillow's bomb error turned into our own check."""
    try:
        return Image.open(fp)
    except Image.UnidentifiedImageError:
        raise InputError(src, "not a readable image file") from None
    except Image.DecompressionBombError as exc:
        img = _open_without_bomb_check(Image, fp)
        if img is None:  # cannot re-read the header: report the pixel count Pillow saw
            m = re.search(r"\((\d+) pixels\)", str(exc))
            n = int(m.group(1)) if m else 0
            if n > max_pixels:
                raise InputError(
                    src, f"image is {megapixels(n)}; the limit is {megapixels(max_pixels)}"
                ) from None
            raise InputError(src, f"image exceeds the decoder's size limit ({short_reason(exc)})")
        return img
    except MemoryError:
        raise InputError(src, "not enough memory to read the image header") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
        raise InputError(src, f"corrupt or truncated image data ({short_reason(exc)})") from None


def _open_without_bomb_check(Image: Any, fp: BinaryIO) -> Any:
    """Re-run Pillow's format detection without its global MAX_IMAGE_PIXELS check.

    Mirrors ``Image.open``'s plugin loop; any surprise (internals changed) returns None.
    """
    try:
        Image.init()
        fp.seek(0)
        prefix = fp.read(16)
        for fmt in list(Image.ID):
            factory, accept = Image.OPEN[fmt]
            ok = not accept or accept(prefix)
            if not ok or isinstance(ok, str):
                continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError):
                continue
    except Exception:  # pragma: no cover - only if Pillow's internals change
        return None
    return None


def _draft(img: Any, width: int, height: int, factor: int) -> None:
    """Ask libjpeg to decode at the reduced DCT scale ``1 / factor`` (2, 4 or 8).

    Pillow picks the largest scale ``s`` in (8, 4, 2, 1) with ``s <= min(W // req_w, H //
    req_h)`` and rounds the scaled size up; requesting ``(W // factor, H // factor)`` makes
    that ``s`` equal ``factor`` for any image at least ``factor`` pixels on each side.
    """
    if factor < 2:
        return
    req = (max(1, width // factor), max(1, height // factor))
    try:
        img.draft(img.mode, req)
    except Exception:  # draft is an optimisation only; a full decode is always correct
        return


def _orientation(img: Any) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
        value = int(value)
    except Exception:  # a broken EXIF block never makes a photo unusable
        return 1
    return value if 1 <= value <= 8 else 1


_KEEP = {"L", "RGB", "RGBA", "LA"}
_U16 = {"I;16", "I;16L", "I;16B", "I;16N"}


def _to_array(Image: Any, img: Any, src: str) -> np.ndarray:
    mode = img.mode
    if mode in _KEEP:
        arr = np.array(img, dtype=np.uint8)
    elif mode == "1":
        arr = np.array(img.convert("L"), dtype=np.uint8)
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        arr = np.array(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    elif mode in _U16:
        arr = np.array(img).astype(np.uint16, copy=False)
        arr = np.ascontiguousarray(arr.astype(np.dtype("=u2"), copy=False))
    elif mode in ("I", "F"):
        arr = _scale_wide(np.array(img), src, is_float=mode == "F")
    elif mode in ("RGBa", "RGBX") or mode.startswith("BGR"):
        arr = np.array(img.convert("RGBA" if mode == "RGBa" else "RGB"), dtype=np.uint8)
    elif mode == "La":
        arr = np.array(img.convert("LA"), dtype=np.uint8)
    else:  # CMYK, YCbCr, HSV, LAB, ...
        try:
            arr = np.array(img.convert("RGB"), dtype=np.uint8)
        except (ValueError, OSError):
            raise InputError(src, f"unsupported image mode {mode!r}") from None
    if arr.ndim == 3 and not 1 <= arr.shape[2] <= 4:
        raise InputError(src, f"unsupported image layout with {arr.shape[2]} channels")
    if arr.ndim not in (2, 3):
        raise InputError(src, f"unsupported image layout with {arr.ndim} dimensions")
    return np.ascontiguousarray(arr)


def _scale_wide(a: np.ndarray, src: str, *, is_float: bool) -> np.ndarray:
    """32-bit integer (mode I) or float (mode F) grey -> uint8.

    Integers already within 0..255 are kept; within 0..65535 they are read as 16-bit data
    (x / 257); floats within [0, 1] are read as intensities (x * 255); anything else is stretched
    linearly from its minimum to its maximum.
    """
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise InputError(src, "image contains NaN or infinite pixel values")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if not is_float and lo >= 0 and hi <= 255:
        out = a
    elif not is_float and lo >= 0 and hi <= 65535:
        out = a / 257.0
    elif is_float and lo >= 0 and hi <= 1:
        out = a * 255.0
    elif hi > lo:
        out = (a - lo) * (255.0 / (hi - lo))
    else:
        out = np.zeros_like(a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

"""Image front end in plain numpy: EXIF transpose -> RGB -> resize/crop -> normalise -> layout.

The single definition of image preprocessing (the export side, calibration, every runtime and the
JavaScript app follow it). Decoders hand over the pixel array and the EXIF orientation tag; all
arithmetic after decoding happens here, in float32, so every runtime gets the same model input.

Rounding convention for pixel geometry: ``round_half_up(v) = floor(v + 0.5)`` (what JavaScript's
``Math.round`` does for the non-negative values used here), and centring offsets use
``floor((outer - inner) / 2)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hai_edge.errors import InputError
from hai_edge.bundle.frontend import ImageFrontendSpec, ResizeMode

__all__ = ["apply_exif_orientation", "prepare_image", "resize_antialiased", "to_rgb"]


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Undo the camera's EXIF orientation so the array shows the photo upright.

    Same transposes as Pillow's ``ImageOps.exif_transpose`` (rows = y, columns = x):
    1 none; 2 mirror left-right; 3 rotate 180; 4 mirror top-bottom; 5 transpose (swap x and y);
    6 rotate 90 degrees clockwise (Pillow ROTATE_270); 7 transverse (transpose across the
    anti-diagonal); 8 rotate 90 degrees counter-clockwise (Pillow ROTATE_90). Any other value
    (missing or corrupt tag) leaves the image unchanged. Works on ``[H, W]`` and ``[H, W, C]``.
    """
    a = np.asarray(pixels)
    if a.ndim < 2:
        raise ValueError(f"image must be [H, W] or [H, W, C], got shape {a.shape}")
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[2] > 1 and a.size and a.flags.c_contiguous:
        # move each pixel's channels as one opaque item: numpy's strided copy of 3-byte
        # channel runs is ~10x slower (10 ms for a 1000 x 750 photo rotated by 90 degrees)
        c = a.shape[2]
        items = a.view(np.dtype((np.void, c * a.itemsize))).reshape(a.shape[:2])
        out = apply_exif_orientation(items, orientation)
        return out.view(a.dtype).reshape(out.shape[0], out.shape[1], c)
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, k=-1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, k=1)
    return np.ascontiguousarray(a)


def _to_unit_float(a: np.ndarray) -> np.ndarray:
    """Any supported dtype -> float64 in 8-bit units [0, 255] (not yet rounded)."""
    if a.dtype == np.bool_:
        return a.astype(np.float64) * 255.0
    if a.dtype == np.uint8:
        return a.astype(np.float64)
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 257.0  # 65535 -> 255 exactly
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError("image contains NaN or infinite pixel values")
        return np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0  # float images are in [0, 1]
    raise ValueError(f"unsupported pixel type {a.dtype} (expected bool, uint8, uint16 or float)")


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels -> uint8 ``[H, W, 3]``.

    Accepts ``[H, W]`` / ``[H, W, 1]`` grey, ``[H, W, 2]`` grey + alpha, ``[H, W, 3]`` RGB and
    ``[H, W, 4]`` RGBA. Alpha is composited over white (``c * a + 255 * (1 - a)``, ``a`` in
    [0, 1]) because transparent regions of medical photos/scans are background. uint16 is scaled
    to 8 bit (``v / 257``), bool to 0/255, float in [0, 1] to 0..255; one rounding (half up) at
    the end.
    """
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image shape {np.asarray(pixels).shape}")
    if a.dtype == np.uint8 and a.shape[2] == 3:
        return np.ascontiguousarray(a)
    v = _to_unit_float(a)
    channels = v.shape[2]
    if channels in (2, 4):
        alpha = v[:, :, -1:] / 255.0
        v = v[:, :, :-1] * alpha + 255.0 * (1.0 - alpha)
    if v.shape[2] == 1:
        v = np.repeat(v, 3, axis=2)
    return np.floor(np.clip(v, 0.0, 255.0) + 0.5).astype(np.uint8)


def _resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """Dense ``[out_size, in_size]`` float64 weights of Pillow's BILINEAR (triangle) resampling.

    ``scale = in / out``; ``filterscale = max(scale, 1)`` widens the triangle when shrinking
    (antialiasing); output pixel ``i`` is centred at ``c = (i + 0.5) * scale`` in input
    coordinates and reads inputs ``xmin..xmax-1`` with ``xmin = max(int(c - fs + 0.5), 0)``,
    ``xmax = min(int(c + fs + 0.5), in)`` and weight ``tri((x - c + 0.5) / fs)``,
    ``tri(t) = max(0, 1 - |t|)``, normalised to sum 1. The reference definition: the run side
    applies the same weights as taps (:func:`_taps_float64`); tests and benchmarks compare.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # triangle support (1.0) times filterscale
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    centre = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(centre + support + 0.5), in_size).astype(np.int64)
    x = np.arange(in_size)[None, :]
    inside = (x >= xmin[:, None]) & (x < xmax[:, None])
    tri = np.maximum(0.0, 1.0 - np.abs((x - centre[:, None] + 0.5) / filterscale))
    weights[inside] = tri[inside]
    total = weights.sum(axis=1, keepdims=True)
    np.divide(weights, total, out=weights, where=total != 0)
    return weights


def _taps_float64(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero band of :func:`_resize_weights`: indices and float64 weights ``[out, taps]``.

    Output ``i`` reads ``idx[i, t] = xmin_i + t``; rows with fewer than ``taps`` inputs are
    padded with the last valid index and weight 0 (so a gather never leaves the image).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # triangle support (1.0) times filterscale
    centre = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(centre + support + 0.5), in_size).astype(np.int64)
    taps = max(1, int((xmax - xmin).max()))
    x = xmin[:, None] + np.arange(taps)[None, :]
    inside = x < xmax[:, None]
    tri = np.maximum(0.0, 1.0 - np.abs((x - centre[:, None] + 0.5) / filterscale))
    w = np.where(inside, tri, 0.0)
    total = w.sum(axis=1, keepdims=True)
    np.divide(w, total, out=w, where=total != 0)
    idx = np.minimum(x, np.maximum(xmax - 1, 0)[:, None])
    return idx, w


@functools.lru_cache(maxsize=128)
def _resize_windows(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The weights of :func:`_taps_float64` as fixed-length windows, cached (read-only).

    Returns ``start`` (intp ``[out]``) and ``weights`` (float32 ``[out, taps]``): output ``i``
    is ``weights[i] @ input[start[i] : start[i] + taps]``. Windows that would run past the last
    input are shifted back inside and their weights moved along (the extra taps get weight 0),
    so every window is a plain slice. A kiosk sees few photo sizes: the cache holds them.
    """
    idx, w = _taps_float64(in_size, out_size)
    taps = idx.shape[1]
    xmin = idx[:, 0]
    start = np.minimum(xmin, in_size - taps)
    pos = (xmin - start)[:, None] + np.arange(taps)[None, :]  # each weight's place in its window
    keep = pos < taps  # only zero-weight padding taps fall off the end
    weights = np.zeros((out_size, taps), dtype=np.float32)
    rows = np.broadcast_to(np.arange(out_size)[:, None], pos.shape)
    weights[rows[keep], pos[keep]] = w[keep]
    start = start.astype(np.intp)
    start.setflags(write=False)
    weights.setflags(write=False)
    return start, weights


def _resize_rows(a: np.ndarray, out_size: int) -> np.ndarray:
    """Antialiased-bilinear resize of float32 ``[n, m]`` along its first axis -> ``[out, m]``.

    Each output row is the weighted sum of the few input rows under its triangle (about
    ``2 * n / out + 1`` when shrinking, 2-3 when enlarging), not a dense ``[out, n]`` matrix
    product: ``n / taps`` times fewer multiply-adds. Two ways to sum them, picked by a rough
    cost model (nanoseconds, measured on x86): one BLAS dot per output row (per-call overhead,
    fast inner loop: wins for many taps), or one gathered multiply-add per tap over all rows
    (wins for few taps and many outputs, e.g. enlarging).
    """
    start, weights = _resize_windows(a.shape[0], out_size)
    taps = weights.shape[1]
    m = a.shape[1]
    out = np.empty((out_size, m), dtype=np.float32)
    if taps * (out_size * m + 5000) < out_size * (2000 + 0.25 * taps * m):
        np.multiply(a[start], weights[:, :1], out=out)
        for t in range(1, taps):
            g = a[start + t]
            g *= weights[:, t : t + 1]
            out += g
        return out
    for i in range(out_size):
        s = int(start[i])
        np.dot(weights[i], a[s : s + taps], out=out[i])
    return out


def _swap_hw(a: np.ndarray) -> np.ndarray:
    """Contiguous ``[H, W, C]`` float32 -> contiguous ``[W, H, C]``.

    Moves each pixel's C floats as one opaque item (a void view): about twice as fast as
    numpy's general 3-D transpose copy.
    """
    h, w, c = a.shape
    pixels = np.ascontiguousarray(a).view(np.dtype((np.void, 4 * c))).reshape(h, w)
    return np.ascontiguousarray(pixels.T).view(np.float32).reshape(w, h, c)


def _resize_cols(a: np.ndarray, out_w: int) -> np.ndarray:
    """``[H, W, C]`` -> ``[H, out_w, C]`` through :func:`_resize_rows` on the transpose."""
    h, w, c = a.shape
    cols = _resize_rows(_swap_hw(a).reshape(w, h * c), out_w)
    return _swap_hw(cols.reshape(out_w, h, c))


def resize_antialiased(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize float ``[H, W, C]`` to ``[out_h, out_w, C]`` float32, antialiased bilinear.

    Separable, with the weights of :func:`_resize_weights` (Pillow's BILINEAR maths, but in
    float with no rounding between the passes), applied as a few taps per output pixel
    (:func:`_resize_rows`), so any input size is cheap. The pass order is chosen for the least
    work; it changes results only by float rounding (about 1e-7), as does summing taps instead
    of a dense matrix product (:func:`_resize_dense`, the previous implementation).
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 3:
        raise ValueError(f"resize_antialiased expects [H, W, C], got shape {a.shape}")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {out_h}x{out_w}")
    h, w, c = a.shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(f"cannot resize an empty image of shape {a.shape}")
    if (h, w) == (out_h, out_w):
        return a.copy()
    if out_w == w:
        return _resize_rows(a.reshape(h, w * c), out_h).reshape(out_h, w, c)
    if out_h == h:
        return _resize_cols(a, out_w)
    ty = _resize_windows(h, out_h)[1].shape[1]
    tx = _resize_windows(w, out_w)[1].shape[1]
    # elements touched: each pass reads taps x output; the column pass also transposes twice
    rows_first = out_h * w * (ty + 1) + out_h * out_w * (tx + 1)
    cols_first = h * w + h * out_w * (tx + 2) + out_h * out_w * ty
    if rows_first <= cols_first:
        rows = _resize_rows(a.reshape(h, w * c), out_h).reshape(out_h, w, c)
        return _resize_cols(rows, out_w)
    cols = _resize_cols(a, out_w)
    return _resize_rows(cols.reshape(h, out_w * c), out_h).reshape(out_h, out_w, c)


def _resize_dense(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The previous implementation (dense matrix products), kept as the reference that tests
    and ``benchmarks/image_resize.py`` compare :func:`resize_antialiased` with."""
    a = np.asarray(img, dtype=np.float32)
    h, w, c = a.shape
    if (h, w) == (out_h, out_w):
        return a.copy()
    wy = _resize_weights(h, out_h).astype(np.float32)  # [out_h, H]
    wx = _resize_weights(w, out_w).astype(np.float32)  # [out_w, W]
    if out_h * w * (h + out_w) <= out_w * h * (w + out_h):  # fewer multiply-adds: rows first
        rows = (wy @ a.reshape(h, w * c)).reshape(out_h, w, c)  # vertical pass
        return np.ascontiguousarray(wx @ rows)  # [out_w, W] @ [out_h, W, C] -> [out_h, out_w, C]
    cols = wx @ a  # horizontal pass: [out_w, W] @ [H, W, C] -> [H, out_w, C]
    return (wy @ cols.reshape(h, out_w * c)).reshape(out_h, out_w, c)


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def _crop_box(h: int, w: int, spec: ImageFrontendSpec) -> tuple[int, int, int, int]:
    """Centred crop ``(top, left, height, width)`` with the output's aspect ratio.

    The largest region of aspect ``spec.width / spec.height`` that fits the image, scaled by
    ``crop_fraction`` (for a square output: a square of ``crop_fraction`` times the shorter side).
    """
    aspect = spec.width / spec.height
    crop_w = min(float(w), h * aspect) * spec.crop_fraction
    crop_h = crop_w / aspect
    ch = min(h, max(1, _round_half_up(crop_h)))
    cw = min(w, max(1, _round_half_up(crop_w)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def prepare_image(
    pixels: np.ndarray,
    spec: ImageFrontendSpec,
    orientation: int = 1,
    source: str = "<image>",
) -> np.ndarray:
    """Decoded pixels -> model input float32 ``[*spec.input_shape()]`` (no batch dimension).

    EXIF transpose -> :func:`to_rgb` -> size checks -> ``/ 255`` -> resize per ``spec.resize``
    (SHORTER_SIDE_CENTER_CROP: centred crop of the output aspect ratio covering ``crop_fraction``
    of the shorter side, then resize; STRETCH: resize to the output size; PAD: resize keeping the
    aspect ratio so the longer side fits, centred on a canvas of ``pad_value``) ->
    ``(x - mean) / std`` per channel -> NCHW or NHWC.
    """
    try:
        rgb = to_rgb(apply_exif_orientation(pixels, orientation))
    except ValueError as exc:
        raise InputError(source, str(exc)) from None
    h, w = rgb.shape[:2]
    if h * w > spec.max_pixels:
        raise InputError(
            source, f"image is {w}x{h} pixels; at most {spec.max_pixels} pixels are allowed"
        )
    if min(h, w) < spec.min_side:
        raise InputError(
            source,
            f"image is {w}x{h} pixels; at least {spec.min_side} pixels per side are needed",
        )
    out_h, out_w = spec.height, spec.width
    if spec.resize is ResizeMode.SHORTER_SIDE_CENTER_CROP:
        top, left, ch, cw = _crop_box(h, w, spec)
        x = rgb[top : top + ch, left : left + cw].astype(np.float32) / np.float32(255.0)
        x = resize_antialiased(x, out_h, out_w)
    elif spec.resize is ResizeMode.STRETCH:
        x = resize_antialiased(rgb.astype(np.float32) / np.float32(255.0), out_h, out_w)
    else:  # PAD
        x = rgb.astype(np.float32) / np.float32(255.0)
        scale = min(out_h / h, out_w / w)
        new_h = min(out_h, max(1, _round_half_up(h * scale)))
        new_w = min(out_w, max(1, _round_half_up(w * scale)))
        canvas = np.full((out_h, out_w, 3), spec.pad_value, dtype=np.float32)
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resize_antialiased(x, new_h, new_w)
        x = canvas
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) / std
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)

"""Photo shifts: what old phone cameras, bad light and hurried framing do to a skin photo.

Every function takes an RGB uint8 ``[H, W, 3]`` array and returns one (the same size unless it
crops). JPEG, resizing, rotation and drawing are Pillow; blur kernels are convolved with
scipy.signal; exposure and white balance work in linear light (sRGB transfer function, IEC
61966-2-1). Random choices (motion direction, crop position) come from the caller's seeded
generator.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = [
    "crop",
    "defocus",
    "downscale",
    "exposure",
    "jpeg_bytes",
    "jpeg_roundtrip",
    "kelvin_rgb",
    "motion_blur",
    "rotate",
    "white_balance",
]


def _pil(rgb: np.ndarray):  # noqa: ANN202 - PIL.Image.Image, imported lazily
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """Pillow (libjpeg) baseline JPEG at ``quality`` with 4:2:0 chroma subsampling, as phones
    store photos."""
    buf = io.BytesIO()
    _pil(rgb).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return buf.getvalue()


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg_bytes(rgb, quality))).convert("RGB"))


def downscale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A low-resolution camera: shrink by ``factor`` (Pillow, antialiased) and enlarge back to
    the original size (bicubic), so the detail is gone but the size is not."""
    from PIL import Image

    h, w = rgb.shape[:2]
    small = _pil(rgb).resize((max(1, round(w / factor)), max(1, round(h / factor))),
                             Image.Resampling.LANCZOS)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))


def _convolve(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    k = np.asarray(kernel, np.float64)
    k = k / k.sum()
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = np.pad(rgb.astype(np.float64), ((ph, ph), (pw, pw), (0, 0)), mode="reflect")
    y = np.stack([fftconvolve(x[..., c], k, mode="valid") for c in range(3)], axis=-1)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)[: rgb.shape[0], : rgb.shape[1]]


def defocus(rgb: np.ndarray, radius_px: float) -> np.ndarray:
    """Out-of-focus blur: convolution with a uniform disk (the lens's circle of confusion)."""
    if radius_px <= 0:
        return rgb.copy()
    r = int(math.ceil(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return _convolve(rgb, (xx**2 + yy**2 <= radius_px**2).astype(np.float64))


def motion_blur(rgb: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Camera shake: convolution with a line ``length_px`` long at ``angle_deg`` (drawn with
    Pillow's ImageDraw)."""
    from PIL import Image, ImageDraw

    if length_px < 2:
        return rgb.copy()
    size = int(math.ceil(length_px)) | 1
    c = size // 2
    dx, dy = 0.5 * (length_px - 1) * math.cos(math.radians(angle_deg)), \
        0.5 * (length_px - 1) * math.sin(math.radians(angle_deg))
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).line([(c - dx, c - dy), (c + dx, c + dy)], fill=255, width=1)
    return _convolve(rgb, np.asarray(canvas, np.float64))


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    v = rgb.astype(np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    v = np.clip(lin, 0.0, 1.0)
    s = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(s * 255.0), 0, 255).astype(np.uint8)


def exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """Under- (``ev`` < 0) or over-exposure: linear light times ``2**ev``, clipped at white."""
    return _to_srgb(_to_linear(rgb) * 2.0**ev)


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """sRGB colour (0..1) of a black body at ``kelvin`` (Tanner Helland's fit to Mitchell
    Charity's blackbody table, 1000-40000 K)."""
    t = float(np.clip(kelvin, 1000.0, 40000.0)) / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = (99.4708025861 * math.log(t) - 161.1195681661 if t <= 66
         else 288.1221695283 * (t - 60) ** -0.0755148492)
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10)
                               - 305.0447927307)
    return np.clip(np.array([r, g, b]) / 255.0, 0.0, 1.0)


def white_balance(rgb: np.ndarray, kelvin: float, reference_kelvin: float = 6500.0
                  ) -> np.ndarray:
    """A photo lit by a ``kelvin`` light but white-balanced for ``reference_kelvin`` (daylight):
    per-channel gains (von Kries, in linear light) of the light's colour over the reference's,
    scaled so that the luminance (Rec. 709 weights) of white is unchanged."""
    lin_ref = _to_linear((kelvin_rgb(reference_kelvin) * 255.0)[None, None, :])[0, 0]
    lin = _to_linear((kelvin_rgb(kelvin) * 255.0)[None, None, :])[0, 0]
    gains = lin / np.maximum(lin_ref, 1e-6)
    gains /= float(np.dot([0.2126, 0.7152, 0.0722], gains))
    return _to_srgb(_to_linear(rgb) * gains)


def rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation about the centre (Pillow, bicubic), the same size; corners the photo no longer
    covers are filled with the photo's median colour (skin), not black."""
    from PIL import Image

    fill = tuple(int(v) for v in np.median(rgb.reshape(-1, 3), axis=0))
    return np.asarray(_pil(rgb).rotate(float(degrees), Image.Resampling.BICUBIC, fillcolor=fill))


def crop(rgb: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Tighter or off-centre framing: a window ``keep`` of each side at a seeded random
    position (the model's front end resizes it as it would any photo)."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(rgb[top : top + ch, left : left + cw])

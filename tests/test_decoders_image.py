"""Tests of hai_edge.runtime.decoders (images): every input is built here, in tmp_path."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from hai_edge.runtime.decoders import (
    DecodedImage,
    decode_image,
    decode_image_bytes,
)
from hai_edge.runtime.decoders._image import box_reduce, reduction_factor

from ._decoder_helpers import gradient as _gradient
from ._decoder_helpers import input_error as _input_error
from ._decoder_helpers import jpeg_bytes as _jpeg_bytes
from ._decoder_helpers import save as _save
from ._decoder_helpers import wav_bytes as _wav_bytes

Image = pytest.importorskip("PIL.Image")

# =============================================================================================
# images


@pytest.mark.parametrize(
    ("mode", "channels"), [("RGB", 3), ("RGBA", 4), ("L", None), ("LA", 2)]
)
def test_png_modes_kept_as_stored(tmp_path, mode, channels):
    rng = np.random.default_rng(1)
    shape = (13, 17) if channels is None else (13, 17, channels)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    path = _save(Image.fromarray(arr, mode=mode), tmp_path / f"{mode}.png", "PNG")
    out = decode_image(path)
    assert isinstance(out, DecodedImage)
    assert out.pixels.dtype == np.uint8 and out.pixels.shape == shape
    np.testing.assert_array_equal(out.pixels, arr)
    assert out.orientation == 1 and out.frame is None and out.source == str(path)


def test_png_palette_to_rgb_and_rgba(tmp_path):
    arr = _gradient(10, 12).astype(np.uint8)
    pal = Image.fromarray(arr).quantize(colors=16)
    path = _save(pal, tmp_path / "p.png", "PNG")
    out = decode_image(path)
    assert out.pixels.shape == (10, 12, 3) and out.pixels.dtype == np.uint8
    np.testing.assert_array_equal(out.pixels, np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = 0
    path = _save(pal, tmp_path / "pa.png", "PNG", transparency=0)
    out = decode_image(path)
    assert out.pixels.shape == (10, 12, 4)
    idx = np.asarray(pal)
    np.testing.assert_array_equal(out.pixels[..., 3] == 0, idx == 0)


def test_png_16bit_grey_kept_uint16(tmp_path):
    arr = (np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000).astype(np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "g16.png", "PNG")
    out = decode_image(path)
    assert out.pixels.dtype == np.uint16 and out.pixels.shape == (5, 6)
    np.testing.assert_array_equal(out.pixels, arr)


def test_bilevel_to_0_255(tmp_path):
    arr = np.zeros((4, 9), np.uint8)
    arr[1, 2] = arr[3, 8] = 255
    path = _save(Image.fromarray(arr).convert("1"), tmp_path / "b.png", "PNG")
    out = decode_image(path)
    assert out.pixels.dtype == np.uint8
    np.testing.assert_array_equal(out.pixels, arr)


def test_int32_and_float_modes_scaled(tmp_path):
    ints = (np.arange(20, dtype=np.int32).reshape(4, 5) * 3000).astype(np.int32)
    out = decode_image(_save(Image.fromarray(ints, mode="I"), tmp_path / "i.tif", "TIFF"))
    np.testing.assert_array_equal(out.pixels, np.rint(ints / 257.0).astype(np.uint8))
    floats = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    out = decode_image(_save(Image.fromarray(floats, mode="F"), tmp_path / "f.tif", "TIFF"))
    np.testing.assert_array_equal(out.pixels, np.rint(floats * 255).astype(np.uint8))


def test_jpeg_exif_orientation_not_applied(tmp_path):
    arr = _gradient(40, 60).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(arr), tmp_path / "phone.jpg", "JPEG", quality=95, exif=exif)
    out = decode_image(path)
    assert out.orientation == 6
    assert out.pixels.shape == (40, 60, 3)  # still landscape as stored: not rotated
    assert np.abs(out.pixels.astype(int) - arr).mean() < 3
    no_exif = decode_image(_save(Image.fromarray(arr), tmp_path / "plain.jpg", "JPEG"))
    assert no_exif.orientation == 1


def test_jpeg_cmyk_to_rgb(tmp_path):
    path = _save(Image.new("CMYK", (8, 6), (0, 255, 0, 0)), tmp_path / "c.jpg", "JPEG")
    out = decode_image(path)
    assert out.pixels.shape == (6, 8, 3)
    assert np.abs(out.pixels.astype(int) - [255, 0, 255]).max() <= 3


@pytest.mark.parametrize(
    ("fmt", "ext", "kw"),
    [("WEBP", "webp", {"lossless": True}), ("BMP", "bmp", {}), ("TIFF", "tif", {})],
)
def test_lossless_formats_round_trip(tmp_path, fmt, ext, kw):
    arr = _gradient(21, 34).astype(np.uint8)
    out = decode_image(_save(Image.fromarray(arr), tmp_path / f"a.{ext}", fmt, **kw))
    np.testing.assert_array_equal(out.pixels, arr)


def test_gif_first_frame(tmp_path):
    a = np.full((5, 7, 3), (255, 0, 0), np.uint8)
    b = np.full((5, 7, 3), (0, 0, 255), np.uint8)
    path = tmp_path / "anim.gif"
    Image.fromarray(a).save(path, save_all=True, append_images=[Image.fromarray(b)])
    out = decode_image(path)
    assert out.pixels.shape[:2] == (5, 7)
    np.testing.assert_array_equal(out.pixels[..., :3], a)


def test_jpeg_draft_decode(tmp_path):
    arr = _gradient(3000, 4000).astype(np.uint8)
    path = _save(Image.fromarray(arr), tmp_path / "big.jpg", "JPEG", quality=80)
    full = decode_image(path)
    assert full.pixels.shape == (3000, 4000, 3)
    assert (full.reduction, full.stored_size, full.full_size) == (1, None, (4000, 3000))
    small = decode_image(path, draft_min_side=448)
    short = min(small.pixels.shape[:2])
    assert 448 <= short <= 1000
    assert small.pixels.shape == (750, 1000, 3)
    assert (small.reduction, small.stored_size, small.full_size) == (4, (4000, 3000), (4000, 3000))
    # a non-JPEG is box-reduced by the same factor; an image not far larger is kept as is
    png = _save(Image.fromarray(arr[:500, :600]), tmp_path / "p.png", "PNG")
    reduced = decode_image(png, draft_min_side=100)
    assert reduced.pixels.shape == (125, 150, 3) and reduced.reduction == 4
    np.testing.assert_array_equal(reduced.pixels, box_reduce(arr[:500, :600], 4))
    assert decode_image(png, draft_min_side=250).reduction == 2
    assert decode_image(png, draft_min_side=251).reduction == 1
    assert decode_image(path, draft_min_side=5000).pixels.shape == (3000, 4000, 3)


@pytest.mark.parametrize(
    ("w", "h", "min_side"),
    [(1000, 750, 80), (1000, 750, 112), (800, 600, 160), (640, 480, 320), (203, 97, 16),
     (1025, 257, 60), (333, 1000, 40), (801, 601, 100), (1001, 751, 80), (64, 64, 8),
     (100, 90, 11), (2000, 20, 2)],
)  # fmt: skip
def test_reduction_factor_is_the_scale_jpeg_draft_decodes_at(tmp_path, w, h, min_side):
    """The one policy: the factor every decoder reduces by is the DCT scale libjpeg uses."""
    k = reduction_factor(w, h, min_side)
    assert k in (1, 2, 4, 8)
    assert k == 1 or min(-(-w // k), -(-h // k)) >= min_side  # never below what was asked
    img = _gradient(h, w).astype(np.uint8)  # Pillow's draft scale is the oracle
    jpg = decode_image(_save(Image.fromarray(img), tmp_path / "a.jpg", "JPEG"),
                       draft_min_side=min_side)
    assert jpg.reduction == k
    assert jpg.pixels.shape == (-(-h // k), -(-w // k), 3)
    png = decode_image(_save(Image.fromarray(img), tmp_path / "a.png", "PNG"),
                       draft_min_side=min_side)
    assert png.reduction == k and png.pixels.shape == jpg.pixels.shape
    assert reduction_factor(w, h, None) == 1


def _block_mean_reference(a: np.ndarray, k: int) -> np.ndarray:
    """float64 loop: the mean of each k x k block (partial edge blocks: the pixels they have)."""
    v = a.astype(np.float64).reshape(a.shape[0], a.shape[1], -1)
    out = np.zeros((-(-v.shape[0] // k), -(-v.shape[1] // k), v.shape[2]))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = v[i * k : (i + 1) * k, j * k : (j + 1) * k].reshape(-1, v.shape[2]).mean(0)
    return out.reshape(out.shape[:2] + a.shape[2:])


@pytest.mark.parametrize("k", [2, 4, 8])
@pytest.mark.parametrize("shape", [(16, 24, 3), (17, 23, 3), (9, 1), (1, 9, 3), (33, 40, 1),
                                   (7, 5), (3, 3, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_box_reduce_is_the_rounded_block_mean(k, shape, dtype):
    a = np.random.default_rng(k * 131 + sum(shape)).integers(
        0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    out = box_reduce(a, k)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.floor(_block_mean_reference(a, k) + 0.5))
    np.testing.assert_array_equal(box_reduce(a, 1), a)


def test_box_reduce_rejects_what_it_cannot_average():
    with pytest.raises(ValueError, match="factor"):
        box_reduce(np.zeros((8, 8), np.uint8), 3)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        box_reduce(np.zeros((8, 8), np.float32), 2)


@pytest.mark.parametrize("channels", [2, 4])
def test_box_reduce_with_alpha_composites_like_the_full_image(channels):
    """Alpha-weighted means: compositing over white after the reduction gives (to rounding)
    the block mean of the composited full image, also for half-transparent edges."""
    from hai_edge.runtime.frontends import to_rgb

    rng = np.random.default_rng(channels)
    a = rng.integers(0, 256, (32, 40, channels), dtype=np.uint8)
    a[:8, :, -1] = 0  # fully transparent rows: the colour of nothing, white after compositing
    a[8:16, :, -1] = rng.choice([0, 255], (8, 40))  # hard edges inside blocks
    composited = _block_mean_reference(to_rgb(a), 4)
    got = to_rgb(box_reduce(a, 4)).astype(np.float64)
    assert np.abs(got - composited).max() <= 1.5
    naive = to_rgb(np.floor(_block_mean_reference(a, 4) + 0.5).astype(np.uint8))
    assert np.abs(naive - composited).max() > 10  # averaging alpha apart would be wrong



def test_one_pixel_and_min_side(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (9, 8, 7)), tmp_path / "dot.png", "PNG")
    out = decode_image(path)
    np.testing.assert_array_equal(out.pixels, [[[9, 8, 7]]])
    err = _input_error(decode_image, path, min_side=32)
    assert "dot.png" in str(err)
    assert err.problem == "image is 1x1 pixels; the shorter side must be at least 32"


def test_corrupt_jpeg(tmp_path):
    data = _jpeg_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = _input_error(decode_image, path)
    assert "half.jpg" in str(err)
    assert err.problem.startswith("corrupt or truncated image data (")
    flipped = bytearray(data)
    mid = len(data) // 2
    for i in range(mid, mid + 256):
        flipped[i] ^= 0xFF
    path = tmp_path / "flipped.jpg"
    path.write_bytes(bytes(flipped))
    err = _input_error(decode_image, path)
    assert "flipped.jpg" in str(err)
    assert err.problem.startswith("corrupt or truncated image data (")
    err = _input_error(decode_image_bytes, data[:200], "head.jpg")
    assert err.problem.startswith("corrupt or truncated image data (")


def test_not_an_image(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    err = _input_error(decode_image, path)
    assert str(err) == f"{path}: not a readable image file"
    wav = tmp_path / "sound.png"
    wav.write_bytes(_wav_bytes(100))
    assert _input_error(decode_image, wav).problem == "not a readable image file"
    assert _input_error(decode_image, tmp_path / "gone.png").problem == "file not found"
    assert _input_error(decode_image, tmp_path).problem == "is a directory, not a file"
    (tmp_path / "e.png").write_bytes(b"")
    assert _input_error(decode_image, tmp_path / "e.png").problem == "empty file (0 bytes)"


def _png_header_only(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG whose IHDR declares width x height, with a tiny IDAT."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + (width + 7) // 8))  # one row of data only
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_rejected_from_header(tmp_path):
    import time

    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20000, 20000))
    assert path.stat().st_size < 10_000
    t0 = time.perf_counter()
    err = _input_error(decode_image, path)
    assert time.perf_counter() - t0 < 1.0
    assert "bomb.png" in str(err)
    assert err.problem == "image is 20000x20000 pixels (400.0 MP); the limit is 100.0 MP"
    err = _input_error(decode_image_bytes, path.read_bytes(), "b.png", max_pixels=1_000_000)
    assert err.problem == "image is 20000x20000 pixels (400.0 MP); the limit is 1.0 MP"


def test_max_pixels_is_ours_not_pillows(tmp_path, monkeypatch):
    arr = _gradient(100, 120).astype(np.uint8)
    path = _save(Image.fromarray(arr), tmp_path / "m.png", "PNG")
    err = _input_error(decode_image, path, max_pixels=11_999)
    assert err.problem == "image is 120x100 pixels (0.012 MP); the limit is 0.012 MP"
    assert decode_image(path, max_pixels=12_000).pixels.shape == (100, 120, 3)
    # a tiny global Pillow limit (error at 2x, warning at 1x) changes nothing for us
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = decode_image(path)
    np.testing.assert_array_equal(out.pixels, arr)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_decode_image_bytes_and_repr(tmp_path):
    out = decode_image_bytes(_jpeg_bytes(), "upload://photo", draft_min_side=100)
    assert out.source == "upload://photo"
    assert out.pixels.shape == (150, 200, 3)
    r = repr(out)
    assert "upload://photo" in r and "(150, 200, 3)" in r and "array" not in r

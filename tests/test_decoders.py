"""Tests of hai_edge.runtime.decoders: every input is built here, in tmp_path."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from hai_edge.errors import InputError, MissingDependencyError
from hai_edge.runtime.decoders import (
    DecodedAudio,
    DecodedImage,
    decode_audio,
    decode_audio_bytes,
    decode_dicom,
    decode_dicom_bytes,
    decode_image,
    decode_image_bytes,
    is_dicom,
    load_images,
    load_images_bytes,
)
from hai_edge.runtime.decoders._image import box_reduce, reduction_factor

sf = pytest.importorskip("soundfile")
Image = pytest.importorskip("PIL.Image")


def _input_error(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return info.value


# =============================================================================================
# audio

_INT16 = np.array([0, 1, -1, 32767, -32768, 12345, -2222, 77], dtype=np.int16)


def _signal(n: int, channels: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    cols = [0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_round_trip(tmp_path, sr, channels, subtype):
    n = 1000
    path = tmp_path / f"a_{subtype}.wav"
    if subtype == "PCM_16":
        ints = np.resize(_INT16, (n, channels)).copy()
        ints[:, -1] = ints[::-1, -1]
        sf.write(path, ints, sr, subtype=subtype)
        expected = ints.astype(np.float32) / 32768.0
        atol = 0.0
    elif subtype == "PCM_32":
        ints = np.resize(np.array([0, 1, -(2**31), 2**31 - 1, 123456789], np.int32), (n, channels))
        sf.write(path, ints, sr, subtype=subtype)
        expected = (ints.astype(np.float64) / 2**31).astype(np.float32)
        atol = 1e-7
    else:
        expected = _signal(n, channels, sr)
        sf.write(path, expected, sr, subtype=subtype)
        atol = 0.0 if subtype in ("FLOAT", "DOUBLE") else 2.0**-23
    out = decode_audio(path)
    assert isinstance(out, DecodedAudio)
    assert out.sample_rate == sr
    assert out.samples.dtype == np.float32
    assert out.samples.shape == (n, channels)
    assert out.source == str(path)
    np.testing.assert_allclose(out.samples, expected, rtol=0, atol=atol)
    assert out.duration_s == pytest.approx(n / sr)


def test_audio_multichannel_and_source_override(tmp_path):
    x = _signal(800, 4, 16000)
    path = tmp_path / "four.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    out = decode_audio(str(path), source="upload://cough-1")
    assert out.samples.shape == (800, 4)
    assert out.source == "upload://cough-1"
    np.testing.assert_array_equal(out.samples, x)
    assert "upload://cough-1" in repr(out) and "0.2" not in repr(out).split("duration")[0]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac_round_trip(tmp_path, subtype):
    ints = np.resize(_INT16, (3000, 2))
    path = tmp_path / "a.flac"
    sf.write(path, ints, 44100, subtype=subtype, format="FLAC")
    out = decode_audio(path)
    assert out.sample_rate == 44100 and out.samples.shape == (3000, 2)
    np.testing.assert_array_equal(out.samples, ints.astype(np.float32) / 32768.0)


def test_ogg_vorbis(tmp_path):
    x = _signal(16000, 1, 16000)
    path = tmp_path / "a.ogg"
    sf.write(path, x, 16000, format="OGG", subtype="VORBIS")
    out = decode_audio(path)
    assert out.sample_rate == 16000 and out.samples.shape[1] == 1
    assert abs(out.samples.shape[0] - 16000) <= 64
    m = min(len(x), out.samples.shape[0])
    assert np.corrcoef(x[:m, 0], out.samples[:m, 0])[0, 1] > 0.95


def test_mp3(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write MP3 (needs >= 1.1)")
    x = _signal(16000, 1, 16000)
    path = tmp_path / "a.mp3"
    sf.write(path, x, 16000, format="MP3")
    out = decode_audio(path)
    assert out.sample_rate == 16000 and out.samples.shape[1] == 1
    assert abs(out.samples.shape[0] - 16000) <= 2000
    # MP3 adds encoder delay: compare spectra instead of samples
    spec = np.abs(np.fft.rfft(out.samples[:8000, 0]))
    assert abs(int(np.argmax(spec)) * 16000 / 8000 - 220) <= 4
    from_bytes = decode_audio_bytes(path.read_bytes(), "web.mp3")
    assert from_bytes.samples.shape == out.samples.shape


def test_decode_audio_bytes(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, _INT16, 8000, format="WAV", subtype="PCM_16")
    out = decode_audio_bytes(buf.getvalue(), "upload.wav")
    assert out.source == "upload.wav" and out.sample_rate == 8000
    np.testing.assert_array_equal(out.samples[:, 0], _INT16.astype(np.float32) / 32768.0)
    buf = io.BytesIO()
    sf.write(buf, _INT16, 8000, format="FLAC")
    assert decode_audio_bytes(buf.getvalue(), "u.flac").samples.shape == (8, 1)
    assert "empty file (0 bytes)" in str(_input_error(decode_audio_bytes, b"", "u.wav"))


def _wav_bytes(n: int = 16000, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(n, np.int16), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_audio_missing_directory_empty(tmp_path):
    missing = tmp_path / "nope.wav"
    err = _input_error(decode_audio, missing)
    assert str(err) == f"{missing}: file not found"
    err = _input_error(decode_audio, tmp_path)
    assert str(err) == f"{tmp_path}: is a directory, not a file"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    err = _input_error(decode_audio, empty)
    assert str(err) == f"{empty}: empty file (0 bytes)"
    assert err.source == str(empty) and err.problem == "empty file (0 bytes)"


def test_audio_not_audio(tmp_path):
    rnd = tmp_path / "random.wav"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    err = _input_error(decode_audio, rnd)
    assert "random.wav" in str(err)
    assert err.problem == "not a readable audio file (format not recognised)"
    png = tmp_path / "photo.wav"
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    err = _input_error(decode_audio, png)
    assert "photo.wav" in str(err)
    assert err.problem == "not a readable audio file (format not recognised)"
    err = _input_error(decode_audio_bytes, b"hello world, not audio", "t.ogg")
    assert err.problem.startswith("not a readable audio file")


def test_audio_truncated_wav(tmp_path):
    data = _wav_bytes(16000)  # 32000 bytes of audio after a 44-byte header
    assert data[36:40] == b"data"
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: 44 + 12000])
    err = _input_error(decode_audio, path)
    assert str(err) == (
        f"{path}: truncated WAV: header declares 32000 bytes of audio, file holds 12000"
    )
    err = _input_error(decode_audio_bytes, data[: 44 + 12000], "cut.wav")
    assert err.problem == "truncated WAV: header declares 32000 bytes of audio, file holds 12000"
    # cut inside the header, before the data chunk
    path.write_bytes(data[:30])
    err = _input_error(decode_audio, path)
    assert "cut.wav" in str(err) and err.problem.startswith("truncated WAV")
    # an intact file with a trailing odd byte is fine
    path.write_bytes(data + b"\0")
    assert decode_audio(path).samples.shape == (16000, 1)


def test_audio_zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 1), np.int16), 16000, subtype="PCM_16")
    err = _input_error(decode_audio, path)
    assert "zero.wav" in str(err) and err.problem == "contains no audio frames (0 samples)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_audio_non_finite(tmp_path, bad):
    x = _signal(1000, 1, 16000)
    x[500, 0] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    err = _input_error(decode_audio, path)
    assert "nan.wav" in str(err) and err.problem == "contains NaN or infinite samples"


@pytest.mark.parametrize("sr", [4000, 384000])
def test_audio_sample_rate_out_of_range(tmp_path, sr):
    path = tmp_path / f"sr{sr}.wav"
    sf.write(path, np.zeros(100, np.int16), sr, subtype="PCM_16")
    err = _input_error(decode_audio, path)
    assert f"sr{sr}.wav" in str(err)
    assert err.problem == f"sample rate {sr} Hz is outside the supported range 8000..192000 Hz"


def test_audio_accepts_rate_limits(tmp_path):
    for sr in (8000, 192000):
        path = tmp_path / f"ok{sr}.wav"
        sf.write(path, np.zeros(100, np.int16), sr, subtype="PCM_16")
        assert decode_audio(path).sample_rate == sr


# =============================================================================================
# images


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), (x + y) % 256], -1)


def _save(img, path: Path, fmt: str, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


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


def test_every_format_is_reduced_like_jpeg(tmp_path):
    """A photo's pixels as PNG, TIFF and DICOM reach the front end box-reduced by the factor the
    JPEG of the same photo is decoded at, with the stored size kept."""
    arr = _gradient(384, 512).astype(np.uint8)
    arr[100:200, 150:300] = (200, 120, 90)
    want = box_reduce(arr, 4)
    files = [_save(Image.fromarray(arr), tmp_path / "a.png", "PNG"),
             _save(Image.fromarray(arr), tmp_path / "a.tif", "TIFF"),
             _dicom(tmp_path / "a.dcm", arr)]
    for f in files:
        (img,) = load_images(f, draft_min_side=60)
        assert (img.reduction, img.stored_size) == (4, (512, 384)), f.name
        np.testing.assert_array_equal(img.pixels, want)
    (same,) = load_images_bytes(files[2].read_bytes(), "x.dcm", draft_min_side=60)
    np.testing.assert_array_equal(same.pixels, want)
    (jpg,) = load_images(_save(Image.fromarray(arr), tmp_path / "a.jpg", "JPEG", quality=95),
                         draft_min_side=60)
    assert jpg.pixels.shape == want.shape and jpg.reduction == 4
    assert np.abs(jpg.pixels.astype(int) - want).mean() < 2.0  # DCT scaling ~ the block mean
    (full,) = load_images(files[2])  # no draft_min_side: nothing is reduced
    np.testing.assert_array_equal(full.pixels, arr)
    frames = decode_dicom(_dicom(tmp_path / "mf.dcm", np.stack([arr, arr[::-1]]), frames=2),
                          draft_min_side=60)
    assert [f.reduction for f in frames] == [4, 4]
    np.testing.assert_array_equal(frames[1].pixels, box_reduce(arr[::-1], 4))


def test_one_pixel_and_min_side(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (9, 8, 7)), tmp_path / "dot.png", "PNG")
    out = decode_image(path)
    np.testing.assert_array_equal(out.pixels, [[[9, 8, 7]]])
    err = _input_error(decode_image, path, min_side=32)
    assert "dot.png" in str(err)
    assert err.problem == "image is 1x1 pixels; the shorter side must be at least 32"


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_gradient(300, 400).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


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


# =============================================================================================
# DICOM

pydicom = pytest.importorskip("pydicom")
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
PHI = {"PatientName": "Doe^Jane", "PatientID": "PID-12345", "PatientBirthDate": "19800101"}


def _dicom(
    path: Path,
    pixels: np.ndarray | None,
    *,
    pi: str = "RGB",
    frames: int = 1,
    ts: str = "1.2.840.10008.1.2.1",
    pixel_data: bytes | None = None,
    bits_stored: int | None = None,
    signed: bool = False,
    phi: bool = False,
    **extra,
) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = VL_PHOTO
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(ts)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = VL_PHOTO
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XC"
    if phi:
        for k, v in PHI.items():
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


def _rgb(h: int = 12, w: int = 16, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_is_dicom(tmp_path):
    path = _dicom(tmp_path / "x.bin", _rgb())
    assert is_dicom(path)
    (tmp_path / "y.dcm").write_bytes(b"whatever")
    assert is_dicom(tmp_path / "y.dcm")
    png = _save(Image.new("L", (2, 2)), tmp_path / "z.png", "PNG")
    assert not is_dicom(png) and not is_dicom(tmp_path / "missing.png")


def test_dicom_rgb_bit_exact(tmp_path):
    arr = _rgb()
    path = _dicom(tmp_path / "rgb.dcm", arr)
    (img,) = decode_dicom(path)
    assert img.pixels.dtype == np.uint8 and img.frame is None and img.orientation == 1
    np.testing.assert_array_equal(img.pixels, arr)
    (same,) = load_images(path)
    np.testing.assert_array_equal(same.pixels, arr)
    (from_bytes,) = load_images_bytes(path.read_bytes(), "up.bin")
    np.testing.assert_array_equal(from_bytes.pixels, arr)


def test_dicom_ybr_full_uncompressed_is_rgb(tmp_path):
    from pydicom.pixels import convert_color_space

    arr = _gradient(16, 20).astype(np.uint8)
    ybr = convert_color_space(arr, "RGB", "YBR_FULL")
    path = _dicom(tmp_path / "ybr.dcm", ybr, pi="YBR_FULL")
    (img,) = decode_dicom(path)
    assert img.pixels.shape == arr.shape
    assert np.abs(img.pixels.astype(int) - arr).max() <= 2


def test_dicom_jpeg_baseline_ybr_full_422(tmp_path):
    from pydicom.encaps import encapsulate

    arr = _gradient(64, 80).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, subsampling=1)  # 4:2:2
    path = _dicom(
        tmp_path / "jpeg.dcm",
        arr,
        pi="YBR_FULL_422",
        ts="1.2.840.10008.1.2.4.50",
        pixel_data=encapsulate([buf.getvalue()]),
    )
    (img,) = decode_dicom(path)
    assert img.pixels.shape == (64, 80, 3) and img.pixels.dtype == np.uint8
    assert np.abs(img.pixels.astype(int) - arr).mean() < 3


def test_dicom_monochrome(tmp_path):
    grey = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    (m2,) = decode_dicom(_dicom(tmp_path / "m2.dcm", grey, pi="MONOCHROME2"))
    np.testing.assert_array_equal(m2.pixels, grey)
    (m1,) = decode_dicom(_dicom(tmp_path / "m1.dcm", grey, pi="MONOCHROME1"))
    np.testing.assert_array_equal(m1.pixels, 255 - grey)


def test_dicom_16bit_full_range_and_window(tmp_path):
    vals = np.array([[0, 1000, 2048, 4095]], dtype=np.uint16)
    (img,) = decode_dicom(_dicom(tmp_path / "a.dcm", vals, pi="MONOCHROME2", bits_stored=12))
    np.testing.assert_array_equal(img.pixels, np.rint(vals.astype(float) * 255 / 4095).astype(np.uint8))
    full = np.array([[0, 257, 65535, 30000]], dtype=np.uint16)
    (img,) = decode_dicom(_dicom(tmp_path / "b.dcm", full, pi="MONOCHROME2"))
    np.testing.assert_array_equal(img.pixels, np.rint(full / 257).astype(np.uint8))
    # window centre 1000 / width 1001: [500, 1500] -> [0, 255]; rescale shifts stored values
    vals = np.array([[0, 1500, 2000, 2500, 4000]], dtype=np.uint16)
    path = _dicom(
        tmp_path / "c.dcm",
        vals,
        pi="MONOCHROME1",
        bits_stored=12,
        WindowCenter=1000,
        WindowWidth=1001,
        RescaleIntercept=-1000,
        RescaleSlope=1,
    )
    (img,) = decode_dicom(path)
    np.testing.assert_array_equal(img.pixels, 255 - np.array([[0, 0, 128, 255, 255]]))
    signed = np.array([[-2048, 0, 2047]], dtype=np.int16)
    path = _dicom(tmp_path / "d.dcm", signed, pi="MONOCHROME2", bits_stored=12, signed=True)
    (img,) = decode_dicom(path)
    np.testing.assert_array_equal(img.pixels, [[0, 128, 255]])


def test_dicom_palette_colour(tmp_path):
    idx = np.array([[0, 1, 2, 255]], dtype=np.uint8)
    red = np.zeros(256, np.uint16)
    green = np.zeros(256, np.uint16)
    blue = np.zeros(256, np.uint16)
    red[1], green[2], blue[255] = 65535, 65535, 32896
    path = _dicom(
        tmp_path / "pal.dcm",
        idx,
        pi="PALETTE COLOR",
        RedPaletteColorLookupTableDescriptor=[256, 0, 16],
        GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
        BluePaletteColorLookupTableDescriptor=[256, 0, 16],
        RedPaletteColorLookupTableData=red.tobytes(),
        GreenPaletteColorLookupTableData=green.tobytes(),
        BluePaletteColorLookupTableData=blue.tobytes(),
    )
    (img,) = decode_dicom(path)
    assert img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(
        img.pixels, [[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 128]]]
    )


def test_dicom_multi_frame(tmp_path):
    a, b = _rgb(seed=4), _rgb(seed=5)
    path = _dicom(tmp_path / "mf.dcm", np.stack([a, b]), frames=2)
    frames = decode_dicom(path)
    assert [f.frame for f in frames] == [0, 1]
    np.testing.assert_array_equal(frames[0].pixels, a)
    np.testing.assert_array_equal(frames[1].pixels, b)
    assert [f.frame for f in load_images(path)] == [0, 1]


def test_dicom_errors(tmp_path):
    path = _dicom(tmp_path / "empty.dcm", None)
    err = _input_error(decode_dicom, path)
    assert str(err) == f"{path}: DICOM file has no pixel data"
    arr = _rgb()
    short = _dicom(tmp_path / "short.dcm", arr, pixel_data=arr.tobytes()[:300])
    err = _input_error(decode_dicom, short)
    assert "short.dcm" in str(err)
    assert err.problem == (
        "DICOM pixel data is corrupt or its length does not match "
        "Rows x Columns x SamplesPerPixel x frames"
    )
    cut = tmp_path / "cut.dcm"
    full = _dicom(tmp_path / "full.dcm", arr).read_bytes()
    cut.write_bytes(full[: len(full) - 200])
    err = _input_error(decode_dicom, cut)
    assert "cut.dcm" in str(err) and "DICOM" in err.problem
    fake = tmp_path / "photo.dcm"
    fake.write_bytes(_jpeg_bytes())
    err = _input_error(load_images, fake)
    assert err.problem == "not a DICOM file (no 'DICM' marker at byte 128)"
    big = _dicom(tmp_path / "big.dcm", _rgb(100, 120))
    err = _input_error(decode_dicom, big, max_pixels=10_000)
    assert err.problem == "DICOM image is 120x100 pixels (0.012 MP); the limit is 0.01 MP"
    mf = _dicom(tmp_path / "mf.dcm", np.stack([_rgb(50, 60)] * 4), frames=4)
    err = _input_error(decode_dicom, mf, max_pixels=10_000)
    assert err.problem == (
        "DICOM image has 4 frames of 60x50 pixels (0.012 MP in all); the limit is 0.01 MP"
    )
    odd = _dicom(tmp_path / "odd.dcm", _rgb(), pi="HSV")
    err = _input_error(decode_dicom, odd)
    assert err.problem == "unsupported DICOM photometric interpretation: HSV"


def test_dicom_unsupported_transfer_syntax(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    mpeg = _dicom(
        tmp_path / "mpeg.dcm",
        _rgb(),
        ts="1.2.840.10008.1.2.4.100",
        pixel_data=encapsulate([b"\0\0\1\xb3" + bytes(100)]),
    )
    err = _input_error(decode_dicom, mpeg)
    assert err.problem.startswith("unsupported DICOM transfer syntax: MPEG2")
    jls = "1.2.840.10008.1.2.4.80"  # JPEG-LS: needs pyjpegls (or gdcm)
    path = _dicom(tmp_path / "jls.dcm", _rgb(), ts=jls, pixel_data=encapsulate([bytes(64)]))
    if get_decoder(jls).is_available:
        assert "DICOM" in _input_error(decode_dicom, path).problem
    else:
        with pytest.raises(MissingDependencyError, match=r"hai-edge\[dicom\]"):
            decode_dicom(path)


def test_dicom_never_leaks_phi(tmp_path, caplog, recwarn):
    import logging

    from pydicom.encaps import encapsulate

    caplog.set_level(logging.DEBUG)

    arr = _rgb()
    good_path = _dicom(tmp_path / "good.dcm", arr, phi=True)
    full = _dicom(tmp_path / "full.dcm", arr, phi=True).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(full[: len(full) - 100])
    broken = [
        _dicom(tmp_path / "nopix.dcm", None, phi=True),
        _dicom(tmp_path / "short.dcm", arr, pixel_data=b"\1" * 10, phi=True),
        _dicom(tmp_path / "pi.dcm", arr, pi="Doe^Jane", phi=True),
        _dicom(
            tmp_path / "badjpeg.dcm",
            arr,
            pi="YBR_FULL_422",
            ts="1.2.840.10008.1.2.4.50",
            pixel_data=encapsulate([b"\xff\xd8" + b"Doe^Jane PID-12345" * 10]),
            phi=True,
        ),
        cut,
    ]
    caplog.clear()  # building the files above may warn (e.g. the invalid CS value)
    recwarn.clear()
    good = decode_dicom(good_path)
    texts = [repr(good), repr(good[0]), str(good)]
    for path in broken:
        err = _input_error(decode_dicom, path)
        texts += [str(err), repr(err), err.problem, repr(err.__cause__)]
    err = _input_error(decode_dicom, tmp_path / "pi.dcm")
    assert err.problem == "unsupported DICOM photometric interpretation: (invalid value)"
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]
    texts += [caplog.text, *(str(w.message) for w in recwarn)]
    for text in texts:
        for value in (*PHI.values(), "Doe", "Jane", "12345", "1980"):
            assert value not in text, text


def test_load_images_routes_photos(tmp_path):
    path = _save(Image.fromarray(_gradient(20, 30).astype(np.uint8)), tmp_path / "a.jpg", "JPEG")
    (img,) = load_images(path, draft_min_side=10)
    assert img.frame is None and img.pixels.shape == (10, 15, 3)
    (img,) = load_images_bytes(path.read_bytes(), "a.jpg")
    assert img.pixels.shape == (20, 30, 3)


def test_decoders_import_lazily():
    import subprocess
    import sys

    code = (
        "import sys, hai_edge.runtime.decoders\n"
        "bad = [m for m in ('soundfile', 'PIL', 'pydicom') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

"""Tests of hai_edge.runtime.decoders (DICOM): every input is built here, in tmp_path."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from hai_edge.errors import MissingDependencyError
from hai_edge.runtime.decoders import (
    decode_dicom,
    is_dicom,
    load_images,
    load_images_bytes,
)
from hai_edge.runtime.decoders._image import box_reduce

from ._decoder_helpers import gradient as _gradient
from ._decoder_helpers import input_error as _input_error
from ._decoder_helpers import jpeg_bytes as _jpeg_bytes
from ._decoder_helpers import make_dicom
from ._decoder_helpers import save as _save

Image = pytest.importorskip("PIL.Image")

# =============================================================================================
# DICOM

pydicom = pytest.importorskip("pydicom")
PHI = {"PatientName": "Doe^Jane", "PatientID": "PID-12345", "PatientBirthDate": "19800101"}


def _dicom(path: Path, pixels: np.ndarray | None, *, phi: bool = False, **kw) -> Path:
    return make_dicom(path, pixels, phi=PHI if phi else None, **kw)


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


def _jpeg_dicom(tmp_path: Path, name: str, jpegs: list[bytes], shape: tuple[int, ...],
                pi: str = "YBR_FULL_422") -> Path:
    from pydicom.encaps import encapsulate

    return _dicom(tmp_path / name, np.zeros((len(jpegs), *shape) if len(jpegs) > 1 else shape,
                                            np.uint8),
                  pi=pi, frames=len(jpegs), ts="1.2.840.10008.1.2.4.50",
                  pixel_data=encapsulate(jpegs))


def test_dicom_wrapping_a_photo_jpeg_gives_the_photo_pixels(tmp_path):
    """A JPEG-baseline DICOM that carries a photo's JPEG bytes (how VL Photographic files hold a
    camera's picture) is decoded like the photo: reduced DCT scale, the same pixels bit for bit,
    colour and grey, one frame or several; the general decoder agrees to DCT-vs-box rounding."""
    arr = _gradient(480, 640).astype(np.uint8)
    arr[100:300, 200:400] = (200, 120, 90)
    photo = _save(Image.fromarray(arr), tmp_path / "p.jpg", "JPEG", quality=90)
    grey = _save(Image.fromarray(arr[..., 1]), tmp_path / "g.jpg", "JPEG", quality=90)
    (want,) = load_images(photo, draft_min_side=100)
    (want_grey,) = load_images(grey, draft_min_side=100)
    assert want.reduction == 4
    one = _jpeg_dicom(tmp_path, "one.dcm", [photo.read_bytes()], arr.shape)
    (got,) = load_images(one, draft_min_side=100)
    assert (got.reduction, got.stored_size, got.frame) == (4, (640, 480), None)
    np.testing.assert_array_equal(got.pixels, want.pixels)
    (mem,) = load_images_bytes(one.read_bytes(), "one.dcm", draft_min_side=100)
    np.testing.assert_array_equal(mem.pixels, want.pixels)
    two = _jpeg_dicom(tmp_path, "two.dcm", [photo.read_bytes(), grey.read_bytes()][:1] * 2,
                      arr.shape)
    assert [f.frame for f in decode_dicom(two, draft_min_side=100)] == [0, 1]
    (g,) = load_images(_jpeg_dicom(tmp_path, "g.dcm", [grey.read_bytes()], arr.shape[:2],
                                   pi="MONOCHROME2"), draft_min_side=100)
    np.testing.assert_array_equal(g.pixels, want_grey.pixels)
    # without the reduction policy: the photo's full decode (pydicom's own Pillow plugin converts
    # YBR itself and was up to 13 levels off it)
    (full,) = decode_dicom(one)
    with Image.open(photo) as im:
        np.testing.assert_array_equal(full.pixels, np.asarray(im.convert("RGB")))
    assert np.abs(box_reduce(full.pixels, 4).astype(int) - got.pixels).mean() < 1.0


def test_dicom_jpeg_fast_path_falls_back_and_reports_errors(tmp_path):
    """Anything the fast path does not expect goes to the general decoder, which reports a
    corrupt frame in its own fixed words (no Pillow text, no header value)."""
    arr = _gradient(480, 640).astype(np.uint8)
    data = _save(Image.fromarray(arr), tmp_path / "p.jpg", "JPEG", quality=90).read_bytes()
    cut = _jpeg_dicom(tmp_path, "cut.dcm", [data[: len(data) // 2]], arr.shape)
    err = _input_error(load_images, cut, draft_min_side=100)
    assert "cut.dcm" in str(err) and err.problem.startswith("DICOM pixel data is corrupt")
    # header says 640x480, the frame is another size: not trusted, the general path decides
    small = _save(Image.fromarray(arr[:240, :320]), tmp_path / "s.jpg", "JPEG").read_bytes()
    odd = _jpeg_dicom(tmp_path, "odd.dcm", [small], arr.shape)
    err = _input_error(load_images, odd, draft_min_side=100)
    assert "odd.dcm" in str(err) and "DICOM" in err.problem

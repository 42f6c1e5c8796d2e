"""Tests of the image front end.

The resize is checked against an independent float64 loop implementation of Pillow's BILINEAR
coefficient code (to 1e-5) and against Pillow itself on float ('F' mode) images (to 1e-5); EXIF
handling against hand-built expectations and ``PIL.ImageOps.exif_transpose``. Pillow is used by the
tests only; the library must not import it.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import pathlib
import sys

import numpy as np
import pytest

from hai_edge.errors import InputError
from hai_edge.runtime.frontends import (
    ImageFrontendSpec,
    ResizeMode,
    apply_exif_orientation,
    prepare_image,
    resize_antialiased,
    to_rgb,
)

# ---------------------------------------------------------------------------------------------
# resize


def ref_resize_1d(src: np.ndarray, out_size: int) -> np.ndarray:
    """Pillow's ImagingResampleHorizontal coefficient loop (bilinear), float64, along axis 0."""
    in_size = src.shape[0]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    out = np.zeros((out_size, *src.shape[1:]))
    for i in range(out_size):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        ws = []
        for x in range(xmin, xmax):
            t = abs((x - center + 0.5) / filterscale)
            ws.append(1.0 - t if t < 1.0 else 0.0)
        total = sum(ws)
        for x, w in zip(range(xmin, xmax), ws):
            out[i] += src[x] * (w / total)
    return out


def ref_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    tmp = ref_resize_1d(img.astype(np.float64), out_h)  # rows
    return ref_resize_1d(tmp.swapaxes(0, 1), out_w).swapaxes(0, 1)  # columns


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w"),
    [(37, 53, 16, 20), (9, 7, 20, 15), (40, 10, 13, 25), (64, 64, 32, 32), (5, 3, 5, 3),
     (300, 17, 224, 224), (100, 100, 33, 7)],
)  # fmt: skip
def test_resize_matches_loop_reference(h: int, w: int, out_h: int, out_w: int) -> None:
    img = np.random.default_rng(h * w).random((h, w, 3)).astype(np.float32)
    out = resize_antialiased(img, out_h, out_w)
    assert out.shape == (out_h, out_w, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref_resize(img, out_h, out_w), atol=1e-5)


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w"), [(100, 80, 32, 40), (37, 91, 224, 224), (7, 5, 3, 9)]
)
def test_resize_matches_pillow_float_resize(h: int, w: int, out_h: int, out_w: int) -> None:
    image = pytest.importorskip("PIL.Image")
    a = np.random.default_rng(1).random((h, w)).astype(np.float32)
    ref = np.asarray(image.fromarray(a, mode="F").resize((out_w, out_h), image.BILINEAR))
    out = resize_antialiased(a[:, :, None], out_h, out_w)[:, :, 0]
    np.testing.assert_allclose(out, ref, atol=1e-5)


def _random_resize_cases(n: int) -> list[tuple[int, int, int, int, int]]:
    """(h, w, out_h, out_w, channels): shrinking, enlarging, mixed, 1-pixel sides, extreme
    aspect ratios (1 x 2000 and similar), drawn reproducibly."""
    rng = np.random.default_rng(2024)
    cases = [(1, 1, 1, 1, 3), (1, 1, 7, 3, 3), (1, 2000, 1, 5, 3), (2000, 1, 3, 1, 1),
             (1, 900, 224, 224, 3), (900, 2, 224, 224, 4), (3, 3000, 2, 17, 3),
             (750, 750, 224, 224, 3), (375, 500, 160, 160, 3), (2, 2, 300, 1, 1),
             (1000, 1000, 1, 1, 3), (13, 17, 13, 40, 3), (40, 13, 7, 13, 2)]
    for _ in range(n):
        h, w = (int(v) for v in np.exp(rng.uniform(0, np.log(1500), 2)).astype(int) + 1)
        oh, ow = (int(v) for v in np.exp(rng.uniform(0, np.log(400), 2)).astype(int) + 1)
        cases.append((h, w, oh, ow, int(rng.choice([1, 3, 4]))))
    return cases


@pytest.mark.parametrize(("h", "w", "out_h", "out_w", "c"), _random_resize_cases(40))
def test_tap_resize_equals_the_previous_dense_resize(h: int, w: int, out_h: int, out_w: int,
                                                     c: int) -> None:
    """The tap-based resize is the dense-matrix one it replaced, up to float32 rounding."""
    from hai_edge.runtime.frontends._image import _resize_dense

    img = np.random.default_rng(h * 7919 + w).random((h, w, c)).astype(np.float32)
    out = resize_antialiased(img, out_h, out_w)
    assert out.shape == (out_h, out_w, c) and out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, _resize_dense(img, out_h, out_w), rtol=0, atol=1e-6)


def test_tap_tables_hold_the_dense_weights() -> None:
    """Every window holds exactly the non-zero band of the dense Pillow weight matrix."""
    from hai_edge.runtime.frontends._image import _resize_weights, _resize_windows

    for n_in, n_out in [(750, 224), (224, 750), (5, 5), (1, 9), (2000, 3), (17, 16)]:
        start, weights = _resize_windows(n_in, n_out)
        dense = np.zeros((n_out, n_in))
        for i in range(n_out):
            dense[i, start[i] : start[i] + weights.shape[1]] += weights[i]
        np.testing.assert_allclose(dense, _resize_weights(n_in, n_out), atol=1e-7)
        assert not weights.flags.writeable and not start.flags.writeable  # cached, shared


def test_downscaled_constant_stays_constant() -> None:
    img = np.full((301, 457, 3), 0.37, dtype=np.float32)
    np.testing.assert_allclose(resize_antialiased(img, 224, 224), 0.37, atol=1e-6)
    np.testing.assert_allclose(resize_antialiased(img, 13, 500), 0.37, atol=1e-6)


def test_downscale_is_antialiased() -> None:
    # A one-pixel checkerboard averages to 0.5 when shrunk 4x (nearest/plain bilinear would alias).
    img = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[:, :, None]
    np.testing.assert_allclose(resize_antialiased(img, 16, 16)[2:-2, 2:-2], 0.5, atol=1e-6)


def test_same_size_is_identity() -> None:
    img = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(resize_antialiased(img, 10, 12), img)


# ---------------------------------------------------------------------------------------------
# EXIF orientation

# 2x3 image with distinct values a..f:   a b c
#                                        d e f
BASE = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
EXPECTED = {
    1: [[1, 2, 3], [4, 5, 6]],
    2: [[3, 2, 1], [6, 5, 4]],  # mirror left-right
    3: [[6, 5, 4], [3, 2, 1]],  # rotate 180
    4: [[4, 5, 6], [1, 2, 3]],  # mirror top-bottom
    5: [[1, 4], [2, 5], [3, 6]],  # transpose
    6: [[4, 1], [5, 2], [6, 3]],  # rotate 90 clockwise
    7: [[6, 3], [5, 2], [4, 1]],  # transverse
    8: [[3, 6], [2, 5], [1, 4]],  # rotate 90 counter-clockwise
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_hand_built(orientation: int) -> None:
    out = apply_exif_orientation(BASE, orientation)
    np.testing.assert_array_equal(out, np.array(EXPECTED[orientation], dtype=np.uint8))
    rgb = np.stack([BASE, BASE + 10, BASE + 20], axis=2)  # [H, W, C] keeps channels together
    out3 = apply_exif_orientation(rgb, orientation)
    np.testing.assert_array_equal(out3[:, :, 1], np.array(EXPECTED[orientation]) + 10)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_keeps_channels_for_every_layout(orientation: int) -> None:
    """Pixels are moved whole (a void view) for contiguous [H, W, C]: same result as moving
    each channel plane, for uint8/uint16/float32, 2-4 channels and non-contiguous input."""
    rng = np.random.default_rng(orientation)
    base = rng.integers(0, 60000, (6, 9, 4))
    for a in (base.astype(np.uint8), base.astype(np.uint16), base[:, :, :2].astype(np.float32),
              base.astype(np.uint8)[::2, 1:, :3], base[:, :, :1].astype(np.uint16)):
        out = apply_exif_orientation(a, orientation)
        assert out.dtype == a.dtype and out.flags.c_contiguous
        for ch in range(a.shape[2]):
            np.testing.assert_array_equal(out[:, :, ch],
                                          apply_exif_orientation(a[:, :, ch], orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    image = pytest.importorskip("PIL.Image")
    image_ops = pytest.importorskip("PIL.ImageOps")
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    im = image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=exif)
    buf.seek(0)
    decoded = image.open(buf)
    assert decoded.getexif().get(0x0112) == orientation
    expected = np.asarray(image_ops.exif_transpose(decoded))
    np.testing.assert_array_equal(apply_exif_orientation(pixels, orientation), expected)


@pytest.mark.parametrize("orientation", [0, 9, -1, 255, None])
def test_unknown_orientation_is_ignored(orientation) -> None:
    np.testing.assert_array_equal(apply_exif_orientation(BASE, orientation), BASE)


# ---------------------------------------------------------------------------------------------
# to_rgb


def test_to_rgb_grey_and_rgb() -> None:
    grey = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    for arr in (grey, grey[:, :, None]):
        out = to_rgb(arr)
        assert out.shape == (2, 2, 3) and out.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], grey)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(rgb), rgb)


def test_to_rgb_alpha_composites_over_white() -> None:
    ga = np.array([[[0, 0], [0, 255], [0, 128], [200, 51]]], dtype=np.uint8)  # grey + alpha
    out = to_rgb(ga)
    expected_grey = [255, 0, round(255 * 127 / 255), round(200 * 0.2 + 255 * 0.8)]
    np.testing.assert_array_equal(out[0, :, 0], expected_grey)
    np.testing.assert_array_equal(out[0, :, 2], expected_grey)
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [100, 0, 255, 102]]], dtype=np.uint8)
    out = to_rgb(rgba)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 2], [193, 153, 255])  # 0.4 * c + 0.6 * 255


def test_to_rgb_uint16_bool_float() -> None:
    u16 = np.array([[0, 128, 129, 257, 32896, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb(u16)[0, :, 0], [0, 0, 1, 1, 128, 255])
    b = np.array([[True, False]])
    np.testing.assert_array_equal(to_rgb(b)[0, :, 1], [255, 0])
    f = np.array([[0.0, 0.5, 1.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(to_rgb(f)[0, :, 0], [0, 128, 255, 255])


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 5), np.uint8), np.zeros(4, np.uint8), np.zeros((4, 4), np.int64),
     np.array([[np.nan]], dtype=np.float32)],
)  # fmt: skip
def test_to_rgb_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_rgb(bad)


# ---------------------------------------------------------------------------------------------
# prepare_image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _solid(h: int, w: int, rgb=(255, 0, 128)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_prepare_image_shapes_and_normalisation(mode: ResizeMode, layout: str) -> None:
    spec = ImageFrontendSpec(height=48, width=64, resize=mode, layout=layout)
    out = prepare_image(_solid(90, 70), spec)
    assert out.shape == spec.input_shape() and out.dtype == np.float32
    chw = out if layout == "NCHW" else out.transpose(2, 0, 1)
    expected = (np.array([255, 0, 128], dtype=np.float32) / 255 - MEAN) / STD
    if mode is ResizeMode.PAD:  # 90x70 (HxW) into 48x64: scaled to 48x37, centred at column 13
        inner = chw[:, :, 13 : 13 + 37]
        np.testing.assert_allclose(inner, expected[:, None, None] * np.ones_like(inner), atol=1e-5)
        pad = ((0.0 - MEAN) / STD)[:, None, None]
        np.testing.assert_allclose(chw[:, :, :13], pad * np.ones((3, 48, 13)), atol=1e-6)
        np.testing.assert_allclose(chw[:, :, 50:], pad * np.ones((3, 48, 14)), atol=1e-6)
    else:
        np.testing.assert_allclose(chw, expected[:, None, None] * np.ones((3, 48, 64)), atol=1e-5)


def test_prepare_image_pad_value_and_placement() -> None:
    spec = ImageFrontendSpec(height=32, width=32, resize="pad", pad_value=0.5, layout="NHWC",
                             mean=(0, 0, 0), std=(1, 1, 1))  # fmt: skip
    img = _solid(40, 80, (255, 255, 255))  # wide: scaled to 16x32, rows 8..23
    out = prepare_image(img, spec)
    np.testing.assert_allclose(out[8:24], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[:8], 0.5)
    np.testing.assert_allclose(out[24:], 0.5)


def test_prepare_image_center_crop_matches_manual_crop_and_resize() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    unit = img.astype(np.float32) / 255
    norm = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layout="NHWC")
    # square output, full shorter side: the centred 60x60 region (columns 20..79)
    spec = ImageFrontendSpec(height=32, width=32, **norm)
    expected = ref_resize(unit[:, 20:80], 32, 32)
    np.testing.assert_allclose(prepare_image(img, spec), expected, atol=1e-5)
    # crop_fraction 0.5: centred 30x30 region (rows 15..44, columns 35..64)
    spec = ImageFrontendSpec(height=32, width=32, crop_fraction=0.5, **norm)
    expected = ref_resize(unit[15:45, 35:65], 32, 32)
    np.testing.assert_allclose(prepare_image(img, spec), expected, atol=1e-5)
    # wide output (aspect 2:1) from a 60x100 image: largest 2:1 region is 50x100 (rows 5..54)
    spec = ImageFrontendSpec(height=20, width=40, **norm)
    np.testing.assert_allclose(prepare_image(img, spec), ref_resize(unit[5:55], 20, 40), atol=1e-5)


def test_prepare_image_stretch_matches_resize() -> None:
    img = np.random.default_rng(4).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    spec = ImageFrontendSpec(height=40, width=40, resize="stretch", layout="NHWC")
    expected = (ref_resize(img.astype(np.float32) / 255, 40, 40) - MEAN) / STD
    np.testing.assert_allclose(prepare_image(img, spec), expected, atol=1e-4)


def test_prepare_image_applies_exif_orientation() -> None:
    img = np.zeros((40, 80, 3), dtype=np.uint8)
    img[:, :40] = 255  # left half white
    spec = ImageFrontendSpec(height=32, width=32, resize="stretch", layout="NHWC",
                             mean=(0, 0, 0), std=(1, 1, 1))  # fmt: skip
    out = prepare_image(img, spec, orientation=6)  # rotate 90 clockwise: white goes to the top
    assert out[:8].min() > 0.99 and out[-8:].max() < 0.01
    out = prepare_image(img, spec, orientation=1)
    assert out[:, :8].min() > 0.99 and out[:, -8:].max() < 0.01


def test_prepare_image_rejects_tiny_and_huge_images() -> None:
    with pytest.raises(InputError) as info:
        prepare_image(np.zeros((1, 1, 3), np.uint8), ImageFrontendSpec(), source="dot.png")
    assert info.value.source == "dot.png"
    assert str(info.value) == "dot.png: image is 1x1 pixels; at least 32 pixels per side are needed"
    with pytest.raises(InputError, match="image is 100x20 pixels; at least 32"):
        prepare_image(np.zeros((20, 100, 3), np.uint8), ImageFrontendSpec(), source="strip.png")
    with pytest.raises(InputError, match="at most 1000 pixels"):
        prepare_image(np.zeros((40, 40), np.uint8), ImageFrontendSpec(max_pixels=1000), 1, "big")
    with pytest.raises(InputError, match="odd.png: unsupported"):
        prepare_image(np.zeros((40, 40, 5), np.uint8), ImageFrontendSpec(), source="odd.png")
    small = dataclasses.replace(ImageFrontendSpec(), height=8, width=8)
    ok = prepare_image(np.zeros((32, 32), np.uint8), small)
    assert ok.shape == (3, 8, 8)


def test_frontends_import_only_numpy_and_the_standard_library() -> None:
    # Checked on the source (any import anywhere in the modules), so it does not depend on what
    # other packages of hai_edge import.
    import hai_edge.runtime.frontends as frontends

    allowed = {"numpy"} | set(sys.stdlib_module_names)
    # inside hai_edge: the front ends themselves, the error types and the specs of the contract
    internal = ("hai_edge.runtime.frontends", "hai_edge.errors", "hai_edge.bundle.frontend")
    folder = pathlib.Path(frontends.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "_audio.py", "_image.py", "_resample.py"}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith(internal):
                    continue
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_pixel_rounding_helpers_are_half_up() -> None:
    # geometry rounding is floor(v + 0.5) (JavaScript Math.round), not banker's rounding
    spec = ImageFrontendSpec(height=10, width=10, resize="pad", layout="NHWC", mean=(0, 0, 0),
                             std=(1, 1, 1), pad_value=0.0, min_side=1)  # fmt: skip
    out = prepare_image(_solid(20, 50, (255, 255, 255)), spec)  # 20*0.2 = 4 rows, exactly
    assert int((out[:, 5, 0] > 0.5).sum()) == 4
    out = prepare_image(_solid(5, 20, (255, 255, 255)), spec)  # 5 * 0.5 = 2.5 rows -> 3 (half up)
    assert int((out[:, 5, 0] > 0.5).sum()) == 3

"""Photo quality checks (`hai_edge.runtime.quality`) on synthetic photos made here."""

from __future__ import annotations

import numpy as np
import pytest

from hai_edge.runtime import quality as q
from hai_edge.runtime.frontends import resize_antialiased
from hai_edge.runtime.quality import CheckName, Flag, assess_quality


def skin(h: int = 600, w: int = 800, seed: int = 0) -> np.ndarray:
    """A sharp, well-exposed skin-like photo: skin tone, pores/texture at several scales, a
    darker lesion with a crisp edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([196 + 10 * np.sin(xx / 37), 146 + 8 * np.sin(yy / 29),
                     122 + 6 * np.cos((xx + yy) / 41)], -1)
    texture = sum(rng.normal(0, 5, (h // s + 1, w // s + 1)).repeat(s, 0).repeat(s, 1)[:h, :w]
                  for s in (1, 2, 4, 8))
    base += texture[..., None] * np.array([1.0, 0.8, 0.7])
    lesion = ((xx - 0.5 * w) ** 2 + (yy - 0.5 * h) ** 2) < (0.15 * h) ** 2
    base[lesion] *= 0.6
    return np.clip(base, 0, 255).astype(np.uint8)


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    r = int(np.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.pad(a.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="reflect")
    x = sum(k[i] * x[i : i + a.shape[0]] for i in range(2 * r + 1))
    x = sum(k[i] * x[:, i : i + a.shape[1]] for i in range(2 * r + 1))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def flags(report) -> dict[str, str]:
    return {c.name.value: c.flag.value for c in report.checks}


def test_sharp_well_exposed_skin_photo_passes_every_check() -> None:
    r = assess_quality(skin())
    assert r.passed, r.to_dict()
    assert [c.name for c in r.checks] == list(CheckName)
    assert all(c.reason == "" for c in r.checks)


@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_blur_is_flagged(sigma: float) -> None:
    r = assess_quality(gaussian_blur(skin(), sigma * 800 / 300))  # sigma at the 300 px scale
    assert flags(r) == {**flags(assess_quality(skin())), "blur": "warn"}, r.to_dict()
    assert "blurred" in r.check("blur").reason and not r.passed


@pytest.mark.parametrize("gain,check", [(2.0, "exposure_over"), (0.4, "exposure_under")])
def test_exposure_is_flagged(gain: float, check: str) -> None:
    img = np.clip(skin().astype(np.float32) * gain, 0, 255).astype(np.uint8)
    r = assess_quality(img)
    c = r.check(check)
    assert c.flag is Flag.WARN and c.reason, r.to_dict()
    other = "exposure_under" if check == "exposure_over" else "exposure_over"
    assert r.check(other).flag is Flag.PASS


def test_geometry_checks_use_the_stored_size() -> None:
    small = skin(150, 200)
    r = assess_quality(small, min_side=224)
    assert r.check("too_small").flag is Flag.WARN and r.check("too_small").score == 150
    assert "150" in r.check("too_small").reason
    # a reduced-scale decode of a big photo: the stored size decides, not the pixels
    r = assess_quality(small, full_size=(4000, 3000), min_side=224)
    assert r.check("too_small").passed
    r = assess_quality(skin(300, 900))
    assert r.check("aspect_ratio").flag is Flag.WARN and r.check("aspect_ratio").score == 3.0
    # EXIF orientation is applied first; the aspect ratio does not care about portrait/landscape
    r = assess_quality(skin(900, 300), orientation=6)
    assert r.check("aspect_ratio").score == 3.0


@pytest.mark.parametrize("kind", ["blue", "green", "grey", "text", "gradient"])
def test_non_skin_images_are_flagged(kind: str) -> None:
    h, w = 400, 400
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / h
    if kind == "blue":
        img = np.stack([40 + 60 * yy, 100 + 60 * yy, 200 + 40 * yy], -1)
    elif kind == "green":
        img = np.stack([40 + 40 * xx, 120 + 60 * yy, 40 + 20 * xx], -1)
    elif kind == "grey":
        img = np.repeat((80 + 100 * xx)[..., None], 3, -1)
    elif kind == "text":
        img = np.full((h, w, 3), 240.0)
        img[(np.arange(h) % 16 < 5)[:, None] & (np.arange(w) % 23 < 17)[None, :]] = 20
    else:
        img = np.stack([255 * xx, 255 * (1 - xx), 255 * yy], -1)
    r = assess_quality(np.clip(img, 0, 255).astype(np.uint8))
    assert r.check("not_skin").flag is Flag.WARN, r.to_dict()
    assert "skin" in r.check("not_skin").reason


def test_scores_do_not_depend_on_resolution() -> None:
    """The same scene at 3000 px and 300 px: a fixed analysis scale gives the same scores."""
    big = skin(2400, 3200, seed=3)
    small = np.clip(np.rint(resize_antialiased(big.astype(np.float32), 300, 400)), 0, 255
                    ).astype(np.uint8)
    a, b = assess_quality(big), assess_quality(small)
    for name in ("blur", "exposure_over", "not_skin"):
        sa, sb = a.check(name).score, b.check(name).score
        assert sb == pytest.approx(sa, rel=0.2), (name, sa, sb)
    assert a.check("blur").passed and b.check("blur").passed


def test_analysis_image_matches_the_front_end_resize() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    ref = resize_antialiased(a.astype(np.float32), 256, 341)
    np.testing.assert_allclose(q.analysis_image(a, side=256), ref, atol=1e-3)
    assert q.analysis_image(a[:100, :120]).shape == (100, 120, 3)  # never enlarged
    big = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    out = q.analysis_image(big)  # 9 x 9 box average, then 133 -> 128 px
    assert out.shape[0] == q.ANALYSIS_SIDE and abs(out.shape[1] - 171) <= 1
    np.testing.assert_allclose(out.mean(axis=(0, 1)), big.mean(axis=(0, 1)), atol=1.0)


def test_grey_and_alpha_inputs_work() -> None:
    grey = skin()[..., 0]
    assert assess_quality(grey).check("not_skin").flag is Flag.WARN  # no colour: not skin
    rgba = np.dstack([skin(), np.full(skin().shape[:2], 255, np.uint8)])
    assert assess_quality(rgba).passed


def test_report_serialises() -> None:
    d = assess_quality(skin()).to_dict()
    assert list(d) == ["passed", "checks"]
    assert [c["name"] for c in d["checks"]] == [n.value for n in CheckName]

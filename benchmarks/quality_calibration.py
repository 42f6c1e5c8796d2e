"""Calibrate the derm photo quality thresholds (hai_edge/runtime/quality.py) on real photos.

For every PAD-UFES-20 photo (686 smartphone photos of skin lesions, 300 px copies) this computes
each check's score on the original and on synthetic degradations of it, then reports per check:

* the **false-flag rate** (FFR): originals the check warns about;
* the **recall** on each degradation level and on the pooled *target* levels (those a user
  must be warned about), at the module's threshold and at the threshold that would give the
  target FFR exactly;
* for blur and exposure, the same figures for the alternative scores that were considered
  (plain variance of the Laplacian, mean luma, percentiles), so the choice is documented.

Degradations, all applied to the 300 px photo (so sigmas are in 300 px units; a 12 MP photo
blurred by sigma s looks like s * 300 / 3000 here):

* blur: Gaussian sigma 1.0, 1.5, 2.0, 3.0 px, each also with Gaussian noise (sd 1, 0..255
  units) added after the blur as a camera would; targets: sigma >= 1.5;
* over-exposure: +1, +1.5, +2 stops (linear-light gain 2^stops = sRGB gain 2^(stops/2.2),
  clipped) and gamma 0.5 (tone curve); targets: +1.5 and +2 stops, gamma 0.5;
* under-exposure: -1, -1.5, -2, -3 stops and gamma 2.0; targets: <= -1.5 stops, gamma 2.0;
* not skin: 300 synthetic non-skin images (solid colours, two-colour gradients, text-like
  strokes on paper, blue/green outdoor-like scenes, grey noise textures, colour noise); every
  kind is a target.

    python benchmarks/quality_calibration.py [--data DIR] [--limit N] [--ffr 0.1] [--markdown]

Numpy and Pillow only: about 6 CPU-minutes for the 686 photos (40 min of wall time when the
2 cores are shared with many jobs); with ``--cache`` a rerun only re-reports (a second).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hai_edge.runtime import quality as q  # noqa: E402
from hai_edge.runtime.frontends import to_rgb  # noqa: E402

DATA = Path("/work/shared/data/pad-ufes-20")


# ------------------------------------------------------------------------ degradations
@functools.lru_cache(maxsize=32)
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """Dense [n, n] Gaussian blur matrix with mirrored borders (rows sum to 1)."""
    r = int(np.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for t, w in zip(range(i - r, i + r + 1), k):
            j = -t - 1 if t < 0 else (2 * n - t - 1 if t >= n else t)
            m[i, min(max(j, 0), n - 1)] += w
    return m.astype(np.float32)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    h, w = a.shape[:2]
    my, mx = _gauss_matrix(h, sigma), _gauss_matrix(w, sigma)
    x = a.astype(np.float32)
    c = x.shape[2]
    x = (my @ x.reshape(h, w * c)).reshape(h, w, c)  # vertical pass (BLAS)
    return np.ascontiguousarray((mx @ x).reshape(h, w, c))  # [w, w] @ [h, w, c] per row


def u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def stops(a: np.ndarray, s: float) -> np.ndarray:
    return u8(a.astype(np.float32) * 2.0 ** (s / 2.2))


def gamma(a: np.ndarray, g: float) -> np.ndarray:
    return u8(255.0 * (a.astype(np.float32) / 255.0) ** g)


def degradations(rng: np.random.Generator) -> dict[str, tuple[str, bool, Callable]]:
    """name -> (check, is_target, fn(rgb) -> rgb)."""
    d: dict[str, tuple[str, bool, Callable]] = {}
    for s in (1.0, 1.5, 2.0, 3.0):
        d[f"blur sigma {s:g}"] = ("blur", s >= 1.5, lambda a, s=s: u8(blur(a, s)))
        d[f"blur sigma {s:g} + noise 1"] = (
            "blur", s >= 1.5,
            lambda a, s=s: u8(blur(a, s) + rng.normal(0, 1.0, a.shape)))
    for s in (1.0, 1.5, 2.0):
        d[f"+{s:g} stops"] = ("exposure_over", s >= 1.5, lambda a, s=s: stops(a, s))
    d["gamma 0.5"] = ("exposure_over", True, lambda a: gamma(a, 0.5))
    for s in (1.0, 1.5, 2.0, 3.0):
        d[f"-{s:g} stops"] = ("exposure_under", s >= 1.5, lambda a, s=s: stops(a, -s))
    d["gamma 2.0"] = ("exposure_under", True, lambda a: gamma(a, 2.0))
    return d


def non_skin_images(n_per_kind: int, seed: int = 0, size: int = 300) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out: dict[str, list] = {k: [] for k in ("solid colour", "gradient", "text-like",
                                            "blue/green scene", "grey texture", "colour noise")}
    for _ in range(n_per_kind):
        c = rng.integers(0, 256, 3)
        out["solid colour"].append(np.broadcast_to(c, (size, size, 3)).astype(np.uint8))
        c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ang = rng.uniform(0, np.pi)
        t = (np.cos(ang) * xx + np.sin(ang) * yy)
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        out["gradient"].append(u8(c1 + (c2 - c1) * t[..., None]))
        paper = rng.integers(215, 256)
        img = np.full((size, size, 3), paper, np.float32)
        ink = rng.integers(0, 90, 3)
        for row in range(12, size - 12, int(rng.integers(14, 24))):
            x = 10
            while x < size - 20:
                wlen = int(rng.integers(4, 30))
                img[row : row + int(rng.integers(3, 8)), x : x + wlen] = ink
                x += wlen + int(rng.integers(3, 10))
        out["text-like"].append(u8(img + rng.normal(0, 3, img.shape)))
        horizon = rng.uniform(0.3, 0.7)
        sky = np.stack([60 + 80 * yy, 120 + 80 * yy, 200 + 40 * yy], -1)
        ground = np.stack([30 + 40 * yy, 90 + 70 * yy, 30 + 30 * yy], -1)
        scene = np.where((yy < horizon)[..., None], sky, ground)
        out["blue/green scene"].append(u8(scene + rng.normal(0, 12, scene.shape)))
        g = rng.uniform(40, 220) + rng.normal(0, rng.uniform(5, 40), (size, size))
        out["grey texture"].append(u8(np.repeat(blur(g[..., None], 1.5), 3, -1)))
        out["colour noise"].append(u8(rng.uniform(0, 256, (size, size, 3))))
    return out


# ------------------------------------------------------------------------------ scores
def _lapvar(y: np.ndarray) -> float:
    lap = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]) - 4.0 * y[1:-1, 1:-1]
    return float(lap.var())


def _ratio256(rgb: np.ndarray) -> float:
    """The same ratio one octave finer (256 vs 128 px): sharper, but fooled by noise."""
    y = q._luma(q.analysis_image(rgb, side=256))
    return _lapvar(y) / (_lapvar(q._halve(y)) + 1.0)


def scores(rgb: np.ndarray) -> dict[str, float]:
    """The chosen scores (as the pipeline computes them) plus the considered alternatives."""
    img = q.analysis_image(rgb)
    y = q._luma(img)
    p10, p90 = np.percentile(y, [10, 90])
    return {
        "blur": q.sharpness(y),
        "exposure_over": q.overexposure(img, y),
        "exposure_under": q.underexposure(img, y),
        "not_skin": q.skin_fraction(img),
        "alt: variance of Laplacian at 128 px": _lapvar(y),
        "alt: ratio at 256 px": _ratio256(rgb),
        "alt: clipped fraction": float((img.max(-1) >= 250).mean()),
        "alt: luma p10": float(p10),
        "alt: luma p90": float(p90),
    }


# Which way each score warns ("low": warn when score < threshold) and its module threshold.
CHECKS = {
    "blur": ("low", q.BLUR_MIN),
    "exposure_over": ("high", q.OVER_MAX),
    "exposure_under": ("low", q.UNDER_MIN),
    "not_skin": ("low", q.SKIN_MIN),
}
ALTERNATIVES = {
    "blur": [("alt: variance of Laplacian at 128 px", "low"), ("alt: ratio at 256 px", "low")],
    "exposure_over": [("alt: clipped fraction", "high"), ("alt: luma p10", "high")],
    "exposure_under": [("alt: luma p90", "low")],
}


def _flags(x: np.ndarray, direction: str, t: float) -> np.ndarray:
    return x < t if direction == "low" else x > t


def _threshold_at(orig: np.ndarray, direction: str, ffr: float) -> float:
    return float(np.quantile(orig, ffr if direction == "low" else 1 - ffr))


def report(orig: dict[str, np.ndarray], deg: dict[str, dict[str, np.ndarray]],
           meta: dict[str, tuple[str, bool, Callable]], nonskin: dict[str, dict[str, np.ndarray]],
           ffr: float, markdown: bool) -> None:
    def row(cells: list[str]) -> None:
        print(("| " + " | ".join(cells) + " |") if markdown else "  ".join(f"{c:<34}" if i == 0
              else f"{c:>12}" for i, c in enumerate(cells)))

    for check, (direction, t_mod) in CHECKS.items():
        levels = (list(nonskin) if check == "not_skin"
                  else [k for k, v in meta.items() if v[0] == check])
        targets = (levels if check == "not_skin"
                   else [k for k in levels if meta[k][1]])
        source = nonskin if check == "not_skin" else deg
        candidates = [(check, direction)] + ALTERNATIVES.get(check, [])
        print(f"\n### {check} (warn when score {'<' if direction == 'low' else '>'} threshold)")
        for score, sdir in candidates:
            o = orig[score]
            t_ffr = _threshold_at(o, sdir, ffr)
            ths = [("module", t_mod)] if score == check else []
            ths.append((f"FFR {ffr:g}", t_ffr))
            for label, t in ths:
                name = "chosen: " + check if score == check else score
                print(f"\n{name}, threshold {t:.4g} ({label}): false-flag rate on originals "
                      f"{_flags(o, sdir, t).mean():.3f} (n={o.size})")
                if markdown:
                    row(["degradation", "target", "recall"])
                    row(["---", "---", "---"])
                pooled = []
                for lv in levels:
                    x = source[lv][score]
                    r = _flags(x, sdir, t)
                    if lv in targets:
                        pooled.append(r)
                    row([lv, "yes" if lv in targets else "no", f"{r.mean():.3f}"])
                allr = np.concatenate(pooled)
                row(["pooled targets", "", f"{allr.mean():.3f} (n={allr.size})"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="PAD-UFES-20 folder (images_300px/)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos")
    ap.add_argument("--ffr", type=float, default=0.1, help="false-flag rate for the "
                    "'threshold at FFR' rows (default 0.1)")
    ap.add_argument("--markdown", action="store_true", help="print tables as markdown")
    ap.add_argument("--cache", help="keep the computed scores in this .npz and reuse them "
                    "(the report then reflects the module's current thresholds)")
    args = ap.parse_args()
    from PIL import Image

    files = sorted((Path(args.data) / "images_300px").glob("*.png"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no photos in {args.data}/images_300px", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    meta = degradations(rng)
    t0 = time.perf_counter()

    def cols(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}

    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        flat = dict(np.load(cache))
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key, v in flat.items():
            group, score = key.split("|", 1)
            groups.setdefault(group, {})[score] = v
        orig = groups.pop("orig")
        nonskin = {k[3:]: v for k, v in groups.items() if k.startswith("ns:")}
        deg = {k: v for k, v in groups.items() if not k.startswith("ns:")}
        print(f"scores from {cache}")
    else:
        orig_rows, deg_rows = [], {k: [] for k in meta}
        for f in files:
            with Image.open(f) as im:
                rgb = to_rgb(np.array(im))
            orig_rows.append(scores(rgb))
            for k, (_, _, fn) in meta.items():
                deg_rows[k].append(scores(fn(rgb)))
        ns = {k: [scores(a) for a in v] for k, v in non_skin_images(50).items()}
        orig = cols(orig_rows)
        deg = {k: cols(v) for k, v in deg_rows.items()}
        nonskin = {k: cols(v) for k, v in ns.items()}
        if cache is not None:
            flat = {f"orig|{s}": v for s, v in orig.items()}
            flat.update({f"{g}|{s}": v for g, d in deg.items() for s, v in d.items()})
            flat.update({f"ns:{g}|{s}": v for g, d in nonskin.items() for s, v in d.items()})
            np.savez(cache, **flat)
    print(f"{orig['blur'].size} photos from {args.data}, {len(deg)} degradations, "
          f"{sum(v['blur'].size for v in nonskin.values())} synthetic non-skin images; "
          f"{time.perf_counter() - t0:.0f} s")
    report(orig, deg, meta, nonskin, args.ffr, args.markdown)

    # the photo-level effect: originals with any warning among the calibrated checks
    anyw = np.zeros(len(files), bool)
    for check, (direction, t) in CHECKS.items():
        anyw |= _flags(orig[check], direction, t)
    print(f"\noriginals with at least one calibrated check warning: {anyw.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

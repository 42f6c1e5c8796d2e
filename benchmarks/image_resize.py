"""Image front-end resize and decode reduction, old vs new, side by side in one run.

    taskset -c 0 python benchmarks/image_resize.py [--repeats 20]

1. ``resize_antialiased`` (taps: a few multiply-adds per output pixel) vs ``_resize_dense`` (the
   previous dense ``[out, in]`` matrix products) on the sizes the derm pipeline meets: the
   centre crop of a 1/4- and 1/8-scale 12 MP decode to 224 and 160 px, a 2 MP crop, a full
   12 MP crop (what a DICOM reached the resize with before the reduction policy), enlarging
   and an extreme aspect ratio; with the largest difference between the two.
2. The reduction policy on a 12 MP photo: JPEG at reduced DCT scale (the default) vs a full
   JPEG decode + box average, and the box average a DICOM/PNG frame gets.

Times are the best of ``--repeats`` (ms, one thread: set OPENBLAS_NUM_THREADS=1 and pin with
taskset for single-core figures); ratios are old / new.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESIZE_CASES = (  # (h, w, out_h, out_w, what)
    (750, 750, 224, 224, "12 MP at 1/4"),
    (375, 375, 160, 160, "12 MP at 1/8, derm-demo"),
    (1200, 1200, 224, 224, "2 MP crop"),
    (3000, 3000, 160, 160, "12 MP crop, DICOM before"),
    (112, 112, 224, 224, "enlarging"),
    (40, 4000, 16, 160, "extreme aspect"),
)


def _best_ms(fn, repeats: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeats)) * 1e3


def resize_table(repeats: int) -> None:
    from hai_edge.runtime.frontends import resize_antialiased
    from hai_edge.runtime.frontends._image import _resize_dense

    rng = np.random.default_rng(0)
    print(f"{'resize, 3 channels float32':<48} {'old dense':>10} {'new taps':>10} "
          f"{'old/new':>8} {'max |diff|':>11}")
    for h, w, oh, ow, what in RESIZE_CASES:
        img = rng.random((h, w, 3), dtype=np.float32)
        n = max(2, repeats // 5) if h * w > 4e6 else repeats
        resize_antialiased(img, oh, ow)  # builds and caches the tap tables once
        old = _best_ms(lambda: _resize_dense(img, oh, ow), n)
        new = _best_ms(lambda: resize_antialiased(img, oh, ow), n)
        diff = float(np.abs(resize_antialiased(img, oh, ow) - _resize_dense(img, oh, ow)).max())
        label = f"{h}x{w} -> {oh}x{ow} {what}"
        print(f"{label:<48} {old:>10.2f} {new:>10.2f} {old / new:>7.1f}x {diff:>11.1e}")


def reduction_table(repeats: int, min_side: int) -> None:
    from PIL import Image

    from hai_edge.runtime.decoders import decode_image_bytes
    from hai_edge.runtime.decoders import _image as dec

    yy, xx = np.mgrid[0:3000, 0:4000].astype(np.float32)
    rng = np.random.default_rng(1)
    photo = np.stack([180 + 30 * np.sin(xx / 53), 130 + 25 * np.sin(yy / 41),
                      110 + 20 * np.cos((xx + yy) / 97)], -1) + rng.normal(0, 4, (3000, 4000, 3))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    k = dec.reduction_factor(4000, 3000, min_side)
    n = max(3, repeats // 4)
    draft = _best_ms(lambda: decode_image_bytes(data, "p.jpg", draft_min_side=min_side), n)
    full = _best_ms(lambda: decode_image_bytes(data, "p.jpg"), n)
    box = _best_ms(lambda: dec.box_reduce(photo, k), n)
    print(f"\n12 MP JPEG (4000x3000, quality 92), reduction factor {k} "
          f"(shorter side >= {min_side})")
    print(f"  JPEG at 1/{k} DCT scale (default)        {draft:8.2f} ms")
    print(f"  JPEG full decode + box average           {full + box:8.2f} ms "
          f"({full:.2f} decode + {box:.2f} box; {(full + box) / draft:.1f}x the default)")
    print(f"  box average of a decoded 12 MP frame     {box:8.2f} ms (DICOM, PNG, TIFF)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--min-side", type=int, default=320,
                    help="draft_min_side for the reduction table (2 x a 160 px model input)")
    args = ap.parse_args()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"CPUs allowed {affinity}; load average {os.getloadavg()[0]:.2f}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"best of {args.repeats} (ms)")
    resize_table(args.repeats)
    reduction_table(args.repeats, args.min_side)
    return 0


if __name__ == "__main__":
    sys.exit(main())

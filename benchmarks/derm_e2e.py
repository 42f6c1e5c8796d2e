"""12 MP phone JPEG -> derm result on ONE core, per engine, INT8 (target: <= 60 ms).

Measures ``DermPipeline.analyze_file`` end to end (decode at reduced JPEG scale + quality checks +
preprocess + inference + heads) with engine threads = 1, median of ``--runs`` after a warm-up,
side by side for every engine the bundle has an INT8 model for, and prints a table with the
per-stage medians and the 60 ms target (issue 7).

    taskset -c 0 python benchmarks/derm_e2e.py                 # derm-demo if installed
    taskset -c 0 python benchmarks/derm_e2e.py --bundle B      # any image bundle
    python benchmarks/derm_e2e.py --photo my_12mp.jpg          # your own photo
    python benchmarks/derm_e2e.py --fidelity [--fidelity-reference --cache DIR]
    python benchmarks/derm_e2e.py --fidelity --jpeg-full-decode   # the alternative JPEG path
    taskset -c 0 python benchmarks/derm_e2e.py --as-dicom      # the photo's JPEG in a DICOM

``--fidelity`` adds issue 7's cosines at 640 x 480, 1600 x 1200 and 12 MP: an EXIF-rotated JPEG
vs the upright one, VL Photographic DICOMs (uncompressed, JPEG baseline re-encoded) built from
the photo's fully decoded pixels vs the photo, and a JPEG-baseline DICOM that wraps the photo's
own JPEG bytes (how such files usually carry a camera picture) vs the photo;
``--fidelity-reference`` repeats them on an FP32 export of the trained reference image teacher
(export extra), a trained network to compare.
On a busy machine also set ``OPENBLAS_NUM_THREADS=1`` and read the CPU column.

``--jpeg-full-decode`` measures the alternative reduction for JPEG: decode in full, then
box-average by the same factor (what DICOM/PNG frames get) instead of libjpeg's reduced DCT
scale, to weigh speed against DICOM-vs-photo consistency.

``taskset -c 0`` pins the whole process (numpy included) to one core; without it only the engine
is limited to one thread while numpy's own work may still spread. The 12 MP photo (4000 x 3000,
quality 92, EXIF orientation 6 like a phone held upright) is a PAD-UFES-20 photo upscaled with
Lanczos when ``/work/shared/data`` exists, else a synthetic skin-like image; a photo given with
``--photo`` is used as is.

Without a built-in ``derm-demo`` bundle, an INT8 **stand-in** is exported once into ``--cache``
(default: a temp dir): the MobileNetV2-like 224 px image stand-in of ``benchmarks/_standins.py``
(random weights, 1.8 M params; larger than the planned image-s student, so a conservative
figure), quantized for every engine with ``allow_degraded`` (random weights may miss the INT8
fidelity gate; latency does not depend on the values). Building it needs the export extra.
The table says which bundle was measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAD = Path("/work/shared/data/pad-ufes-20/images_300px")
TARGET_MS = 60.0
STAGES = ("decode", "quality", "preprocess", "inference", "heads", "total")


def build_standin(dest: Path) -> Path:
    """INT8 bundle (onnx, openvino, tflite) of the 224 px image stand-in; cached in ``dest``."""
    if (dest / "manifest.json").is_file():
        return dest
    from _standins import IMAGE_SPEC, image_standin

    from hai_edge.export.bundle_builder import BuildOptions, build_bundle

    print(f"building the INT8 stand-in bundle in {dest} (once; a few minutes) ...", file=sys.stderr)
    build_bundle(image_standin(), IMAGE_SPEC, dest, name="standin-derm-int8",
                 options=BuildOptions(precision="int8", allow_degraded=True),
                 notices=("benchmark stand-in: random weights, not for any use",),
                 overwrite=True, progress=lambda m: print(f"  {m}", file=sys.stderr))
    return dest


def build_reference(dest: Path) -> Path:
    """FP32 ONNX bundle of the trained reference image teacher (224 px -> 512-d), cached in
    ``dest``: a trained network for the fidelity cosines (a random-weight stand-in is chaotic,
    so it amplifies a 0.5 % input change into a cosine of 0.98)."""
    if (dest / "manifest.json").is_file():
        return dest
    from hai_edge.export.fp32_bundle import build_fp32_bundle
    from hai_edge.teachers._reference import reference_teacher_module

    print(f"building the FP32 reference-teacher bundle in {dest} (once) ...", file=sys.stderr)
    module, spec = reference_teacher_module("image")
    build_fp32_bundle(module, spec, dest, name="reference-image-fp32", formats=("onnx",),
                      provenance={"teacher": {"id": "reference:image"}},
                      notices=("demo, not for clinical use",), overwrite=True)
    return dest


def make_photo(path: Path, size: tuple[int, int] = (3000, 4000), orientation: int | None = 6
               ) -> Path:
    """A JPEG of ``size`` = (height, width) as stored (default 12 MP with EXIF orientation 6,
    as a phone held upright writes it): an upscaled PAD-UFES-20 photo, else synthetic."""
    from PIL import Image

    src = sorted(PAD.glob("*.png"))[:1] if PAD.is_dir() else []
    if src:
        img = Image.open(src[0]).convert("RGB").resize((size[1], size[0]), Image.LANCZOS)
        note = f"{src[0].name} upscaled"
    else:
        yy, xx = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
        rng = np.random.default_rng(0)
        base = np.stack([190 + 20 * np.sin(xx / 97), 140 + 15 * np.sin(yy / 83),
                         120 + 10 * np.cos((xx + yy) / 151)], -1)
        lesion = ((xx - size[1] / 2) ** 2 + (yy - size[0] / 2) ** 2) < (size[0] / 6) ** 2
        base[lesion] *= 0.55
        base += rng.normal(0, 6, base.shape)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        note = "synthetic skin-like"
    if orientation == 6:  # the scene stored sideways, as the camera sensor saw it
        img = img.transpose(Image.ROTATE_90)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(path, quality=92, exif=exif.tobytes())
    print(f"photo: {path.name} {img.size[0]}x{img.size[1]} ({note}), "
          f"{path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return path


def measure(bundle: Path, backend: str, photo: Path, runs: int) -> dict[str, float] | str:
    from hai_edge.errors import HaiEdgeError
    from hai_edge.runtime.derm import DermPipeline

    try:
        with DermPipeline(str(bundle), backend, precision="int8", threads=1) as pipe:
            for _ in range(3):
                pipe.analyze_file(photo)
            stages: dict[str, list[float]] = {k: [] for k in STAGES}
            walls, cpus = [], []
            for _ in range(runs):
                c0, t0 = time.process_time(), time.perf_counter()
                res = pipe.analyze_file(photo)[0]
                walls.append((time.perf_counter() - t0) * 1e3)
                cpus.append((time.process_time() - c0) * 1e3)
                for k in STAGES:
                    stages[k].append(res.timing_ms.get(k, 0.0))
            out = {k: statistics.median(v) for k, v in stages.items()}
            out["wall"] = statistics.median(walls)
            out["p90"] = float(np.percentile(walls, 90))
            out["cpu"] = statistics.median(cpus)
            out["model"] = res.model  # type: ignore[assignment]
            return out
    except HaiEdgeError as exc:
        return str(exc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="image bundle (default: derm-demo, else the INT8 stand-in)")
    ap.add_argument("--photo", help="JPEG to use instead of the generated 12 MP photo")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cache", help="directory for the stand-in bundle (kept between runs)")
    ap.add_argument("--build-only", action="store_true", help="only build the stand-in")
    ap.add_argument("--fidelity", action="store_true", help="also measure the EXIF and DICOM "
                    "cosines of issue 7 on the same photo")
    ap.add_argument("--fidelity-reference", action="store_true", help="with --fidelity: also "
                    "on an FP32 export of the trained reference image teacher (export extra)")
    ap.add_argument("--fidelity-precision", choices=("int8", "fp32"),
                    help="with --fidelity: the bundle's models of this precision (default int8)")
    ap.add_argument("--as-dicom", action="store_true", help="time a JPEG-baseline VL "
                    "Photographic DICOM that wraps the photo's JPEG bytes instead of the photo")
    ap.add_argument("--jpeg-full-decode", action="store_true", help="decode JPEGs in full and "
                    "box-average them instead of decoding at reduced DCT scale")
    args = ap.parse_args()

    from hai_edge.bundle import Bundle, builtin_bundles
    from hai_edge.runtime.decoders import _dicom as decoders_dicom
    from hai_edge.runtime.decoders import _image as decoders_image

    if args.jpeg_full_decode:  # no draft: the decoders then box-reduce the full decode
        decoders_image._draft = decoders_dicom._draft = lambda *a, **k: None
    from hai_edge.runtime.backends import BACKENDS

    tmp = Path(tempfile.mkdtemp(prefix="hai-edge-derm-e2e-"))
    bundle_arg = args.bundle or builtin_bundles().get("derm-demo")
    if bundle_arg is None:
        bundle_arg = build_standin(Path(args.cache or tmp) / "standin-derm-int8")
    if args.build_only:
        print(bundle_arg)
        return 0
    bundle = Bundle.load(bundle_arg)
    photo = Path(args.photo) if args.photo else make_photo(tmp / "photo_12mp.jpg")
    if args.as_dicom:
        photo = _dicom_of_jpeg(tmp / "photo_12mp.dcm", photo)
    m = bundle.manifest
    spec = m.preprocessing
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"bundle {m.name} ({bundle.root}), {spec.height}x{spec.width} input, "
          f"{m.embedding_dim}-d, {len(m.heads)} head(s); engine threads 1; "
          f"CPUs allowed {affinity}; load average {os.getloadavg()[0]:.2f}; runs {args.runs}; "
          f"JPEG {'full decode + box average' if args.jpeg_full_decode else 'reduced DCT scale'}")
    print(f"{'engine':<12} {'model':<14} " + " ".join(f"{k:>10}" for k in STAGES)
          + f" {'wall p50':>9} {'wall p90':>9} {'CPU p50':>9}  vs {TARGET_MS:.0f} ms")
    for name, info in BACKENDS.items():
        if not bundle.models(info.format, "int8"):
            continue
        r = measure(bundle.root, name, photo, args.runs)
        if isinstance(r, str):
            print(f"{name:<12} skipped: {r}")
            continue
        verdict = "ok" if r["wall"] <= TARGET_MS else f"{r['wall'] / TARGET_MS:.2f}x over"
        print(f"{name:<12} {r['model']:<14} " + " ".join(f"{r[k]:>10.2f}" for k in STAGES)
              + f" {r['wall']:>9.2f} {r['p90']:>9.2f} {r['cpu']:>9.2f}  {verdict}")
    print("times in ms, medians; 'total' is the sum of the stages, 'wall' the whole "
          "analyze_file call, 'CPU' its process CPU time (on a busy machine the better "
          "estimate of the single-core cost; the verdict uses wall)")
    if args.fidelity:
        fidelity(bundle.root, tmp, precision=args.fidelity_precision)
        if args.fidelity_reference:
            fidelity(build_reference(Path(args.cache or tmp) / "reference-image-fp32"), tmp)
    return 0


def _dicom(path: Path, arr: np.ndarray | None, jpeg: bool, *, frame: bytes | None = None,
           size: tuple[int, int] | None = None) -> Path:
    """A VL Photographic DICOM of ``arr``: uncompressed RGB, or one JPEG-baseline frame (``arr``
    re-encoded, or ``frame``: JPEG bytes of ``size`` = (width, height) carried as they are)."""
    import io

    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.50" if jpeg else "1.2.840.10008.1.2.1")
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XC"
    ds.Rows, ds.Columns = (size[1], size[0]) if arr is None else arr.shape[:2]
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if jpeg:
        if frame is None:
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "JPEG", quality=92)
            frame = buf.getvalue()
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate([frame])
    else:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _dicom_of_jpeg(path: Path, jpeg: Path) -> Path:
    """A JPEG-baseline VL Photographic DICOM carrying ``jpeg``'s bytes as its one frame (EXIF
    orientation is not a DICOM notion: give an upright photo)."""
    from PIL import Image

    with Image.open(jpeg) as im:
        size = im.size
    return _dicom(path, None, True, frame=jpeg.read_bytes(), size=size)


def fidelity(bundle: Path, tmp: Path, sizes: tuple[tuple[int, int], ...] = (
        (640, 480), (1600, 1200), (4000, 3000)), precision: str | None = None) -> None:
    """Issue 7's cosines per photo size: EXIF-rotated (orientation 6) vs upright JPEG; DICOM
    uncompressed and JPEG baseline, built from the photo's fully decoded pixels, vs the photo."""
    from PIL import Image

    from hai_edge.runtime.derm import DermPipeline

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    with DermPipeline(str(bundle), threads=1, precision=precision) as pipe:
        where = f"{pipe.bundle.manifest.name} {pipe.embedder.backend_name}/{pipe.embedder.entry.id}"
        print(f"fidelity on {where} (thresholds: EXIF >= 0.999, DICOM uncompressed >= 0.9999, "
              "DICOM JPEG baseline >= 0.995)")
        for w, h in sizes:
            upright = make_photo(tmp / f"up_{w}.jpg", (h, w), orientation=None)
            with Image.open(upright) as im:
                pixels = np.array(im.convert("RGB"))
            rotated = tmp / f"rot_{w}.jpg"
            exif = Image.Exif()
            exif[0x0112] = 6  # stored 90 degrees counter-clockwise: the viewer turns it back
            Image.fromarray(np.rot90(pixels, 1).copy()).save(rotated, quality=92,
                                                             exif=exif.tobytes())
            e = pipe.analyze_file(upright)[0].embedding
            c = [cos(e, pipe.analyze_file(f)[0].embedding) for f in (
                rotated, _dicom(tmp / f"raw_{w}.dcm", pixels, False),
                _dicom(tmp / f"jpg_{w}.dcm", pixels, True),
                _dicom_of_jpeg(tmp / f"wrap_{w}.dcm", upright))]
            print(f"  {w}x{h}: EXIF-rotated {c[0]:.6f}, DICOM uncompressed {c[1]:.6f}, "
                  f"DICOM JPEG baseline {c[2]:.6f}, DICOM wrapping the photo's JPEG {c[3]:.6f}")


if __name__ == "__main__":
    sys.exit(main())

"""Export time of realistic stand-in students to ONNX + OpenVINO + TFLite x {FP32, INT8}, with
the INT8 fidelity figures, sizes and 1-thread latencies of the resulting bundles.

    python benchmarks/export_time.py [--modality audio|image|both] [--data auto|synthetic]
                                     [--out DIR] [--runs 50]

Calibration (64 inputs) and held-out gate inputs (32) come from the real development data when
present (``/work/shared/data``: cough-ru for audio, pad-ufes-20 for images, split by group), else
from synthetic media through the front end. Target: < 5 minutes per modality on 2 cores. Prints
a summary and writes ``summary-<modality>.json`` next to the bundles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path("/work/shared/data")
SOURCES = {"audio": DATA / "cough-ru" / "metadata.csv", "image": DATA / "pad-ufes-20" / "metadata.csv"}


def real_inputs(modality: str, spec, n_cal: int, n_held: int):  # noqa: ANN001, ANN201
    from hai_edge.corpus import load_corpus, split_by_group
    from hai_edge.distill.data import student_inputs

    items = load_corpus(SOURCES[modality], modality)
    if modality == "audio":
        items = [i for i in items if i.meta.get("keep_recommended") == "1"]
    train, held = split_by_group(items, holdout=0.3, seed=0)
    cal = student_inputs(spec, train[: n_cal * 2], max_rows=n_cal)
    hel = student_inputs(spec, held[: n_held * 2], max_rows=n_held)
    return cal, hel, f"{SOURCES[modality].parent.name} (group split)"


def run(modality: str, out: Path, data: str, runs: int, strict: bool = False) -> dict:
    import torch

    from _standins import AUDIO_SPEC, IMAGE_SPEC, audio_standin, image_standin, n_params
    from hai_edge.devices.bench import run_benchmark
    from hai_edge.export.bundle_builder import BuildOptions, build_bundle

    torch.set_num_threads(2)
    spec = AUDIO_SPEC if modality == "audio" else IMAGE_SPEC
    model = audio_standin() if modality == "audio" else image_standin()
    t0 = time.perf_counter()
    if data == "auto" and SOURCES[modality].is_file():
        cal, held, source = real_inputs(modality, spec, 64, 32)
    else:
        from hai_edge.export.golden import synthetic_model_inputs

        cal = synthetic_model_inputs(spec, 64, seed=11)
        held = synthetic_model_inputs(spec, 32, seed=12)
        source = "synthetic media"
    t_data = time.perf_counter() - t0
    print(f"[{modality}] stand-in {n_params(model) / 1e6:.2f} M params, input "
          f"{list(spec.input_shape())}; data: {source}, {len(cal)} calibration / {len(held)} "
          f"held-out inputs ({t_data:.1f} s)", flush=True)
    t0 = time.perf_counter()
    bundle = build_bundle(model, spec, out / f"standin-{modality}", name=f"standin-{modality}",
                          options=BuildOptions(allow_degraded=not strict), calibration=cal, heldout=held, overwrite=True,
                          progress=lambda m: print(f"  {time.perf_counter() - t0:6.1f} s  {m}",
                                                   flush=True))
    t_export = time.perf_counter() - t0
    m = bundle.manifest
    print(f"[{modality}] export of 3 formats x {{fp32, int8}}: {t_export:.1f} s "
          f"(target < 300 s); INT8 gate "
          f"{'PASSED' if not m.fidelity.get('degraded') else 'FAILED (kept: degraded override)'}")
    steps = m.provenance["export_seconds"]
    print("  steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    bench = {r.model: r for r in run_benchmark(bundle, None, runs=runs, threads=1)}
    rows = []
    for e in m.models:
        size = sum(m.files[f].size for f in e.files) / 1e6
        f = e.fidelity
        r = bench[e.id]
        row = {"model": e.id, "size_mb": round(size, 3),
               "p50_1t_ms": round(r.p50_ms[0], 3) if r.p50_ms else None,
               "p95_1t_ms": round(r.p95_ms[0], 3) if r.p95_ms else None,
               "peak_rss_mb": round(r.peak_rss_mb, 1)}
        if "mean_cosine" in f:
            row.update(mean_cos=round(f["mean_cosine"], 4), p5_cos=round(f["p5_cosine"], 4),
                       centred_cos=round(f["centred_mean_cosine"], 4),
                       recipe=e.options.get("recipe"))
        else:
            row.update(parity_max_abs=f["parity"]["max_abs_diff"])
        rows.append(row)
        figs = (f"INT8 vs FP32 mean {row['mean_cos']:.4f} p5 {row['p5_cos']:.4f} centred "
                f"{row['centred_cos']:.4f} ({row['recipe']})" if "mean_cos" in row
                else f"parity max|d| {row['parity_max_abs']:.1e}")
        print(f"  {e.id:<14} {size:6.2f} MB  p50 {row['p50_1t_ms']:7.3f} ms (1T)  "
              f"RSS {row['peak_rss_mb']:5.0f} MB  {figs}")
    cross = m.fidelity.get("int8_cross_format", {})
    print(f"  INT8 cross-format agreement: " + ", ".join(
        f"{k} {v['mean_cosine']:.4f}" for k, v in cross.get("pairs", {}).items()))
    int8 = [r for r in rows if r["model"].endswith("int8") and r["p50_1t_ms"]]
    best = min(int8, key=lambda r: r["p50_1t_ms"]) if int8 else None
    if best:
        print(f"  best INT8 engine at 1 thread: {best['model']} {best['p50_1t_ms']:.3f} ms")
    summary = {"modality": modality, "params": n_params(model), "data": source,
               "data_seconds": round(t_data, 1), "export_seconds": round(t_export, 1),
               "steps": steps, "models": rows, "cross_format": cross, "best_int8": best,
               "bundle": str(bundle.root)}
    (out / f"summary-{modality}.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modality", choices=("audio", "image", "both"), default="both")
    ap.add_argument("--data", choices=("auto", "synthetic"), default="auto")
    ap.add_argument("--out", type=Path, default=Path("/tmp/hai-edge-bench"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--strict", action="store_true",
                    help="fail on a gate (default: random-init stand-ins keep degraded models so "
                         "every figure is reported; the gate outcome is printed)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for mod in ("audio", "image") if args.modality == "both" else (args.modality,):
        run(mod, args.out, args.data, args.runs, args.strict)


if __name__ == "__main__":
    main()

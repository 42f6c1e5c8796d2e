"""Teacher replicas vs INT8 students: latency per item, side by side in one run, on 1 thread.

    python benchmarks/teacher_vs_student.py [--bundles DIR] [--teacher-runs 2] [--runs 50]

Teachers are architecture replicas with random weights (the real weights cannot be downloaded
here; latency does not depend on the values), run in torch FP32 on the CPU under
``torch.inference_mode`` with ``torch.set_num_threads(1)``:

* HeAR: ViT-L/16 (hidden 1024, 24 layers, 16 heads, MLP 4096, GELU) on a 1 x 192 x 128 PCEN
  "image" (HeAR-pytorch's config; transformers ``ViTModel``), 512-d linear pooler.
* Derm Foundation: BiT ResNet-101x3 (pre-activation ResNetV2, GroupNorm, weight-standardised
  convs, width x3) at 448 px -> 6144-d. Weights are standardised once up front (a deployed graph
  does the same work once per load), so the forward is plain convs + GroupNorm.

Students: the INT8 models of the built-in ``cough-demo`` / ``derm-demo`` bundles (trained
students; ``--standins`` uses the untrained stand-ins of ``benchmarks/export_time.py`` instead),
on the fastest installed engine at 1 thread, measured in a fresh process by the benchmark
harness (one item per run): the model-only ratio. The audio student's log-mel front end and its
INT8 models are also timed *interleaved* in one loop of blocks on 1 thread, a recording's 8
windows per call as ``prepare_audio`` stacks them (with their grid positions: overlapping
windows share frames) and the runtime feeds them (``benchmarks/_audio_interleave.py``): front
end and model ms per window, their ratio per block (median and spread), so a load spike cannot
favour one side, and numpy's float64 FFT alone on the same frames (the front end's floor). The
other numpy front ends are timed on their own, on 1 thread: the photo student's (resize +
normalise of a 640 x 480 photo to its input size) and the teachers' (HeAR: 128-band PCEN of the
window; Derm Foundation: the same photo to 448 px). End to end = teacher model + its front end
vs student front end + model (audio: the interleaved medians, fastest INT8 model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _audio_interleave import interleaved, report  # noqa: E402


def hear_replica():  # noqa: ANN201
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=(192, 128), patch_size=16, num_channels=1, hidden_size=1024,
                    num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    hidden_act="gelu_fast", layer_norm_eps=1e-6, qkv_bias=True,
                    pooler_act="linear", pooler_output_size=512)
    return ViTModel(cfg).eval(), (1, 1, 192, 128)


def bit_r101x3():  # noqa: ANN201
    import torch
    from torch import nn

    def std_conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
        conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        with torch.no_grad():  # weight standardisation, applied once
            w = conv.weight
            conv.weight.copy_((w - w.mean(dim=(1, 2, 3), keepdim=True))
                              / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-10))
        return conv

    class Unit(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            mid = cout // 4
            self.gn1, self.conv1 = nn.GroupNorm(32, cin), std_conv(cin, mid, 1)
            self.gn2, self.conv2 = nn.GroupNorm(32, mid), std_conv(mid, mid, 3, stride)
            self.gn3, self.conv3 = nn.GroupNorm(32, mid), std_conv(mid, cout, 1)
            self.down = std_conv(cin, cout, 1, stride) if stride != 1 or cin != cout else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pre = torch.relu(self.gn1(x))
            short = self.down(pre) if self.down is not None else x
            y = self.conv1(pre)
            y = self.conv2(torch.relu(self.gn2(y)))
            y = self.conv3(torch.relu(self.gn3(y)))
            return y + short

    w = 3
    layers: list[nn.Module] = [std_conv(3, 64 * w, 7, 2), nn.ConstantPad2d(1, 0.0),
                               nn.MaxPool2d(3, 2)]
    cin = 64 * w
    for i, (n, cout) in enumerate(zip((3, 4, 23, 3), (256, 512, 1024, 2048))):
        for j in range(n):
            layers.append(Unit(cin, cout * w, 2 if (j == 0 and i > 0) else 1))
            cin = cout * w
    layers += [nn.GroupNorm(32, cin), nn.ReLU()]

    class BiT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).mean(dim=(2, 3))

    return BiT().eval(), (1, 3, 448, 448)


def time_torch(model, shape, warmup: int, runs: int) -> tuple[float, int, int]:  # noqa: ANN001
    import torch

    x = torch.randn(*shape)
    with torch.inference_mode():
        out = model(pixel_values=x) if "ViT" in type(model).__name__ else model(x)
        dim = int((out.pooler_output if hasattr(out, "pooler_output") else out).shape[-1])
        for _ in range(max(0, warmup - 1)):
            model(pixel_values=x) if "ViT" in type(model).__name__ else model(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            model(pixel_values=x) if "ViT" in type(model).__name__ else model(x)
            times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), sum(p.numel() for p in model.parameters()), dim


def frontend_ms(modality: str, spec) -> float:  # noqa: ANN001
    """Median of 100 runs, ms per item, of the numpy front end on 1 thread: per 2 s window when a
    recording's windows go through together (8 float32 windows here, as ``prepare_audio`` stacks
    them), per 640 x 480 photo."""
    from threadpoolctl import threadpool_limits

    from hai_edge.export.golden import synthetic_photo, synthetic_waveform
    from hai_edge.runtime.frontends import prepare_image, window_features

    per = 1
    if modality == "audio":
        per = 8
        wave = synthetic_waveform(spec.window_s, spec.sample_rate).astype(np.float32)
        x = np.repeat(wave[None], per, axis=0)
        fn = lambda: window_features(x, spec)  # noqa: E731
    else:
        img = synthetic_photo(480, 640)
        fn = lambda: prepare_image(img, spec)  # noqa: E731
    with threadpool_limits(1):
        fn()
        times = []
        for _ in range(100):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3 / per)
    return float(np.median(times))


def teacher_frontend_ms(modality: str) -> float:
    from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec

    spec = AudioFrontendSpec(features="pcen", n_mels=128, n_fft=400, fmin=0.0, fmax=8000.0) \
        if modality == "audio" else ImageFrontendSpec(height=448, width=448)
    return frontend_ms(modality, spec)


def student(modality: str, bundles: Path, runs: int, standins: bool) -> dict:
    from hai_edge.bundle import Bundle, builtin_bundles
    from hai_edge.devices.bench import run_benchmark

    name = {"audio": "cough-demo", "image": "derm-demo"}[modality]
    if not standins and name in builtin_bundles():
        root = builtin_bundles()[name]
    else:
        root = bundles / f"standin-{modality}"
        if not (root / "manifest.json").is_file():
            import export_time

            export_time.run(modality, bundles, "auto", 10)
    b = Bundle.load(root)
    ids = [m.id for m in b.manifest.models if m.precision.value == "int8"]
    res = [r for r in run_benchmark(b, None, runs=runs, threads=1, models=ids) if r.p50_ms]
    best = min(res, key=lambda r: r.p50_ms[0])
    params = b.manifest.provenance.get("student", {}).get("params", 0)
    return {"bundle": b.manifest.name, "root": str(root), "model": best.model, "engine": best.engine,
            "ms": best.p50_ms[0], "params": params,
            "size_mb": best.size_mb, "all": {r.model: round(r.p50_ms[0], 3) for r in res},
            "spec": b.manifest.preprocessing}


def student_side(modality: str, s: dict, blocks: int, calls: int) -> tuple[float, float, dict]:
    """(front end ms, model ms, details) per item for the end-to-end ratio. Audio: the
    interleaved medians (fastest INT8 model per window, as the runtime batches a recording);
    photos: the front end timed on its own and the harness's fastest INT8 model."""
    if modality != "audio":
        return frontend_ms(modality, s["spec"]), s["ms"], {}
    from hai_edge.bundle import Bundle

    il = interleaved(Bundle.load(s["root"]), blocks=blocks, calls=calls)
    for line in report(il):
        print(line, flush=True)
    best = min(il["models"], key=lambda mid: il["models"][mid]["ms"]["median"])
    il["fastest"] = best
    return il["frontend_ms"]["median"], il["models"][best]["ms"]["median"], il


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", type=Path, default=Path("/tmp/hai-edge-bench"))
    ap.add_argument("--teacher-runs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--standins", action="store_true", help="untrained stand-in students")
    ap.add_argument("--blocks", type=int, default=20, help="interleaved audio timing blocks")
    ap.add_argument("--calls", type=int, default=25, help="calls per side per block")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for modality, name, build in (("audio", "HeAR replica: ViT-L/16, 1x192x128", hear_replica),
                                  ("image", "Derm Foundation replica: BiT-R101x3, 448 px", bit_r101x3)):
        s = student(modality, args.bundles, args.runs, args.standins)
        fe, s_ms, il = student_side(modality, s, args.blocks, args.calls)
        tfe = teacher_frontend_ms(modality)
        t0 = time.perf_counter()
        model, shape = build()
        build_s = time.perf_counter() - t0
        ms, params, dim = time_torch(model, shape, warmup=1, runs=args.teacher_runs)
        del model
        rows.append({"modality": modality, "teacher": name, "teacher_params": params,
                     "teacher_dim": dim, "teacher_ms": ms, "teacher_build_s": build_s,
                     "student": s["model"], "student_engine": s["engine"],
                     "student_params": s["params"], "student_size_mb": s["size_mb"],
                     "student_ms": s["ms"], "student_all_int8_ms": s["all"],
                     "frontend_ms": fe, "teacher_frontend_ms": tfe, "student_e2e_model_ms": s_ms,
                     "student_bundle": s["bundle"], "ratio_model": ms / s["ms"],
                     "ratio_with_frontend": ms / (s_ms + fe),
                     "ratio_end_to_end": (ms + tfe) / (s_ms + fe), "interleaved": il})
        r = rows[-1]
        print(f"[{modality}] {name}: {params / 1e6:.1f} M params, {dim}-d, {ms:.0f} ms/item "
              f"(torch FP32, 1 thread, median of {args.teacher_runs})", flush=True)
        print(f"[{modality}] student {s['bundle']}/{s['model']} ({s['engine']}): "
              f"{s['params'] / 1e6:.2f} M params, "
              f"{s['size_mb']:.2f} MB, {s['ms']:.3f} ms/item (1 thread, harness, 1 item per run); "
              f"all INT8: {s['all']}", flush=True)
        e2e = f"interleaved, {il['fastest']}" if il else "harness"
        print(f"[{modality}] teacher / student: {r['ratio_model']:.0f}x (model only), "
              f"{r['ratio_end_to_end']:.0f}x end to end (teacher {ms:.0f} + front end "
              f"{tfe:.2f} ms vs student front end {fe:.3f} + model {s_ms:.3f} ms ({e2e})), "
              f"{r['ratio_with_frontend']:.0f}x (teacher model vs student incl. its front end); "
              f"params "
              f"{params / max(1, s['params']):.0f}x", flush=True)
    out = args.bundles / "teacher_vs_student.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Per-window inference time of the cough PWA in the test browser (headless Debian Chromium).

Builds the app for a bundle, serves it on 127.0.0.1, and has the page itself time N model runs
(batch 1: one window, as a recording is scored) with ``performance.now()``, after the golden
self-test and 10 warm-up runs (``?bench=N``). Side by side in one run:

* the app's defaults (cross-origin isolated, threads chosen by the app: every core, at most 4);
* cross-origin isolated (COOP/COEP), threads=1 and threads=2 (multi-threaded WASM);
* not isolated, threads=1: ``performance.now()`` is coarsened to 100 us there, so medians are
  multiples of 0.1 ms; the mean over the whole timed loop (wall / N) is not affected.

It also prints the JS front end's time per window (log-mel/PCEN of one window), the same model
on native onnxruntime for the browser/native ratio, and, for INT8 models, both QDQ execution
modes forced (``fused``, the app's default: ORT's int8 kernels, bit-exact with the Python
runtime; ``float``, opt-in ``?qdq=float``: INT8 numerics on float kernels, faster but not
bit-exact, see docs/pwa.md).

    python benchmarks/pwa_speed.py                      # the test fixture bundle (needs onnx)
    python benchmarks/pwa_speed.py --model audio-s      # the cough-demo student's size (torch)
    python benchmarks/pwa_speed.py --bundle B           # any audio bundle with an INT8 ONNX model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 10.0
CHROMIUM = "/usr/bin/chromium"


def _exported(root: Path, which: str) -> Path:
    """An ONNX FP32 + INT8 bundle of an untrained network the size of a real student."""
    from hai_edge.export.bundle_builder import BuildOptions, build_bundle

    if which == "audio-s":  # the cough-demo student's architecture (random init)
        from hai_edge.distill.students import get_preset
        from hai_edge.distill.students._nets import EmbeddingModel

        preset = get_preset("audio-s")
        model, spec = EmbeddingModel(preset.build(seed=0), None), preset.frontend
    else:
        from benchmarks._standins import AUDIO_SPEC, audio_standin

        model, spec = audio_standin(), AUDIO_SPEC
    b = build_bundle(model, spec, root / which, name=f"{which}-random",
                     options=BuildOptions(formats=("onnx",), allow_degraded=True))
    return b.root


def _measure(app: Path, isolation: bool, threads: int, runs: int, qdq: str = "") -> dict:
    from playwright.sync_api import sync_playwright

    from hai_edge.apps.cough_pwa import make_server

    httpd = make_server(app, "127.0.0.1", 0, isolation=isolation)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/?threads={threads}"
                          f"&bench={runs}" + (f"&qdq={qdq}" if qdq else ""))
                page.wait_for_function("['ready','refused','error'].includes(window.__pwa.phase)",
                                       timeout=300_000)
                phase = page.evaluate("window.__pwa.phase")
                if phase != "ready":
                    why = page.evaluate("window.__pwa.error || window.__pwa.selftest")
                    raise SystemExit(f"app not ready ({phase}): {why}")
                return page.evaluate("window.__pwa.bench")
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def _native_ms(bundle: Path, model_id: str, runs: int) -> float:
    """Median ms of the same model, batch 1, on native onnxruntime (1 thread), for the ratio."""
    import time

    import numpy as np
    import onnxruntime as ort

    from hai_edge.bundle import Bundle
    from hai_edge.runtime.verify import golden_model_inputs, load_golden

    b = Bundle.load(bundle)
    entry = b.model(model_id)
    x, _ = golden_model_inputs(b, load_golden(b))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(b.path_of(entry.main_file)), opts,
                                providers=["CPUExecutionProvider"])
    feed = [{entry.inputs[0].name: x[i % len(x)][None]} for i in range(runs)]
    for f in feed[:10]:
        sess.run(None, f)
    ts = []
    for f in feed:
        t = time.perf_counter()
        sess.run(None, f)
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="audio bundle (default: --model)")
    ap.add_argument("--model", choices=("fixture", "audio-s", "standin"), default="fixture",
                    help="without --bundle: the test fixture (3 convs, 32-d), the audio-s student "
                         "architecture or the benchmarks' stand-in, untrained (needs torch)")
    ap.add_argument("--runs", type=int, default=300, help="timed runs per configuration")
    ap.add_argument("--precision", choices=("int8", "fp32", "both"), default="both",
                    help="which ONNX model(s) of the bundle to time (default both)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: F401  (fail early when missing)

    from hai_edge.apps.cough_pwa import build_app

    with tempfile.TemporaryDirectory(prefix="pwa-speed-") as tmp:
        root = Path(tmp)
        if args.bundle:
            bundle = Path(args.bundle)
        elif args.model in ("audio-s", "standin"):
            bundle = _exported(root, args.model)
        else:
            from tests._pwa_bundles import make_pwa_bundle

            bundle = make_pwa_bundle(root / "fixture", detector="energy")
        precisions = ("int8", "fp32") if args.precision == "both" else (args.precision,)
        print(f"{'model':<12} {'configuration':<28} {'threads':>7} {'qdq':>5} {'median':>8} "
              f"{'p90':>8} {'mean':>8} {'features':>9}  target {TARGET_MS:g} ms; {args.runs} runs, "
              "mean = wall / runs")
        for precision in precisions:
            rep = build_app(root / f"app-{precision}", bundle, precision=precision)
            model_bytes = sum(v for k, v in rep.files.items() if k.endswith(".onnx"))
            print(f"# bundle {rep.bundle}, {rep.model_id}: model {model_bytes} bytes, cached app "
                  f"+ model {rep.total_bytes} bytes")
            native = _native_ms(bundle, rep.model_id, args.runs)
            print(f"{rep.model_id:<12} {'native onnxruntime (Python)':<28} {1:>7} {'':>5} "
                  f"{native:>7.3f}  "
                  f"{'':>7}  {'':>7}  {'':>8}  (reference for the browser/native ratio)")
            rows = [("app default (isolated, auto)", True, 0, ""),
                    ("cross-origin isolated", True, 1, ""), ("cross-origin isolated", True, 2, ""),
                    ("not isolated (timer 100 us)", False, 1, "")]
            if precision == "int8":  # both QDQ modes forced
                rows += [("isolated, QDQ forced", True, 1, "fused"),
                         ("isolated, QDQ forced", True, 1, "float")]
            for label, iso, threads, qdq in rows:
                r = _measure(rep.directory, iso, threads, args.runs, qdq)
                ok = "ok" if r["mean_ms"] <= TARGET_MS else "OVER"
                print(f"{rep.model_id:<12} {label:<28} {r['threads']:>7} {r['qdq']:>5} "
                      f"{r['median_ms']:>7.3f}  "
                      f"{r['p90_ms']:>7.3f}  {r['mean_ms']:>7.3f}  {r['features_ms']:>8.2f}  {ok} "
                      f"({r['mean_ms'] / TARGET_MS:.2f} x target, "
                      f"{r['median_ms'] / native:.1f} x native)",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

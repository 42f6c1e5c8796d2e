"""Cough pipeline speed: real-time factor offline and live, and event latency.

On a 30 s recording at 44.1 kHz (the bundled CC0 cough clips of ``hai_edge/demo_data`` placed
in a quiet noise bed with gaps, or with ``--synthetic`` a noise burst every ~2 s) this measures,
in one run:

* offline ``CoughPipeline.analyze_file``: processing time / audio time, per stage;
* live ``CoughPipeline.run_live`` fed 20 ms blocks from a replaying capture as fast as it can
  take them: processing time / audio time, the slowest block, and the latency (in audio time)
  from each event's end to its detection and from each window's end to its scores.

    python benchmarks/cough_stream.py                  # the built-in cough-demo bundle (INT8)
    python benchmarks/cough_stream.py --bundle B       # any audio bundle
    python benchmarks/cough_stream.py --tiny           # a tiny linear ONNX bundle (needs onnx)

Run it pinned to one core for the one-core figure: ``taskset -c 0 python benchmarks/...``.

A real microphone adds its own buffering (about 20-40 ms) on top of these latencies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tiny_bundle(root: Path) -> Path:
    """HeAR-shaped front end (2 s windows, 64 x 200 log-mel) on a linear 512-d model + a head."""
    from hai_edge.bundle import (
        Bundle,
        Manifest,
        Modality,
        ModelEntry,
        ModelFormat,
        Precision,
        TensorSpec,
        write_bundle,
    )
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.runtime.frontends import AudioFrontendSpec
    from hai_edge.runtime.heads import Head
    from tests._onnx_models import onnx_linear_model

    spec, dim = AudioFrontendSpec(), 512
    entry = ModelEntry("onnx-fp32", ModelFormat.ONNX, Precision.FP32, ("model.onnx",),
                       (TensorSpec("input", (None, *spec.input_shape())),),
                       (TensorSpec("embedding", (None, dim)),))
    manifest = Manifest(name="bench-cough", modality=Modality.AUDIO, preprocessing=spec,
                        embedding_dim=dim, models=(entry,))
    plain = write_bundle(root / "plain", manifest,
                         {"model.onnx": onnx_linear_model(spec.input_shape(), dim)})
    rng = np.random.default_rng(0)
    head = Head("covid", rng.standard_normal(dim) / 20, 0.0, np.zeros(dim), np.ones(dim))
    add_head_to_bundle(Bundle.load(plain.root), head, str(root / "bundle"))
    return root / "bundle"


def _clip_recording(seconds: float, sr: int) -> np.ndarray:
    """The bundled CC0 cough clips, trimmed to their active part, in a -60 dBFS noise bed."""
    from hai_edge.heads.cough_scenes import SceneClip, make_scenes
    from hai_edge.heads.detector_train import load_16k
    from hai_edge.demo.pipeline import DEMO_DATA
    from hai_edge.runtime.frontends import resample

    clips = [SceneClip(p.stem, p, "cough", "demo_data", p.stem)
             for p in sorted((DEMO_DATA / "coughs").glob("*.mp3"))]
    scene = make_scenes(clips, 1, seed=0, load=load_16k, segments_per_scene=int(seconds / 2.5),
                        p_cough=1.0)[0]
    x = np.zeros(int(seconds * 16000), dtype=np.float32)
    n = min(x.size, scene.audio.size)
    x[:n] = scene.audio[:n]
    x += 1e-3 * np.random.default_rng(2).standard_normal(x.size).astype(np.float32)
    return resample(x, 16000, sr).astype(np.float32)


def _recording(seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = 0.005 * rng.standard_normal(int(seconds * sr))
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    for start in np.arange(0.7, seconds - 0.5, 2.1):
        i = int(start * sr)
        x[i : i + n] += 0.3 * rng.standard_normal(n) * np.exp(-t / 0.06)
    return x.astype(np.float32)


class ReplayCapture:
    """The MicCapture consumer API over a fixed signal (no device, no pacing)."""

    def __init__(self, x: np.ndarray, sr: int, block_s: float = 0.02) -> None:
        self.x, self.sample_rate, self.block = x, sr, int(block_s * sr)
        self.pos, self.interrupted = 0, False
        self.block_times: list[float] = []
        self._t = 0.0

    def start(self) -> None:
        self._t = time.perf_counter()

    def read_available(self, timeout: float | None = 0.1) -> np.ndarray:
        now = time.perf_counter()
        self.block_times.append(now - self._t)  # consumer time spent on the previous block
        self._t = now
        out = self.x[self.pos : self.pos + self.block]
        self.pos += out.size
        return out

    def stop(self, max_samples: int | None = None) -> None:
        pass

    def captured(self) -> np.ndarray:
        return self.x[: self.pos]

    def info(self) -> dict:
        return {"device": "replay", "overflows": 0, "dropped_s": 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="cough-demo", help="audio bundle (default: cough-demo)")
    ap.add_argument("--tiny", action="store_true", help="a tiny HeAR-shaped linear ONNX bundle")
    ap.add_argument("--synthetic", action="store_true", help="noise bursts instead of coughs")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import soundfile as sf

    from hai_edge.runtime.cough import CoughPipeline
    from hai_edge.runtime.frontends import resample

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = _tiny_bundle(root) if args.tiny else args.bundle
        x44 = (_recording if args.synthetic else _clip_recording)(args.seconds, 44100)
        sf.write(root / "rec.wav", x44, 44100)
        with CoughPipeline(bundle, threads=args.threads) as pipe:
            sr = pipe.spec.sample_rate
            pipe.analyze_file(root / "rec.wav")  # warm-up
            offline = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                res = pipe.analyze_file(root / "rec.wav")
                offline.append(time.perf_counter() - t0)
            x = resample(x44, 44100, sr)
            live_t, live_res, blocks = [], None, []
            for _ in range(args.repeats):
                cap = ReplayCapture(x, sr)
                t0 = time.perf_counter()
                live_res = pipe.run_live(cap, args.seconds)
                live_t.append(time.perf_counter() - t0)
                blocks = cap.block_times[1:]
    audio = args.seconds
    print(f"bundle {res.meta['bundle']} ({res.meta['model']}, detector {res.meta['detector']}) "
          f"on {res.meta['backend']} ({args.threads} thread), "
          f"{audio:g} s at 44.1 kHz, {len(res.events)} events, {len(res.windows)} windows")
    med = statistics.median(offline)
    print(f"offline: {med * 1e3:8.1f} ms  real-time factor {med / audio:.4f}  (median of "
          f"{args.repeats})")
    print("  stages (last run, ms): " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                 res.timing_ms.items()))
    med_l = statistics.median(live_t)
    tm = live_res.timing_ms
    print(f"live:    {med_l * 1e3:8.1f} ms  real-time factor {med_l / audio:.4f}; slowest 20 ms "
          f"block {max(blocks) * 1e3:.1f} ms, mean {statistics.mean(blocks) * 1e3:.2f} ms")
    print(f"  latency (audio time): event end -> detected <= {tm['latency_event_max']:.0f} ms; "
          f"window end -> scored <= {tm.get('latency_window_max', float('nan')):.0f} ms "
          f"(+ device buffering)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start to first embedding, and peak RSS, per engine, in fresh processes.

For each bundle (a cough-sized audio bundle and a derm-sized image bundle) and each engine the
bundle has a model for, this starts a new Python process that imports only the run side, opens
the bundle, decodes one sample (a 5 s WAV / a 12 MP JPEG) and embeds it. Reported:
wall time from process spawn to the first embedding (median of --repeats), and the process's peak
RSS (from wait4's rusage). Everything is measured side by side in one run.

    python benchmarks/runtime_startup.py                     # built-in demo bundles, else stand-ins
    python benchmarks/runtime_startup.py --audio B1 --image B2 --repeats 5

Stand-in bundles (when no built-in demo bundle exists) are FP32 exports of small CNNs sized like
the planned students; they need the export extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import sys, time
t0 = time.perf_counter()
from hai_edge.runtime import Embedder
bundle, backend, media, precision = sys.argv[1:5]
with Embedder(bundle, backend, precision=precision or None, threads=1) as e:
    if e.modality.value == "audio":
        r = e.embed_audio_file(media); n = len(r.vectors)
    else:
        r = e.embed_image_file(media); n = len(r)
    model = e.entry.id
elapsed = time.perf_counter() - t0
hwm = next((int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")), 0)
print(f"OK {model} {n} {elapsed:.4f} {hwm}")
"""

BARE = r"""
import numpy
hwm = next((int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")), 0)
print(f"OK - 0 0 {hwm}")
"""


def _sample_media(tmp: Path) -> dict[str, Path]:
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    sr = 44100
    x = 0.02 * rng.standard_normal(5 * sr)
    for s in (0.5, 2.2, 3.9):
        i, n = int(s * sr), int(0.3 * sr)
        x[i : i + n] += 0.6 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.05 * sr))
    sf.write(tmp / "cough.wav", x.astype(np.float32), sr)
    yy, xx = np.mgrid[0:3000, 0:4000]
    img = np.stack([(xx // 7) % 255, (yy // 5) % 255, (xx + yy) // 30 % 255], -1).astype(np.uint8)
    Image.fromarray(img).save(tmp / "photo.jpg", quality=90)
    return {"audio": tmp / "cough.wav", "image": tmp / "photo.jpg"}


def _stand_in_bundles(tmp: Path) -> dict[str, Path]:
    import torch
    from torch import nn

    from hai_edge.export.fp32_bundle import build_fp32_bundle
    from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec

    def block(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        )

    def net(cin: int, widths: list[int], dim: int) -> nn.Module:
        layers = [nn.Conv2d(cin, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for a, b in zip(widths, widths[1:]):
            layers.append(block(a, b, 2 if b > a else 1))
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], dim))

    torch.manual_seed(0)
    audio_spec = AudioFrontendSpec()
    image_spec = ImageFrontendSpec()
    audio = net(1, [24, 48, 48, 96, 96, 192, 192, 384], 512).eval()
    image = net(3, [32, 64, 64, 128, 128, 256, 256, 512, 512, 1024], 512).eval()
    out = {}
    for key, model, spec in (("audio", audio, audio_spec), ("image", image, image_spec)):
        out[key] = tmp / f"standin-{key}"
        build_fp32_bundle(model, spec, out[key], name=f"standin-{key}")
    return out


def _measure(bundle: Path, backend: str, media: Path, precision: str, repeats: int) -> dict:
    """Spawn children one by one, reaping each with wait4 to get its own peak RSS."""
    walls, rsss, model = [], [], "?"
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(bundle), backend, str(media), precision],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0 or not out.startswith("OK"):
            tail = err.strip().splitlines()[-1:] or ["no output"]
            return {"error": tail[0]}
        # VmHWM is the child's own peak RSS (rusage maxrss would inherit the parent's at fork)
        rsss.append(int(out.split()[4]) / 1024)
        model = out.split()[1]
    return {"model": model, "wall_s": statistics.median(walls), "rss_mb": max(rsss)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", help="audio bundle (default: cough-demo, else a stand-in)")
    ap.add_argument("--image", help="image bundle (default: derm-demo, else a stand-in)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="", help="int8 | fp32 (default: the bundle's best)")
    args = ap.parse_args()

    from hai_edge.bundle import Bundle, builtin_bundles
    from hai_edge.runtime.backends import BACKENDS

    tmp = Path(tempfile.mkdtemp(prefix="hai-edge-startup-"))
    media = _sample_media(tmp)
    builtins = builtin_bundles()
    bundles = {"audio": args.audio or builtins.get("cough-demo"),
               "image": args.image or builtins.get("derm-demo")}
    if not all(bundles.values()):
        stand = _stand_in_bundles(tmp)
        bundles = {k: v or stand[k] for k, v in bundles.items()}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, repeats={args.repeats}, 1 engine thread")
    print(f"{'bundle':<22} {'engine':<12} {'model':<14} {'size MB':>8} {'cold start s':>13} {'peak RSS MB':>12}")
    # baseline: a bare interpreter with numpy
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE], capture_output=True, text=True).stdout
    print(f"{'(python + numpy only)':<22} {'-':<12} {'-':<14} {'-':>8} {time.perf_counter() - t0:>13.3f} "
          f"{int(out.split()[4]) / 1024:>12.1f}")
    for key in ("audio", "image"):
        b = Bundle.load(bundles[key])
        for name, info in BACKENDS.items():
            entries = b.models(info.format)
            if not entries or not info.is_available():
                continue
            r = _measure(b.root, name, media[key], args.precision, args.repeats)
            if "error" in r:
                print(f"{b.manifest.name:<22} {name:<12} failed: {r['error']}")
                continue
            entry = b.model(r["model"])
            size = sum(b.manifest.files[f].size for f in entry.files) / 1e6
            print(f"{b.manifest.name:<22} {name:<12} {r['model']:<14} {size:>8.2f} {r['wall_s']:>13.3f} "
                  f"{r['rss_mb']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

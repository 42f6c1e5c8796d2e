"""Benchmark worker: a fresh process that imports only the runtime, opens one model of a bundle,
times single-input inferences and prints one JSON line. It reports its own peak RSS (``VmHWM``):
runtime + engine + model + inference, nothing else.

Usage: ``python -m hai_edge.devices._bench_worker BUNDLE MODEL_ID THREADS RUNS WARMUP``
"""

from __future__ import annotations

import json
import sys
import time


def _peak_rss_kb() -> int:
    """Peak RSS of this process image. Linux: ``VmHWM`` of /proc/self/status, which belongs to
    the exec'd image only; ``ru_maxrss`` (also what ``wait4`` reports) keeps the high-water mark
    of the pre-exec copy of the parent, i.e. the size of whoever launched the benchmark."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except ImportError:  # pragma: no cover - not POSIX
        return 0


def main(argv: list[str]) -> int:
    import numpy as np

    from hai_edge.bundle import Bundle
    from hai_edge.runtime.backends import open_model

    bundle_dir, model_id, threads, runs, warmup = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    t0 = time.perf_counter()
    bundle = Bundle.load(bundle_dir, verify=False)
    engine, entry = open_model(bundle, model_id=model_id, threads=threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    spec = entry.inputs[0]
    shape = [1 if (s is None or i == 0) else int(s) for i, s in enumerate(spec.shape)]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feed = {spec.name: x}
    for _ in range(warmup):
        engine.run(feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.run(feed)
        times.append((time.perf_counter() - t) * 1e3)
    engine.close()
    self_rss_kb = _peak_rss_kb()
    arr = np.asarray(times)
    print(json.dumps({
        "model": model_id, "engine": getattr(engine, "name", "?"), "threads": threads,
        "runs": runs, "load_ms": load_ms, "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)), "mean_ms": float(arr.mean()),
        "peak_rss_kb": int(self_rss_kb),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

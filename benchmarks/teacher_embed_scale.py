"""Teacher embedding throughput: local engine vs ``--engine ray`` with 1 and 2 workers, one run.

    python benchmarks/teacher_embed_scale.py [--teacher reference:audio] [--items 120]
                                             [--seconds 6] [--data DIR_OR_CSV] [--views 0]

Same corpus, same teacher, same store settings for every row; each run writes a fresh store in a
temporary folder (nothing is resumed). Default corpus: ``--items`` synthetic recordings of
``--seconds`` s at 16 kHz (tones + noise, so no window is skipped as quiet), i.e. 3 teacher
windows of 2 s each with the reference audio teacher (a 512-d ResNet-style CNN on log-mel: heavy
enough that the teacher dominates decode). ``--data`` uses a real corpus instead.

Rows:

* local, torch default threads (the local engine as users run it: one process, intra-op threads
  on all cores);
* local, 1 torch thread (what one core does: the per-worker baseline);
* ray, 1 and 2 workers: a local Ray with ``workers + 1`` CPUs started for the row (its start-up
  is timed separately), one teacher actor per worker with 1 CPU (Ray sets 1 torch thread).

``items/s`` is over the whole ``embed`` call: for Ray it includes the remote teacher probe, the
actors' start-up (a Python process + torch + the model each) and decode, but not ``ray.init``.
``steady/s`` counts only the items after the first block Ray hands back (start-up excluded: what
a long run tends to); Ray returns whole blocks of items, so it needs a few blocks per run (the
engine makes about ``4 x workers`` of them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hai_edge.export.corpus import load_corpus  # noqa: E402
from hai_edge.export.teacher_embed import Progress, embed_corpus  # noqa: E402
from hai_edge.export.teachers import load_teacher  # noqa: E402


def synthetic_corpus(folder: Path, items: int, seconds: float, rate: int = 16000) -> Path:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(items):
        x = 0.2 * np.sin(2 * np.pi * (120 + 13 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
        sf.write(folder / f"c{i:04d}.wav", x + 0.02 * rng.standard_normal(t.size), rate)
    return folder


class _Marks:
    """Timestamps of every item the progress counter sees (Ray hands items back in blocks)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._orig = Progress.update

    def __enter__(self) -> _Marks:
        marks = self

        def update(bar: Progress, skipped: bool = False) -> None:
            marks.times.append(time.perf_counter())
            marks._orig(bar, skipped)

        Progress.update = update  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Progress.update = self._orig  # type: ignore[method-assign]

    def steady(self) -> float:
        """Items/s after the first block came back: start-up (probe, actors, first decode)
        excluded. The first block is every item stamped within 50 ms of the first one."""
        t = self.times
        if len(t) < 2:
            return float("nan")
        k = sum(1 for x in t if x - t[0] < 0.05)
        first_end = t[k - 1]
        return (len(t) - k) / (t[-1] - first_end) if len(t) > k and t[-1] > first_end \
            else float("nan")


def run_local(teacher_spec: str, items: list, out: Path, threads: int | None,
              kwargs: dict) -> dict:
    import torch

    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        teacher = load_teacher(teacher_spec)
        with _Marks() as marks:
            t0 = time.perf_counter()
            store = embed_corpus(teacher, items, out, **kwargs)
            wall = time.perf_counter() - t0
        teacher.close()
        return {"wall": wall, "rows": len(store), "steady": marks.steady(),
                "threads": torch.get_num_threads(), "init": 0.0}
    finally:
        torch.set_num_threads(saved)


def _actor_threads(ray: object) -> int:
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return int(ray.get(ray.remote(num_cpus=1)(threads).remote()))  # type: ignore[attr-defined]


def run_ray(teacher_spec: str, items: list, out: Path, workers: int, kwargs: dict) -> dict:
    from hai_edge.export.teacher_embed_ray import RayOptions, embed_corpus_ray, ray_session

    options = RayOptions(workers=workers)
    t0 = time.perf_counter()
    with ray_session(options) as ray:
        init = time.perf_counter() - t0
        threads = _actor_threads(ray)
        with _Marks() as marks:
            t1 = time.perf_counter()
            store = embed_corpus_ray(teacher_spec, items, out, options=options, **kwargs)
            wall = time.perf_counter() - t1
    return {"wall": wall, "rows": len(store), "steady": marks.steady(),
            "threads": threads, "init": init}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="reference:audio")
    p.add_argument("--data", help="a real corpus (folder or CSV) instead of synthetic audio")
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--views", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", default="1,2", help="Ray worker counts (default 1,2)")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    with tempfile.TemporaryDirectory(prefix="hai-scale-") as tmp:
        root = Path(tmp)
        modality = load_teacher(args.teacher).info.modality
        data = Path(args.data) if args.data else synthetic_corpus(root / "corpus", args.items,
                                                                  args.seconds)
        items = load_corpus(data, modality)[: args.items]
        kwargs = {"views": args.views, "batch_size": args.batch_size, "seed": 0}
        # warm-up (torch kernels, page cache, the teacher's weights) so row order does not bias
        run_local(args.teacher, items[:4], root / "warm", None, kwargs)
        load0 = os.getloadavg()[0]
        rows: list[tuple[str, int, dict]] = []
        rows.append(("local", 1, run_local(args.teacher, items, root / "l0", None, kwargs)))
        rows.append(("local, 1 thread", 1, run_local(args.teacher, items, root / "l1", 1, kwargs)))
        for w in (int(x) for x in args.workers.split(",")):
            rows.append((f"ray, {w} worker{'s' if w > 1 else ''}", w,
                         run_ray(args.teacher, items, root / f"r{w}", w, kwargs)))
        load1 = os.getloadavg()[0]

    n = len(items)
    base = n / rows[0][2]["wall"]
    base_steady = rows[0][2]["steady"]
    print(f"\nteacher {args.teacher}: {n} items -> {rows[0][2]['rows']} embeddings "
          f"(views {args.views}, batch {args.batch_size}); {os.cpu_count()} CPUs, load average "
          f"{load0:.1f} -> {load1:.1f}")
    print(f"{'engine':<18} {'threads':>7} {'ray.init s':>10} {'wall s':>8} {'items/s':>8} "
          f"{'vs local':>8} {'steady/s':>8} {'vs local':>8}")
    for name, workers, r in rows:
        rate = n / r["wall"]
        threads = f"{workers}x{r['threads']}" if name.startswith("ray") else str(r["threads"])
        init = f"{r['init']:.1f}" if r["init"] else "-"
        print(f"{name:<18} {threads:>7} {init:>10} {r['wall']:>8.1f} {rate:>8.2f} "
              f"{rate / base:>7.2f}x {r['steady']:>8.2f} {r['steady'] / base_steady:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

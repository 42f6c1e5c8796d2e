"""Teacher embedding throughput: local engine vs ``--engine ray`` with 1 and 2 workers, one run.

    python benchmarks/teacher_embed_scale.py [--teacher hear-replica|SPEC] [--items 120]
                                             [--seconds 2] [--data DIR_OR_CSV] [--views 0]

Same corpus, same teacher, same store settings for every row; each row writes a fresh store in a
temporary folder (nothing is resumed). Default corpus: ``--items`` synthetic recordings of
``--seconds`` s at 16 kHz (tones + noise, so no window is skipped as quiet): one 2 s teacher window
each. Default teacher ``hear-replica``: HeAR's architecture (ViT-L/16, 24 layers, hidden 1024, on a
1 x 192 x 128 input, 512-d pooler; the replica of benchmarks/teacher_vs_student.py) with seeded
random weights and a trivial front end (the window's first 24,576 samples as the 192 x 128 input):
as heavy as the real teacher, so the teacher dominates decode as it does in practice. Any teacher
spec works too (e.g. ``reference:audio``, much lighter: Ray's start-up then dominates).

Rows:

* local, default threads (the local engine as users run it: one process, torch and BLAS threads
  on all cores);
* local, 1 thread (torch, OpenMP and BLAS pools limited to 1: what one core does, the per-worker
  baseline);
* ray, 1 and 2 workers: a local Ray with ``workers + 1`` CPUs started for the row (its start-up
  is timed separately), one teacher actor per worker with 1 CPU (Ray gives it 1 thread).

``wall`` includes loading the teacher (local: once, in-process; Ray: once per actor, in parallel)
and for Ray the actors' start-up (a Python process + torch each) and decode, but not
``ray.init``. ``cores`` is the CPU time of this process and all its children (Ray's processes
included) over the row's wall time: how much of the machine the row actually got (on a machine
shared with other jobs, less than the CPU count). ``first item s`` is the start-up latency (for
Ray: actor start-up, model load and the first block of items, which comes back whole).
The table is Markdown, ready for docs/scale.md.
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

from hai_edge.corpus import load_corpus  # noqa: E402
from hai_edge.distill.teacher_embed import Progress, embed_corpus  # noqa: E402
from hai_edge.teachers import TeacherInfo, load_teacher  # noqa: E402

HERE = Path(__file__).resolve().parent
REPLICA = "torch:teacher_embed_scale:hear_replica_teacher"  # importable by Ray's workers too
REPLICA_INFO = TeacherInfo(id="hear-replica (random weights)", modality="audio",
                           embedding_dim=512, licence="benchmark only", sample_rate=16000,
                           window_samples=32000)


class HearReplicaTeacher:
    """HeAR-sized ViT-L/16 with seeded random weights (the same in every process)."""

    def __init__(self) -> None:
        import torch

        from teacher_vs_student import hear_replica

        torch.manual_seed(0)
        self.model, _ = hear_replica()
        self.info = REPLICA_INFO

    def embed(self, batch: list) -> np.ndarray:
        import torch

        x = np.stack([np.asarray(w, np.float32)[: 192 * 128] for w in batch])
        with torch.inference_mode():
            out = self.model(pixel_values=torch.from_numpy(x).reshape(-1, 1, 192, 128))
        return out.pooler_output.float().numpy()

    def close(self) -> None:
        self.model = None


def hear_replica_teacher() -> HearReplicaTeacher:
    return HearReplicaTeacher()


def synthetic_corpus(folder: Path, items: int, seconds: float, rate: int = 16000) -> Path:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(items):
        x = 0.2 * np.sin(2 * np.pi * (120 + 13 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
        sf.write(folder / f"c{i:04d}.wav", x + 0.02 * rng.standard_normal(t.size), rate)
    return folder


class _CpuMeter:
    """CPU seconds used by this process and all its descendants (Ray's too) during a row,
    sampled every 0.25 s: ``cores`` = CPU s / wall s says how much of the machine a row got."""

    def __init__(self) -> None:
        import threading

        self.seen: dict[tuple[int, float], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    t = proc.cpu_times()
                    self.seen[(proc.pid, proc.create_time())] = t.user + t.system
                except psutil.Error:
                    continue
            self.stop.wait(0.25)

    def __enter__(self) -> _CpuMeter:
        self.thread.start()
        time.sleep(0.3)
        self.base = dict(self.seen)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def cpu_s(self) -> float:
        return sum(v - self.base.get(k, 0.0) for k, v in self.seen.items())


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

    def first_s(self, t0: float) -> float:
        """Seconds from the start of the row to the first item back (start-up latency)."""
        return self.times[0] - t0 if self.times else float("nan")


def run_local(teacher_spec: str, items: list, out: Path, threads: int | None,
              kwargs: dict) -> dict:
    import contextlib

    import torch

    saved = torch.get_num_threads()
    limits: contextlib.AbstractContextManager = contextlib.nullcontext()
    if threads:
        torch.set_num_threads(threads)
        try:  # numpy's BLAS and OpenMP pools too: on a busy machine they spin otherwise
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(threads)
        except ImportError:
            pass
    try:
        with limits, _CpuMeter() as cpu, _Marks() as marks:
            t0 = time.perf_counter()
            teacher = load_teacher(teacher_spec)
            store = embed_corpus(teacher, items, out, **kwargs)
            wall = time.perf_counter() - t0
            teacher.close()
        return {"wall": wall, "rows": len(store), "first": marks.first_s(t0),
                "threads": torch.get_num_threads(), "init": 0.0, "cpu": cpu.cpu_s()}
    finally:
        torch.set_num_threads(saved)


def _actor_threads(ray: object) -> int:
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return int(ray.get(ray.remote(num_cpus=1)(threads).remote()))  # type: ignore[attr-defined]


def run_ray(teacher_spec: str, items: list, out: Path, workers: int, kwargs: dict,
            info: TeacherInfo | None) -> dict:
    from hai_edge.distill.teacher_embed_ray import RayOptions, embed_corpus_ray, ray_session

    options = RayOptions(workers=workers)
    t0 = time.perf_counter()
    with ray_session(options) as ray:
        init = time.perf_counter() - t0
        threads = _actor_threads(ray)
        with _CpuMeter() as cpu, _Marks() as marks:
            t1 = time.perf_counter()
            store = embed_corpus_ray(teacher_spec, items, out, options=options, info=info,
                                     **kwargs)
            wall = time.perf_counter() - t1
    return {"wall": wall, "rows": len(store), "first": marks.first_s(t1),
            "threads": threads, "init": init, "cpu": cpu.cpu_s()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="hear-replica",
                   help="hear-replica (default) or a teacher spec, e.g. reference:audio")
    p.add_argument("--data", help="a real corpus (folder or CSV) instead of synthetic audio")
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--views", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=4,
                   help="teacher batch (default 4: a dozen batches per row, so Ray's blocks "
                        "stream back one by one)")
    p.add_argument("--workers", default="1,2", help="Ray worker counts (default 1,2)")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's workers import this file (the replica teacher) and teacher_vs_student from here
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent),
                                                             os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(HERE))
    spec = REPLICA if args.teacher == "hear-replica" else args.teacher
    info = REPLICA_INFO if spec == REPLICA else None  # known: no need to probe a worker

    with tempfile.TemporaryDirectory(prefix="hai-scale-") as tmp:
        root = Path(tmp)
        modality = (info or load_teacher(spec).info).modality
        data = Path(args.data) if args.data else synthetic_corpus(root / "corpus", args.items,
                                                                  args.seconds)
        items = load_corpus(data, modality)[: args.items]
        kwargs = {"views": args.views, "batch_size": args.batch_size, "seed": 0}
        # warm-up (torch kernels, page cache, the teacher's weights) so row order does not bias
        run_local(spec, items[:4], root / "warm", None, kwargs)
        load0 = os.getloadavg()[0]
        rows: list[tuple[str, int, dict]] = []
        rows.append(("local", 1, run_local(spec, items, root / "l0", None, kwargs)))
        rows.append(("local, 1 thread", 1, run_local(spec, items, root / "l1", 1, kwargs)))
        for w in (int(x) for x in args.workers.split(",")):
            rows.append((f"ray, {w} worker{'s' if w > 1 else ''}", w,
                         run_ray(spec, items, root / f"r{w}", w, kwargs, info)))
        load1 = os.getloadavg()[0]

    n = len(items)
    base = n / rows[0][2]["wall"]
    name = spec if info is None else info.id
    print(f"\nteacher {name}: {n} items -> {rows[0][2]['rows']} embeddings "
          f"(views {args.views}, batch {args.batch_size}); {os.cpu_count()} CPUs, load average "
          f"{load0:.1f} -> {load1:.1f}")
    print(f"| {'engine':<16} | {'threads':>7} | {'ray.init s':>10} | {'first item s':>12} | "
          f"{'wall s':>7} | {'cores':>5} | {'items/s':>7} | {'vs local':>8} |")
    print(f"|{'-' * 18}|{'-' * 8}:|{'-' * 11}:|{'-' * 13}:|{'-' * 8}:|{'-' * 6}:|{'-' * 8}:|"
          f"{'-' * 9}:|")
    for name, workers, r in rows:
        rate = n / r["wall"]
        threads = f"{workers}x{r['threads']}" if name.startswith("ray") else str(r["threads"])
        init = f"{r['init']:.1f}" if r["init"] else "-"
        print(f"| {name:<16} | {threads:>7} | {init:>10} | {r['first']:>12.1f} | "
              f"{r['wall']:>7.1f} | {r['cpu'] / r['wall']:>5.2f} | {rate:>7.2f} | "
              f"{rate / base:>7.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``hai-edge benchmark``: latency (p50/p95, 1 and N threads), size, peak RSS in a fresh process,
fidelity from the manifest, and pass/fail against a device profile's budgets.

Each (model, threads) measurement runs in its own subprocess (``_bench_worker``) that imports only
the run side, so its peak RSS (the worker's ``VmHWM``; ``os.wait4``'s ``ru_maxrss`` as a fallback,
which on Linux also counts the pre-exec copy of the launcher) is what a device would need for that
engine + model, not what this process happens to hold. Latencies measured here are projected onto
the profile's hardware with its ``host_slowdown`` factor, an estimate that the output labels.
Run side: numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hai_edge.bundle import Bundle, ModelEntry
from hai_edge.errors import BackendError, HaiEdgeError
from hai_edge.devices.profiles import DeviceProfile

__all__ = ["BenchResult", "host_description", "render_table", "run_benchmark"]


@dataclasses.dataclass(frozen=True)
class BenchResult:
    model: str
    format: str
    precision: str
    engine: str
    size_mb: float
    threads: tuple[int, ...]
    p50_ms: tuple[float, ...]  # one per entry of ``threads``
    p95_ms: tuple[float, ...]
    load_ms: float
    peak_rss_mb: float
    fidelity: str  # short text from the manifest
    preferred_rank: int | None  # position in the profile's preferred list (0 = first)
    budget_ms: float | None = None
    projected_p95_ms: float | None = None
    latency_ok: bool | None = None
    memory_ok: bool | None = None
    error: str = ""
    excluded: str = ""  # the profile's one-line reason when it excludes this engine

    @property
    def status(self) -> str:
        if self.excluded:
            return "EXCLUDED"
        if self.error:
            return "ERROR"
        if self.latency_ok is None:
            return "-"
        return "PASS" if self.latency_ok and self.memory_ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["threads"], d["p50_ms"], d["p95_ms"] = list(self.threads), list(self.p50_ms), list(self.p95_ms)
        d["status"] = self.status
        return d


def host_description() -> str:
    name = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical cores)"


def _fidelity_text(entry: ModelEntry) -> str:
    f = entry.fidelity
    if "mean_cosine" in f:
        return f"cos {f['mean_cosine']:.4f} vs fp32"
    parity = f.get("parity") or {}
    if "max_abs_diff" in parity:
        return f"|d| {parity['max_abs_diff']:.1e} vs torch"
    return "-"


def _measure(bundle: Bundle, entry: ModelEntry, threads: int, runs: int, warmup: int,
             timeout: float) -> dict[str, Any]:
    """One fresh worker process; its peak RSS from ``os.wait4`` (kB on Linux)."""
    cmd = [sys.executable, "-m", "hai_edge.devices._bench_worker", str(bundle.root), entry.id,
           str(threads), str(runs), str(warmup)]
    root = str(Path(__file__).resolve().parents[2])  # so the worker finds this hai_edge
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    rss_kb = 0
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                out = proc.stdout.read() if proc.stdout else b""
                _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves: rusage of the child
                proc.returncode = os.waitstatus_to_exitcode(status)
                rss_kb = int(usage.ru_maxrss)
            else:  # pragma: no cover - not POSIX: the worker reports its own peak
                out, _ = proc.communicate()
        finally:
            timer.cancel()
            if proc.stdout:
                proc.stdout.close()
        errf.seek(0)
        err = errf.read()
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        why = "killed (timeout)" if proc.returncode < 0 else (lines[-1] if lines else "?")
        raise BackendError(f"{entry.id}: benchmark worker failed: {why}")
    line = out.decode().strip().splitlines()[-1]
    res = json.loads(line)
    # The worker's own VmHWM is exact; wait4's ru_maxrss (kept as a fallback) also counts the
    # pre-exec copy of this process, so it reads as large as the launcher itself.
    res["maxrss_kb"] = res.get("peak_rss_kb") or rss_kb
    return res


def run_benchmark(bundle: Bundle, profile: DeviceProfile | None = None, *, runs: int = 50,
                  warmup: int = 5, threads: int | None = None, models: Sequence[str] | None = None,
                  timeout: float = 600.0) -> list[BenchResult]:
    """Benchmark every model of ``bundle`` whose engine is installed (or only ``models``)."""
    from hai_edge.runtime.backends import BACKENDS

    if runs < 1 or warmup < 0:
        raise HaiEdgeError("--runs must be >= 1")
    n_threads = threads or (profile.threads if profile else min(4, os.cpu_count() or 1))
    thread_set = tuple(dict.fromkeys((1, n_threads)))
    modality = bundle.manifest.modality.value
    ranks = {c.model_id: i for i, c in enumerate(profile.preferred)} if profile else {}
    entries = list(bundle.manifest.models)
    if models:
        wanted = set(models)
        unknown = wanted - {e.id for e in entries}
        if unknown:
            raise HaiEdgeError(f"bundle has no model(s) {sorted(unknown)}")
        entries = [e for e in entries if e.id in wanted]
    results = []
    engine_of = {e.id: next(b for b in BACKENDS.values() if b.format is e.format).name
                 for e in entries}
    if profile is not None and models:  # the user forced these models: refuse, do not skip
        for e in entries:
            profile.require_engine(engine_of[e.id])
    for entry in entries:
        info = next(b for b in BACKENDS.values() if b.format is entry.format)
        size = sum(bundle.manifest.files[f].size for f in entry.files) / 1e6
        base = dict(model=entry.id, format=entry.format.value, precision=entry.precision.value,
                    engine=info.name, size_mb=size, fidelity=_fidelity_text(entry),
                    preferred_rank=ranks.get(entry.id))
        excluded = profile.exclusion(info.name) if profile is not None else None
        if excluded:
            results.append(BenchResult(**base, threads=(), p50_ms=(), p95_ms=(), load_ms=0.0,
                                       peak_rss_mb=0.0, excluded=excluded))
            continue
        if not info.is_available():
            results.append(BenchResult(**base, threads=(), p50_ms=(), p95_ms=(), load_ms=0.0,
                                       peak_rss_mb=0.0, error=f"needs hai-edge[{info.extra}]"))
            continue
        try:
            meas = [_measure(bundle, entry, t, runs, warmup, timeout) for t in thread_set]
        except HaiEdgeError as exc:
            results.append(BenchResult(**base, threads=(), p50_ms=(), p95_ms=(), load_ms=0.0,
                                       peak_rss_mb=0.0, error=str(exc)))
            continue
        rss = max(m["maxrss_kb"] for m in meas) / 1024.0
        res = BenchResult(**base, threads=thread_set, p50_ms=tuple(m["p50_ms"] for m in meas),
                          p95_ms=tuple(m["p95_ms"] for m in meas), load_ms=meas[0]["load_ms"],
                          peak_rss_mb=rss)
        if profile is not None:
            budget = profile.budget_for(modality)
            proj = min(res.p95_ms) * profile.host_slowdown
            res = dataclasses.replace(res, budget_ms=budget, projected_p95_ms=proj,
                                      latency_ok=proj <= budget,
                                      memory_ok=rss <= profile.memory_budget_mb)
        results.append(res)
    return results


def render_table(bundle: Bundle, results: Sequence[BenchResult],
                 profile: DeviceProfile | None) -> str:
    m = bundle.manifest
    head = [f"Benchmark of bundle '{m.name}' ({m.modality.value}, {m.embedding_dim}-d) on "
            f"{host_description()}"]
    if profile is not None:
        head.append(f"Profile {profile.id}: {profile.title}; budgets "
                    f"{profile.budget_for(m.modality.value):.0f} ms per "
                    f"{'audio window' if m.modality.value == 'audio' else 'photo'}, "
                    f"{profile.memory_budget_mb:.0f} MB; projected = best p95 x "
                    f"{profile.host_slowdown:g} (estimated host slowdown)")
    nt = max((len(r.threads) for r in results), default=1)
    tcols = [t for r in results for t in r.threads][:nt] or [1]
    cols = ["Model", "Engine", "Size MB"] + [f"p50/p95 {t}T ms" for t in tcols] + [
        "Peak RSS MB", "Fidelity"]
    if profile is not None:
        cols += ["Pref", "Proj p95 ms", "Status"]
    rows = []
    for r in results:
        lat = ([f"{a:.2f}/{b:.2f}" for a, b in zip(r.p50_ms, r.p95_ms)] + ["-"] * nt)[:nt]
        row = [r.model, r.engine, f"{r.size_mb:.2f}", *lat,
               f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb else "-", r.fidelity]
        if profile is not None:
            row += ["-" if r.preferred_rank is None else str(r.preferred_rank + 1),
                    "-" if r.projected_p95_ms is None else f"{r.projected_p95_ms:.1f}",
                    r.status]
        rows.append(row)
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    lines = head + ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    for r in results:
        if r.excluded or r.error:
            lines.append(f"{r.model}: {r.excluded or r.error}")
    return "\n".join(lines)

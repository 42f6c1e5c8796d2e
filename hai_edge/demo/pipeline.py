"""`hai-edge demo`: the whole pipeline on the bundled sample set, offline, in minutes.

reference teacher -> teacher embeddings -> short distillation -> FP32 + INT8 export to ONNX,
OpenVINO and TFLite with gates -> benchmark -> embed a sample with every engine -> summary.
The distillation fine-tunes the student the package ships (distilled from the same reference
teacher on the full public data, ``hai_edge.demo.bundles``); ``--from-scratch`` starts
from random weights instead, which a few dozen files cannot train well.

It proves the machinery works end to end on this machine; it does not prove clinical quality:
the reference teachers are the project's own small demo encoders (not HeAR / Derm Foundation),
the sample set is a few dozen files, and everything is labelled "demo, not for clinical use".
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.distill.fidelity import not_learned_warning
from hai_edge.errors import HaiEdgeError

__all__ = ["DEMO_DATA", "DemoResult", "run_demo"]

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
NOTICE = "demo, not for clinical use"
_ITEM = {"audio": "2 s window", "image": "300 px photo"}


@dataclasses.dataclass(frozen=True)
class _Plan:
    modality: str
    data: Path
    student: str
    bundle_name: str
    group_col: str


_PLANS = {
    "audio": _Plan("audio", DEMO_DATA / "coughs" / "metadata.csv", "audio-s", "cough-demo-local",
                   "content_group"),
    "image": _Plan("image", DEMO_DATA / "lesions" / "metadata.csv", "image-s", "derm-demo-local",
                   "patient_id"),
}


@dataclasses.dataclass
class DemoResult:
    modality: str
    bundle: Path
    stages_s: dict[str, float]
    fidelity: dict[str, Any]
    sizes_mb: dict[str, float]
    latency_ms: dict[str, float]  # model id -> p50 at 1 thread
    speed: _Speed  # teacher vs student per item, side by side
    engine_cosine: float  # min pairwise cosine of the sample embedding across engines


class _Stages:
    """Prints each stage with its timing; keeps the timings."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.times: dict[str, float] = {}

    def run(self, key: str, title: str, fn: Callable[[], Any]) -> Any:
        self.out(f"  > {title} ...")
        t0 = time.perf_counter()
        result = fn()
        self.times[key] = time.perf_counter() - t0
        self.out(f"    done in {self.times[key]:.1f} s")
        return result


def _one_thread() -> Any:
    """Context manager: torch (if loaded) on 1 thread inside, its setting restored after."""
    import contextlib

    @contextlib.contextmanager
    def scope() -> Any:
        torch = sys.modules.get("torch")
        before = torch.get_num_threads() if torch is not None else None
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)

    return scope()


def _sample_item(modality: str) -> Any:
    rng = np.random.default_rng(0)
    if modality == "audio":
        return rng.standard_normal(32000).astype(np.float32) * 0.1  # 2 s at 16 kHz
    return rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)  # a 300 px photo (PAD-UFES-20)


def _interleaved_ms(first: Callable[[], Any], second: Callable[[], Any], min_blocks: int = 6,
                    min_seconds: float = 3.0, block_s: float = 0.25) -> tuple[float, float]:
    """Medians (ms) of two calls timed in alternating blocks (~0.25 s of one, then of the other),
    so both see the same machine load, each with its caches warm as when it runs alone: their
    ratio stays stable on a shared machine even when the absolute times drift."""
    for _ in range(2):
        first(), second()
    a: list[float] = []
    b: list[float] = []
    blocks = 0
    start = time.perf_counter()
    while blocks < min_blocks or time.perf_counter() - start < min_seconds:
        for fn, out in ((first, a), (second, b)):
            block_start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
                if time.perf_counter() - block_start >= block_s:
                    break
        blocks += 1
        if blocks >= 100:
            break
    return float(np.median(a)) * 1e3, float(np.median(b)) * 1e3


@dataclasses.dataclass(frozen=True)
class _Speed:
    teacher_ms: float  # the teacher's embed call: its own front end + model
    student_ms: float  # the student's numpy front end + its INT8 model on one engine
    frontend_ms: float  # the student's front end alone
    engine: str


def _speed(teacher: Any, bundle: Path, model_id: str, modality: str) -> _Speed:
    """Teacher vs INT8 student per item (a 2 s window / a 300 px photo), each with its own front
    end, both on 1 thread, timed in alternation (the teacher's front end is inside its embed)."""
    from hai_edge.bundle import Bundle
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.backends import BACKENDS
    from hai_edge.runtime.frontends import prepare_image, window_features
    from hai_edge.tools import one_blas_thread

    entry = Bundle.load(bundle).model(model_id)
    engine = next(n for n, b in BACKENDS.items() if b.format is entry.format and b.is_available())
    if engine != "onnxruntime" and Bundle.load(bundle).models("onnx", "int8"):
        # the base install's engine, every run: the figure then compares the same thing each time
        engine, model_id = "onnxruntime", Bundle.load(bundle).models("onnx", "int8")[0].id
    item = _sample_item(modality)
    t_item = np.resize(item, teacher.info.window_samples).astype(np.float32) \
        if modality == "audio" else item
    with Embedder(bundle, engine, threads=1, model_id=model_id) as emb, _one_thread(), \
            one_blas_thread():
        spec = emb.bundle.manifest.preprocessing

        def front() -> np.ndarray:
            if modality == "audio":
                return window_features(np.resize(item, spec.window_samples)[None], spec)
            return prepare_image(item, spec)[None]

        teacher_ms, student_ms = _interleaved_ms(lambda: teacher.embed([t_item]),
                                                 lambda: emb.embed_inputs(front()))
        _, frontend_ms = _interleaved_ms(lambda: None, front, min_seconds=0.5)
    return _Speed(teacher_ms, student_ms, frontend_ms, engine)


def _warm_start(plan: _Plan, teacher_spec: str | None, from_scratch: bool) -> str | None:
    """``pretrained:<preset>`` when the package ships a student distilled from the same
    reference teacher on the full public data: a few dozen files can fine-tune it, but cannot
    train a useful student from random weights (held-out centred cosine ~0)."""
    from hai_edge.distill.students.pretrained import PRETRAINED_DIR

    if from_scratch or teacher_spec not in (None, f"reference:{plan.modality}"):
        return None
    if not (PRETRAINED_DIR / plan.student / "student.json").is_file():
        return None
    return f"pretrained:{plan.student}"


def _installed_formats(say: Callable[[str], None]) -> tuple[str, ...]:
    """The export formats whose exporters are installed; says which are skipped and why."""
    from hai_edge.export.formats import FORMATS

    ready = tuple(name for name, fmt in FORMATS.items() if fmt.is_available())
    for name, fmt in FORMATS.items():
        if name not in ready:
            say(f"  (skipping {name}: its exporter is not installed; pip install "
                f"'hai-edge[{fmt.extra}]' adds it)")
    if not ready:
        raise HaiEdgeError("no exporter is installed: pip install 'hai-edge[demo]'")
    return ready


def _run_modality(plan: _Plan, out_dir: Path, quick: bool, say: Callable[[str], None],
                  teacher_spec: str | None = None, epochs: int | None = None,
                  allow_degraded: bool = False, from_scratch: bool = False) -> DemoResult:
    from hai_edge.bundle import Bundle
    from hai_edge.devices.bench import render_table, run_benchmark
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.backends import BACKENDS
    from hai_edge.export.bundle_builder import BuildOptions, build_bundle
    from hai_edge.corpus import load_corpus
    from hai_edge.distill.run import DistillConfig, distill, load_run
    from hai_edge.distill.data import student_inputs
    from hai_edge.distill.students import get_preset
    from hai_edge.distill.teacher_embed import embed_corpus
    from hai_edge.teachers import load_teacher

    st = _Stages(say)
    work = out_dir / plan.modality
    preset = get_preset(plan.student)
    items = load_corpus(plan.data, plan.modality, group_col=plan.group_col)
    spec_name = teacher_spec or f"reference:{plan.modality}"
    teacher = st.run("teacher_load", f"load reference teacher {spec_name}", lambda: load_teacher(spec_name))
    store_dir = work / "targets"
    spec = preset.frontend if plan.modality == "audio" else None
    views = 4 if quick else 8
    st.run("teacher_embed", f"teacher embeddings of {len(items)} sample files ({views} "
           "augmented views each)", lambda: embed_corpus(
               teacher, items, store_dir, spec=spec, views=views, batch_size=16,
               progress=sys.stderr.isatty()))
    init = _warm_start(plan, teacher_spec, from_scratch)
    cfg = DistillConfig(
        data=str(plan.data), student=plan.student, run_dir=str(work / "run"), targets=str(store_dir),
        epochs=epochs or ((6 if quick else 15) if init else (25 if quick else 40)),
        batch_size=32, holdout=0.25, group_col=plan.group_col, lr=5e-4 if init else 3e-3,
        patience=8, seed=0, progress=sys.stderr.isatty(), init=init,
    )
    how = f"fine-tune the shipped {plan.student} student" if init else \
        f"distil student {plan.student} from scratch"
    result = st.run("distill", f"{how} ({cfg.epochs} epochs max)", lambda: distill(cfg))
    art = load_run(work / "run")
    calib = student_inputs(art.spec, art.train_items, max_rows=64)
    held = student_inputs(art.spec, art.heldout_items, max_rows=32)
    if len(held) < 4:
        held = calib[-8:]
    dest = out_dir / "bundles" / plan.bundle_name
    formats = _installed_formats(say)
    bundle = st.run("export", f"export FP32 + INT8 to {', '.join(formats)} with gates",
                    lambda: build_bundle(
                        art.model, art.spec, dest, name=plan.bundle_name,
                        options=BuildOptions(formats=formats, allow_degraded=allow_degraded),
                        calibration=calib, heldout=held,
                        teacher=art.teacher_info, notices=(NOTICE,), overwrite=True,
                        provenance={"command": "hai-edge demo" + (" --quick" if quick else ""),
                                    "distill_run": art.meta.get("fingerprint", "")},
                    ))
    bench = st.run("benchmark", "benchmark every model (1 thread and all threads)",
                   lambda: run_benchmark(bundle, runs=10 if quick else 30, warmup=3))
    say("")
    for line in render_table(bundle, bench, None).splitlines():
        say("    " + line)
    say("")

    sample = items[0].path
    vectors: dict[str, np.ndarray] = {}

    def embed_everywhere() -> None:
        for name, info in BACKENDS.items():
            if not info.is_available() or not Bundle.load(dest).models(info.format):
                continue
            with Embedder(dest, name) as emb:
                if plan.modality == "audio":
                    vectors[name] = emb.embed_audio_file(sample).vectors.mean(axis=0)
                else:
                    vectors[name] = emb.embed_image_file(sample)[0].vector
                say(f"    {name:<12} {emb.entry.id:<14} |v| = {np.linalg.norm(vectors[name]):.3f}")

    st.run("embed", f"embed {sample.name} with each engine (INT8)", embed_everywhere)
    vs = list(vectors.values())
    cos = min((float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for i, a in enumerate(vs)
               for b in vs[i + 1:]), default=1.0)
    m = bundle.manifest
    sizes = {e.id: sum(m.files[f].size for f in e.files) / 1e6 for e in m.models}
    lat = {r.model: r.p50_ms[0] for r in bench if not r.error}
    int8 = {k: v for k, v in lat.items() if k.endswith("int8")} or lat
    speed = st.run("speed", "time the teacher and the INT8 student side by side (1 thread)",
                   lambda: _speed(teacher, dest, min(int8, key=int8.get), plan.modality))
    teacher.close()
    return DemoResult(plan.modality, dest, st.times, dict(result.fidelity), sizes, lat, speed, cos)


def _summary(results: list[DemoResult], total_s: float, say: Callable[[str], None]) -> None:
    say("=" * 78)
    say(f"hai-edge demo summary ({total_s / 60:.1f} min)   -- {NOTICE} --")
    for r in results:
        held = r.fidelity.get("rows") or {}
        mean_cos = held.get("cosine_mean", float("nan"))
        ctr = held.get("centred_cosine_mean", float("nan"))
        int8 = {k: v for k, v in r.latency_ms.items() if k.endswith("int8")}
        best = min(int8.items(), key=lambda kv: kv[1]) if int8 else (None, float("nan"))
        size = r.sizes_mb.get(best[0], float("nan")) if best[0] else float("nan")
        sp = r.speed
        speedup = sp.teacher_ms / sp.student_ms if sp.student_ms > 0 else float("nan")
        say(f"  {r.modality:<6} bundle {r.bundle}")
        say(f"         student vs teacher (held-out, n={held.get('n', 0)}): mean cosine {mean_cos:.3f}, "
            f"centred {ctr:.3f}")
        warning = not_learned_warning(r.fidelity)
        if warning:
            say(f"         WARNING: {warning}")
        say(f"         best INT8: {best[0]} {size:.2f} MB, {best[1]:.2f} ms/item at 1 thread")
        say(f"         speed, 1 thread each, timed side by side, median per {_ITEM[r.modality]} with "
            f"its own front end: reference teacher {sp.teacher_ms:.1f} ms vs INT8 student "
            f"{sp.student_ms:.2f} ms ({sp.engine}; front end {sp.frontend_ms:.2f}) -> {speedup:.0f}x")
        say(f"         same sample on every engine: min cosine {r.engine_cosine:.4f}")
        say("         stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in r.stages_s.items()))
    say("The reference teachers are demo encoders, not HeAR or Derm Foundation: these numbers show "
        "the pipeline works, not clinical quality.")


def _prepare_output(out: Path, modalities: tuple[str, ...], fresh: bool,
                    say: Callable[[str], None]) -> None:
    """Say where results go; with ``fresh`` remove this demo's earlier results (only the folders
    the demo itself writes), else say which ones are reused."""
    import shutil

    say(f"Demo output: {out.resolve()}")
    for modality in modalities:
        earlier = [out / modality, out / "bundles" / _PLANS[modality].bundle_name]
        present = [d for d in earlier if d.exists()]
        if not present:
            continue
        if fresh:
            for d in present:
                shutil.rmtree(d)
            say(f"  {modality}: earlier results removed (--fresh)")
        else:
            say(f"  {modality}: reusing earlier teacher embeddings and training where their inputs "
                "are unchanged (--fresh redoes everything)")


def run_demo(out_dir: str | Path, *, quick: bool = False, modalities: tuple[str, ...] = ("audio", "image"),
             say: Callable[[str], None] = print,
             teachers: dict[str, str] | None = None, epochs: int | None = None,
             allow_degraded: bool = False, from_scratch: bool = False,
             fresh: bool = False) -> list[DemoResult]:
    """Run the demo; ``teachers`` may replace the reference teacher per modality (a teacher spec).

    Results already in ``out_dir`` (teacher embeddings, a finished distillation) are reused when
    their inputs are unchanged; ``fresh`` removes them first.
    """
    out = Path(out_dir)
    if not DEMO_DATA.is_dir():
        raise HaiEdgeError(f"{DEMO_DATA}: the bundled sample set is missing from this install")
    _prepare_output(out, modalities, fresh, say)
    t0 = time.perf_counter()
    results = []
    for i, modality in enumerate(modalities, start=1):
        plan = _PLANS[modality]
        say(f"[{i}/{len(modalities)}] {modality}: {plan.data.parent.name} sample set -> "
            f"{plan.bundle_name}")
        results.append(_run_modality(plan, out, quick, say, (teachers or {}).get(modality), epochs,
                                     allow_degraded, from_scratch))
    _summary(results, time.perf_counter() - t0, say)
    return results

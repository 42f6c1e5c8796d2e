"""What the suite measures: the teacher, the FP32 student and each INT8 model, as scorers.

A *student* scorer (a bundle model on its engine, or a distillation run's FP32 torch module)
takes the bundle's front-end output; the *teacher* takes media (mono windows at its rate, or RGB
photos) and does its own preprocessing. All of them return embeddings in the teacher's space, so
the bundle's heads apply to every one of them and cosines between them are meaningful.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError

__all__ = ["Scorer", "ScorerKind", "Target", "open_target"]


class ScorerKind(str, enum.Enum):
    TEACHER = "teacher"
    FP32 = "fp32"
    INT8 = "int8"


@dataclasses.dataclass
class Scorer:
    """``embed`` maps front-end inputs (students) or a list of media (teacher) to ``[n, dim]``."""

    name: str
    kind: ScorerKind
    embed: Callable[[Any], np.ndarray]
    close: Callable[[], None] = lambda: None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Target:
    """An opened bundle or run: its front-end spec, scorers, heads and what was left out."""

    name: str
    modality: str
    spec: Any  # AudioFrontendSpec | ImageFrontendSpec
    scorers: list[Scorer]
    heads: list[Any]  # hai_edge.runtime.heads.Head
    teacher_info: dict[str, Any]
    notes: list[str]

    def close(self) -> None:
        for s in self.scorers:
            s.close()


def _is_run(path: Path) -> bool:
    return (path / "run.json").is_file() and (path / "student.pt").is_file()


def _torch_scorer(run_dir: Path, threads: int) -> tuple[Scorer, Any, dict[str, Any]]:
    """The FP32 student of a distillation run (torch, CPU)."""
    import torch

    from hai_edge.distill.run import load_run

    torch.set_num_threads(max(1, threads))
    art = load_run(run_dir)

    def embed(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return art.model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    return (Scorer("student-fp32", ScorerKind.FP32, embed, detail={"run_dir": str(run_dir)}),
            art.spec, dict(art.teacher_info))


def _teacher_scorer(spec_id: str, modality: str, notes: list[str]) -> Scorer | None:
    from hai_edge.teachers import is_lookup_teacher, load_teacher

    try:
        teacher = load_teacher(spec_id)
    except (HaiEdgeError, ImportError, OSError) as exc:
        notes.append(f"teacher {spec_id} not loaded ({exc}); figures are for the students only")
        return None
    if is_lookup_teacher(teacher) or teacher.info.modality != modality:
        notes.append(f"teacher {spec_id} cannot embed shifted media; left out")
        teacher.close()
        return None
    return Scorer("teacher", ScorerKind.TEACHER, lambda media: teacher.embed(media),
                  teacher.close, {"id": teacher.info.id, **teacher.info.to_dict()})


def _bundle_scorers(bundle: Any, models: Sequence[str] | None, threads: int,
                    notes: list[str]) -> list[Scorer]:
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.backends import BACKENDS

    out = []
    known = [e.id for e in bundle.manifest.models]
    for mid in models or ():
        if mid not in known:
            raise HaiEdgeError(f"{bundle.root}: no model {mid!r} (it has: {', '.join(known)})")
    for entry in bundle.manifest.models:
        if models and entry.id not in models:
            continue
        info = next(i for i in BACKENDS.values() if i.format is entry.format)
        if not info.is_available():
            notes.append(f"{entry.id} left out: its engine {info.name} is not installed")
            continue
        emb = Embedder(bundle, model_id=entry.id, threads=threads)
        kind = ScorerKind.INT8 if entry.precision.value == "int8" else ScorerKind.FP32
        out.append(Scorer(entry.id, kind, emb.embed_inputs, emb.close,
                          {"format": entry.format.value, "precision": entry.precision.value,
                           "engine": emb.backend_name}))
    if not out:
        raise HaiEdgeError(f"{bundle.root}: none of its models can run here")
    return out


def open_target(target: str, *, models: Sequence[str] | None = None, teacher: str | None = "auto",
                threads: int = 1) -> Target:
    """Open ``target`` (a bundle directory or built-in name, or a distillation run directory).

    ``teacher``: ``"auto"`` (the id in the bundle's provenance / the run), a teacher spec
    (``reference:audio``), or ``None`` for no teacher. A bundle whose provenance names a run
    directory that still exists also gets that run's FP32 student."""
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.heads import load_heads

    notes: list[str] = []
    path = Path(target)
    if path.is_dir() and _is_run(path):
        fp32, spec, tinfo = _torch_scorer(path, threads)
        meta = json.loads((path / "run.json").read_text())
        modality = str(meta.get("data", {}).get("modality") or tinfo.get("modality"))
        scorers, heads, name = [fp32], [], path.name
        notes.append("a run has no INT8 models or heads: pass its exported bundle for those")
    else:
        bundle = Bundle.load(target)
        m = bundle.manifest
        modality, spec, name = m.modality.value, m.preprocessing, m.name
        tinfo = dict(m.provenance.get("teacher") or {})
        scorers = _bundle_scorers(bundle, models, threads, notes)
        heads = load_heads(bundle)
        run_dir = Path(str(m.provenance.get("run_dir") or ""))
        if str(run_dir) not in ("", ".") and _is_run(run_dir) and not any(
                s.kind is ScorerKind.FP32 for s in scorers):
            scorers.insert(0, _torch_scorer(run_dir, threads)[0])
        elif not any(s.kind is ScorerKind.FP32 for s in scorers):
            notes.append("no FP32 student (the bundle has none and its run directory "
                         f"{run_dir or '?'} is not here): INT8-vs-FP32 fidelity not measured")
    t_id = tinfo.get("id") if teacher == "auto" else teacher
    if t_id:
        t = _teacher_scorer(str(t_id), modality, notes)
        if t is not None:
            scorers.insert(0, t)
    elif teacher == "auto":
        notes.append("no teacher recorded; figures are for the students only")
    return Target(name, modality, spec, scorers, heads, tinfo, notes)

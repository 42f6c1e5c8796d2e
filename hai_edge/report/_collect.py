"""Data collection for ``hai-edge report``: the run, the bundle and their held-out embeddings.

The report compares embedders on the run's held-out rows (the clean view 0 of every held-out item,
row-aligned with the teacher's store):

- ``teacher``: the stored teacher targets (``run.json["targets"]["store"]``);
- ``student-fp32``: the run's torch student (``DistillRun.student_model``) on the rows' model
  inputs, or the bundle's FP32 model through the run-side engine when no torch model can be loaded;
- ``<format>-int8``: each INT8 model of the bundle, through :class:`hai_edge.runtime.Embedder`.

Model inputs are rebuilt from the media exactly as distillation built them (``row_features``:
same window cut, same front end), so every embedder sees identical inputs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import sha256_file
from hai_edge.distill.rundir import DistillRun
from hai_edge.errors import HaiEdgeError, MissingDependencyError

__all__ = [
    "Collected",
    "EmbedderInfo",
    "LabelTable",
    "collect",
    "load_benchmarks",
    "read_labels",
    "resolve_sources",
    "tool_versions",
]

TEACHER = "teacher"
STUDENT = "student-fp32"
_ID_GUESSES = ("id", "file_id", "sample_id", "img_id", "item_id")


@dataclasses.dataclass(frozen=True)
class EmbedderInfo:
    """One column of the comparison: what produced the vectors, on which engine."""

    name: str  # "teacher", "student-fp32", "onnx-int8", ...
    label: str  # for humans: "Teacher", "Student FP32", "ONNX INT8"
    source: str  # "stored teacher targets", "torch (run)", "onnxruntime, bundle model onnx-int8"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Collected:
    """Everything the statistics need, as arrays aligned on held-out rows."""

    run_dir: Path | None
    run_meta: dict[str, Any]
    bundle: Any  # hai_edge.bundle.Bundle | None
    modality: str
    row_items: list[str]  # item id per held-out row
    embeddings: dict[str, np.ndarray]  # name -> [n_rows, dim] float64
    embedders: list[EmbedderInfo]
    teacher_train_mean: np.ndarray | None
    item_meta: dict[str, dict[str, str]]  # held-out item id -> metadata (labels, subgroups)
    item_group: dict[str, str]
    label_source: dict[str, Any]  # where the labels came from (path, sha256, id column)
    notes: list[str]  # things the reader must know (skipped engines, mismatches)


# ------------------------------------------------------------------------------ sources
def resolve_sources(target: str | None, run: str | None, bundle: str | None
                    ) -> tuple[Path | None, Any]:
    """(run_dir, Bundle) from ``RUN_DIR|BUNDLE`` and/or ``--run`` / ``--bundle``. A bundle alone
    finds its run through ``provenance.run_dir`` when that directory still exists."""
    from hai_edge.bundle import Bundle

    run_dir = Path(run) if run else None
    bundle_arg = bundle
    if target:
        p = Path(target)
        if (p / "run.json").is_file():
            if run_dir is not None:
                raise HaiEdgeError(f"{target}: a run directory, and --run was given as well")
            run_dir = p
        elif bundle_arg is None:
            bundle_arg = target
        else:
            raise HaiEdgeError(f"{target}: not a run directory (no run.json), and --bundle "
                               "was given as well")
    if run_dir is not None and not (run_dir / "run.json").is_file():
        raise HaiEdgeError(f"{run_dir}: not a distillation run directory (no run.json)")
    b = Bundle.load(bundle_arg, verify=True) if bundle_arg else None
    if run_dir is None and b is not None:
        linked = b.manifest.provenance_info().run_dir
        if linked and (Path(linked) / "run.json").is_file():
            run_dir = Path(linked)
    if run_dir is None and b is None:
        from hai_edge.bundle import builtin_bundles

        names = ", ".join(builtin_bundles()) or "none installed"
        raise HaiEdgeError("give a run directory (hai-edge distill -o) and/or a bundle "
                           f"(a directory or a built-in name: {names})")
    return run_dir, b


# ------------------------------------------------------------------------------ labels
@dataclasses.dataclass(frozen=True)
class LabelTable:
    """Rows of a labels CSV keyed by item id (the column that matches the run's ids)."""

    path: Path
    id_col: str
    rows: dict[str, dict[str, str]]
    sha256: str


def read_labels(path: str | os.PathLike[str], item_ids: Sequence[str],
                id_col: str | None = None) -> LabelTable:
    """Read ``path``; the id column is ``id_col`` or the column whose values match most of
    ``item_ids`` (a labels CSV need not be the corpus CSV the run was trained from)."""
    p = Path(path)
    if not p.is_file():
        raise HaiEdgeError(f"{p}: no such labels CSV")
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = [{k: (v or "").strip() for k, v in r.items() if k} for r in reader]
    if not rows:
        raise HaiEdgeError(f"{p}: the labels CSV has no rows")
    wanted = set(item_ids)
    if id_col is not None:
        if id_col not in columns:
            raise HaiEdgeError(f"{p}: no column {id_col!r} (has: {', '.join(columns)})")
        best = id_col
    else:
        def hits(col: str) -> int:
            return sum(1 for r in rows if r.get(col, "") in wanted)

        order = [c for c in _ID_GUESSES if c in columns] + [c for c in columns
                                                             if c not in _ID_GUESSES]
        best = max(order, key=hits)
        if hits(best) == 0:
            raise HaiEdgeError(f"{p}: no column matches the run's item ids (e.g. "
                               f"{next(iter(sorted(wanted)), '?')!r}); pass --id-col")
    table: dict[str, dict[str, str]] = {}
    for r in rows:
        key = r.get(best, "")
        if key in wanted and key not in table:
            table[key] = r
    return LabelTable(path=p, id_col=best, rows=table, sha256=sha256_file(p))


# ------------------------------------------------------------------------------ benchmarks
def load_benchmarks(paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``hai-edge benchmark --json`` documents, teacher-replica rows of
    ``benchmarks/teacher_vs_student.py``), told apart by their shape."""
    benches: list[dict[str, Any]] = []
    replica: list[dict[str, Any]] = []
    for path in paths:
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HaiEdgeError(f"{p}: cannot read benchmark JSON ({exc})") from None
        if isinstance(doc, dict) and isinstance(doc.get("results"), list):
            benches.append({**doc, "file": str(p)})
        elif isinstance(doc, list) and all(isinstance(r, dict) and "ratio_model" in r
                                           for r in doc):
            replica.extend({**r, "file": str(p)} for r in doc)
        else:
            raise HaiEdgeError(f"{p}: neither `hai-edge benchmark --json` output nor "
                               "benchmarks/teacher_vs_student.py output")
    return benches, replica


# ------------------------------------------------------------------------------ embeddings
_FORMAT_LABEL = {"onnx": "ONNX", "openvino": "OpenVINO", "tflite": "TFLite"}


def _label_for(model_id: str) -> str:
    fmt, _, prec = model_id.partition("-")
    return f"{_FORMAT_LABEL.get(fmt, fmt)} {prec.upper()}".strip()


def _heldout_rows(meta: Mapping[str, Any], held_ids: set[str], train_ids: set[str]
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Clean held-out rows of the teacher's store, and the teacher's TRAIN mean (all views), the
    centre distillation used."""
    from hai_edge.distill.data import select_rows
    from hai_edge.distill.store import EmbeddingStore

    where = (meta.get("targets") or {}).get("store")
    store = EmbeddingStore(where) if where else None
    if store is None or not store.meta:
        raise HaiEdgeError(f"the run's teacher store {where!r} is gone (run.json targets.store); "
                           "the report needs the stored teacher embeddings")
    rows = store.load()
    ids = np.array([str(i) for i in rows["item_id"]])
    is_held = np.isin(ids, sorted(held_ids))
    held = select_rows(rows, is_held & (rows["view"] == 0))
    train = np.asarray(rows["vector"][np.isin(ids, sorted(train_ids))], dtype=np.float32)
    if not len(held["sample_id"]):
        raise HaiEdgeError(f"{store.root}: no clean rows of the run's held-out items")
    return held, train.mean(axis=0).astype(np.float64)


def _row_inputs(spec: Any, rows: Mapping[str, np.ndarray], items: Mapping[str, Any],
                say: Callable[[str], None]) -> np.ndarray:
    from hai_edge.distill.data import load_media, row_features

    say(f"computing model inputs of {len(rows['sample_id'])} held-out row(s)")
    out = np.empty((len(rows["sample_id"]), *spec.input_shape()), dtype=np.float32)
    cached_id, media = None, None
    for i, (iid, start, aug) in enumerate(zip(rows["item_id"], rows["start_s"], rows["aug"])):
        item = items[str(iid)]
        if cached_id != item.item_id:
            media, cached_id = load_media(item, spec), item.item_id
        out[i] = row_features(media, spec, float(start), str(aug), item.item_id)
    return out


def _run_inputs(run: DistillRun, spec: Any, rows: Mapping[str, np.ndarray],
                items: Mapping[str, Any], say: Callable[[str], None]) -> np.ndarray:
    """The run's held-out inputs as ``DistillRun.heldout_with_targets`` gives them (the run's
    feature cache, the rows its own report and the export gate scored), checked row by row
    against the store; rebuilt from the media when the cache does not line up."""
    say("loading the run's held-out inputs (its feature cache)")
    got = run.heldout_with_targets()
    if got is not None and got[1].shape == rows["vector"].shape and np.array_equal(
            got[1], np.asarray(rows["vector"], dtype=np.float32)):
        return np.array(got[0], dtype=np.float32)  # a writable copy of the memory map
    return _row_inputs(spec, rows, items, say)


def _torch_student(model: Any, x: np.ndarray, threads: int | None) -> np.ndarray:
    import torch

    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        with torch.no_grad():
            out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + 64]))).numpy()
                   for i in range(0, len(x), 64)]
    finally:
        torch.set_num_threads(before)
    return np.concatenate(out).astype(np.float64)


def _bundle_model(bundle: Any, model_id: str, x: np.ndarray, threads: int | None) -> np.ndarray:
    from hai_edge.runtime import Embedder

    with Embedder(bundle, model_id=model_id, threads=threads or 1) as emb:
        return emb.embed_inputs(x).astype(np.float64)


@dataclasses.dataclass
class _Run:
    """What the report needs of a run (``load_run``'s fields; ``model`` None without torch)."""

    distill_run: DistillRun
    model: Any
    spec: Any
    meta: dict[str, Any]
    train_items: list[Any]
    heldout_items: list[Any]


def _have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _load_run(run_dir: Path) -> _Run:
    """The run's student, spec and items when torch is installed; otherwise run.json +
    split.json only (the FP32 student then comes from the bundle's FP32 model)."""
    run = DistillRun.open(run_dir)
    if _have_torch():
        if not run.has_student:
            raise HaiEdgeError(f"{run_dir}: not a distillation run (needs run.json and "
                               "student.pt)")
        art = run.artifacts()
        return _Run(run, art.model, art.spec, dict(art.meta), art.train_items, art.heldout_items)
    train, heldout = run.split_items(check_media=False)
    return _Run(run, None, run.spec, dict(run.meta), train, heldout)


def _fp32_entry(bundle: Any) -> Any:
    """The bundle's first FP32 model whose engine is installed, or None."""
    if bundle is None:
        return None
    return next((e for e in bundle.manifest.models if e.precision.value == "fp32"
                 and _engine_of(e).is_available()), None)


def _engine_of(entry: Any) -> Any:
    from hai_edge.runtime.backends import BACKENDS

    return next(b for b in BACKENDS.values() if b.format is entry.format)


def collect(run_dir: Path | None, bundle: Any, *, labels: LabelTable | None = None,
            label_path: str | None = None, id_col: str | None = None,
            group_col: str | None = None, threads: int | None = 1,
            say: Callable[[str], None] = lambda _m: None) -> Collected:
    """Load the run (and bundle), rebuild the held-out inputs and embed them with every
    embedder available here. Without a run only the bundle's manifest can be reported."""
    notes: list[str] = []
    if run_dir is None:
        m = bundle.manifest
        notes.append("no run directory: held-out embeddings, probes and subgroups need the "
                     "distillation run (its teacher targets); only the bundle's recorded "
                     "figures are shown")
        return Collected(None, {}, bundle, m.modality.value, [], {}, [], None, {}, {}, {}, notes)
    say(f"loading run {run_dir}")
    run = _load_run(run_dir)
    meta = dict(run.meta)
    held_items = {it.item_id: it for it in run.heldout_items}
    rows, train_mean = _heldout_rows(meta, set(held_items),
                                     {it.item_id for it in run.train_items})
    row_items = [str(i) for i in rows["item_id"]]
    x = _run_inputs(run.distill_run, run.spec, rows, held_items, say)
    emb: dict[str, np.ndarray] = {TEACHER: np.asarray(rows["vector"], dtype=np.float64)}
    embedders = [EmbedderInfo(TEACHER, "Teacher", f"stored teacher targets "
                              f"({meta.get('teacher', {}).get('id', '?')})")]
    if run.model is not None:
        say("embedding held-out rows with the torch student (FP32)")
        emb[STUDENT] = _torch_student(run.model, x, threads)
        embedders.append(EmbedderInfo(STUDENT, "Student FP32", "torch model of the run (FP32)"))
    else:
        fp32 = _fp32_entry(bundle)
        if fp32 is None:
            raise MissingDependencyError("the FP32 student of a run (no torch, and no bundle "
                                         "FP32 model on an installed engine)", "export", "torch")
        say(f"embedding held-out rows with the bundle's {fp32.id} (torch is not installed)")
        emb[STUDENT] = _bundle_model(bundle, fp32.id, x, threads)
        embedders.append(EmbedderInfo(STUDENT, "Student FP32",
                                      f"{_engine_of(fp32).name}, bundle model {fp32.id}"))
        notes.append(f"torch is not installed: the FP32 student is the bundle's {fp32.id}")
    if bundle is not None:
        m = bundle.manifest
        if m.preprocessing.to_dict() != run.spec.to_dict():
            notes.append("the bundle's front end differs from the run's: the bundle was not "
                         "exported from this run; its models get the bundle's own front end")
            bx = _row_inputs(m.preprocessing, rows, held_items, say)
        else:
            bx = x
        linked = m.provenance_info().data_hash
        if linked and linked != (meta.get("data") or {}).get("corpus_hash"):
            notes.append("the bundle's data_hash differs from the run's corpus hash: the bundle "
                         "may come from another run")
        if m.embedding_dim != emb[TEACHER].shape[1]:
            notes.append(f"the bundle outputs {m.embedding_dim}-d vectors, the teacher "
                         f"{emb[TEACHER].shape[1]}-d: INT8 models are compared with FP32 only")
        for entry in m.models:
            if entry.precision.value != "int8":
                continue
            info = _engine_of(entry)
            if not info.is_available():
                notes.append(f"{entry.id}: skipped, its engine is not installed "
                             f"(pip install 'hai-edge[{info.extra}]')")
                continue
            say(f"embedding held-out rows with {entry.id} ({info.name})")
            emb[entry.id] = _bundle_model(bundle, entry.id, bx, threads)
            embedders.append(EmbedderInfo(entry.id, _label_for(entry.id),
                                          f"{info.name}, bundle model {entry.id}"))
    else:
        notes.append("no bundle given: INT8 figures and speed/size need `--bundle BUNDLE`")
    item_meta = {iid: dict(it.meta) for iid, it in held_items.items()}
    label_source: dict[str, Any] = {"source": "run (split.json item metadata)"}
    if labels is None and label_path:
        labels = read_labels(label_path, sorted(held_items), id_col)
    if labels is not None:
        matched = 0
        for iid in item_meta:
            if iid in labels.rows:
                item_meta[iid] = {**item_meta[iid], **labels.rows[iid]}
                matched += 1
        label_source = {"source": str(labels.path), "sha256": labels.sha256,
                        "id_col": labels.id_col, "matched_heldout_items": matched,
                        "heldout_items": len(item_meta)}
        if matched < len(item_meta):
            notes.append(f"{len(item_meta) - matched} held-out item(s) are not in "
                         f"{labels.path.name}: their labels come from the run's metadata")
    if group_col:
        missing = [i for i, md in item_meta.items() if group_col not in md]
        if len(missing) == len(item_meta):
            raise HaiEdgeError(f"no column {group_col!r} for groups in the items' metadata")
        groups = {i: (item_meta[i].get(group_col) or f"item:{i}") for i in item_meta}
    else:
        groups = {i: (held_items[i].group or f"item:{i}") for i in item_meta}
    modality = "audio" if hasattr(run.spec, "sample_rate") else "image"
    return Collected(run_dir, meta, bundle, modality, row_items, emb, embedders, train_mean,
                     item_meta, groups, label_source, notes)


def tool_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of what computed the report (the run and bundle record their own)."""
    out = {}
    for dist in ("hai-edge", "numpy", "scikit-learn", "matplotlib", *extra):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out

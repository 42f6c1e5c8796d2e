"""``distill``: train a small student to reproduce a teacher's embeddings, then report fidelity.

Inputs: teacher embeddings in an :class:`EmbeddingStore` (``targets``), or a teacher spec that is
first run into ``RUN_DIR/targets`` (resumable), plus the corpus the store was computed from. The
held-out split is by group (``split_by_group``): no window or view of a held-out item or group is
ever trained on. Outputs in ``RUN_DIR``::

    run.json        config, preset + params/MACs, front-end spec, teacher info (licence), corpus
                    hash, split sizes, dims, which embedding a bundle exports, versions, history
    split.json      train / held-out item ids
    checkpoint.pt   last epoch (model, optimizer, scheduler, RNG, history): re-running resumes
    student.pt      best weights (by held-out mean cosine)
    fidelity.json / fidelity.md   the held-out report (``fidelity``)
    cache/          student inputs computed once by the runtime front end
    targets/        the teacher's store when ``teacher`` was given

``load_run`` gives the export command the model (eval mode, returning the exported embedding),
its spec and the train/held-out items (calibrate on train, gate on held-out).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec, spec_from_dict
from hai_edge.corpus import CorpusItem, corpus_hash, load_corpus, split_by_group
from hai_edge.distill.data import build_feature_cache, fit_feature_norm, select_rows, student_inputs
from hai_edge.distill.train import LossWeights, Progress, StudentAug, TrainSetup, train
from hai_edge.evaluation.probes import LabelSpec
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.students import StudentPreset, count_params_and_macs, get_preset

if TYPE_CHECKING:
    import torch

__all__ = [
    "DistillConfig",
    "ExportOutput",
    "LossWeights",
    "RunArtifacts",
    "RunResult",
    "StudentAug",
    "distill",
    "load_run",
    "student_inputs",
]

RUN_SCHEMA_VERSION = 1


class ExportOutput(str, enum.Enum):
    """Which embedding the exported model returns."""

    TEACHER = "teacher"  # projected + de-normalised into the teacher's space (probes keep working)
    STUDENT = "student"  # the student's own (smaller) embedding


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Everything ``hai-edge distill`` needs. Exactly one of ``targets`` / ``teacher``."""

    data: str  # corpus directory or CSV (the one the store was computed from)
    student: str  # preset name (``STUDENTS``)
    run_dir: str
    targets: str | None = None  # an EmbeddingStore directory
    teacher: str | None = None  # a teacher spec (``load_teacher``), run into RUN_DIR/targets
    views: int = 4  # augmented teacher views per item (besides the clean view 0), with teacher
    teacher_batch_size: int = 16
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    loss: LossWeights = LossWeights()
    seed: int = 0
    holdout: float = 0.2
    group_col: str | None = None
    id_col: str | None = None  # CSV column of item ids (default: load_corpus's detection)
    path_col: str | None = None
    label: str | None = None  # report only: probe label column
    positive: tuple[str, ...] = ()
    label_filter: tuple[tuple[str, str], ...] = ()
    subgroups: tuple[str, ...] = ()
    probe_repeats: int = 5  # report only: repetitions of the grouped 5-fold probe CV
    patience: int = 8  # early stopping: epochs without a better held-out mean cosine
    max_minutes: float | None = None  # wall-clock budget of this call (teacher + features + train)
    num_threads: int | None = None
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    student_aug: StudentAug = StudentAug.NONE
    export_output: ExportOutput = ExportOutput.TEACHER
    stop_after_epoch: int | None = None  # pause (resumably) after this epoch
    init: str | None = None  # warm start: a run directory or pretrained:<preset>
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "student_aug", StudentAug(self.student_aug))
        object.__setattr__(self, "export_output", ExportOutput(self.export_output))
        object.__setattr__(self, "positive", tuple(self.positive))
        object.__setattr__(self, "subgroups", tuple(self.subgroups))
        object.__setattr__(self, "label_filter", tuple(tuple(f) for f in self.label_filter))
        if isinstance(self.loss, Mapping):
            object.__setattr__(self, "loss", LossWeights(**self.loss))
        if (self.targets is None) == (self.teacher is None):
            raise HaiEdgeError("give exactly one of --targets STORE or --teacher SPEC")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch size must be >= 2"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight decay >= 0"),
            (0 < self.holdout < 1, "holdout fraction must be between 0 and 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.probe_repeats >= 1, "probe repeats must be >= 1"),
            (self.views >= 0, "views must be >= 0"),
            (self.max_minutes is None or self.max_minutes > 0, "max minutes must be > 0"),
            (self.num_threads is None or self.num_threads >= 1, "threads must be >= 1"),
            (self.device in ("cpu", "cuda", "auto"), "device must be cpu, cuda or auto"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HaiEdgeError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["student_aug"] = self.student_aug.value
        d["export_output"] = self.export_output.value
        d["positive"] = list(self.positive)
        d["subgroups"] = list(self.subgroups)
        d["label_filter"] = [f"{c}={v}" for c, v in self.label_filter]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DistillConfig:
        d = dict(d)
        d["label_filter"] = tuple(tuple(str(f).split("=", 1)) for f in d.get("label_filter", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def label_spec(self) -> LabelSpec | None:
        if not self.label:
            return None
        return LabelSpec(self.label, self.positive, self.label_filter)


@dataclasses.dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str  # "finished" or "paused" (re-run the same command to continue)
    stopped: str  # completed | early_stopping | time_budget | stop_after_epoch
    epochs_done: int
    best_epoch: int
    fidelity: dict[str, Any]
    meta: dict[str, Any]


@dataclasses.dataclass
class RunArtifacts:
    model: torch.nn.Module  # eval mode; input [N, *spec.input_shape()] -> exported embedding
    spec: AudioFrontendSpec | ImageFrontendSpec
    meta: dict[str, Any]  # run.json
    teacher_info: dict[str, Any]
    heldout_items: list[CorpusItem]
    train_items: list[CorpusItem]


# ------------------------------------------------------------------------------ helpers
def _versions() -> dict[str, str]:
    out = {}
    for dist in ("hai-edge", "torch", "numpy", "scikit-learn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _json_safe(v: Any) -> Any:
    """Non-finite floats become null: the files must be strict JSON (browsers read them too)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(_json_safe(data), fh, indent=2, allow_nan=False)
        fh.write("\n")


def _check_columns(items: Sequence[CorpusItem], cfg: DistillConfig) -> None:
    """Fail before any work when a named column is not in the corpus."""
    cols = set().union(*(it.meta.keys() for it in items)) if items else set()
    wanted = [c for c in (cfg.label, *cfg.subgroups, *(c for c, _ in cfg.label_filter)) if c]
    missing = [c for c in wanted if c not in cols]
    if missing:
        raise HaiEdgeError(f"{cfg.data}: no column(s) {', '.join(missing)} "
                           f"(has: {', '.join(sorted(cols)) or 'none'})")


def _open_targets(cfg: DistillConfig, items: list[CorpusItem], run_dir: Path,
                  preset: StudentPreset, progress: Progress) -> EmbeddingStore:
    if cfg.targets is not None:
        store = EmbeddingStore(cfg.targets)
        if not store.meta:
            raise HaiEdgeError(f"{cfg.targets}: not an embedding store (no store.json)")
        return store
    existing = EmbeddingStore(run_dir / "targets")
    if existing.meta and (existing.meta.get("views"), existing.meta.get("seed")) == (
            cfg.views, cfg.seed):
        done = existing.done_items() | {s.get("item_id") for s in existing.meta.get("skipped", [])}
        if all(it.item_id in done for it in items):
            return existing  # complete: no need to load the teacher at all
    from hai_edge.distill.teacher_embed import embed_corpus
    from hai_edge.teachers import load_teacher

    device = _device(cfg)
    teacher = load_teacher(str(cfg.teacher), device=device)
    try:
        if teacher.info.modality != preset.modality.value:
            raise HaiEdgeError(f"teacher {teacher.info.id} is {teacher.info.modality}; student "
                               f"{preset.name} is {preset.modality.value}")
        progress.line(f"teacher {teacher.info.id}: embedding {len(items)} items x {cfg.views} "
                      f"views into {run_dir / 'targets'}")
        return embed_corpus(teacher, items, run_dir / "targets", spec=None, views=cfg.views,
                            batch_size=cfg.teacher_batch_size, seed=cfg.seed,
                            progress=cfg.progress)
    finally:
        teacher.close()


def _device(cfg: DistillConfig) -> str:
    if cfg.device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if cfg.device == "cuda":
        raise HaiEdgeError("device cuda requested but torch sees no CUDA device")
    return "cpu"


def _teacher_info(store: EmbeddingStore) -> dict[str, Any]:
    info = store.meta.get("teacher")
    if isinstance(info, Mapping):
        return dict(info)
    return {"id": str(info or "unknown"), "licence": "unknown"}


def _student_spec(preset: StudentPreset, teacher: Mapping[str, Any]
                  ) -> AudioFrontendSpec | ImageFrontendSpec:
    """The preset's spec, with the audio window set to the teacher's window length."""
    spec = preset.frontend
    if isinstance(spec, AudioFrontendSpec) and teacher.get("window_samples") and teacher.get(
            "sample_rate"):
        window_s = round(float(teacher["window_samples"]) / float(teacher["sample_rate"]), 6)
        if abs(window_s - spec.window_s) > 1e-9:
            spec = dataclasses.replace(spec, window_s=window_s, hop_s=round(0.9 * window_s, 6),
                                       min_clip_s=min(spec.min_clip_s, window_s))
    return spec


def _fingerprint(cfg: DistillConfig, preset: StudentPreset, spec_dict: Mapping[str, Any],
                 rows: Mapping[str, np.ndarray], split: Mapping[str, list[str]],
                 init_sha: str | None = None) -> str:
    """What the trained weights depend on; a checkpoint with another fingerprint is refused."""
    h = hashlib.sha256()
    if init_sha:
        h.update(f"init:{init_sha}\n".encode())
    keys = ("student", "epochs", "batch_size", "lr", "weight_decay", "loss", "seed", "holdout",
            "student_aug")
    d = cfg.to_dict()
    h.update(json.dumps({k: d[k] for k in keys}, sort_keys=True).encode())
    h.update(json.dumps({"preset": preset.to_dict(), "spec": spec_dict, "split": split},
                        sort_keys=True).encode())
    for sid, aug in zip(rows["sample_id"], rows["aug"]):
        h.update(f"{sid}\0{aug}\n".encode())
    h.update(np.ascontiguousarray(rows["vector"], dtype=np.float32).tobytes())
    return h.hexdigest()


def _load_init(cfg: DistillConfig, preset: StudentPreset, teacher: Mapping[str, Any],
               spec: AudioFrontendSpec | ImageFrontendSpec) -> Any:
    """The warm-start weights (``students.pretrained``), checked against this run."""
    if not cfg.init:
        return None
    from hai_edge.distill.students.pretrained import load_init

    init = load_init(cfg.init)
    where = f"--init {cfg.init}"
    if init.preset != preset.name:
        raise HaiEdgeError(f"{where}: is a {init.preset} student; this run trains {preset.name}")
    if init.teacher_id != teacher.get("id"):
        raise HaiEdgeError(f"{where}: follows teacher {init.teacher_id!r}; this store's is "
                           f"{teacher.get('id')!r}")
    ignore = ("feature_mean", "feature_std")
    mine = {k: v for k, v in spec.to_dict().items() if k not in ignore}
    theirs = {k: v for k, v in init.preprocessing.items() if k not in ignore}
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise HaiEdgeError(f"{where}: was trained with another front end ({', '.join(diff)})")
    return init


def _build_model(preset: StudentPreset, teacher_dim: int, seed: int) -> Any:
    import torch

    from hai_edge.distill.students._nets import DistillNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DistillNet(preset.build(seed), teacher_dim)


def export_model(net: Any, output: ExportOutput) -> torch.nn.Module:
    """The exported module (eval mode) for a trained :class:`DistillNet`."""
    from hai_edge.distill.students._nets import EmbeddingModel

    return EmbeddingModel(net.student, net.head if output is ExportOutput.TEACHER else None)


# ------------------------------------------------------------------------------ distill
def distill(config: DistillConfig) -> RunResult:
    """Run (or resume) a distillation; see the module docstring for what lands in RUN_DIR.

    torch's thread count and deterministic-algorithms flag are set for the call and restored."""
    import torch

    threads = torch.get_num_threads()
    det = (torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        return _distill(config)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det[0], warn_only=det[1])


def _distill(cfg: DistillConfig) -> RunResult:
    import torch

    t_start = time.monotonic()
    deadline = t_start + 60.0 * cfg.max_minutes if cfg.max_minutes else None
    progress = Progress(cfg.progress)
    preset = get_preset(cfg.student)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    items = load_corpus(cfg.data, preset.modality.value, group_col=cfg.group_col,
                        id_col=cfg.id_col, path_col=cfg.path_col)
    _check_columns(items, cfg)
    store = _open_targets(cfg, items, run_dir, preset, progress)
    teacher = _teacher_info(store)
    if store.meta.get("modality") not in (None, preset.modality.value):
        raise HaiEdgeError(f"store {store.root} holds {store.meta.get('modality')} embeddings; "
                           f"student {preset.name} is {preset.modality.value}")
    rows = store.load()
    if len(rows["sample_id"]) == 0:
        raise HaiEdgeError(f"{store.root}: the store is empty")
    by_id = {it.item_id: it for it in items}
    known = np.array([str(i) in by_id for i in rows["item_id"]])
    rows_unmatched = int((~known).sum())
    example_id = str(rows["item_id"][0])
    rows = select_rows(rows, known)
    if len(rows["sample_id"]) == 0:
        raise HaiEdgeError(
            f"no store item id matches an item of {cfg.data} (store ids look like "
            f"{example_id!r}, corpus ids like {items[0].item_id!r}); pass "
            f"the same --id-col/--path-col as to `teacher embed`")
    used_ids = set(str(i) for i in rows["item_id"])
    used = [it for it in items if it.item_id in used_ids]
    train_items, held_items = split_by_group(used, cfg.holdout, cfg.seed)
    held_ids = {it.item_id for it in held_items}
    split = {"train": [it.item_id for it in train_items], "heldout": sorted(held_ids)}
    _write_json(run_dir / "split.json", {**split, "items": {
        it.item_id: {"path": str(it.path.resolve()), "group": it.group, "meta": dict(it.meta)}
        for it in used}})

    is_held = np.array([str(i) in held_ids for i in rows["item_id"]])
    train_rows = select_rows(rows, ~is_held)
    held_rows = select_rows(rows, is_held & (rows["view"] == 0))
    if len(held_rows["sample_id"]) == 0:
        raise HaiEdgeError("the held-out items have no clean view (view 0) in the store")
    spec = _student_spec(preset, teacher)
    init = _load_init(cfg, preset, teacher, spec)

    def feat_progress(name: str) -> Any:
        def cb(done: int, total: int) -> None:
            progress.step(f"student inputs ({name})", done, total)
            if done == total:
                progress.line(f"student inputs ({name}): {total} rows")
        return cb

    cache_dir = run_dir / "cache"
    raw_spec = spec
    if isinstance(spec, AudioFrontendSpec):
        raw_spec = dataclasses.replace(spec, feature_mean=0.0, feature_std=1.0)
    train_cache = build_feature_cache(raw_spec, train_rows, by_id, cache_dir, "train",
                                      progress=feat_progress("train"))
    feat_mean, feat_std = 0.0, 1.0
    if isinstance(spec, AudioFrontendSpec):
        clean = np.flatnonzero(train_rows["view"] == 0)
        feat_mean, feat_std = fit_feature_norm(train_cache.x[clean] if len(clean) else
                                               train_cache.x)
        if init is not None:  # the init's weights expect its own standardisation
            feat_mean = float(init.preprocessing["feature_mean"])
            feat_std = float(init.preprocessing["feature_std"])
        spec = dataclasses.replace(spec, feature_mean=feat_mean, feature_std=feat_std)
    held_cache = build_feature_cache(spec, held_rows, by_id, cache_dir, "heldout",
                                     dtype="float32", progress=feat_progress("held-out"))

    t_train = np.asarray(train_rows["vector"], dtype=np.float32)
    shift = t_train.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((t_train - shift) ** 2, axis=1)) / t_train.shape[1]))
    scale = max(scale, 1e-8)
    if init is not None:  # ... and its target normalisation
        if init.teacher_dim != t_train.shape[1]:
            raise HaiEdgeError(f"--init {init.source}: follows a {init.teacher_dim}-d teacher; "
                               f"this store's is {t_train.shape[1]}-d")
        shift = init.state_dict["head.shift"].numpy().astype(np.float32)
        scale = float(init.state_dict["head.scale"])
    setup = TrainSetup(
        train_x=train_cache.x, train_z=((t_train - shift) / scale).astype(np.float32),
        held_x=held_cache.x, held_t=np.asarray(held_rows["vector"], np.float32),
        shift=shift, scale=scale, feat_mean=feat_mean, feat_std=feat_std,
    )
    dim = int(t_train.shape[1])
    model = _build_model(preset, dim, cfg.seed)
    if init is not None:
        model.load_state_dict(init.state_dict)
    with torch.no_grad():
        model.head.shift.copy_(torch.from_numpy(shift))
        model.head.scale.fill_(scale)
    device = _device(cfg)
    run_cfg = dataclasses.replace(cfg, device=device)
    fingerprint = _fingerprint(cfg, preset, spec.to_dict(), rows, split,
                               init.sha256 if init is not None else None)
    state, best = train(model, setup, run_cfg, run_dir / "checkpoint.pt", fingerprint,
                        deadline=deadline, progress=progress,
                        on_epoch_end=_EPOCH_HOOK.get("hook"))
    model.load_state_dict(best)
    model.to("cpu").eval()

    # ---- fidelity on the held-out clean rows, in teacher space
    from hai_edge.distill.train import predict
    from hai_edge.distill.fidelity import build_report, render_markdown

    pred = predict(model, held_cache.x, torch.device("cpu"))
    metas = {it.item_id: dict(it.meta) for it in held_items}
    groups = {it.item_id: it.group or f"item:{it.item_id}" for it in held_items}
    report = build_report(pred, setup.held_t, [str(i) for i in held_rows["item_id"]], metas,
                          groups, shift, label=cfg.label_spec(), subgroups=cfg.subgroups,
                          seed=cfg.seed, probe_repeats=cfg.probe_repeats)
    paused = state.stopped in ("time_budget", "stop_after_epoch")
    title = "Fidelity (held-out)" + (" -- paused run, best so far" if paused else "")
    md = render_markdown(report, title)
    _write_json(run_dir / "fidelity.json", report)
    with atomic_write(run_dir / "fidelity.md", "w") as fh:
        fh.write(md)

    exported = export_model(model, cfg.export_output)
    e_params, e_macs = count_params_and_macs(exported, spec.input_shape())
    s_params, s_macs = count_params_and_macs(model.student, spec.input_shape())
    torch_state = {k: v.detach().cpu() for k, v in best.items()}
    with atomic_write(run_dir / "student.pt") as fh:
        torch.save({"format": "hai-edge-student", "version": RUN_SCHEMA_VERSION,
                    "preset": preset.name, "teacher_dim": dim, "state_dict": torch_state}, fh)
    meta = {
        "schema_version": RUN_SCHEMA_VERSION,
        "status": "paused" if paused else "finished",
        "config": cfg.to_dict(),
        "student": {**preset.to_dict(), "params": s_params, "macs": s_macs,
                    "exported_params": e_params, "exported_macs": e_macs},
        "preprocessing": spec.to_dict(),
        "teacher": teacher,
        "targets": {"store": str(store.root.resolve()), "rows": int(len(rows["sample_id"])),
                    "rows_without_corpus_item": rows_unmatched,
                    "views": sorted({int(v) for v in rows["view"]}),
                    "target_normalisation": {"shift": "teacher train mean",
                                             "scale": round(scale, 8)}},
        "data": {"path": str(Path(cfg.data).resolve()), "modality": preset.modality.value,
                 "group_col": cfg.group_col, "id_col": cfg.id_col, "path_col": cfg.path_col,
                 "corpus_items": len(items),
                 "items_with_targets": len(used),
                 "corpus_hash": corpus_hash(used)},
        "split": {"method": "split_by_group", "holdout": cfg.holdout, "seed": cfg.seed,
                  "train_items": len(train_items), "heldout_items": len(held_items),
                  "train_groups": len({it.group or it.item_id for it in train_items}),
                  "heldout_groups": len({it.group or it.item_id for it in held_items}),
                  "train_rows": int(len(train_rows["sample_id"])),
                  "heldout_rows": int(len(held_rows["sample_id"]))},
        "embedding": {"teacher_dim": dim, "student_dim": preset.dim,
                      "exported": cfg.export_output.value,
                      "exported_dim": dim if cfg.export_output is ExportOutput.TEACHER
                      else preset.dim,
                      "note": ("the bundle outputs the student's projection into the teacher's "
                               "space (de-normalised), so probes trained on teacher embeddings "
                               "apply" if cfg.export_output is ExportOutput.TEACHER else
                               "the bundle outputs the student's own embedding; probes must be "
                               "trained on it")},
        "training": {"init": ({"source": init.source, "sha256": init.sha256}
                              if init is not None else None),
                     "epochs_done": state.epoch, "best_epoch": state.best_epoch,
                     "best_heldout_cosine": round(state.best_cosine, 6),
                     "stopped": state.stopped or "completed", "history": state.history,
                     "wall_s_this_call": round(time.monotonic() - t_start, 1),
                     "device": device, "threads": torch.get_num_threads()},
        "fidelity": report["rows"] | ({"probe": {k: report["probe"].get(k) for k in
                                                 ("teacher", "student", "auroc_delta", "repeats")}}
                                      if "probe" in report else {}),
        "versions": _versions(),
    }
    _write_json(run_dir / "run.json", meta)
    if paused:
        progress.line(f"paused ({state.stopped}) after epoch {state.epoch}/{cfg.epochs}: re-run "
                      f"the same command to continue")
    return RunResult(run_dir=run_dir, status=meta["status"], stopped=state.stopped or "completed",
                     epochs_done=state.epoch, best_epoch=state.best_epoch, fidelity=report,
                     meta=meta)


# A test seam: tests set _EPOCH_HOOK["hook"] = callable(epoch, state) to inject failures.
_EPOCH_HOOK: dict[str, Any] = {}


# ------------------------------------------------------------------------------ load_run
def _split_items(split: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, CorpusItem]:
    """The run's items as recorded in split.json (path, group, metadata), so an export does not
    depend on re-reading the corpus CSV the same way; older runs fall back to the corpus."""
    if "items" in split:
        return {iid: CorpusItem(item_id=iid, path=Path(d["path"]), group=d.get("group"),
                                meta=dict(d.get("meta") or {}))
                for iid, d in split["items"].items()}
    items = load_corpus(data["path"], data["modality"], group_col=data.get("group_col"),
                        id_col=data.get("id_col"), path_col=data.get("path_col"))
    return {it.item_id: it for it in items}


def heldout_with_targets(run_dir: str | os.PathLike[str]
                         ) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's held-out model inputs (clean view of every held-out window/photo, as the
    report scored them) and the teacher's embeddings of the same rows, aligned; None when the
    run's embedding store is no longer where run.json says. The inputs come from the run's
    feature cache (recomputed, identically, if it was deleted)."""
    root = Path(run_dir)
    meta = json.loads((root / "run.json").read_text())
    store_dir = Path((meta.get("targets") or {}).get("store", ""))
    if not (store_dir / "store.json").is_file():
        return None
    split = json.loads((root / "split.json").read_text())
    by_id = _split_items(split, meta["data"])
    rows = EmbeddingStore(store_dir).load()
    held_ids = set(split["heldout"])
    mask = np.array([str(i) in held_ids for i in rows["item_id"]]) & (rows["view"] == 0)
    held_rows = select_rows(rows, mask)
    if len(held_rows["sample_id"]) == 0:
        return None
    spec = spec_from_dict(meta["preprocessing"])
    cache = build_feature_cache(spec, held_rows, by_id, root / "cache", "heldout",
                                dtype="float32")
    return np.asarray(cache.x, dtype=np.float32), np.asarray(held_rows["vector"], np.float32)


def load_run(run_dir: str | os.PathLike[str]) -> RunArtifacts:
    """The trained student of a finished (or paused) run, ready for export."""
    import torch

    root = Path(run_dir)
    meta_path, weights = root / "run.json", root / "student.pt"
    if not meta_path.is_file() or not weights.is_file():
        raise HaiEdgeError(f"{root}: not a distillation run (needs run.json and student.pt)")
    meta = json.loads(meta_path.read_text())
    if meta.get("schema_version") != RUN_SCHEMA_VERSION:
        raise HaiEdgeError(f"{root}: unknown run schema_version {meta.get('schema_version')!r}")
    ck = torch.load(weights, map_location="cpu", weights_only=True)
    preset = get_preset(ck["preset"])
    net = _build_model(preset, int(ck["teacher_dim"]), 0)
    net.load_state_dict(ck["state_dict"])
    net.eval()
    model = export_model(net, ExportOutput(meta["embedding"]["exported"]))
    spec = spec_from_dict(meta["preprocessing"])
    split = json.loads((root / "split.json").read_text())
    by_id = _split_items(split, meta["data"])
    missing = [i for i in (*split["train"], *split["heldout"]) if i not in by_id]
    if missing:
        raise HaiEdgeError(f"{root}: {len(missing)} items of the run are no longer in "
                           f"{meta['data']['path']} (e.g. {missing[0]!r})")
    gone = [it for it in by_id.values() if not it.path.is_file()]
    if gone:
        raise HaiEdgeError(f"{root}: {len(gone)} media files of the run are missing "
                           f"(e.g. {gone[0].path})")
    return RunArtifacts(
        model=model, spec=spec, meta=meta, teacher_info=dict(meta.get("teacher") or {}),
        heldout_items=[by_id[i] for i in split["heldout"]],
        train_items=[by_id[i] for i in split["train"]],
    )

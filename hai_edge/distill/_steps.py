"""The steps of ``hai_edge.distill.run.distill``: targets, split, student inputs, fingerprint.

Each step is a function of the config and what the previous steps returned, so ``distill`` reads
as the recipe; the run directory layout is ``distill.rundir``'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.corpus import CorpusItem, load_corpus, split_by_group
from hai_edge.distill.config import DistillConfig
from hai_edge.distill.data import FeatureCache, build_feature_cache, fit_feature_norm, select_rows
from hai_edge.distill.rundir import SPLIT_JSON
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.students import StudentPreset
from hai_edge.distill.train import Progress, TrainSetup
from hai_edge.errors import HaiEdgeError
from hai_edge.fileio import atomic_write

__all__ = [
    "Features",
    "Targets",
    "check_columns",
    "device_of",
    "features",
    "fingerprint",
    "json_safe",
    "open_targets",
    "student_spec",
    "targets_and_split",
    "teacher_info",
    "train_setup",
    "versions",
    "warm_start",
    "write_json",
]


def versions() -> dict[str, str]:
    out = {}
    for dist in ("hai-edge", "torch", "numpy", "scikit-learn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def json_safe(v: Any) -> Any:
    """Non-finite floats become null: the files must be strict JSON (browsers read them too)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(json_safe(data), fh, indent=2, allow_nan=False)
        fh.write("\n")


def check_columns(items: Sequence[CorpusItem], cfg: DistillConfig) -> None:
    """Fail before any work when a named column is not in the corpus."""
    cols = set().union(*(it.meta.keys() for it in items)) if items else set()
    wanted = [c for c in (cfg.label, *cfg.subgroups, *(c for c, _ in cfg.label_filter)) if c]
    missing = [c for c in wanted if c not in cols]
    if missing:
        raise HaiEdgeError(f"{cfg.data}: no column(s) {', '.join(missing)} "
                           f"(has: {', '.join(sorted(cols)) or 'none'})")


def open_targets(cfg: DistillConfig, items: list[CorpusItem], run_dir: Path,
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

    device = device_of(cfg)
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


def device_of(cfg: DistillConfig) -> str:
    if cfg.device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if cfg.device == "cuda":
        raise HaiEdgeError("device cuda requested but torch sees no CUDA device")
    return "cpu"


def teacher_info(store: EmbeddingStore) -> dict[str, Any]:
    info = store.meta.get("teacher")
    if isinstance(info, Mapping):
        return dict(info)
    return {"id": str(info or "unknown"), "licence": "unknown"}


def student_spec(preset: StudentPreset, teacher: Mapping[str, Any]
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


def fingerprint(cfg: DistillConfig, preset: StudentPreset, spec_dict: Mapping[str, Any],
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


def warm_start(cfg: DistillConfig, preset: StudentPreset, teacher: Mapping[str, Any],
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


@dataclasses.dataclass(frozen=True, eq=False)
class Targets:
    """The teacher's rows matched to corpus items, split by group (split.json written)."""

    items: list[CorpusItem]  # the whole corpus
    used: list[CorpusItem]  # items with teacher rows
    by_id: dict[str, CorpusItem]
    store: EmbeddingStore
    teacher: dict[str, Any]
    rows: dict[str, np.ndarray]  # every row of a corpus item
    rows_unmatched: int
    train_items: list[CorpusItem]
    held_items: list[CorpusItem]
    split: dict[str, list[str]]
    train_rows: dict[str, np.ndarray]  # all views of the train items
    held_rows: dict[str, np.ndarray]  # the clean view 0 of the held-out items


def targets_and_split(cfg: DistillConfig, preset: StudentPreset, run_dir: Path,
                      progress: Progress) -> Targets:
    """Corpus + teacher store (embedded first with ``teacher``), matched on item id, split by
    group into train / held-out; writes split.json."""
    items = load_corpus(cfg.data, preset.modality.value, group_col=cfg.group_col,
                        id_col=cfg.id_col, path_col=cfg.path_col)
    check_columns(items, cfg)
    store = open_targets(cfg, items, run_dir, preset, progress)
    teacher = teacher_info(store)
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
    write_json(run_dir / SPLIT_JSON, {**split, "items": {
        it.item_id: {"path": str(it.path.resolve()), "group": it.group, "meta": dict(it.meta)}
        for it in used}})

    is_held = np.array([str(i) in held_ids for i in rows["item_id"]])
    train_rows = select_rows(rows, ~is_held)
    held_rows = select_rows(rows, is_held & (rows["view"] == 0))
    if len(held_rows["sample_id"]) == 0:
        raise HaiEdgeError("the held-out items have no clean view (view 0) in the store")
    return Targets(items, used, by_id, store, teacher, rows, rows_unmatched, train_items,
                   held_items, split, train_rows, held_rows)


@dataclasses.dataclass(frozen=True, eq=False)
class Features:
    """The student inputs of the train rows and held-out rows, and the final front-end spec
    (audio: with the feature standardisation fitted on the clean train rows, or the init's)."""

    spec: AudioFrontendSpec | ImageFrontendSpec
    train: FeatureCache
    held: FeatureCache
    feat_mean: float
    feat_std: float


def _feat_progress(progress: Progress, name: str) -> Callable[[int, int], None]:
    def cb(done: int, total: int) -> None:
        progress.step(f"student inputs ({name})", done, total)
        if done == total:
            progress.line(f"student inputs ({name}): {total} rows")
    return cb


def features(spec: AudioFrontendSpec | ImageFrontendSpec, init: Any, tg: Targets,
             run_dir: Path, progress: Progress) -> Features:
    """Student inputs computed once into ``RUN_DIR/cache`` by the runtime front end."""
    cache_dir = run_dir / "cache"
    raw_spec = spec
    if isinstance(spec, AudioFrontendSpec):
        raw_spec = dataclasses.replace(spec, feature_mean=0.0, feature_std=1.0)
    train_cache = build_feature_cache(raw_spec, tg.train_rows, tg.by_id, cache_dir, "train",
                                      progress=_feat_progress(progress, "train"))
    feat_mean, feat_std = 0.0, 1.0
    if isinstance(spec, AudioFrontendSpec):
        clean = np.flatnonzero(tg.train_rows["view"] == 0)
        feat_mean, feat_std = fit_feature_norm(train_cache.x[clean] if len(clean) else
                                               train_cache.x)
        if init is not None:  # the init's weights expect its own standardisation
            feat_mean = float(init.preprocessing["feature_mean"])
            feat_std = float(init.preprocessing["feature_std"])
        spec = dataclasses.replace(spec, feature_mean=feat_mean, feature_std=feat_std)
    held_cache = build_feature_cache(spec, tg.held_rows, tg.by_id, cache_dir, "heldout",
                                     dtype="float32",
                                     progress=_feat_progress(progress, "held-out"))
    return Features(spec, train_cache, held_cache, feat_mean, feat_std)


def train_setup(tg: Targets, feats: Features, init: Any) -> TrainSetup:
    """Targets centred on the teacher's train mean and scaled to unit mean square per dimension
    (or the init's normalisation, which its weights expect)."""
    t_train = np.asarray(tg.train_rows["vector"], dtype=np.float32)
    shift = t_train.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((t_train - shift) ** 2, axis=1)) / t_train.shape[1]))
    scale = max(scale, 1e-8)
    if init is not None:  # ... and its target normalisation
        if init.teacher_dim != t_train.shape[1]:
            raise HaiEdgeError(f"--init {init.source}: follows a {init.teacher_dim}-d teacher; "
                               f"this store's is {t_train.shape[1]}-d")
        shift = init.state_dict["head.shift"].numpy().astype(np.float32)
        scale = float(init.state_dict["head.scale"])
    return TrainSetup(
        train_x=feats.train.x, train_z=((t_train - shift) / scale).astype(np.float32),
        held_x=feats.held.x, held_t=np.asarray(tg.held_rows["vector"], np.float32),
        shift=shift, scale=scale, feat_mean=feats.feat_mean, feat_std=feats.feat_std,
    )

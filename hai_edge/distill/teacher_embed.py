"""Run a teacher over a corpus once and keep its embeddings in an :class:`EmbeddingStore`.

Per item: decode (``hai_edge.runtime.decoders``) -> audio: mono, resample to the *teacher's*
rate, cut windows with the spec's window/hop/min-clip/quiet-skip rules (a window shorter than the
teacher's is zero-padded to it); image: EXIF-upright RGB uint8 (first frame of a DICOM) -> view 0
is the clean input, views 1..K are augmented copies (:mod:`hai_edge.distill.augment`, parameters
drawn from a generator seeded by ``(seed, sample_id)``, so any item's views are the same whatever
else is in the run) -> the teacher in batches -> shards of whole items.

Sample ids: ``f"{item_id}#w{window.index}#v{view}"`` (audio), ``f"{item_id}#v{view}"`` (image).
Resumable: items already in the store's shards are skipped; a run killed at any point loses at
most the items of the shard being built. Items that fail to decode (:class:`InputError`) are
skipped and listed under ``skipped`` in ``store.json`` instead of aborting the run.

The planning (:func:`plan_embedding`), per-item rows (:func:`item_rows`), output checks and shard
writing here are shared with the Ray engine (:mod:`hai_edge.distill.teacher_embed_ray`), so both
engines write the same store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import numpy as np

from hai_edge import __version__
from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError, InputError
from hai_edge.runtime.frontends import AudioFeatures, AudioFrontendSpec
from hai_edge.distill.augment import (
    apply_audio_aug,
    apply_image_aug,
    aug_to_json,
    sample_audio_aug,
    sample_image_aug,
)
from hai_edge.corpus import CorpusItem, corpus_hash
from hai_edge.distill.store import EmbeddingStore
from hai_edge.teachers import Teacher, is_lookup_teacher

__all__ = [
    "ENGINES",
    "EmbedPlan",
    "Progress",
    "SampleRow",
    "check_vectors",
    "embed_corpus",
    "finish_run",
    "import_precomputed",
    "item_rows",
    "plan_embedding",
    "skip_record",
    "windowing_spec",
    "write_rows",
]

ENGINES = ("local", "ray")
SHARD_ITEMS = 32
MIN_IMAGE_SIDE = 32


@dataclasses.dataclass
class SampleRow:
    """One window x view of an item: its store columns and (until embedded) the teacher input."""

    sample_id: str
    item_id: str
    view: int
    start_s: float
    end_s: float
    aug: str
    data: np.ndarray | None  # teacher input; dropped once embedded


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _check_engine(engine: str) -> None:
    if engine == "ray":
        raise HaiEdgeError("engine 'ray' is not available in embed_corpus (it takes a loaded "
                           "teacher); use teacher_embed_ray.embed_corpus_ray(TEACHER_SPEC, ...)")
    if engine != "local":
        raise HaiEdgeError(f"engine {engine!r} is not available; only {', '.join(ENGINES)}")


def windowing_spec(spec: AudioFrontendSpec | None, teacher_rate: int,
                   teacher_samples: int) -> AudioFrontendSpec:
    """The spec's windowing rules at the teacher's rate (default: the teacher's window, 10%
    overlap). A window longer than the teacher's is an error; a shorter one is zero-padded."""
    window_s = spec.window_s if spec else teacher_samples / teacher_rate
    if int(round(window_s * teacher_rate)) > teacher_samples:
        raise HaiEdgeError(f"window of {window_s:g} s is longer than the teacher's "
                           f"{teacher_samples / teacher_rate:g} s input")
    base = spec or AudioFrontendSpec(window_s=window_s, hop_s=0.9 * window_s,
                                     min_clip_s=min(0.5, window_s))
    return AudioFrontendSpec(
        sample_rate=teacher_rate, window_s=window_s, hop_s=base.hop_s,
        min_clip_s=min(base.min_clip_s, window_s), pad_last=base.pad_last,
        skip_quiet_db=base.skip_quiet_db, features=AudioFeatures.WAVEFORM,
        fmin=0.0, fmax=teacher_rate / 2,
    )


# ------------------------------------------------------------------------------ progress
class Progress:
    """One status line on stderr: done/total items, items/s and ETA (no dependency)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.total, self.enabled = total, enabled and total > 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last = time.monotonic()
        self.done = self.skipped = 0

    def restart_clock(self) -> None:
        """Measure items/s from now (the Ray engine: once workers are up and output flows)."""
        self.start = self.last = time.monotonic()

    def update(self, skipped: bool = False) -> None:
        self.done += 1
        self.skipped += int(skipped)
        now = time.monotonic()
        if self.enabled and (now - self.last >= (0.5 if self.tty else 10.0)
                             or self.done == self.total):
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        eta_s = "?" if math.isinf(eta) else time.strftime("%H:%M:%S", time.gmtime(eta))
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        line = (f"teacher embed: {self.done}/{self.total} items{skipped}, {rate:.2f} items/s, "
                f"ETA {eta_s}")
        end = "\r" if self.tty and self.done < self.total else "\n"
        print(line.ljust(78) if self.tty else line, end=end, file=self.stream, flush=True)


# ------------------------------------------------------------------------- rows per item
def _audio_rows(item: CorpusItem, info: Any, wspec: AudioFrontendSpec, views: int,
                seed: int) -> list[SampleRow]:
    from hai_edge.runtime.decoders import decode_audio
    from hai_edge.runtime.frontends import resample, split_windows, to_mono

    src = str(item.path)
    decoded = decode_audio(item.path)
    try:
        mono = to_mono(decoded.samples)
    except ValueError as exc:
        raise InputError(src, str(exc)) from None
    if not np.all(np.isfinite(mono)):
        raise InputError(src, "contains NaN or infinite samples")
    rate, need = int(info.sample_rate), int(info.window_samples)
    mono = resample(mono, int(decoded.sample_rate), rate)
    rows = []
    for w in split_windows(mono, wspec, src):
        base = w.samples if w.samples.size == need else \
            np.concatenate([w.samples, np.zeros(need - w.samples.size, np.float32)])
        for view in range(views + 1):
            sid = f"{item.item_id}#w{w.index}#v{view}"
            aug = None if view == 0 else sample_audio_aug(_rng(seed, sid))
            data = base if aug is None else apply_audio_aug(base, rate, aug)
            rows.append(SampleRow(sid, item.item_id, view, w.start_s, w.end_s, aug_to_json(aug),
                                  data))
    return rows


def _image_rows(item: CorpusItem, views: int, seed: int) -> list[SampleRow]:
    from hai_edge.runtime.decoders import load_images
    from hai_edge.runtime.frontends import apply_exif_orientation, to_rgb

    src = str(item.path)
    decoded = load_images(item.path, min_side=MIN_IMAGE_SIDE)[0]
    try:
        rgb = to_rgb(apply_exif_orientation(decoded.pixels, decoded.orientation))
    except ValueError as exc:
        raise InputError(src, str(exc)) from None
    rows = []
    for view in range(views + 1):
        sid = f"{item.item_id}#v{view}"
        aug = None if view == 0 else sample_image_aug(_rng(seed, sid))
        data = rgb if aug is None else apply_image_aug(rgb, aug)
        rows.append(SampleRow(sid, item.item_id, view, math.nan, math.nan, aug_to_json(aug), data))
    return rows


def item_rows(item: CorpusItem, info: Any, wspec: AudioFrontendSpec | None, views: int,
              seed: int) -> list[SampleRow]:
    """Every window x view of one item with its teacher input (raises :class:`InputError`).
    Shared by both engines: the views depend only on ``(seed, sample_id)``."""
    return _audio_rows(item, info, wspec, views, seed) if wspec else \
        _image_rows(item, views, seed)


def skip_record(item_id: str, path: str, exc: InputError) -> dict:
    return {"item_id": item_id, "path": path, "reason": exc.problem}


def check_vectors(out: Any, sample_ids: Sequence[str], dim: int) -> np.ndarray:
    """The teacher's answer for one batch as float32 ``[n, dim]``; wrong shapes and NaN/inf are
    errors naming the first bad sample."""
    vec = np.asarray(out, dtype=np.float32)
    if vec.shape != (len(sample_ids), dim):
        raise HaiEdgeError(f"teacher returned shape {vec.shape} for a batch of {len(sample_ids)} "
                           f"(expected [{len(sample_ids)}, {dim}])")
    bad = ~np.all(np.isfinite(vec), axis=1)
    if bad.any():
        raise HaiEdgeError(f"teacher returned NaN/inf for {sample_ids[int(np.argmax(bad))]}")
    return vec


def write_rows(store: EmbeddingStore, rows: Sequence[SampleRow],
               vectors: Sequence[np.ndarray]) -> None:
    """One shard (atomically, next free number) from embedded rows of whole items."""
    if rows:
        store.write_shard({
            "sample_id": [x.sample_id for x in rows], "item_id": [x.item_id for x in rows],
            "view": [x.view for x in rows], "start_s": [x.start_s for x in rows],
            "end_s": [x.end_s for x in rows], "aug": [x.aug for x in rows],
            "vector": np.concatenate(vectors),
        })


# ---------------------------------------------------------------------------- shard writer
class _ShardWriter:
    """Batches rows through the teacher; writes a shard every ``shard_items`` whole items."""

    def __init__(self, store: EmbeddingStore, embed: Callable[[list[SampleRow]], np.ndarray],
                 dim: int, batch_size: int, shard_items: int) -> None:
        self.store, self.embed, self.dim = store, embed, dim
        self.batch_size, self.shard_items = batch_size, shard_items
        self.pending: list[SampleRow] = []
        self.rows: list[SampleRow] = []
        self.vectors: list[np.ndarray] = []
        self.items = 0

    def add_item(self, rows: Sequence[SampleRow]) -> None:
        for row in rows:
            self.pending.append(row)
            if len(self.pending) >= self.batch_size:
                self._run(self.batch_size)
        self.items += 1
        if self.items >= self.shard_items:
            self.flush()

    def _run(self, n: int) -> None:
        batch, self.pending = self.pending[:n], self.pending[n:]
        out = check_vectors(self.embed(batch), [row.sample_id for row in batch], self.dim)
        for row in batch:
            row.data = None
        self.rows.extend(batch)
        self.vectors.append(out)

    def flush(self) -> None:
        while self.pending:
            self._run(min(self.batch_size, len(self.pending)))
        write_rows(self.store, self.rows, self.vectors)
        self.rows, self.vectors, self.items = [], [], 0


def _save_meta(store: EmbeddingStore, **updates: Any) -> None:
    store.meta.update(updates)
    with atomic_write(store.root / "store.json", "w") as fh:
        json.dump(store.meta, fh, indent=2)


def _open_store(store_dir: Any, meta: dict) -> EmbeddingStore:
    store = EmbeddingStore.create_or_open(store_dir, meta)
    for key in ("spec", "views", "seed", "source"):
        if key in store.meta and store.meta[key] != meta.get(key):
            raise HaiEdgeError(f"{store.root}: existing store was made with {key}="
                               f"{json.dumps(store.meta[key])}, this run has "
                               f"{json.dumps(meta.get(key))}; use another output directory")
    if store.meta.get("corpus_hash") != meta.get("corpus_hash"):
        _save_meta(store, corpus_hash=meta.get("corpus_hash"),
                   corpus_items=meta.get("corpus_items"))
    return store


def _merge_skipped(store: EmbeddingStore, processed: set[str], skipped: list[dict]) -> list[dict]:
    keep = [s for s in store.meta.get("skipped", []) if s.get("item_id") not in processed]
    return sorted(keep + skipped, key=lambda s: s["item_id"])


def finish_run(store: EmbeddingStore, processed: Iterable[str], skipped: list[dict]) -> None:
    """Record this run's skipped items in ``store.json`` (replacing older entries for them)."""
    _save_meta(store, skipped=_merge_skipped(store, set(processed), skipped))


# ------------------------------------------------------------------------------ planning
@dataclasses.dataclass(frozen=True)
class EmbedPlan:
    """What a run will do, decided before any work: the open store, the audio windowing at the
    teacher's rate (None for images) and the items not yet in the store, in corpus order."""

    store: EmbeddingStore
    wspec: AudioFrontendSpec | None
    todo: list[CorpusItem]


def plan_embedding(info: Any, items: Sequence[CorpusItem], store_dir: Any, *,
                   spec: AudioFrontendSpec | None, views: int, seed: int, batch_size: int,
                   shard_items: int, engine: str) -> EmbedPlan:
    """Validate the run, open (or create) the store and list what is left to embed."""
    if views < 0 or batch_size < 1 or shard_items < 1:
        raise HaiEdgeError("views must be >= 0, batch_size and shard_items >= 1")
    wspec = None
    if info.modality == "audio":
        if not info.sample_rate or not info.window_samples:
            raise HaiEdgeError(f"{info.id}: audio teacher without sample_rate/window_samples")
        wspec = windowing_spec(spec, int(info.sample_rate), int(info.window_samples))
    meta = {
        "teacher": info.to_dict(), "modality": info.modality, "dim": int(info.embedding_dim),
        "spec": wspec.to_dict() if wspec else None, "views": int(views), "seed": int(seed),
        "corpus_hash": corpus_hash(items), "corpus_items": len(items), "engine": engine,
        "hai_edge_version": __version__,
    }
    store = _open_store(store_dir, meta)
    done = store.done_items()
    return EmbedPlan(store, wspec, [it for it in items if it.item_id not in done])


# ------------------------------------------------------------------------------ entry point
def embed_corpus(
    teacher: Teacher,
    items: Sequence[CorpusItem],
    store_dir: Any,
    *,
    spec: AudioFrontendSpec | None = None,
    views: int = 0,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
    shard_items: int = SHARD_ITEMS,
    engine: str = "local",
) -> EmbeddingStore:
    """Embed ``items`` (clean view 0 + ``views`` augmented views) into the store ``store_dir``."""
    _check_engine(engine)
    if views < 0 or batch_size < 1 or shard_items < 1:
        raise HaiEdgeError("views must be >= 0, batch_size and shard_items >= 1")
    if is_lookup_teacher(teacher):
        if views:
            raise HaiEdgeError(f"{teacher.info.id}: precomputed embeddings have no augmented "
                               f"views; use --views 0")
        return import_precomputed(teacher, store_dir, items, shard_items=shard_items,
                                  progress=progress)
    info = teacher.info
    plan = plan_embedding(info, items, store_dir, spec=spec, views=views, seed=seed,
                          batch_size=batch_size, shard_items=shard_items, engine=engine)
    store, wspec, todo = plan.store, plan.wspec, plan.todo

    def run_teacher(batch: list[SampleRow]) -> np.ndarray:
        return teacher.embed([row.data for row in batch])

    writer = _ShardWriter(store, run_teacher, int(info.embedding_dim), batch_size, shard_items)
    bar = Progress(len(todo), progress)
    skipped: list[dict] = []
    try:
        for item in todo:
            try:
                rows = item_rows(item, info, wspec, views, seed)
            except InputError as exc:
                skipped.append(skip_record(item.item_id, str(item.path), exc))
                bar.update(skipped=True)
                continue
            writer.add_item(rows)
            bar.update()
        writer.flush()
    finally:
        finish_run(store, (it.item_id for it in todo), skipped)
    return store


# ------------------------------------------------------------------- precomputed embeddings
_VIEW = re.compile(r"#v(\d+)")


def _candidates(item: CorpusItem) -> Iterable[str]:
    yield item.item_id
    yield item.path.as_posix()
    yield str(item.path)
    yield item.path.name
    yield item.path.stem


def import_precomputed(
    teacher: Any,
    store_dir: Any,
    items: Sequence[CorpusItem] | None = None,
    *,
    shard_items: int = 1024,
    progress: bool = False,
) -> EmbeddingStore:
    """Copy a lookup teacher's vectors into a store. With ``items``, each corpus item takes the
    vectors filed under its id, path, file name or stem (others are listed as skipped); without,
    every id in the file becomes an item. Plain ids get sample id ``#v0`` (image) / ``#w0#v0``."""
    info = teacher.info
    default = "#v0" if info.modality == "image" else "#w0#v0"
    groups: dict[str, list[tuple[str, str]]] = {}
    for fid in teacher.ids:
        key, sep, rest = fid.partition("#")
        groups.setdefault(key, []).append(("#" + rest if sep else default, fid))
    skipped: list[dict] = []
    if items is None:
        pairs = [(key, key) for key in sorted(groups)]
    else:
        pairs = []
        for it in items:
            key = next((c for c in _candidates(it) if c in groups), None)
            if key is None:
                skipped.append({"item_id": it.item_id, "path": str(it.path),
                                "reason": "not in the embeddings file"})
            else:
                pairs.append((it.item_id, key))
        if not pairs:
            raise HaiEdgeError(f"{info.id}: none of the {len(items)} corpus items is in the "
                               f"embeddings file (ids there look like {teacher.ids[0]!r})")
    meta = {
        "teacher": info.to_dict(), "modality": info.modality, "dim": int(info.embedding_dim),
        "spec": None, "views": 0, "seed": None, "source": str(getattr(teacher, "path", "")),
        "corpus_hash": corpus_hash(items) if items is not None else None,
        "corpus_items": len(items) if items is not None else len(pairs), "engine": "local",
        "hai_edge_version": __version__,
    }
    store = _open_store(store_dir, meta)
    done = store.done_items()
    todo = [(item_id, key) for item_id, key in pairs if item_id not in done]
    bar = Progress(len(todo), progress)

    def lookup(batch: list[SampleRow]) -> np.ndarray:
        return teacher.embed_ids([str(row.data) for row in batch])

    writer = _ShardWriter(store, lookup, int(info.embedding_dim), 4096, shard_items)
    for item_id, key in todo:
        rows = []
        for suffix, fid in groups[key]:
            m = _VIEW.search(suffix)
            rows.append(SampleRow(item_id + suffix, item_id, int(m.group(1)) if m else 0, math.nan,
                             math.nan, "", np.asarray(fid)))
        writer.add_item(rows)
        bar.update()
    writer.flush()
    processed = {item_id for item_id, _ in pairs} | {s["item_id"] for s in skipped}
    finish_run(store, processed, skipped)
    return store

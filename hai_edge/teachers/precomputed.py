"""Precomputed teacher embeddings as a lookup teacher (``embeddings:FILE``).

Some teachers ship their outputs rather than (or as well as) weights, e.g. Derm Foundation's
SCIN embeddings (10,379 x 6144). Such a file cannot embed new media; it answers
:meth:`PrecomputedEmbeddings.embed_ids` for the ids it holds, and ``hai-edge teacher embed``
imports it into an embedding store (``teacher_embed.import_precomputed``).

Accepted files:

- ``.npz`` with ``ids`` (strings) and ``embeddings`` (``[n, D]``; ``vectors``/``embedding`` also
  accepted), optionally 0-d ``modality``, ``licence``/``license`` and ``teacher`` (the teacher id);
- ``.npz`` with one ``[D]`` array per id, the array name being the id (the SCIN file's layout);
- ``.csv`` with a header: an id column (``id``, ``sample_id``, ``item_id``, ``image_id`` or
  ``path``, else the first column) and D numeric columns.

A sidecar ``FILE.json`` (e.g. ``scin.npz.json``) may give ``teacher``, ``licence``, ``modality``
and ``notes``. Without a stated modality it is guessed from the ids' file suffixes, else image.
Ids are corpus item ids (or file paths/names, matched at import) or full sample ids
(``item#w0#v0``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.corpus import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from hai_edge.teachers._base import TeacherInfo
from hai_edge.teachers._common import read_json

__all__ = ["PrecomputedEmbeddings", "is_lookup_teacher", "load_embeddings"]

_VECTOR_KEYS = ("embeddings", "vectors", "embedding")
_ID_COLUMNS = ("id", "sample_id", "item_id", "image_id", "path")


class PrecomputedEmbeddings:
    """A lookup teacher: ``embed_ids(ids) -> [n, D]``; ``embed`` (raw media) is not possible."""

    def __init__(self, path: Path, ids: Sequence[str], vectors: np.ndarray, meta: dict) -> None:
        self.path = path
        self.ids = tuple(str(i) for i in ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.ids) != len(self.vectors) or not self.ids:
            raise HaiEdgeError(f"{path}: expected n ids and an [n, D] embedding matrix, got "
                               f"{len(self.ids)} ids and shape {self.vectors.shape}")
        self._index = {k: i for i, k in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise HaiEdgeError(f"{path}: duplicate ids in the embeddings file")
        if not np.all(np.isfinite(self.vectors)):
            raise HaiEdgeError(f"{path}: embeddings contain NaN or infinite values")
        modality = str(meta.get("modality") or _guess_modality(self.ids) or "image")
        if modality not in ("audio", "image"):
            raise HaiEdgeError(f"{path}: modality must be audio or image, got {modality!r}")
        notes = str(meta.get("notes") or f"precomputed embeddings from {path.name}")
        self.info = TeacherInfo(
            id=str(meta.get("teacher") or f"embeddings:{path}"), modality=modality,
            embedding_dim=int(self.vectors.shape[1]),
            licence=str(meta.get("licence") or meta.get("license") or "unknown"), notes=notes,
        )

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self.ids)

    def embed_ids(self, ids: Iterable[str]) -> np.ndarray:
        keys = list(ids)
        missing = [k for k in keys if k not in self._index]
        if missing:
            raise HaiEdgeError(f"{self.path}: {len(missing)} id(s) not in the embeddings file, "
                               f"e.g. {missing[0]!r}")
        return self.vectors[[self._index[k] for k in keys]]

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        raise HaiEdgeError(f"{self.info.id}: precomputed embeddings cannot embed new media; "
                           f"they can only be imported by id")

    def close(self) -> None:
        pass


def is_lookup_teacher(teacher: Any) -> bool:
    return callable(getattr(teacher, "embed_ids", None))


def _guess_modality(ids: Sequence[str]) -> str | None:
    suffixes = [Path(i.split("#")[0]).suffix.lower() for i in ids[:1000]]
    audio = sum(s in AUDIO_SUFFIXES for s in suffixes)
    image = sum(s in IMAGE_SUFFIXES for s in suffixes)
    if audio == image:
        return None
    return "audio" if audio > image else "image"


def _scalar(z: Any, *names: str) -> str | None:
    for n in names:
        if n in z.files:
            v = z[n]
            return str(v.reshape(-1)[0]) if v.size else None
    return None


def _load_npz(path: Path) -> tuple[list[str], np.ndarray, dict]:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise HaiEdgeError(f"{path}: not a readable .npz file ({exc})") from None
    with z:
        meta = {k: v for k, v in (("modality", _scalar(z, "modality")),
                                  ("licence", _scalar(z, "licence", "license")),
                                  ("teacher", _scalar(z, "teacher"))) if v}
        if "ids" in z.files:
            key = next((k for k in _VECTOR_KEYS if k in z.files), None)
            if key is None:
                raise HaiEdgeError(f"{path}: has 'ids' but no 'embeddings' array")
            return [str(i) for i in z["ids"]], z[key], meta
        try:
            vecs = {k: z[k] for k in z.files}
        except ValueError as exc:  # object arrays need pickle, which is never enabled
            raise HaiEdgeError(f"{path}: unsupported array ({exc})") from None
    shapes = {v.shape for v in vecs.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise HaiEdgeError(f"{path}: expected 'ids' + 'embeddings', or one 1-D vector per id "
                           f"(found shapes {sorted(shapes)[:3]})")
    return list(vecs), np.stack(list(vecs.values())), meta


def _load_csv(path: Path) -> tuple[list[str], np.ndarray, dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise HaiEdgeError(f"{path}: empty CSV")
        id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), 0)
        ids, rows = [], []
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append([float(v) for j, v in enumerate(row) if j != id_col])
            except ValueError:
                raise HaiEdgeError(f"{path}:{lineno}: non-numeric embedding value") from None
            ids.append(row[id_col])
    if len({len(r) for r in rows}) > 1:
        raise HaiEdgeError(f"{path}: rows have different numbers of values")
    return ids, np.asarray(rows, dtype=np.float32), {}


def load_embeddings(ref: str, *, device: str = "cpu") -> PrecomputedEmbeddings:
    del device
    path = Path(ref).expanduser()
    if not path.is_file():
        raise HaiEdgeError(f"{ref}: no such embeddings file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        ids, vectors, meta = _load_npz(path)
    elif suffix == ".csv":
        ids, vectors, meta = _load_csv(path)
    else:
        raise HaiEdgeError(f"{path}: embeddings must be a .npz or .csv file")
    meta.update(read_json(path.with_name(path.name + ".json")))
    return PrecomputedEmbeddings(path.resolve(), ids, vectors, meta)

"""Corpus listing: a directory of media files, or a CSV with one row per file.

Shared by teacher embedding, distillation, calibration and evaluation, so that every stage sees
the same item ids, groups (subject/patient ids for grouped splits) and labels.

CSV columns: ``path`` (or ``rel_path``/``file``/``filename``; relative to the CSV's folder), optional
``id`` (or ``file_id``/``sample_id``/``img_id``);
the group column is ``--group`` or the first of ``GROUP_COLUMNS`` present; every other column is
kept as metadata (labels, subgroups such as sex, age, fitzpatrick, source).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hai_edge.errors import HaiEdgeError

__all__ = [
    "AUDIO_SUFFIXES",
    "GROUP_COLUMNS",
    "IMAGE_SUFFIXES",
    "CorpusItem",
    "corpus_hash",
    "load_corpus",
    "split_by_group",
]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".dcm"})
GROUP_COLUMNS = ("patient_id", "subject_id", "participant_id", "group", "content_group",
                 "app_instance_id")
_ID_COLUMNS = ("id", "file_id", "sample_id", "img_id")
_PATH_COLUMNS = ("path", "rel_path", "file", "filename", "img_id")


@dataclasses.dataclass(frozen=True)
class CorpusItem:
    item_id: str
    path: Path
    group: str | None = None
    meta: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def label(self, column: str) -> str | None:
        value = self.meta.get(column)
        return None if value in (None, "") else value


def _suffixes(modality: str | None) -> frozenset[str]:
    if modality == "audio":
        return AUDIO_SUFFIXES
    if modality == "image":
        return IMAGE_SUFFIXES
    return AUDIO_SUFFIXES | IMAGE_SUFFIXES


def load_corpus(
    data: str | os.PathLike[str],
    modality: str | None = None,
    *,
    group_col: str | None = None,
    id_col: str | None = None,
    path_col: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> list[CorpusItem]:
    """List the corpus, sorted by item id. Missing files in a CSV are an error naming the row."""
    src = Path(data)
    if src.is_dir():
        items = [
            CorpusItem(item_id=str(p.relative_to(src).as_posix()), path=p)
            for p in sorted(src.rglob("*"))
            if p.is_file() and p.suffix.lower() in _suffixes(modality)
        ]
        if not items:
            raise HaiEdgeError(f"{src}: no {modality or 'media'} files found")
        return items
    if not src.is_file():
        raise HaiEdgeError(f"{src}: no such directory or CSV file")
    base = Path(base_dir) if base_dir else src.parent
    with open(src, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        pcol = path_col or next((c for c in _PATH_COLUMNS if c in columns), None)
        if pcol is None:
            raise HaiEdgeError(f"{src}: CSV needs a 'path' column (has: {', '.join(columns)})")
        rows = list(reader)
        # the first group column that is actually filled in (e.g. cough-ru has an empty subject_id)
        gcol = group_col or next(
            (c for c in GROUP_COLUMNS if c in columns and any((r.get(c) or "").strip() for r in rows)),
            None,
        )
        icol = id_col or next((c for c in _ID_COLUMNS if c in columns and c != pcol), "id")
        if group_col and group_col not in columns:
            raise HaiEdgeError(f"{src}: no column {group_col!r} for groups")
        items = []
        seen: set[str] = set()
        for lineno, row in enumerate(rows, start=2):
            rel = (row.get(pcol) or "").strip()
            if not rel:
                raise HaiEdgeError(f"{src}:{lineno}: empty {pcol}")
            path = Path(rel) if Path(rel).is_absolute() else base / rel
            item_id = (row.get(icol) or "").strip() or rel
            if item_id in seen:
                raise HaiEdgeError(f"{src}:{lineno}: duplicate id {item_id!r}")
            seen.add(item_id)
            if not path.is_file():
                raise HaiEdgeError(f"{src}:{lineno}: file not found: {path}")
            meta = {k: (v or "").strip() for k, v in row.items() if k not in (pcol, icol) and k}
            group = (row.get(gcol) or "").strip() or None if gcol else None
            items.append(CorpusItem(item_id=item_id, path=path, group=group, meta=meta))
    if not items:
        raise HaiEdgeError(f"{src}: CSV has no rows")
    return sorted(items, key=lambda it: it.item_id)


def corpus_hash(items: Iterable[CorpusItem], *, content: bool = True) -> str:
    """sha256 over item ids and file contents (or sizes): the data hash recorded in manifests."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: i.item_id):
        h.update(it.item_id.encode() + b"\0")
        if content:
            with open(it.path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(str(it.path.stat().st_size).encode())
        h.update(b"\n")
    return h.hexdigest()


def _bucket(key: str, seed: int) -> float:
    d = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(d[:8], "big") / 2**64


def split_by_group(
    items: Sequence[CorpusItem], holdout: float = 0.2, seed: int = 0
) -> tuple[list[CorpusItem], list[CorpusItem]]:
    """Deterministic (train, held-out) split; items sharing a group never straddle it.

    Items without a group are their own group. Stable under adding/removing other items.
    """
    if not 0 < holdout < 1:
        raise HaiEdgeError("holdout fraction must be between 0 and 1")
    train, held = [], []
    for it in items:
        (held if _bucket(it.group or f"item:{it.item_id}", seed) < holdout else train).append(it)
    if not train or not held:
        raise HaiEdgeError(f"grouped split left an empty side ({len(train)} train, {len(held)} held)")
    return train, held

"""Embedding store: teacher embeddings computed once, read many times by distillation.

Layout (a directory; numpy only, so it needs no pyarrow)::

    STORE/
      store.json            {"schema_version": 1, "teacher": {...}, "modality": ..., "dim": D, ...}
      shards/000000.npz     sample_id[str], item_id[str], view[int], start_s, end_s, aug[json str],
                            vector[float32, n x D]
      shards/000001.npz ...

Each shard is written atomically (temp + rename) and holds only whole items (all windows and views
of an item), so a run killed at any point resumes by skipping the item ids already in shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError

__all__ = ["EmbeddingStore", "StoreRows"]

STORE_SCHEMA_VERSION = 1


class StoreRows(dict):
    """Column arrays of a store slice: sample_id, item_id, view, start_s, end_s, aug, vector."""


_COLUMNS = ("sample_id", "item_id", "view", "start_s", "end_s", "aug")


class EmbeddingStore:
    """Append-only, shard-per-batch store of teacher embeddings."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.meta: dict[str, Any] = {}
        meta_path = self.root / "store.json"
        if meta_path.is_file():
            self.meta = json.loads(meta_path.read_text())
            if self.meta.get("schema_version") != STORE_SCHEMA_VERSION:
                raise HaiEdgeError(f"{self.root}: unknown store schema_version "
                                   f"{self.meta.get('schema_version')!r}")

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create_or_open(cls, root: str | os.PathLike[str], meta: Mapping[str, Any]) -> EmbeddingStore:
        """Open an existing store with the same teacher/modality, or create a new one."""
        store = cls(root)
        if store.meta:
            for key in ("teacher", "modality", "dim"):
                if key in meta and store.meta.get(key) != meta[key]:
                    raise HaiEdgeError(
                        f"{store.root}: existing store has {key}={store.meta.get(key)!r}, this run "
                        f"has {meta[key]!r}; use another output directory"
                    )
            return store
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / "shards").mkdir(exist_ok=True)
        store.meta = {"schema_version": STORE_SCHEMA_VERSION, **dict(meta)}
        with atomic_write(store.root / "store.json", "w") as fh:
            json.dump(store.meta, fh, indent=2)
        return store

    # ------------------------------------------------------------------ write
    def shard_paths(self) -> list[Path]:
        return sorted((self.root / "shards").glob("*.npz"))

    def done_items(self) -> set[str]:
        done: set[str] = set()
        for p in self.shard_paths():
            with np.load(p, allow_pickle=False) as z:
                done.update(str(x) for x in z["item_id"])
        return done

    def write_shard(self, rows: Mapping[str, Sequence[Any] | np.ndarray]) -> Path:
        """Atomically add one shard. ``rows`` holds the columns above; vector is [n, D]."""
        vec = np.asarray(rows["vector"], dtype=np.float32)
        n = len(vec)
        if vec.ndim != 2 or (self.meta.get("dim") and vec.shape[1] != self.meta["dim"]):
            raise HaiEdgeError(f"store shard has vectors of shape {vec.shape}, store dim "
                               f"{self.meta.get('dim')}")
        cols = {
            "sample_id": np.asarray(rows["sample_id"], dtype=str),
            "item_id": np.asarray(rows["item_id"], dtype=str),
            "view": np.asarray(rows.get("view", np.zeros(n)), dtype=np.int32),
            "start_s": np.asarray(rows.get("start_s", np.full(n, np.nan)), dtype=np.float64),
            "end_s": np.asarray(rows.get("end_s", np.full(n, np.nan)), dtype=np.float64),
            "aug": np.asarray(rows.get("aug", [""] * n), dtype=str),
        }
        for k, v in cols.items():
            if len(v) != n:
                raise HaiEdgeError(f"store shard column {k} has {len(v)} rows, vector has {n}")
        existing = self.shard_paths()
        index = int(existing[-1].stem) + 1 if existing else 0
        path = self.root / "shards" / f"{index:06d}.npz"
        with atomic_write(path) as fh:
            np.savez(fh, vector=vec, **cols)
        return path

    # ------------------------------------------------------------------ read
    def iter_shards(self) -> Iterator[StoreRows]:
        for p in self.shard_paths():
            with np.load(p, allow_pickle=False) as z:
                yield StoreRows({k: z[k] for k in (*_COLUMNS, "vector")})

    def load(self) -> StoreRows:
        """All rows, concatenated, sorted by sample_id for a deterministic order."""
        parts = list(self.iter_shards())
        if not parts:
            dim = int(self.meta.get("dim") or 0)
            return StoreRows({**{k: np.array([]) for k in _COLUMNS},
                              "vector": np.zeros((0, dim), np.float32)})
        rows = {k: np.concatenate([p[k] for p in parts]) for k in (*_COLUMNS, "vector")}
        order = np.argsort(rows["sample_id"], kind="stable")
        return StoreRows({k: v[order] for k, v in rows.items()})

    def __len__(self) -> int:
        n = 0
        for p in self.shard_paths():
            with np.load(p, allow_pickle=False) as z:
                n += len(z["sample_id"])
        return n

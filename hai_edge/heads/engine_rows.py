"""The same labelled rows embedded by every engine of a bundle.

An INT8 bundle holds one model per engine (ONNX Runtime, OpenVINO, LiteRT) and each rounds
differently, so a head that is fine on one engine's embeddings may flip verdicts on another's.
Embedding the training and held-out rows once per engine is what both the engine-robust head
recipe (``hai_edge.heads.robust``) and the decision gates need. Rows that failed on any engine are
dropped from all, so recording ``i`` is the same recording for every engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.heads.probe_train import EmbeddedRows, embed_corpus_rows

__all__ = ["EngineRows", "align_engine_rows", "bundle_engines", "embed_per_engine"]


@dataclasses.dataclass(frozen=True, eq=False)
class EngineRows:
    """``rows[engine]``: the same recordings (same order, ``y``, ``groups``) per engine; the
    windows inside a recording may differ (an audio detector may find other events)."""

    rows: Mapping[str, EmbeddedRows]

    @property
    def engines(self) -> list[str]:
        return list(self.rows)

    @property
    def first(self) -> EmbeddedRows:
        return next(iter(self.rows.values()))

    def pooled(self) -> EmbeddedRows:
        """Every engine's windows of a recording as windows of that one recording: the
        training set of the engine-robust recipe."""
        first = self.first
        xs = np.concatenate([r.x for r in self.rows.values()])
        rec = np.concatenate([r.rec for r in self.rows.values()])
        return dataclasses.replace(first, x=xs, rec=rec)


def _subset(rows: EmbeddedRows, keep_ids: Sequence[str]) -> EmbeddedRows:
    index = {i: n for n, i in enumerate(rows.ids)}
    order = [index[i] for i in keep_ids]
    new_of_old = {old: new for new, old in enumerate(order)}
    mask = np.isin(rows.rec, order)
    rec = np.array([new_of_old[r] for r in rows.rec[mask]], dtype=np.int64)
    return dataclasses.replace(rows, x=rows.x[mask], rec=rec, y=rows.y[order],
                               groups=rows.groups[order], ids=[rows.ids[k] for k in order],
                               metas=[rows.metas[k] for k in order])


def align_engine_rows(rows: Mapping[str, EmbeddedRows]) -> EngineRows:
    """Keep the recordings every engine embedded, in the first engine's order."""
    if not rows:
        raise HaiEdgeError("no engine embedded the rows")
    common = set.intersection(*(set(r.ids) for r in rows.values()))
    keep = [i for i in next(iter(rows.values())).ids if i in common]
    if not keep:
        raise HaiEdgeError("no recording was embedded by every engine")
    return EngineRows({k: _subset(r, keep) for k, r in rows.items()})


def bundle_engines(bundle: Any, available: Sequence[str] | None = None) -> list[str]:
    """The engines (backend names) that can run one of the bundle's models here."""
    from hai_edge.runtime.backends import BACKENDS, available_backends

    have = set(available if available is not None else available_backends())
    formats = {m.format for m in bundle.manifest.models}
    return [name for name, info in BACKENDS.items() if name in have and info.format in formats]


def embed_per_engine(bundle: Any, data: str, label: str, positive: Sequence[str] = (),
                     group: str | None = None, *, engines: Sequence[str] | None = None,
                     file_column: str | None = None, threads: int | None = None,
                     say: Callable[[str], None] | None = None) -> EngineRows:
    """``embed_corpus_rows`` once per engine, aligned."""
    from hai_edge.bundle import Bundle

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    names = list(engines) if engines is not None else bundle_engines(b)
    if not names:
        raise HaiEdgeError(f"{b.root}: no installed engine runs this bundle's models")
    out = {}
    for name in names:
        if say:
            say(f"embedding {data} with {name}")
        out[name] = embed_corpus_rows(b, data, label, positive, group, file_column, name,
                                      None, threads)
    return align_engine_rows(out)

"""The built-in bundles' head data: cough-ru call-centre COVID-19 labels and PAD-UFES-20 malignant
vs benign, split as ``hai_edge.demo.bundles`` splits them, embedded by every engine (cached).

Shared by ``benchmarks/head_agreement.py`` (the acceptance figures of issue #18) and
``benchmarks/robust_heads.py`` (the recipe comparison and the head rebuild).
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any

from hai_edge.corpus import load_corpus, split_by_group
from hai_edge.demo.corpora import derm_split_rows

__all__ = ["DEMOS", "demo_rows", "write_splits"]

# bundle -> (head, label column, positive values, group column, subgroup columns, labels)
DEMOS: dict[str, tuple[str, str, tuple[str, ...], str, tuple[str, ...], tuple[str, str]]] = {
    "cough-demo": ("covid-demo", "covid19", ("1",), "group", ("source",),
                   ("negative", "positive")),
    "derm-demo": ("malignant", "diagnostic", ("BCC", "SCC", "MEL"), "patient_id",
                  ("gender", "fitspatrick"), ("benign", "malignant")),
}


def _write(rows: list[dict[str, Any]], dest: Path) -> Path:
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dest


def write_splits(bundle: str, data: Path, work: Path) -> tuple[Path, Path]:
    """(train CSV, held-out CSV) for a built-in bundle's head, as the demo build splits them."""
    work.mkdir(parents=True, exist_ok=True)
    if bundle == "cough-demo":
        items = [it for it in load_corpus(data / "cough-ru" / "metadata.csv", "audio",
                                          path_col="rel_path", group_col="content_group")
                 if it.meta.get("keep_recommended") == "1"]
        _, held = split_by_group(items, 0.2, 0)
        held_ids = {it.item_id for it in held}
        rows = [{"id": it.item_id, "path": str(it.path.resolve()), "group": str(it.group),
                 "source": f"cough-ru/{it.meta.get('source')}", "covid19": it.meta["covid19"],
                 "held_out": int(it.item_id in held_ids)} for it in items
                if it.meta.get("source") == "call-center" and it.meta.get("covid19") in ("0", "1")]
    else:
        rows = derm_split_rows(data)
    stem = bundle.split("-")[0]
    return (_write([r for r in rows if not r["held_out"]], work / f"{stem}-train.csv"),
            _write([r for r in rows if r["held_out"]], work / f"{stem}-heldout.csv"))


def _model_digest(bundle: Any) -> str:
    """What the embeddings depend on: the model files and the cough detector (not the heads)."""
    import hashlib

    m = bundle.manifest
    keep = {f for e in m.models for f in e.files}
    keep |= {h.get("file") for h in m.heads if h.get("role") == "detector" and h.get("file")}
    text = "".join(f"{n}:{m.files[n].sha256}" for n in sorted(keep) if n in m.files)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def demo_rows(bundle: Any, name: str, data: Path, work: Path, split: str,
              engines: list[str] | None = None) -> Any:
    """``EngineRows`` of one split (``train`` / ``heldout``), cached in WORK per engine and per
    model + detector digest (the embeddings do not depend on the heads)."""
    from hai_edge.heads.engine_rows import align_engine_rows, bundle_engines
    from hai_edge.heads.probe_train import embed_corpus_rows

    train_csv, held_csv = write_splits(name, data, work)
    csv_path = train_csv if split == "train" else held_csv
    _, label, positive, group, _, _ = DEMOS[name]
    out = {}
    digest = _model_digest(bundle)
    for engine in engines or bundle_engines(bundle):
        cache = work / f"{name}-{split}-{engine}-{digest}.pkl"
        if cache.is_file():
            out[engine] = pickle.loads(cache.read_bytes())
            continue
        print(f"embedding {name} {split} with {engine}", flush=True)
        rows = embed_corpus_rows(bundle, str(csv_path), label, positive, group, None, engine,
                                 None, 1)
        cache.write_bytes(pickle.dumps(rows))
        out[engine] = rows
    return align_engine_rows(out)

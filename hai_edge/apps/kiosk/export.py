"""Export of selected encounters: JSONL (one encounter per line) + CSV (one capture per row)
+ embeddings ``.npy`` (rows listed in ``embeddings_index.csv``), as a zip download or written
into a folder under the configured export root (paths that leave the root are refused)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError
from hai_edge.apps.kiosk.store import Encounter, Store

__all__ = ["ExportPathError", "build_export", "resolve_export_dir", "without_voided",
           "write_export_dir", "zip_export"]

CSV_COLUMNS = ("encounter_id", "subject", "encounter_created", "operator", "capture_id", "kind",
               "source", "name", "media_sha256", "media_deleted", "captured", "quality_passed",
               "quality_warnings", "head", "score", "threshold", "band", "verdict", "positive",
               "label", "embedding_rows", "voided")


class ExportPathError(HaiEdgeError):
    """An export folder outside the export root (absolute, ``..``, a symlink out, bad chars)."""


def resolve_export_dir(root: Path, folder: str) -> Path:
    """``root / folder`` when it stays inside ``root`` after resolving symlinks, else raise."""
    if not folder or "\x00" in folder or "\\" in folder or len(folder) > 255:
        raise ExportPathError("export folder must be a relative path inside the export root")
    rel = PurePosixPath(folder)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or ":" in folder:
        raise ExportPathError(f"export folder {folder!r} must be a relative path inside the "
                              "export root, without '..'")
    root = Path(root).resolve()
    dest = (root / Path(*rel.parts)).resolve()
    if dest != root and root not in dest.parents:
        raise ExportPathError(f"export folder {folder!r} leaves the export root")
    return dest


def without_voided(encounters: Sequence[Encounter], include: bool = False
                   ) -> list[Encounter]:
    """Voided encounters and captures leave an export unless ``include`` (they stay in the
    database, and the CSV's ``voided`` column marks them when included)."""
    if include:
        return list(encounters)
    return [dataclasses.replace(e, captures=tuple(c for c in e.captures if c.voided is None))
            for e in encounters if e.voided is None]


def _quality(result: dict[str, Any]) -> tuple[bool, list[str]]:
    blocks = [f["quality"] for f in result.get("frames", [])] if result.get("kind") == "photo" \
        else [result.get("quality") or {"passed": True, "checks": []}]
    warns = [c["name"] for b in blocks for c in b.get("checks", []) if c.get("flag") == "warn"]
    return all(b.get("passed", True) for b in blocks), warns


def _verdict(s: dict[str, Any]) -> str:
    """positive / negative / borderline (results stored before the band have no ``verdict``)."""
    return str(s.get("verdict") or ("positive" if s.get("positive") else "negative"))


def _score_rows(result: dict[str, Any]
                ) -> list[tuple[str, float, float, float, str, bool, str]]:
    rows = []
    nan = float("nan")
    items = result.get("frames", []) if result.get("kind") == "photo" else [result]
    for r in items:
        for head, s in r.get("scores", {}).items():
            if s is None:  # withheld (runtime.abstain): no score, the reason as the label
                why = (r.get("withheld") or {}).get(head, "withheld")
                rows.append((head, nan, nan, nan, "", False, f"not scored: {why}"))
            else:
                rows.append((head, s["probability"] if "probability" in s else s["mean"],
                             s["threshold"], float(s.get("band", 0.0)), _verdict(s),
                             s["positive"], s["label"]))
    return rows or [("", nan, nan, nan, "", False, "")]


def build_export(store: Store, encounters: Sequence[Encounter], embeddings: bool = True
                 ) -> dict[str, bytes]:
    """File name -> contents for the selected encounters."""
    jsonl = io.StringIO()
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    index = io.StringIO()
    iw = csv.writer(index, lineterminator="\n")
    iw.writerow(("row", "capture_id", "encounter_id", "kind", "item"))
    mats: list[np.ndarray] = []
    dims: set[int] = set()
    for enc in encounters:
        jsonl.write(json.dumps(enc.to_dict(), separators=(",", ":")) + "\n")
        for c in enc.captures:
            ok, warns = _quality(c.result)
            for head, score, thr, band, verdict, pos, label in _score_rows(c.result):
                writer.writerow((enc.id, enc.subject, enc.to_dict(False)["created"], enc.operator,
                                 c.id, c.kind, c.source, c.name, c.media_sha256, c.media_deleted,
                                 c.to_dict()["created"], ok, ";".join(warns), head,
                                 "" if score != score else round(score, 6),
                                 "" if thr != thr else thr, "" if band != band else band,
                                 verdict, pos, label, c.embedding_rows,
                                 c.voided is not None or enc.voided is not None))
            if embeddings and c.embedding_rows:
                blob, rows, dim = store.embeddings(c.id)
                mat = np.frombuffer(blob, dtype=np.float32).reshape(rows, dim)
                dims.add(dim)
                for i in range(rows):
                    iw.writerow((sum(len(m) for m in mats) + i, c.id, enc.id, c.kind, i))
                mats.append(mat)
    files = {"encounters.jsonl": jsonl.getvalue().encode(), "captures.csv":
             table.getvalue().encode()}
    if embeddings and mats:
        if len(dims) == 1:
            buf = io.BytesIO()
            np.save(buf, np.concatenate(mats))
            files["embeddings.npy"] = buf.getvalue()
            files["embeddings_index.csv"] = index.getvalue().encode()
        else:  # photo and cough encoders differ in size: one matrix per kind
            for kind in ("photo", "cough"):
                sel = [(m, c) for enc in encounters for c in enc.captures
                       if c.kind == kind and c.embedding_rows
                       for m in [np.frombuffer(store.embeddings(c.id)[0], np.float32).reshape(
                           c.embedding_rows, c.embedding_dim)]]
                if not sel:
                    continue
                buf = io.BytesIO()
                np.save(buf, np.concatenate([m for m, _ in sel]))
                files[f"embeddings_{kind}.npy"] = buf.getvalue()
                sub = io.StringIO()
                sw = csv.writer(sub, lineterminator="\n")
                sw.writerow(("row", "capture_id", "encounter_id", "kind", "item"))
                row = 0
                for m, c in sel:
                    for i in range(len(m)):
                        sw.writerow((row, c.id, c.encounter_id, kind, i))
                        row += 1
                files[f"embeddings_{kind}_index.csv"] = sub.getvalue().encode()
    return files


def export_name() -> str:
    return time.strftime("hai-edge-kiosk-export-%Y%m%dT%H%M%SZ", time.gmtime())


def zip_export(files: dict[str, bytes], name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, data in files.items():
            zf.writestr(f"{name}/{fname}", data)
    return buf.getvalue()


def write_export_dir(root: Path, folder: str, files: dict[str, bytes], name: str) -> Path:
    """Write the files atomically into ``root/folder/name/``; returns that folder."""
    dest = resolve_export_dir(root, folder) / name
    root_real = Path(root).resolve()
    dest.mkdir(parents=True, exist_ok=False)
    if root_real not in dest.resolve().parents:  # a symlink swapped in meanwhile
        raise ExportPathError(f"export folder {folder!r} leaves the export root")
    for fname, data in files.items():
        with atomic_write(dest / fname) as fh:
            fh.write(data)
    return dest

"""Corpus CSVs for the built-in demo bundles, from ../shared/data plus generated negatives.

The built-in ``cough-demo`` student is distilled on every source the audio reference teacher was
trained on (cough-ru coughs, donateacry infant cries, espeak-ng speech, synthetic "other" sounds),
so its embedding separates coughs from the negatives the cough detector has to reject. Group
values are the teacher's own (``content_group``, ``app_instance_id``, utterance, clip), so
``split_by_group`` gives the teacher's held-out split: no held-out item was seen by the teacher
or the student. Generated audio is written under the work directory, never into the repository.

``derm-demo`` uses PAD-UFES-20's own ``metadata.csv`` (ids ``img_id``, groups ``patient_id``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from hai_edge.fileio import atomic_write
from hai_edge.corpus import load_corpus, split_by_group
from hai_edge.teachers.reference_data import (
    AUDIO_CLASSES,
    assign_synthetic_split,
    other_clips,
    speech_clips,
)

__all__ = ["AUDIO_COLUMNS", "derm_split_rows", "write_audio_corpus"]

AUDIO_COLUMNS = ("id", "path", "group", "dataset", "source", "cls", "is_cough", "covid19",
                 "held_out")


def write_audio_corpus(data: Path, work: Path, *, seed: int = 0, n_speech: int = 360,
                       n_other: int = 360) -> Path:
    """Write ``work/audio-corpus.csv`` (+ generated WAVs under ``work/generated``); return it.

    Real recordings are referenced by absolute path (not copied), selected and split exactly as
    ``real_audio`` does for the teacher; the synthetic ones are written as 16 kHz 16-bit WAV once
    (same seed -> same clips as the teacher's training used).
    """
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, group_col, cls in (("cough-ru", "content_group", 0),
                                 ("donateacry", "app_instance_id", 1)):
        items = load_corpus(data / name / "metadata.csv", "audio", path_col="rel_path",
                            group_col=group_col)
        if name == "cough-ru":
            items = [it for it in items if it.meta.get("keep_recommended") == "1"]
        _, held = split_by_group(items, 0.2, seed)
        held_ids = {it.item_id for it in held}
        for it in items:
            source = f"cough-ru/{it.meta.get('source')}" if name == "cough-ru" else name
            rows.append(_row(it.item_id, it.path.resolve(), str(it.group), name, source, cls,
                             it.meta.get("covid19", ""), it.item_id in held_ids))
    synth = speech_clips(work / "cache", seed, n_speech) + other_clips(seed, n_other)
    assign_synthetic_split(synth, seed)
    for c in synth:
        path = work / "generated" / f"{c.clip_id}.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as fh:
                sf.write(fh, np.clip(c.audio, -1, 1), 16000, subtype="PCM_16", format="WAV")
        rows.append(_row(c.clip_id, path, c.group, c.source, c.source, c.cls, "", c.held))
    rows.sort(key=lambda r: r["id"])
    out = work / "audio-corpus.csv"
    with atomic_write(out, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=list(AUDIO_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return out


def _row(item_id: str, path: Path, group: str, dataset: str, source: str, cls: int, covid: str,
         held: bool) -> dict[str, object]:
    return {"id": item_id, "path": str(path), "group": group, "dataset": dataset,
            "source": source, "cls": AUDIO_CLASSES[cls], "is_cough": int(cls == 0),
            "covid19": covid, "held_out": int(held)}


def derm_split_rows(data: Path) -> list[dict[str, Any]]:
    """PAD-UFES-20 rows of the built-in derm-demo head, split by patient as its build splits them
    (``split_by_group(items, 0.2, seed 0)``; ``held_out`` 1 for the held-out patients)."""
    items = load_corpus(data / "pad-ufes-20" / "metadata.csv", "image", group_col="patient_id",
                        id_col="img_id")
    _, held = split_by_group(items, 0.2, 0)
    held_ids = {it.item_id for it in held}
    return [{"id": it.item_id, "path": str(it.path.resolve()), "patient_id": it.group,
             "diagnostic": it.meta["diagnostic"], "gender": it.meta.get("gender", ""),
             "fitspatrick": it.meta.get("fitspatrick", ""), "age": it.meta.get("age", ""),
             "held_out": int(it.item_id in held_ids)} for it in items]

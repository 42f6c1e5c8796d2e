"""``run_stress``: data -> items and labels -> shifts -> measurements -> stress.json.

``--data`` is a CSV (see :mod:`hai_edge.corpus`) or a folder. A folder that holds one of the
project's development datasets (``cough-ru/``, ``pad-ufes-20/``: the shared data root) resolves to
that dataset's metadata.csv with its documented label: cough-ru COVID-19 (``covid19`` = 1) within
the Telegram app recordings only (``source=telegram``, ``keep_recommended=1``: every PCR-positive
call-centre clip is 8 kHz phone audio, so mixing sources would measure the channel, and the demo
head was trained on the call-centre clips), pad-ufes-20 malignant = BCC/SCC/MEL. Any other folder
is a plain media folder (fidelity only, no head figures).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata as md
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.corpus import CorpusItem, load_corpus
from hai_edge.errors import HaiEdgeError
from hai_edge.evaluation.probes import LabelSpec, binary_labels
from hai_edge.stress.measure import measure
from hai_edge.stress.models import ScorerKind, open_target
from hai_edge.stress.shifts import Shift, ShiftContext, select_shifts
from hai_edge.stress.stats import summarise

__all__ = ["DATASETS", "STRESS_SCHEMA", "StressOptions", "run_stress"]

STRESS_SCHEMA = "hai-edge/stress/1"


@dataclasses.dataclass(frozen=True)
class DatasetDefault:
    csv: str
    modality: str
    label: LabelSpec


DATASETS = {
    "cough-ru": DatasetDefault("cough-ru/metadata.csv", "audio", LabelSpec(
        "covid19", ("1",), (("source", "telegram"), ("keep_recommended", "1")))),
    "pad-ufes-20": DatasetDefault("pad-ufes-20/metadata.csv", "image",
                                  LabelSpec("diagnostic", ("BCC", "SCC", "MEL"))),
}
NOISE_DIR = "donateacry/audio"  # under the shared data root: infant cries, 8 kHz wav
_MAX_NOISE_FILES = 40


@dataclasses.dataclass(frozen=True)
class StressOptions:
    data: str
    shifts: tuple[str, ...] = ()
    severities: tuple[int, ...] = (1, 2, 3)
    seed: int = 0
    max_items: int | None = 160
    max_seconds: float | None = 8.0  # audio: the first seconds of each recording
    label: LabelSpec | None = None  # None: the dataset's default, else the first head's
    models: tuple[str, ...] = ()
    teacher: str | None = "auto"
    noise_dir: str | None = None
    n_boot: int = 1000
    threads: int = 1
    progress: bool = True


def _resolve_data(data: str, modality: str) -> tuple[Path, LabelSpec | None, Path | None]:
    """(csv or folder, default label, data root for the noise folder)."""
    p = Path(data)
    if p.is_dir():
        for name, d in DATASETS.items():
            if d.modality == modality and (p / d.csv).is_file():
                return p / d.csv, d.label, p
        return p, None, p
    if not p.is_file():
        raise HaiEdgeError(f"{p}: no such data CSV or folder (give --data)")
    for name, d in DATASETS.items():
        if p.parent.name == name and d.modality == modality:
            return p, d.label, p.parent.parent
    return p, None, p.parent


def _key(seed: int, s: str) -> str:
    return hashlib.sha256(f"{seed}|{s}".encode()).hexdigest()


def _subsample(items: list[CorpusItem], y: np.ndarray, n: int | None, seed: int
               ) -> tuple[list[CorpusItem], np.ndarray]:
    """At most ``n`` items, whole groups in a seeded hash order: half positives where there are
    that many (AUROC does not depend on prevalence; sensitivity's CI needs positives)."""
    if not n or len(items) <= n:
        return items, y
    order = sorted(range(len(items)), key=lambda i: (_key(seed, items[i].group or items[i].item_id),
                                                     items[i].item_id))
    want_pos = min(int((y == 1).sum()), n // 2) if (y >= 0).any() else 0
    quota = {1: want_pos, 0: n - want_pos, -1: n}
    pick = []
    for i in order:
        c = int(y[i]) if (y >= 0).any() else -1
        if quota[c] > 0:
            pick.append(i)
            quota[c] -= 1
    pick.sort(key=lambda i: items[i].item_id)
    return [items[i] for i in pick], y[pick]


def _noise(dirs: Sequence[Path | None], sr: int) -> tuple[tuple[np.ndarray, ...], str]:
    from hai_edge.stress.measure import load_media

    for d in dirs:
        if d is None or not d.is_dir():
            continue
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in (".wav", ".flac", ".ogg",
                                                                        ".mp3"))
        files = sorted(files, key=lambda f: _key(0, f.name))[:_MAX_NOISE_FILES]
        spec = type("S", (), {"sample_rate": sr})()
        clips = tuple(load_media(CorpusItem(f.name, f), "audio", spec) for f in files)
        if clips:
            return clips, f"{d} ({len(clips)} recordings)"
    return (), ""


def _versions(target_scorers: Sequence[Any]) -> dict[str, str]:
    import soundfile

    out = {}
    for pkg in ("numpy", "scipy", "soundfile", "Pillow", "scikit-learn", "onnxruntime",
                "openvino", "ai-edge-litert", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    out["libsndfile"] = str(soundfile.__libsndfile_version__)
    return out


def _shift_dicts(shifts: Sequence[Shift], sr: int) -> list[dict[str, Any]]:
    from hai_edge.stress.audio import codec_bitrate_kbps

    out = []
    for s in shifts:
        d = s.to_dict()
        if s.name in ("mp3", "opus"):
            for lv in d["levels"]:
                lv["measured_kbps"] = round(codec_bitrate_kbps(s.name, sr, lv["kbps"]), 1)
        out.append(d)
    return out


def _items(opts: StressOptions, modality: str, heads: Sequence[Any]
           ) -> tuple[list[CorpusItem], np.ndarray, dict[str, Any], Path | None]:
    src, default_label, root = _resolve_data(opts.data, modality)
    items = load_corpus(src, modality)
    label = opts.label or default_label
    if label is None and heads:
        spec = (heads[0].training or {}).get("label") or {}
        if spec.get("column") and all(spec["column"] in it.meta for it in items[:1]):
            label = LabelSpec(spec["column"], tuple(spec.get("positive") or ()))
    info: dict[str, Any] = {"source": str(src), "n_listed": len(items)}
    if label is None:
        y = np.full(len(items), -1)
    else:
        y, keep, linfo = binary_labels([it.meta for it in items], label)
        items = [it for it, k in zip(items, keep) if k]
        y = y[keep]
        info["label"] = linfo["label"]
    items, y = _subsample(items, y, opts.max_items, opts.seed)
    groups = {it.group or it.item_id for it in items}
    info.update(n=len(items), n_positive=int((y == 1).sum()), n_negative=int((y == 0).sum()),
                groups=len(groups), max_items=opts.max_items,
                max_seconds=opts.max_seconds if modality == "audio" else None,
                sampling="whole groups in seeded hash order, up to half positives")
    if not items:
        raise HaiEdgeError(f"{src}: no items left after the label filters")
    return items, y, info, root


def run_stress(target: str, opts: StressOptions) -> dict[str, Any]:
    """Measure ``target`` under every selected shift; returns the stress.json document."""
    t0 = time.perf_counter()
    tgt = open_target(target, models=opts.models or None, teacher=opts.teacher,
                      threads=opts.threads)
    try:
        shifts = select_shifts(tgt.modality, opts.shifts or None)
        items, y, data_info, root = _items(opts, tgt.modality, tgt.heads)
        ctx = ShiftContext()
        if tgt.modality == "audio":
            sr = int(tgt.spec.sample_rate)
            dirs = [Path(opts.noise_dir)] if opts.noise_dir else [root / NOISE_DIR if root else None]
            clips, where = _noise(dirs, sr) if any(s.name == "noise-real" for s in shifts) \
                else ((), "")
            if not clips and any(s.name == "noise-real" for s in shifts):
                if "noise-real" in opts.shifts:
                    raise HaiEdgeError("shift noise-real: no noise recordings found "
                                       "(--noise-dir DIR)")
                shifts = [s for s in shifts if s.name != "noise-real"]
                tgt.notes.append("noise-real left out: no noise recordings (--noise-dir)")
            ctx = ShiftContext(sr, clips, where)
        bad = [k for k in opts.severities if k < 1 or k > 3]
        if bad or not opts.severities:
            raise HaiEdgeError("--severities: give values among 1, 2, 3")
        groups = [it.group or it.item_id for it in items]
        if opts.progress:
            print(f"stress: {tgt.name}: {len(items)} items ({data_info['n_positive']} positive, "
                  f"{len(set(groups))} groups), {len(shifts)} shifts, scorers "
                  f"{', '.join(s.name for s in tgt.scorers)}", file=sys.stderr, flush=True)
        meas = measure(tgt, items, shifts, opts.severities, seed=opts.seed, ctx=ctx,
                       max_seconds=opts.max_seconds, progress=opts.progress)
        kinds = {s.name: s.kind for s in tgt.scorers}
        ref = next((n for n, k in kinds.items() if k is ScorerKind.TEACHER), None) or \
            next((n for n, k in kinds.items() if k is ScorerKind.FP32), None)
        results = summarise(meas, tgt.heads, y, groups, n_boot=opts.n_boot, seed=opts.seed,
                            reference=ref)
        sr_for = int(getattr(tgt.spec, "sample_rate", 16000) or 16000)
        return {
            "schema": STRESS_SCHEMA,
            "target": {"arg": target, "name": tgt.name, "modality": tgt.modality,
                       "teacher": tgt.teacher_info},
            "scorers": [{"name": s.name, "kind": s.kind.value, **s.detail} for s in tgt.scorers],
            "heads": [{"name": h.name, "threshold": h.threshold, "labels": list(h.labels)}
                      for h in tgt.heads],
            "data": data_info,
            "shifts": _shift_dicts(shifts, sr_for),
            "noise": ctx.noise_source or None,
            "seed": opts.seed,
            "severities": list(opts.severities),
            "versions": _versions(tgt.scorers),
            "notes": tgt.notes,
            "results": results,
            "seconds": round(time.perf_counter() - t0, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        tgt.close()

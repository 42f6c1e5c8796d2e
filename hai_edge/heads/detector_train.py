"""Train and score the learned cough detector (``energy_head``) of an audio bundle.

Candidates come from the energy detector on synthetic scenes (``cough_scenes``) built from the
training split; each candidate's verification window (``events_learned.verification_window``,
ending ``after_s`` after the candidate) is embedded by the bundle's own model through the run
side, and labelled cough when the candidate overlaps a cough segment. The head is the probe
recipe of ``probe_train.train_head`` (standardise, class-balanced logistic regression, C by
grouped CV, Platt calibration) with one row per candidate, grouped by the clip it overlaps.
Its threshold is the out-of-fold F1-optimal one (events, not recordings, are what it decides).

Evaluation runs the shipped code path (``CoughPipeline`` with the new detector entry, INT8
model) on scenes built only from held-out clips and reports segment-based precision, recall and
F1 (``cough_scenes.score_events``) for the energy baseline and for the learned detector, plus
the false alarms per negative source.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import DetectorEntry, DetectorKind, WindowAlign
from hai_edge.errors import HaiEdgeError
from hai_edge.heads.cough_scenes import SR, Scene, SceneClip, make_scenes, score_events, segment_of

__all__ = ["detector_entry", "evaluate_detector", "read_scene_clips", "train_detector_head"]

DETECTOR_NAME = "cough-detector"


def read_scene_clips(corpus_csv: Path) -> tuple[list[SceneClip], list[SceneClip]]:
    """(train, held-out) clips of a corpus CSV written by ``demo_corpora.write_audio_corpus``."""
    train, held = [], []
    with open(corpus_csv, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            clip = SceneClip(r["id"], Path(r["path"]), r["cls"], r["source"], r["group"])
            (held if r["held_out"] == "1" else train).append(clip)
    return train, held


def load_16k(path: Path) -> np.ndarray:
    from hai_edge.runtime.decoders import decode_audio
    from hai_edge.runtime.frontends import resample, to_mono

    d = decode_audio(path)
    return resample(to_mono(d.samples), d.sample_rate, SR).astype(np.float32)


def _candidate_rows(scenes: list[Scene], spec: Any, embed: Callable[[np.ndarray], np.ndarray],
                    after_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from hai_edge.runtime.events import EnergyDetector
    from hai_edge.runtime.events_learned import verification_window
    from hai_edge.runtime.frontends import window_features

    xs, ys, groups = [], [], []
    det = EnergyDetector(SR)
    for sc in scenes:
        cands = det.detect(sc.audio)
        if not cands:
            continue
        wins = np.stack([verification_window(sc.audio, sc.audio.size, c.end_s, after_s, spec)
                         for c in cands])
        xs.append(embed(window_features(wins, spec)))
        for c in cands:
            seg = segment_of(c.start_s, c.end_s, sc.segments)
            ys.append(int(seg is not None and seg.cls == "cough"))
            groups.append(seg.item_id if seg is not None else sc.scene_id)
    if not xs:
        raise HaiEdgeError("no energy candidates in the training scenes")
    return np.concatenate(xs).astype(np.float64), np.asarray(ys), np.asarray(groups)


def _f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best F1 on (y, p); ties keep the higher threshold."""
    best_f1, best_t = -1.0, 0.5
    for t in np.unique(np.round(p, 4)):
        pred = p >= t
        tp = int(np.sum(pred & (y == 1)))
        f1 = 2 * tp / (int(pred.sum()) + int(y.sum())) if tp else 0.0
        if f1 >= best_f1:
            best_f1, best_t = f1, float(t)
    return best_t


def train_detector_head(bundle: Any, train_clips: list[SceneClip], *, n_scenes: int = 300,
                        seed: int = 0, after_s: float = 0.25, backend: str | None = None,
                        log: Callable[[str], None] = print) -> Any:
    """Fit the verification head on training-split scenes; returns a ``Head``."""
    import dataclasses

    from hai_edge.runtime import Embedder
    from hai_edge.heads.probe_train import EmbeddedRows, train_head

    scenes = make_scenes(train_clips, n_scenes, seed, load=load_16k, prefix="train")
    with Embedder(bundle, backend, threads=2) as emb:
        spec = emb.bundle.manifest.preprocessing
        x, y, groups = _candidate_rows(scenes, spec, emb.embed_inputs, after_s)
    log(f"detector: {len(scenes)} training scenes, {len(y)} energy candidates "
        f"({int(y.sum())} on coughs)")
    rows = EmbeddedRows(x, np.arange(len(y)), y, groups, [str(i) for i in range(len(y))],
                        [{} for _ in y], [], f"scenes:{n_scenes}:seed{seed}", {"label": "cough"})
    head = train_head(rows, DETECTOR_NAME, labels=("other", "cough"), seed=seed,
                      extra_training={"data": "synthetic scenes from the training split "
                                              "(hai_edge.heads.cough_scenes)",
                                      "scenes": n_scenes, "after_s": after_s},
                      log=None)
    # out-of-fold probabilities again at the chosen C, for the event-level threshold
    from hai_edge.heads.probe_train import window_folds

    z = np.full(len(y), np.nan)
    for tr, te in window_folds(rows, 5, seed):
        from hai_edge.heads.probe_train import _fit

        scaler, clf = _fit(x[tr], y[tr], head.training["C"])
        z[te] = clf.decision_function(scaler.transform(x[te]))
    p = head.calibration.apply(z)
    threshold = _f1_threshold(y, p)
    training = dict(head.training, threshold_rule="max out-of-fold candidate F1")
    return dataclasses.replace(head, threshold=threshold, training=training)


def detector_entry(head_file: str, threshold: float, after_s: float = 0.25) -> dict[str, Any]:
    """The manifest entry of the learned detector (``events_learned`` docstring)."""
    return DetectorEntry(kind=DetectorKind.ENERGY_HEAD, name=DETECTOR_NAME, params={},
                         file=head_file, threshold=threshold, labels=("other", "cough"),
                         align=WindowAlign.END, after_s=after_s).to_dict()


def evaluate_detector(bundle: Any, held_clips: list[SceneClip], *, n_scenes: int = 120,
                      seed: int = 1, backend: str | None = None) -> dict[str, Any]:
    """Energy baseline vs the bundle's detector on held-out scenes (module docstring)."""
    from hai_edge.runtime.cough import CoughPipeline
    from hai_edge.runtime.events import EnergyDetector

    scenes = make_scenes(held_clips, n_scenes, seed, load=load_16k, prefix="heldout")
    energy = EnergyDetector(SR)
    base = [[(e.start_s, e.end_s) for e in energy.detect(sc.audio)] for sc in scenes]
    learned, latency = [], []
    with CoughPipeline(bundle, backend, heads=(), threads=1) as pipe:
        for sc in scenes:
            stream = pipe.detector.stream()
            evs, pushed = [], 0
            for i in range(0, sc.audio.size, 320):  # 20 ms blocks, as the microphone delivers
                chunk = sc.audio[i : i + 320]
                pushed += chunk.size
                for e in stream.push(chunk):
                    evs.append((e.start_s, e.end_s))
                    latency.append(pushed / SR - e.end_s)
            evs += [(e.start_s, e.end_s) for e in stream.flush()]
            offline = [(e.start_s, e.end_s) for e in pipe.detector.detect(sc.audio)]
            if offline != evs:
                raise HaiEdgeError(f"{sc.scene_id}: streaming and offline detection differ")
            learned.append(evs)
        name = pipe.detector.name
    n_segments = sum(len(sc.segments) for sc in scenes)
    return {"scenes": n_scenes, "segments": n_segments, "seed": seed,
            "audio_s": round(sum(sc.audio.size for sc in scenes) / SR, 1),
            "energy": score_events(scenes, base), name: score_events(scenes, learned),
            "latency_after_event_end_s": {
                "max": round(max(latency), 3) if latency else None,
                "median": round(float(np.median(latency)), 3) if latency else None}}

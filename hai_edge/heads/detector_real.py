"""Train the learned cough detector's verification head on real recordings, by sound type.

Same detector, same file format as ``detector_train`` (an ``energy_head`` entry and a compact
logistic head on the bundle's embedding); what changes is the data (``detector_data``: real
coughs against real speech, breathing, vowels, infant cry and generated noise, on both 8 kHz
and wideband channels, split by participant / speaker / group) and the threshold rule.

Rows: each training clip is analysed alone in a quiet bed (``detector_data.clip_scene``); every
energy candidate (at most ``cap`` per clip, evenly spread) gives one verification window
(``events_learned.verification_window``), embedded by the bundle's model, labelled by the
clip's sound type. The head is ``probe_train.train_head`` with one row per candidate, grouped by
person (a participant's cough and speech fall in the same fold).

Threshold: a clip raises an alarm when any of its candidates passes, so the out-of-fold clip
score is the *maximum* candidate probability, and the threshold maximises the *worst* of cough
recall and the specificity of each non-cough type on those clip scores (ties: the higher
threshold). Embeddings are cached under ``cache`` (never in the repository).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.heads.detector_data import DetectorClip, SoundType, clip_scene

__all__ = ["CandidateRows", "candidate_rows", "clip_scores", "train_real_detector",
           "worst_case_threshold"]

DETECTOR_NAME = "cough-detector"
CS = (1e-3, 1e-2, 1e-1, 1.0)  # thousands of 512-d rows: larger C adds minutes, not accuracy


@dataclasses.dataclass(frozen=True)
class CandidateRows:
    """Embedded energy candidates: ``x[i]`` is a candidate of clip ``clip[i]``."""

    x: np.ndarray  # [n, dim] float64
    clip: np.ndarray  # [n] index into the clip list
    n_candidates: np.ndarray  # [n_clips] all candidates of each clip (before the cap)


def _bundle_key(bundle: Any) -> str:
    files = getattr(bundle.manifest, "files", {}) or {}
    blob = "|".join(f"{k}:{v.get('sha256') if isinstance(v, dict) else v}"
                    for k, v in sorted(files.items()) if not k.startswith("heads/"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def candidate_rows(clips: Sequence[DetectorClip], bundle: Any, *, after_s: float = 0.25,
                   cap: int = 24, cache: Path | None = None, backend: str | None = None,
                   log: Callable[[str], None] | None = print) -> CandidateRows:
    """Embed the verification window of each clip's energy candidates (module docstring)."""
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.events import EnergyDetector
    from hai_edge.runtime.events_learned import verification_window
    from hai_edge.runtime.frontends import window_features

    with Embedder(bundle, backend, threads=1, batch_size=32) as emb:
        key = hashlib.sha256(("|".join(c.item_id + c.channel.value for c in clips)
                              + f"|{after_s}|{cap}|{_bundle_key(emb.bundle)}").encode())
        path = cache / f"detector-rows-{key.hexdigest()[:20]}.npz" if cache else None
        if path is not None and path.is_file():
            z = np.load(path)
            return CandidateRows(z["x"], z["clip"], z["n_candidates"])
        spec = emb.bundle.manifest.preprocessing
        det = EnergyDetector(spec.sample_rate)
        xs, idx, counts = [], [], np.zeros(len(clips), dtype=np.int64)
        for i, clip in enumerate(clips):
            audio, _, _ = clip_scene(clip)
            cands = det.detect(audio)
            counts[i] = len(cands)
            if len(cands) > cap:
                cands = [cands[j] for j in np.linspace(0, len(cands) - 1, cap).round().astype(int)]
            if cands:
                wins = np.stack([verification_window(audio, audio.size, c.end_s, after_s, spec)
                                 for c in cands])
                xs.append(emb.embed_inputs(window_features(wins, spec)).astype(np.float64))
                idx += [i] * len(cands)
            if log and (i + 1) % 500 == 0:
                log(f"detector rows: {i + 1}/{len(clips)} clips, {len(idx)} candidates")
    if not xs:
        raise HaiEdgeError("no energy candidates in the detector clips")
    rows = CandidateRows(np.concatenate(xs), np.asarray(idx, dtype=np.int64), counts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=rows.x, clip=rows.clip, n_candidates=rows.n_candidates)
    return rows


def clip_scores(p: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Per clip, the highest candidate probability (0 for a clip without candidates)."""
    out = np.zeros(n_clips)
    np.maximum.at(out, clip, p)
    return out


def worst_case_threshold(scores: np.ndarray, sounds: Sequence[SoundType]) -> tuple[float, float]:
    """(threshold, worst rate): the threshold that maximises the minimum over cough recall and
    each non-cough type's specificity, on clip scores; ties keep the higher threshold."""
    kinds = np.array([s.value for s in sounds])
    best = (-1.0, 0.5)
    for t in np.unique(np.round(scores[scores > 0], 4)):
        rates = [float(np.mean(scores[kinds == "cough"] >= t))]
        rates += [float(np.mean(scores[kinds == k] < t)) for k in sorted(set(kinds) - {"cough"})]
        if min(rates) >= best[0]:
            best = (min(rates), float(t))
    return best[1], best[0]


def train_real_detector(bundle: Any, clips: Sequence[DetectorClip], *, after_s: float = 0.25,
                        seed: int = 0, cache: Path | None = None, backend: str | None = None,
                        log: Callable[[str], None] | None = print) -> Any:
    """Fit the verification head on the (training) ``clips``; returns a compact ``Head``."""
    from hai_edge.heads.probe_train import EmbeddedRows, _fit, train_head, window_folds

    rows = candidate_rows(clips, bundle, after_s=after_s, cache=cache, backend=backend, log=log)
    sounds = [c.sound for c in clips]
    y = np.array([int(sounds[i] is SoundType.COUGH) for i in rows.clip])
    groups = np.array([clips[i].group for i in rows.clip])
    n = len(y)
    emb = EmbeddedRows(rows.x, np.arange(n), y, groups, [str(i) for i in range(n)],
                       [{} for _ in range(n)], [], f"detector-clips:{len(clips)}:seed{seed}",
                       {"label": "cough"})
    by_type = {k.value: int(sum(s is k for s in sounds)) for k in SoundType}
    head = train_head(emb, DETECTOR_NAME, labels=("other", "cough"), seed=seed, cs=CS,
                      extra_training={
                          "data": "real clips of ../shared/data (hai_edge.heads.detector_data): "
                                  "coswara, fsdd, cough-ru, donateacry + generated noise; "
                                  "split by participant / speaker / group",
                          "clips_by_type": by_type, "after_s": after_s}, log=None)
    z = np.full(n, np.nan)  # out-of-fold logits at the chosen C, for the clip-level threshold
    for tr, te in window_folds(emb, 5, seed):
        scaler, clf = _fit(rows.x[tr], y[tr], head.training["C"])
        z[te] = clf.decision_function(scaler.transform(rows.x[te]))
    scores = clip_scores(head.calibration.apply(z), rows.clip, len(clips))
    threshold, worst = worst_case_threshold(scores, sounds)
    if log:
        log(f"detector: {len(clips)} clips, {n} candidates ({int(y.sum())} cough); "
            f"C={head.training['C']}, threshold {threshold:.4f} (worst out-of-fold clip "
            f"rate {worst:.3f})")
    training = dict(head.training, threshold_rule="max over thresholds of the worst of cough "
                    "recall and per-type specificity, out-of-fold, clip = any candidate",
                    worst_rate_cv=round(worst, 4))
    return dataclasses.replace(head, threshold=threshold, training=training)

"""Synthetic recordings with known sound events, for training and scoring the cough detector.

No public corpus here has cough *event* annotations (cough-ru clips are whole recordings of
induced coughs, donateacry clips whole cries). So scenes are assembled: a quiet coloured-noise
bed with segments placed at known times, each segment the active part of one corpus clip (a
cough recording, an infant cry, speech, or another sound), gain-normalised, with gaps between.
The ground truth is the segment spans and their sources. Train scenes draw only training-split
clips and evaluation scenes only held-out clips, so the grouped split carries over.

Scoring (:func:`score_events`) is segment-based: a detected cough event is correct when it
overlaps a cough segment (with a ``collar_s`` tolerance); a cough segment is found when at
least one detected event overlaps it. Precision = correct events / detected events, recall =
found cough segments / cough segments, F1 their harmonic mean; false events are attributed to
the source of the segment they overlap (or ``background``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["Scene", "SceneClip", "Segment", "make_scenes", "score_events", "segment_of"]

SR = 16000


@dataclasses.dataclass(frozen=True)
class SceneClip:
    """One corpus clip a scene may use."""

    item_id: str
    path: Path
    cls: str  # cough | infant_cry | speech | other
    source: str
    group: str


@dataclasses.dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    cls: str
    source: str
    item_id: str


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    scene_id: str
    audio: np.ndarray  # float32 mono at 16 kHz
    segments: tuple[Segment, ...]


def _active_part(x: np.ndarray, rng: np.random.Generator, max_s: float) -> np.ndarray | None:
    """The clip from its first to its last active 25 ms frame (within 35 dB of its loudest
    frame and above -50 dBFS), at most ``max_s`` long (a random excerpt, re-trimmed)."""
    for _ in range(2):
        hop = SR // 100
        n = x.size // hop
        if n < 3:
            return None
        frames = x[: n * hop].reshape(n, hop).astype(np.float64)
        db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        active = np.flatnonzero(db > max(db.max() - 35.0, -50.0))
        if active.size == 0:
            return None
        x = x[active[0] * hop : (active[-1] + 1) * hop]
        if x.size <= max_s * SR:
            return x
        start = int(rng.integers(0, x.size - int(max_s * SR)))
        x = x[start : start + int(max_s * SR)]
    return x


def make_scenes(clips: Sequence[SceneClip], n_scenes: int, seed: int, *,
                load: Callable[[Path], np.ndarray], segments_per_scene: int = 6,
                p_cough: float = 0.5, max_segment_s: float = 4.0,
                prefix: str = "scene") -> list[Scene]:
    """``n_scenes`` scenes from ``clips`` (``load(path)`` -> mono float32 at 16 kHz).

    Each slot is a cough clip with probability ``p_cough``, else a clip of one of the other
    classes (classes equally likely); segment peak levels -26..-10 dBFS over a noise bed at
    -70..-50 dBFS (white, pink or brown); gaps 0.6-2.5 s."""
    from hai_edge.teachers.reference_data import coloured_noise

    rng = np.random.default_rng([seed, 707])
    by_cls: dict[str, list[SceneClip]] = {}
    for c in clips:
        by_cls.setdefault(c.cls, []).append(c)
    negatives = sorted(k for k in by_cls if k != "cough")
    scenes = []
    for s in range(n_scenes):
        parts: list[tuple[float, np.ndarray, SceneClip]] = []
        t = float(rng.uniform(0.3, 1.0))
        for _ in range(segments_per_scene):
            cls = "cough" if (rng.random() < p_cough or not negatives) else \
                negatives[int(rng.integers(len(negatives)))]
            pool = by_cls[cls]
            clip = pool[int(rng.integers(len(pool)))]
            x = _active_part(load(clip.path), rng, max_segment_s)
            if x is None:
                continue
            hop = SR // 100
            peak = max(float(np.max(np.mean(
                x[: x.size // hop * hop].reshape(-1, hop).astype(np.float64) ** 2, axis=1))),
                1e-12)
            level = rng.uniform(-26.0, -10.0)
            x = (x * 10 ** (level / 20) / math.sqrt(peak)).astype(np.float32)
            parts.append((t, x, clip))
            t += x.size / SR + float(rng.uniform(0.6, 2.5))
        n = int((t + 0.5) * SR)
        bed = coloured_noise(rng, n, float(rng.integers(3)))
        audio = (bed * 10 ** (rng.uniform(-70.0, -50.0) / 20)).astype(np.float32)
        segs = []
        for start, x, clip in parts:
            i = int(round(start * SR))
            audio[i : i + x.size] += x
            segs.append(Segment(i / SR, (i + x.size) / SR, clip.cls, clip.source, clip.item_id))
        scenes.append(Scene(f"{prefix}{s:04d}", np.clip(audio, -1, 1), tuple(segs)))
    return scenes


def segment_of(start_s: float, end_s: float, segments: Sequence[Segment],
               collar_s: float = 0.1) -> Segment | None:
    """The segment an event overlaps most (within the collar), or None (background)."""
    best, best_overlap = None, 0.0
    for seg in segments:
        overlap = min(end_s, seg.end_s + collar_s) - max(start_s, seg.start_s - collar_s)
        if overlap > best_overlap:
            best, best_overlap = seg, overlap
    return best


def score_events(scenes: Sequence[Scene], events: Sequence[Sequence[tuple[float, float]]],
                 collar_s: float = 0.1) -> dict[str, object]:
    """Segment-based precision/recall/F1 of detected cough events (module docstring)."""
    correct = detected = found = total = 0
    false_by: Counter[str] = Counter()
    segs_by: Counter[str] = Counter()
    flagged_by: Counter[str] = Counter()  # negative segments with >= 1 cough event
    for scene, evs in zip(scenes, events):
        hit: set[int] = set()
        flagged: set[int] = set()
        for seg in scene.segments:
            segs_by[seg.source] += 1
        for s, e in evs:
            detected += 1
            seg = segment_of(s, e, scene.segments, collar_s)
            if seg is not None and seg.cls == "cough":
                correct += 1
                hit.add(id(seg))
            else:
                false_by["background" if seg is None else seg.source] += 1
                if seg is not None and id(seg) not in flagged:
                    flagged.add(id(seg))
                    flagged_by[seg.source] += 1
        coughs = [seg for seg in scene.segments if seg.cls == "cough"]
        total += len(coughs)
        found += sum(id(seg) in hit for seg in coughs)
    precision = correct / detected if detected else 0.0
    recall = found / total if total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "detected_events": detected, "correct_events": correct,
            "cough_segments": total, "found_segments": found,
            "false_events_by_source": dict(sorted(false_by.items())),
            "flagged_negative_segments_by_source": dict(sorted(flagged_by.items())),
            "segments_by_source": dict(sorted(segs_by.items())), "collar_s": collar_s}

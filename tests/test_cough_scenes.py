"""Synthetic scenes for the cough detector: placement, ground truth and segment-based scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hai_edge.heads.cough_scenes import (
    SR,
    Scene,
    SceneClip,
    Segment,
    make_scenes,
    score_events,
    segment_of,
)


def _clips() -> tuple[list[SceneClip], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    audio, clips = {}, []
    for i, cls in enumerate(["cough"] * 4 + ["infant_cry", "speech", "other"] * 2):
        x = np.zeros(int(2.0 * SR), dtype=np.float32)
        start = int(rng.uniform(0.2, 0.6) * SR)  # silence around an active middle
        x[start : start + int(0.8 * SR)] = 0.2 * rng.standard_normal(int(0.8 * SR))
        path = Path(f"/virtual/{cls}{i}.wav")
        audio[str(path)] = x
        clips.append(SceneClip(f"{cls}{i}", path, cls, f"src-{cls}", f"g{i}"))
    return clips, audio


def test_scenes_place_trimmed_segments_without_overlap_and_are_seeded() -> None:
    clips, audio = _clips()
    scenes = make_scenes(clips, 5, seed=3, load=lambda p: audio[str(p)])
    again = make_scenes(clips, 5, seed=3, load=lambda p: audio[str(p)])
    assert all(np.array_equal(a.audio, b.audio) and a.segments == b.segments
               for a, b in zip(scenes, again))
    classes = set()
    for sc in scenes:
        assert sc.audio.dtype == np.float32 and 1 <= len(sc.segments) <= 6
        for a, b in zip(sc.segments, sc.segments[1:]):
            assert b.start_s - a.end_s >= 0.6 - 1e-6  # gaps
        for seg in sc.segments:
            classes.add(seg.cls)
            # the active part only (0.8 s of noise), at a level well above the bed
            assert seg.end_s - seg.start_s == pytest.approx(0.8, abs=0.011)
            inside = sc.audio[int(seg.start_s * SR) : int(seg.end_s * SR)]
            before = sc.audio[int((seg.start_s - 0.3) * SR) : int((seg.start_s - 0.05) * SR)]
            assert np.sqrt(np.mean(inside**2)) > 10 * np.sqrt(np.mean(before**2))  # >= 20 dB SNR
    assert classes == {"cough", "infant_cry", "speech", "other"}


def test_segment_based_scores() -> None:
    segs = (Segment(1.0, 1.5, "cough", "c", "a"), Segment(3.0, 4.0, "speech", "s", "b"),
            Segment(6.0, 6.4, "cough", "c", "d"))
    scene = Scene("x", np.zeros(SR * 8, dtype=np.float32), segs)
    assert segment_of(1.45, 1.7, segs).item_id == "a"
    assert segment_of(1.55, 1.7, segs, collar_s=0.1).item_id == "a"  # within the collar
    assert segment_of(2.0, 2.5, segs) is None
    # two events on the first cough (counted once as found, both correct), one on speech,
    # one in the background; the second cough is missed
    events = [[(1.0, 1.2), (1.25, 1.4), (3.2, 3.5), (5.0, 5.1)]]
    r = score_events([scene], events)
    assert r["detected_events"] == 4 and r["correct_events"] == 2
    assert r["cough_segments"] == 2 and r["found_segments"] == 1
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    assert r["false_events_by_source"] == {"background": 1, "s": 1}
    assert r["flagged_negative_segments_by_source"] == {"s": 1}
    perfect = score_events([scene], [[(1.1, 1.3), (6.0, 6.2)]])
    assert perfect["f1"] == 1.0 and perfect["false_events_by_source"] == {}
    assert score_events([scene], [[]])["f1"] == 0.0

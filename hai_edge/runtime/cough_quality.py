"""Cough recording quality checks: warn about recordings that give unreliable scores.

The report has the photo checks' shape (:class:`~hai_edge.runtime.quality.QualityReport`): each
check a score, its threshold, a pass/warn flag and a short reason, and they only warn (the
recording is still scored). Level, clipping and length are measured on the recording as given,
before any resampling, so they describe what the microphone delivered; the event count comes
from the bundle's detector. :class:`~hai_edge.runtime.cough.CoughPipeline` attaches the report to
every :class:`~hai_edge.runtime.cough.CoughResult` (``quality``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import numpy as np

from hai_edge.runtime.quality import Flag, QualityReport

__all__ = [
    "CLIPPED_MAX",
    "CLIP_LEVEL",
    "LEVEL_MIN_DB",
    "MIN_EVENTS",
    "RecordingCheck",
    "RecordingCheckName",
    "RecordingLevels",
    "assess_recording",
    "measure_recording",
    "recording_checks",
]

CLIP_LEVEL = 0.999
"""A sample at or above this magnitude (full scale is 1.0) counts as clipped."""
CLIPPED_MAX = 0.001
"""Share of clipped samples above which the recording is flagged (0.1 %)."""
LEVEL_MIN_DB = -50.0
"""RMS level (dBFS) below which the recording is flagged as very quiet."""
MIN_EVENTS = 1
"""Fewer detected cough events than this is flagged (the pipeline then scores plain windows)."""
SILENT_DB = -120.0
"""Level reported for an all-zero (or empty) recording instead of minus infinity."""


class RecordingCheckName(str, enum.Enum):
    CLIPPING = "clipping"
    LEVEL = "level"
    DURATION = "duration"
    COUGH_EVENTS = "cough_events"


@dataclasses.dataclass(frozen=True)
class RecordingCheck:
    """One recording check. ``reason`` is a short sentence when the flag is WARN, else empty."""

    name: RecordingCheckName
    score: float
    threshold: float
    flag: Flag
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.flag is Flag.PASS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name.value, "score": round(float(self.score), 6),
                "threshold": self.threshold, "flag": self.flag.value, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class RecordingLevels:
    """What the checks measure on the samples, before the events are known."""

    clipped: float  # share of samples at full scale
    rms_db: float  # RMS level in dBFS (SILENT_DB for silence)
    duration_s: float


def measure_recording(mono: np.ndarray, sample_rate: int) -> RecordingLevels:
    """Clipping share, RMS level and length of mono samples ``[n]`` at ``sample_rate``."""
    x = np.asarray(mono, dtype=np.float32)
    n = max(1, x.size)
    clipped = float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / n
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else SILENT_DB
    return RecordingLevels(clipped, rms_db, x.size / float(sample_rate))


def _check(name: RecordingCheckName, score: float, threshold: float, warn: bool, reason: str
           ) -> RecordingCheck:
    return RecordingCheck(name, float(score), threshold, Flag.WARN if warn else Flag.PASS,
                          reason if warn else "")


def recording_checks(levels: RecordingLevels, events: int, window_s: float) -> QualityReport:
    """The four checks from measured levels, the number of detected events and the bundle's
    analysis window (``window_s``): clipping, level, duration, cough events."""
    return QualityReport((
        _check(RecordingCheckName.CLIPPING, levels.clipped, CLIPPED_MAX,
               levels.clipped > CLIPPED_MAX,
               "the recording is clipped: hold the microphone further from the mouth"),
        _check(RecordingCheckName.LEVEL, levels.rms_db, LEVEL_MIN_DB,
               levels.rms_db < LEVEL_MIN_DB,
               "the recording is very quiet: check the microphone"),
        _check(RecordingCheckName.DURATION, levels.duration_s, window_s,
               levels.duration_s < window_s,
               f"the recording is shorter than one {window_s:g} s analysis window"),
        _check(RecordingCheckName.COUGH_EVENTS, events, MIN_EVENTS, events < MIN_EVENTS,
               "no cough was detected: ask for a strong, deliberate cough"),
    ))


def assess_recording(mono: np.ndarray, sample_rate: int, events: int, window_s: float
                     ) -> QualityReport:
    """All checks on one mono recording (:func:`measure_recording` + :func:`recording_checks`)."""
    return recording_checks(measure_recording(mono, sample_rate), events, window_s)

"""Robustness to recording conditions (``hai-edge stress``): a seeded suite of realistic audio
and photo shifts, measured for the teacher, the FP32 student and each INT8 model.

Build side: the teacher may need torch; the shifts themselves need numpy, scipy, soundfile and
Pillow only. See docs/robustness.md for the shifts, the statistics and measured tables.
"""

from __future__ import annotations

from hai_edge.stress.markdown import render_markdown
from hai_edge.stress.shifts import SHIFTS, Level, Shift, ShiftContext, ShiftModality, rng_for, select_shifts
from hai_edge.stress.suite import DATASETS, STRESS_SCHEMA, StressOptions, run_stress

__all__ = [
    "DATASETS",
    "SHIFTS",
    "STRESS_SCHEMA",
    "Level",
    "Shift",
    "ShiftContext",
    "ShiftModality",
    "StressOptions",
    "render_markdown",
    "rng_for",
    "run_stress",
    "select_shifts",
]

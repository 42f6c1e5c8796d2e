"""Apply every shift to every item and record, per condition, scorer and item: each head's score
and the cosines to the teacher and to the FP32 student.

Audio: the shifted recording (at the bundle's rate) goes through the bundle's front end once and
into every student; the teacher gets the same windows (same window index) at its own rate. An
item's head score is the mean of its window probabilities (the recording score the heads'
thresholds were chosen on); its cosine is the mean over its windows. A shift that leaves no usable
window (e.g. everything below the front end's quiet threshold) leaves NaN for that item.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hai_edge.corpus import CorpusItem
from hai_edge.errors import HaiEdgeError
from hai_edge.stress.models import ScorerKind, Target
from hai_edge.stress.shifts import Shift, ShiftContext, rng_for

__all__ = ["CLEAN", "Measurements", "load_media", "measure"]

CLEAN = ("clean", 0)


@dataclasses.dataclass
class Measurements:
    item_ids: list[str]
    conditions: list[tuple[str, int]]  # CLEAN first
    scorers: list[str]
    scores: dict[str, np.ndarray]  # head -> [condition, scorer, item]
    cos_teacher: np.ndarray  # [condition, scorer, item]
    ccos_teacher: np.ndarray
    cos_fp32: np.ndarray
    failed: list[int]  # items without a result, per condition
    seconds: list[float]


def load_media(item: CorpusItem, modality: str, spec: Any, max_seconds: float | None = None
               ) -> np.ndarray:
    """Clean media: mono float32 at the bundle's rate (the first ``max_seconds`` only, when
    given: bounds the teacher's work on rare long recordings), or an upright RGB uint8 photo."""
    if modality == "audio":
        from hai_edge.runtime.decoders import decode_audio
        from hai_edge.runtime.frontends import resample, to_mono

        dec = decode_audio(item.path)
        mono = resample(to_mono(dec.samples), int(dec.sample_rate), int(spec.sample_rate))
        return mono[: int(max_seconds * spec.sample_rate)] if max_seconds else mono
    from hai_edge.runtime.decoders import load_images
    from hai_edge.runtime.frontends import apply_exif_orientation, to_rgb

    img = load_images(item.path, max_pixels=spec.max_pixels)[0]
    return np.ascontiguousarray(to_rgb(apply_exif_orientation(img.pixels, img.orientation)))


class _Embedders:
    """Media -> aligned embeddings ``{scorer: [rows, dim]}`` for one item."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.students = [s for s in target.scorers if s.kind is not ScorerKind.TEACHER]
        self.teacher = next((s for s in target.scorers if s.kind is ScorerKind.TEACHER), None)
        if self.teacher is not None and target.modality == "audio":
            from hai_edge.distill.teacher_embed import windowing_spec

            d = self.teacher.detail
            self.t_rate, self.t_len = int(d["sample_rate"]), int(d["window_samples"])
            self.wspec = windowing_spec(target.spec, self.t_rate, self.t_len)

    def __call__(self, media: np.ndarray, source: str) -> dict[str, np.ndarray]:
        if self.t.modality == "audio":
            return self._audio(media, source)
        from hai_edge.runtime.frontends import prepare_image

        x = prepare_image(media, self.t.spec, source=source)[None]
        out = {s.name: s.embed(x) for s in self.students}
        if self.teacher is not None:
            out[self.teacher.name] = self.teacher.embed([media])
        return out

    def _audio(self, mono: np.ndarray, source: str) -> dict[str, np.ndarray]:
        from hai_edge.runtime.frontends import prepare_audio, resample, split_windows

        sr = int(self.t.spec.sample_rate)
        windows, inputs = prepare_audio(mono, sr, self.t.spec, source)
        keep = np.arange(len(windows))
        t_media = None
        if self.teacher is not None:
            tm = mono if self.t_rate == sr else resample(mono, sr, self.t_rate)
            tw = {w.index: w.samples for w in split_windows(tm, self.wspec, source)}
            keep = np.array([i for i, w in enumerate(windows) if w.index in tw], dtype=int)
            if not len(keep):
                raise HaiEdgeError(f"{source}: no window in common with the teacher")
            t_media = [_pad(tw[windows[i].index], self.t_len) for i in keep]
        out = {s.name: s.embed(inputs[keep]) for s in self.students}
        if self.teacher is not None and t_media is not None:
            out[self.teacher.name] = self.teacher.embed(t_media)
        return out


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float32)[:n]
    return x if x.size == n else np.concatenate([x, np.zeros(n - x.size, np.float32)])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(np.mean(np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-30)))


def measure(target: Target, items: Sequence[CorpusItem], shifts: Sequence[Shift],
            severities: Sequence[int], *, seed: int, ctx: ShiftContext,
            max_seconds: float | None = None, progress: bool = True) -> Measurements:
    """Run every (shift, severity) on every item through every scorer (see module docstring)."""
    conditions = [CLEAN] + [(s.name, k) for s in shifts for k in severities if k <= len(s.levels)]
    by_name = {s.name: s for s in shifts}
    names = [s.name for s in target.scorers]
    teacher = next((s.name for s in target.scorers if s.kind is ScorerKind.TEACHER), None)
    fp32 = next((s.name for s in target.scorers if s.kind is ScorerKind.FP32), None)
    shape = (len(conditions), len(names), len(items))
    scores = {h.name: np.full(shape, np.nan) for h in target.heads}
    cos_t, ccos_t, cos_f = (np.full(shape, np.nan) for _ in range(3))
    embed = _Embedders(target)
    clean = [load_media(it, target.modality, target.spec, max_seconds) for it in items]
    centre: np.ndarray | None = None
    failed, seconds = [], []
    for ci, (shift, sev) in enumerate(conditions):
        t0 = time.perf_counter()
        per_item: list[dict[str, np.ndarray] | None] = []
        for it, media in zip(items, clean):
            try:
                x = media if shift == "clean" else by_name[shift].apply(
                    media, ctx, sev, rng_for(seed, shift, sev, it.item_id))
                per_item.append(embed(x, str(it.path)))
            except HaiEdgeError:
                per_item.append(None)
        if centre is None:  # the clean pass: the centre for centred cosines
            ref = teacher or fp32 or names[0]
            rows = [e[ref] for e in per_item if e is not None]
            centre = np.concatenate(rows).mean(axis=0) if rows else np.zeros(1)
        for ii, e in enumerate(per_item):
            if e is None:
                continue
            for si, name in enumerate(names):
                v = e[name]
                for h in target.heads:
                    scores[h.name][ci, si, ii] = float(np.mean(h.predict_proba(v)))
                if teacher and name != teacher:
                    cos_t[ci, si, ii] = _cos(v, e[teacher])
                    ccos_t[ci, si, ii] = _cos(v - centre, e[teacher] - centre)
                if fp32 and name != fp32 and name != teacher:
                    cos_f[ci, si, ii] = _cos(v, e[fp32])
        failed.append(sum(e is None for e in per_item))
        seconds.append(time.perf_counter() - t0)
        if progress:
            print(f"stress: {shift} {sev or ''} ({ci + 1}/{len(conditions)}): "
                  f"{len(items) - failed[-1]}/{len(items)} items in {seconds[-1]:.1f} s",
                  file=sys.stderr, flush=True)
    return Measurements([it.item_id for it in items], conditions, names, scores, cos_t, ccos_t,
                        cos_f, failed, seconds)

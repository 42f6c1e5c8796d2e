"""The learned cough detector: energy candidates verified by a head on the student embedding.

The energy detector (``events.EnergyDetector``) finds every short broadband transient: coughs,
but also a baby's cry onset, a plosive, a door. Each candidate is then verified on the bundle's
own embedding: one window of ``window_s`` that *ends* ``after_s`` after the candidate (so the
cough sits near the end of the window and the verdict needs only ``after_s`` of audio past the
cough, not half a window), the bundle's front end and model, and a logistic head trained on
windows placed the same way (``cough`` vs infant cry, speech and other sounds). A candidate is
kept when the head's calibrated probability reaches its threshold; that probability is the
event's confidence. Reusing the student costs one extra embedding per candidate (well under a
millisecond with the INT8 students) and needs no second model, so every engine that runs the
bundle runs its detector too, with builtin ops only.

Manifest entry (``manifest["heads"]``)::

    {"name": "cough-detector", "role": "detector", "kind": "energy_head",
     "params": {...EnergyDetectorConfig...}, "file": "heads/cough-detector.json",
     "threshold": 0.5, "align": "end", "after_s": 0.25}

(parsed and checked by the bundle contract: ``hai_edge.bundle.DetectorEntry``)

Window of candidate ``e`` in a recording of ``n`` samples (W = the spec's window samples):
``end = round((e.end_s + after_s) * rate)``, ``start = min(end - W, n - W)``, the samples
``[start, start + W)`` with zeros wherever that range leaves the recording (a cough in the
first 2 s gets silence in front, as if the recording had started earlier). Streaming verifies a
candidate as soon as ``end`` samples are in (or at the end of the stream, with the final
``n``), which gives the same windows as offline and a latency of ``after_s`` plus the energy
detector's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from hai_edge.bundle import DetectorEntry
from hai_edge.errors import BundleError
from hai_edge.runtime.events import EnergyDetector, EnergyDetectorConfig, Event
from hai_edge.runtime.frontends import AudioFrontendSpec, window_features
from hai_edge.runtime.heads import Head

__all__ = ["ENERGY_HEAD", "VerifiedDetector", "verification_window",
           "verified_detector_from_entry"]

ENERGY_HEAD = "energy_head"

EmbedFn = Callable[[np.ndarray], np.ndarray]  # model inputs [N, ...] -> embeddings [N, dim]


def verification_window(audio: np.ndarray, n_total: int, end_s: float, after_s: float,
                         spec: AudioFrontendSpec, offset: int = 0) -> np.ndarray:
    """The W-sample window that ends ``after_s`` after ``end_s`` (module docstring).

    ``audio`` holds samples ``offset .. offset + audio.size`` of a recording of ``n_total``
    samples (streaming keeps only the recent part)."""
    w = spec.window_samples
    end = int(round((end_s + after_s) * spec.sample_rate))
    start = min(end - w, n_total - w)
    lo, hi = max(start, 0), min(start + w, n_total)
    if lo < offset and hi > lo:
        raise ValueError("verification window starts before the kept audio")
    out = np.zeros(w, dtype=np.float32)
    if hi > lo:
        out[lo - start : hi - start] = audio[lo - offset : hi - offset]
    return out


class VerifiedDetector:
    """Energy candidates kept when ``head`` says cough on the window's embedding."""

    name = ENERGY_HEAD

    def __init__(self, spec: AudioFrontendSpec, head: Head, embed: EmbedFn, *,
                 config: EnergyDetectorConfig | None = None, after_s: float = 0.25,
                 threshold: float | None = None) -> None:
        if not 0.0 <= after_s <= spec.window_s:
            raise BundleError(f"detector after_s must be within [0, {spec.window_s}] s")
        self.spec = spec
        self.sample_rate = spec.sample_rate
        self.energy = EnergyDetector(spec.sample_rate, config)
        self.head = head
        self.embed = embed
        self.after_s = float(after_s)
        self.threshold = float(head.threshold if threshold is None else threshold)

    def stream(self) -> _VerifiedStream:
        return _VerifiedStream(self)

    def detect(self, mono: np.ndarray) -> list[Event]:
        s = self.stream()
        return s.push(mono) + s.flush()

    def verify(self, candidates: list[Event], windows: list[np.ndarray]) -> list[Event]:
        """Score each candidate's window; keep those at or above the threshold. One window per
        model call, so a verdict never depends on which candidates share a batch (batched
        matrix products round differently), and live equals offline bit for bit."""
        out = []
        for c, w in zip(candidates, windows):
            p = float(self.head.predict_proba(self.embed(window_features(w[None], self.spec)))[0])
            if p >= self.threshold:
                out.append(dataclasses.replace(c, confidence=p, label="cough"))
        return out


class _VerifiedStream:
    """Streaming state: the energy stream, the candidates waiting for their window's audio, and
    the recent audio those windows need (bounded: older samples are dropped)."""

    def __init__(self, det: VerifiedDetector) -> None:
        self.det = det
        self.inner = det.energy.stream()
        self.waiting: list[Event] = []
        self.audio = np.zeros(0, dtype=np.float32)
        self.offset = 0  # absolute index of self.audio[0]
        self.n = 0  # samples pushed so far
        sr, w = det.sample_rate, det.spec.window_samples
        self.keep = w + int((self.inner.max_latency_s + det.after_s + 0.5) * sr)
        self.max_latency_s = self.inner.max_latency_s + det.after_s

    def push(self, chunk: np.ndarray) -> list[Event]:
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, x]) if self.audio.size else x.copy()
        self.n += x.size
        self.waiting.extend(self.inner.push(x))
        out = self._verify(final=False)
        drop = self.audio.size - self.keep
        if self.waiting:  # never drop audio a waiting candidate's window still needs
            first = min(self._needed(e) for e in self.waiting) - self.det.spec.window_samples
            drop = min(drop, first - self.offset)
        if drop > 0:
            self.audio = self.audio[drop:]
            self.offset += drop
        return out

    def flush(self) -> list[Event]:
        self.waiting.extend(self.inner.flush())
        return self._verify(final=True)

    def _needed(self, ev: Event) -> int:
        return int(round((ev.end_s + self.det.after_s) * self.det.sample_rate))

    def _verify(self, final: bool) -> list[Event]:
        ready = [e for e in self.waiting if final or self._needed(e) <= self.n]
        if not ready:
            return []
        self.waiting = [e for e in self.waiting if not (final or self._needed(e) <= self.n)]
        wins = [verification_window(self.audio, self.n, e.end_s, self.det.after_s,
                                    self.det.spec, self.offset) for e in ready]
        return self.det.verify(ready, wins)


def verified_detector_from_entry(bundle: Any, entry: DetectorEntry, spec: AudioFrontendSpec,
                                 embed: EmbedFn | None) -> VerifiedDetector:
    """Build the ``energy_head`` detector a manifest entry declares (checked like a head; the
    entry's fields were checked when the manifest was read)."""
    from hai_edge.runtime.heads import load_head_entry

    where = f"{bundle.root}: detector {entry.name!r}"
    if embed is None:
        raise BundleError(f"{where}: this detector needs the bundle's model (use CoughPipeline)")
    head = load_head_entry(bundle, entry, verify=True)
    return VerifiedDetector(spec, head, embed,
                            config=EnergyDetectorConfig.from_dict(entry.energy_params),
                            after_s=entry.window_after_s)

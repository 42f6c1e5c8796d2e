"""Cough screening: recording (file or microphone) -> cough events -> windows -> head scores.

Per recording (HeAR's recipe for long recordings, driven by the bundle's front-end spec):

1. decode -> mono -> resample to the bundle rate (the front end's own functions);
2. cough events from the bundle's detector (``hai_edge.runtime.events``);
3. one window of ``window_s`` (2 s for HeAR) per group of events: events are grouped greedily in
   time order while the group's span fits in a window (so close coughs share a window instead of
   giving near-duplicates), the window is centred on the group's span and shifted to lie inside
   the recording (zero-padded only when the recording is shorter than a window); windows quieter
   than ``skip_quiet_db`` are skipped. Heads score cough events only: when no event window is
   left, every head's score is ``None`` and ``withheld`` says why (``runtime.abstain``); with
   ``score_anyway=True`` the recording's plain sliding windows are scored instead, ``fallback``
   and ``scored_anyway`` say so;
4. the front end's features per window -> embeddings -> every head's calibrated probability;
5. per head: recording score = mean of the window probabilities (as the official notebooks
   average over windows), plus max and window count, and the head's verdict on the mean
   (``runtime._scores``: positive, negative, or borderline within the head's band);
6. recording quality checks (``runtime.cough_quality``: clipping, level, duration, events) on
   the recording as given: they warn, they never block.

Inputs: :meth:`CoughPipeline.analyze_path` (a file), :meth:`CoughPipeline.analyze_bytes` (an
upload) or :meth:`CoughPipeline.analyze` (samples), the same surface as the derm pipeline.

Live mode (:meth:`CoughPipeline.run_live`) feeds microphone audio to the streaming detector and
scores each event window as soon as its audio is in; the grouping decisions are the same as
offline, so the live result equals :meth:`CoughPipeline.analyze` of the captured audio.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError, InputError
from hai_edge.runtime._embedder import Embedder, EmbedderPipeline
from hai_edge.runtime._scores import HeadScore
from hai_edge.runtime.abstain import NO_COUGH, QUIET_COUGH
from hai_edge.runtime.cough_quality import RecordingLevels, measure_recording, recording_checks
from hai_edge.runtime.events import Event, EventDetector, detector_from_bundle
from hai_edge.runtime.frontends import AudioFrontendSpec, resample, split_windows, to_mono, window_features
from hai_edge.runtime.heads import Head, load_heads
from hai_edge.runtime.quality import QualityReport
from hai_edge.tools import one_blas_thread

__all__ = [
    "CoughPipeline",
    "CoughResult",
    "HeadScore",
    "ScoredWindow",
    "WindowPlanner",
    "event_window",
]


@dataclasses.dataclass(frozen=True, eq=False)
class ScoredWindow:
    """One scored window: where it is, which events it covers (indices into the result's
    events; empty for fallback windows), each head's probability, and optionally the embedding."""

    start_s: float
    end_s: float
    events: tuple[int, ...]
    scores: Mapping[str, float]
    embedding: np.ndarray | None = None

    def to_dict(self, embedding: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                             "events": list(self.events),
                             "scores": {k: round(float(v), 6) for k, v in self.scores.items()}}
        if embedding and self.embedding is not None:
            d["embedding"] = [round(float(x), 6) for x in self.embedding]
        return d


@dataclasses.dataclass(frozen=True, eq=False)
class CoughResult:
    """One recording's result. ``scores[name]`` is None when the head was withheld (no cough
    event to score); ``withheld[name]`` then says why. ``scored_anyway``: the caller asked for
    scores regardless; ``would_withhold`` keeps the reasons that were overridden."""

    input: str
    duration_s: float
    sample_rate: int
    events: tuple[Event, ...]
    windows: tuple[ScoredWindow, ...]
    scores: Mapping[str, HeadScore | None]
    fallback: bool
    timing_ms: Mapping[str, float]
    notices: tuple[str, ...]
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # bundle/backend/detector
    capture: Mapping[str, Any] | None = None  # microphone details (live mode)
    quality: QualityReport | None = None  # recording checks (runtime.cough_quality)
    withheld: Mapping[str, str] = dataclasses.field(default_factory=dict)
    scored_anyway: bool = False
    would_withhold: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self, embeddings: bool = False, quality: bool = False) -> dict[str, Any]:
        """The ``hai-edge cough --json`` object (schema in docs/cough.md); ``quality`` adds the
        recording checks (``"quality"``, as the kiosk stores them)."""
        d: dict[str, Any] = {
            "input": self.input,
            "duration_s": round(self.duration_s, 4),
            "sample_rate": self.sample_rate,
            **dict(self.meta),
            "events": [e.to_dict() for e in self.events],
            "windows": [w.to_dict(embeddings) for w in self.windows],
            "fallback_windows": self.fallback,
            "scores": {k: None if v is None else v.to_dict() for k, v in self.scores.items()},
            "withheld": dict(self.withheld),
            "scored_anyway": self.scored_anyway,
        }
        if self.scored_anyway:
            d["would_withhold"] = dict(self.would_withhold)
        d |= {
            "timing_ms": {k: round(v, 3) for k, v in self.timing_ms.items()},
            "notices": list(self.notices),
        }
        if quality and self.quality is not None:
            d["quality"] = self.quality.to_dict()
        if self.capture is not None:
            d["capture"] = dict(self.capture)
        return d


class WindowPlanner:
    """Greedy grouping of events (in time order) into windows of ``window_s``.

    An event joins the open group while ``event.end - group.start <= window_s``; a group closes
    when an event does not fit, when :meth:`close_until` says no later event can join any more,
    or at :meth:`finish`. Each closed group is ``(event indices, centre_s)``.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.group: list[int] = []
        self.start = self.end = 0.0

    def _close(self) -> list[tuple[tuple[int, ...], float]]:
        if not self.group:
            return []
        out = [(tuple(self.group), 0.5 * (self.start + self.end))]
        self.group = []
        return out

    def add(self, index: int, event: Event) -> list[tuple[tuple[int, ...], float]]:
        out: list[tuple[tuple[int, ...], float]] = []
        if self.group and max(self.end, event.end_s) - self.start > self.window_s:
            out = self._close()
        if not self.group:
            self.start, self.end = event.start_s, event.end_s
        self.group.append(index)
        self.end = max(self.end, event.end_s)
        return out

    def close_until(self, t_s: float) -> list[tuple[tuple[int, ...], float]]:
        """Close the open group if an event ending after ``t_s`` could not join it anyway."""
        if self.group and t_s > self.start + self.window_s:
            return self._close()
        return []

    def finish(self) -> list[tuple[tuple[int, ...], float]]:
        return self._close()


def event_window(mono: np.ndarray, centre_s: float, spec: AudioFrontendSpec
                 ) -> tuple[int, int, np.ndarray]:
    """(start sample, real samples, window): ``spec.window_samples`` centred on ``centre_s``,
    shifted to lie inside the recording, zero-padded at the end if the recording is shorter."""
    n, w = mono.size, spec.window_samples
    start = int(round(centre_s * spec.sample_rate)) - w // 2
    start = max(0, min(start, n - w))
    real = min(w, n - start)
    out = np.zeros(w, dtype=np.float32)
    out[:real] = mono[start : start + real]
    return start, real, out


def _rms_db(x: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class CoughPipeline(EmbedderPipeline):
    """Events + windows + embeddings + heads for one bundle. ``heads``: names to use (default:
    all the bundle's heads); ``detector``: overrides the bundle's; ``keep_embeddings`` keeps each
    window's embedding in the result (``--windows``)."""

    def __init__(self, bundle: Any, backend: str | None = None, *, precision: str | None = None,
                 threads: int | None = None, heads: Sequence[str] | None = None,
                 detector: EventDetector | None = None, engine: Any = None,
                 keep_embeddings: bool = False) -> None:
        self.embedder = Embedder(bundle, backend, precision=precision, threads=threads,
                                 engine=engine)
        self.bundle = self.embedder.bundle
        spec = self.bundle.manifest.preprocessing
        if not isinstance(spec, AudioFrontendSpec):
            self.embedder.close()
            raise HaiEdgeError(f"bundle {self.bundle.manifest.name} is not an audio bundle; "
                               "cough screening needs one")
        self.spec: AudioFrontendSpec = spec
        try:
            self.heads: list[Head] = load_heads(self.bundle, heads, verify=False)  # loaded verified
            self.detector = detector or detector_from_bundle(
                self.bundle, spec.sample_rate, embed=self.embedder.embed_inputs)
        except BaseException:
            self.embedder.close()
            raise
        self.keep_embeddings = keep_embeddings
        notices = list(self.bundle.manifest.notices)
        notices += [h.notice for h in self.heads if h.notice and h.notice not in notices]
        if not self.heads:
            notices.append("this bundle has no heads: events and windows only, no scores")
        self.notices = tuple(notices)

    @property
    def meta(self) -> dict[str, str]:
        return {**super().meta, "detector": self.detector.name}

    # ----------------------------------------------------------------------------- offline
    def analyze_path(self, path: str | os.PathLike[str], *, score_anyway: bool = False
                     ) -> CoughResult:
        """Decode an audio file and analyse it (:meth:`analyze`)."""
        from hai_edge.runtime.decoders import decode_audio

        t0 = time.perf_counter()
        decoded = decode_audio(path)
        decode_ms = (time.perf_counter() - t0) * 1e3
        return self.analyze(decoded.samples, decoded.sample_rate, str(path),
                            score_anyway=score_anyway, _timing={"decode": decode_ms})

    analyze_file = analyze_path  # the former name

    def analyze_bytes(self, data: bytes, name: str, *, score_anyway: bool = False
                      ) -> CoughResult:
        """:meth:`analyze_path` for an in-memory file (an upload); ``name`` names it."""
        from hai_edge.runtime.decoders import decode_audio_bytes

        t0 = time.perf_counter()
        decoded = decode_audio_bytes(data, str(name))
        decode_ms = (time.perf_counter() - t0) * 1e3
        return self.analyze(decoded.samples, decoded.sample_rate, str(name),
                            score_anyway=score_anyway, _timing={"decode": decode_ms})

    @one_blas_thread()
    def analyze(self, samples: np.ndarray, sample_rate: int, source: str = "<audio>", *,
                score_anyway: bool = False, _timing: Mapping[str, float] | None = None
                ) -> CoughResult:
        """Samples ``[n]`` or ``[n, channels]`` at ``sample_rate`` -> :class:`CoughResult`;
        ``score_anyway`` scores the plain sliding windows when no cough event is found."""
        timing = dict(_timing or {})
        t0 = time.perf_counter()
        try:
            mono = to_mono(samples)
        except ValueError as exc:
            raise InputError(source, str(exc)) from None
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or sample_rate <= 0:
            raise InputError(source, f"invalid sample rate {sample_rate!r}")
        if not np.all(np.isfinite(mono)):
            raise InputError(source, "contains NaN or infinite samples")
        levels = measure_recording(mono, int(sample_rate))  # as recorded, before resampling
        mono = resample(mono, int(sample_rate), self.spec.sample_rate)
        timing["resample"] = (time.perf_counter() - t0) * 1e3
        self._check_length(mono, source)
        t1 = time.perf_counter()
        events = self._detect(mono)
        timing["detect"] = (time.perf_counter() - t1) * 1e3
        planner = WindowPlanner(self.spec.window_s)
        groups = []
        for i, ev in enumerate(events):
            groups.extend(planner.add(i, ev))
        groups.extend(planner.finish())
        windows = self._score_groups(mono, groups, timing)
        return self._result(source, mono, events, windows, timing, levels,
                            score_anyway=score_anyway)

    def _check_length(self, mono: np.ndarray, source: str) -> None:
        need = int(round(self.spec.min_clip_s * self.spec.sample_rate))
        if mono.size < max(need, 1):
            raise InputError(source, f"audio is {mono.size / self.spec.sample_rate:.2f} s long; "
                                     f"at least {self.spec.min_clip_s:g} s is needed")

    def _detect(self, mono: np.ndarray) -> list[Event]:
        rate = self.detector.sample_rate
        x = mono if rate == self.spec.sample_rate else resample(mono, self.spec.sample_rate, rate)
        return list(self.detector.detect(x))

    def _score_groups(self, mono: np.ndarray, groups: Sequence[tuple[tuple[int, ...], float]],
                      timing: dict[str, float]) -> list[ScoredWindow]:
        """Cut, skip quiet, embed and score the windows of closed event groups."""
        t0 = time.perf_counter()
        sr, quiet = self.spec.sample_rate, self.spec.skip_quiet_db
        cut = []
        for indices, centre in groups:
            start, real, win = event_window(mono, centre, self.spec)
            if quiet is not None and _rms_db(win[:real]) < quiet:
                continue
            cut.append((start / sr, (start + real) / sr, indices, win))
        timing["window"] = timing.get("window", 0.0) + (time.perf_counter() - t0) * 1e3
        return self._score(cut, timing)

    @one_blas_thread()
    def _score(self, cut: Sequence[tuple[float, float, tuple[int, ...], np.ndarray]],
               timing: dict[str, float]) -> list[ScoredWindow]:
        if not cut:
            return []
        need_vectors = bool(self.heads) or self.keep_embeddings
        vectors = None
        if need_vectors:
            t0 = time.perf_counter()
            inputs = window_features(np.stack([c[3] for c in cut]), self.spec)
            t1 = time.perf_counter()
            vectors = self.embedder.embed_inputs(inputs)
            t2 = time.perf_counter()
            timing["preprocess"] = timing.get("preprocess", 0.0) + (t1 - t0) * 1e3
            timing["inference"] = timing.get("inference", 0.0) + (t2 - t1) * 1e3
        t3 = time.perf_counter()
        probs = {h.name: h.predict_proba(vectors) for h in self.heads} if vectors is not None \
            else {}
        timing["heads"] = timing.get("heads", 0.0) + (time.perf_counter() - t3) * 1e3
        out = []
        for i, (s, e, indices, _) in enumerate(cut):
            out.append(ScoredWindow(
                start_s=s, end_s=e, events=indices,
                scores={name: float(p[i]) for name, p in probs.items()},
                embedding=vectors[i] if vectors is not None and self.keep_embeddings else None))
        return out

    def _fallback(self, mono: np.ndarray, source: str, timing: dict[str, float]
                  ) -> list[ScoredWindow]:
        t0 = time.perf_counter()
        plain = split_windows(mono, self.spec, source)  # raises InputError when all silent
        timing["window"] = timing.get("window", 0.0) + (time.perf_counter() - t0) * 1e3
        return self._score([(w.start_s, w.end_s, (), w.samples) for w in plain], timing)

    def _result(self, source: str, mono: np.ndarray, events: Sequence[Event],
                windows: list[ScoredWindow], timing: dict[str, float], levels: RecordingLevels,
                capture: Mapping[str, Any] | None = None, score_anyway: bool = False
                ) -> CoughResult:
        notices = list(self.notices)
        reasons: dict[str, str] = {}
        if not windows:
            reason = NO_COUGH if not events else QUIET_COUGH
            reasons = {h.name: reason for h in self.heads}
            what = "no cough events detected" if not events else "all event windows were quiet"
            if score_anyway or not self.heads:  # without heads no verdict is at stake
                windows = self._fallback(mono, source, timing)
                notices.append(f"{what}: scored the plain sliding windows "
                               + ("anyway (score anyway)" if self.heads else "instead"))
            else:  # a silent recording is still an input error (split_windows says so)
                split_windows(mono, self.spec, source)
                notices.append(f"{what}: no head was scored (heads score coughs only)")
        fallback = bool(windows) and not any(w.events for w in windows)
        scores: dict[str, HeadScore | None] = {}
        for h in self.heads:
            if not windows:
                scores[h.name] = None
                continue
            p = np.array([w.scores[h.name] for w in windows], dtype=np.float64)
            mean = float(p.mean())
            scores[h.name] = HeadScore.of(h, mean, float(p.max()), int(p.size))
        if capture is not None and (capture.get("overflows") or capture.get("dropped_s")):
            notices.append(f"audio was lost while recording ({capture.get('overflows')} input "
                           f"overflow(s), {capture.get('dropped_s')} s dropped)")
        timing["total"] = sum(v for k, v in timing.items()
                              if not k.startswith(("capture", "latency")))
        return CoughResult(input=source, duration_s=mono.size / self.spec.sample_rate,
                           sample_rate=self.spec.sample_rate, events=tuple(events),
                           windows=tuple(windows), scores=scores, fallback=fallback,
                           timing_ms=timing, notices=tuple(notices), meta=self.meta,
                           capture=capture,
                           quality=recording_checks(levels, len(events), self.spec.window_s),
                           withheld={} if score_anyway else reasons,
                           scored_anyway=bool(score_anyway),
                           would_withhold=reasons if score_anyway else {})

    # -------------------------------------------------------------------------------- live
    def run_live(self, capture: Any, seconds: float | None = None, *,
                 on_event: Callable[[int, Event], None] | None = None,
                 on_window: Callable[[ScoredWindow], None] | None = None,
                 score_anyway: bool = False) -> CoughResult:
        """Record from ``capture`` (a :class:`~hai_edge.runtime.mic.MicCapture` at the bundle
        rate) for ``seconds`` (None: until Ctrl-C), scoring each event window as soon as its
        audio is in. A lost device still yields the result of what was captured: it is attached
        to the :class:`~hai_edge.runtime.mic.DeviceLostError` (``.result``) that is re-raised."""
        from hai_edge.runtime.mic import DeviceLostError

        sr = self.spec.sample_rate
        if capture.sample_rate != sr or self.detector.sample_rate != sr:
            raise HaiEdgeError(f"live mode needs the capture and the detector at the bundle "
                               f"rate {sr} Hz")
        stream = self.detector.stream()
        planner = WindowPlanner(self.spec.window_s)
        events: list[Event] = []
        ready: list[tuple[tuple[int, ...], float]] = []
        windows: list[ScoredWindow] = []
        timing: dict[str, float] = {"detect": 0.0}
        lat_event: list[float] = []
        lat_window: list[float] = []
        want = int(round(seconds * sr)) if seconds else None
        pushed = 0
        lost: DeviceLostError | None = None

        def feed(chunk: np.ndarray, final: bool = False) -> None:
            nonlocal pushed
            t0 = time.perf_counter()
            new = stream.push(chunk) if chunk.size else []
            pushed += chunk.size
            if final:
                new += stream.flush()
            timing["detect"] += (time.perf_counter() - t0) * 1e3
            now_s = pushed / sr
            for ev in new:
                events.append(ev)
                lat_event.append(now_s - ev.end_s)
                if on_event is not None:
                    on_event(len(events) - 1, ev)
                ready.extend(planner.add(len(events) - 1, ev))
            ready.extend(planner.finish() if final
                         else planner.close_until(now_s - stream.max_latency_s))
            due = [g for g in ready if final
                   or _window_end(g[1], self.spec) <= pushed]
            if not due:
                return
            for g in due:
                ready.remove(g)
            audio = capture.captured()[:pushed]
            scored = self._score_groups(audio, due, timing)
            for w in scored:
                lat_window.append(now_s - w.end_s)
                if on_window is not None:
                    on_window(w)
            windows.extend(scored)

        t_start = time.perf_counter()
        capture.start()
        try:
            while want is None or pushed < want:
                chunk = capture.read_available(timeout=0.1)
                if want is not None:
                    chunk = chunk[: want - pushed]
                if chunk.size:
                    feed(chunk)
        except KeyboardInterrupt:
            capture.interrupted = True
        except DeviceLostError as exc:
            lost = exc
        finally:
            capture.stop(max_samples=want)
        timing["capture"] = (time.perf_counter() - t_start) * 1e3
        audio = capture.captured()
        feed(audio[pushed:], final=True)
        if lat_event:
            timing["latency_event_max"] = max(lat_event) * 1e3
        if lat_window:
            timing["latency_window_max"] = max(lat_window) * 1e3
        info = capture.info()
        name = f"mic:{info.get('device') or '?'}"
        if lost is not None and audio.size < max(1, round(self.spec.min_clip_s * sr)):
            raise lost  # too little audio to say anything
        self._check_length(audio, name)
        result = self._result(name, audio, events, windows, timing,
                              measure_recording(audio, sr), capture=info,
                              score_anyway=score_anyway)
        if lost is not None:
            lost.result = result
            raise lost
        return result


def _window_end(centre_s: float, spec: AudioFrontendSpec) -> int:
    """Sample index where the window centred on ``centre_s`` ends (before end-of-audio shifts)."""
    start = max(0, int(round(centre_s * spec.sample_rate)) - spec.window_samples // 2)
    return start + spec.window_samples

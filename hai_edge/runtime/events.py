"""Cough event detection: where in a recording the coughs are, offline or live.

The cough pipeline embeds windows *around events*, so the detector decides what is scored. This
module defines the pluggable interface and a numpy baseline:

* :class:`EventDetector` (``detect(mono) -> list[Event]``) and :class:`StreamingDetector`
  (``push(chunk) -> list[Event]`` with bounded latency, ``flush()``): what any detector offers,
  including the learned one that later work trains on real data (a head on the student embedding
  or its own tiny model, declared in the manifest; see :func:`detector_from_bundle`).
* :class:`EnergyDetector`: a transient detector on band energy (150-6000 Hz), 25 ms
  Blackman-Harris frames every 10 ms. An event starts when the band level rises ``on_db`` above an
  adaptive noise floor (trailing minimum over ``floor_window_s``; never below ``abs_min_db``) and
  ends when it falls under ``off_db`` above the floor (hysteresis). Events shorter than
  ``min_event_s`` (clicks) are dropped, gaps under ``merge_gap_s`` are merged, and sounds longer
  than ``max_event_s`` count as sustained (speech, music, a level change): dropped, and detection
  pauses until the floor has caught up. An onset must be broadband: the *onset spectral flux*
  (mean over 16 mel-spaced bands of the rise in band level from the 50 ms before the event to its
  first 40 ms) must reach ``min_flux_db``, which rejects beeps, tones and slow swells.

The offline ``detect`` runs the streaming code over the whole signal, so offline and live results
are the same by construction. It knows energy, not coughs: any short broadband transient (a
knock, a clap, a plosive) is an event too; the heads then score the windows around it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hai_edge.bundle import DetectorKind, detector_entry_of
from hai_edge.errors import BundleError

__all__ = [
    "DETECTOR_KINDS",
    "EnergyDetector",
    "EnergyDetectorConfig",
    "Event",
    "EventDetector",
    "StreamingDetector",
    "detector_from_bundle",
]

_EPS = 1e-12
_MIN_DB = -120.0
_FRAMES_PER_BATCH = 512
_MAX_RISE_DB = 20.0  # per band, so one loud band (a tone) cannot pass the flux gate alone
# Digital silence (a muted or just-opened stream, a gap of zeros in a file) says nothing about the
# room's noise floor, so it never lowers it: frames with band power at or below _SILENCE_DB (below
# what 16-bit audio can represent) or with at least a quarter of their samples exactly zero (which
# also catches the frames straddling the edge of the silence) are not fed to the floor tracker.
_SILENCE_DB = -110.0
_SILENT_ZERO_FRACTION = 0.25


@dataclasses.dataclass(frozen=True)
class Event:
    """One detected sound event, in seconds from the start of the audio."""

    start_s: float
    end_s: float
    confidence: float  # in [0, 1]; heuristic for the energy detector (see EnergyDetector)
    label: str = "cough"
    snr_db: float = math.nan  # peak band level above the noise floor (energy detector)

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "start_s": round(self.start_s, 4),
                "end_s": round(self.end_s, 4), "confidence": round(self.confidence, 4)}


@runtime_checkable
class StreamingDetector(Protocol):
    """Live detection. ``push`` returns the events that finished, each at most
    ``max_latency_s`` of audio after its end; ``flush`` ends the stream and returns the rest."""

    max_latency_s: float

    def push(self, chunk: np.ndarray) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


@runtime_checkable
class EventDetector(Protocol):
    """An event detector for mono float audio at ``sample_rate`` Hz."""

    name: str
    sample_rate: int

    def detect(self, mono: np.ndarray) -> list[Event]: ...

    def stream(self) -> StreamingDetector: ...


@dataclasses.dataclass(frozen=True)
class EnergyDetectorConfig:
    """Parameters of the baseline detector (levels in dB of band power re full scale)."""

    frame_s: float = 0.025
    hop_s: float = 0.010
    fmin: float = 150.0
    fmax: float = 6000.0
    n_bands: int = 16
    floor_window_s: float = 2.5
    on_db: float = 12.0
    off_db: float = 6.0
    abs_min_db: float = -55.0
    min_event_s: float = 0.06
    max_event_s: float = 2.0
    merge_gap_s: float = 0.15
    min_flux_db: float = 6.0

    def __post_init__(self) -> None:
        ok = (0 < self.hop_s <= self.frame_s and 0 <= self.fmin < self.fmax and self.n_bands >= 1
              and 0 < self.off_db <= self.on_db and 0 < self.min_event_s < self.max_event_s
              and self.merge_gap_s >= 0 and self.floor_window_s > 0)
        if not ok:
            raise ValueError(f"inconsistent energy detector parameters: {self}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnergyDetectorConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BundleError(f"energy detector: unknown parameter(s) {unknown}")
        try:
            return cls(**{k: float(v) if k != "n_bands" else int(v) for k, v in d.items()})
        except (TypeError, ValueError) as exc:
            raise BundleError(f"energy detector: {exc}") from None


class EnergyDetector:
    """Baseline transient detector (module docstring). Works at any rate >= 8 kHz.

    ``confidence = s * f`` with ``s = 1 - exp(-max(0, snr - on_db + 1) / 8)`` (peak level above
    the floor) and ``f = 1 - exp(-flux / 8)`` (onset spectral flux): 0.5 means a weak or narrow
    transient, > 0.8 a loud broadband one. It is not a probability of a cough.
    """

    name = "energy"

    def __init__(self, sample_rate: int = 16000, config: EnergyDetectorConfig | None = None):
        self.sample_rate = int(sample_rate)
        self.config = config or EnergyDetectorConfig()
        if self.sample_rate < 8000:
            raise ValueError("the energy detector needs audio at >= 8 kHz")

    def stream(self) -> _EnergyStream:
        return _EnergyStream(self.sample_rate, self.config)

    def detect(self, mono: np.ndarray) -> list[Event]:
        s = self.stream()
        return s.push(mono) + s.flush()


class _FloorTracker:
    """Trailing minimum of frame levels over a time window, kept per block of 10 frames so each
    frame costs one ``np.minimum``. Frames that are not fed (inside events) still pass time."""

    def __init__(self, n_values: int, window_frames: int, block: int = 10) -> None:
        self.block = block
        self.n_blocks = max(1, -(-window_frames // block))
        self.blocks: deque[tuple[int, np.ndarray]] = deque()  # completed blocks (index, min)
        self.done = np.full(n_values, np.inf)  # min over the completed blocks in the window
        self.cur_index = -1
        self.cur = np.full(n_values, np.inf)
        self.floor = np.full(n_values, np.nan)

    def _advance(self, b: int) -> None:
        if b == self.cur_index:
            return
        if self.cur_index >= 0 and np.isfinite(self.cur).all():
            self.blocks.append((self.cur_index, self.cur))
        self.cur_index, self.cur = b, np.full(self.cur.shape, np.inf)
        while self.blocks and self.blocks[0][0] <= b - self.n_blocks:
            self.blocks.popleft()
        self.done = (np.min(np.stack([v for _, v in self.blocks]), axis=0) if self.blocks
                     else np.full(self.cur.shape, np.inf))

    def feed(self, frame: int, levels: np.ndarray) -> None:
        self._advance(frame // self.block)
        self.cur = np.minimum(self.cur, levels)
        self.floor = np.minimum(self.done, self.cur)

    def age(self, frame: int) -> None:
        self._advance(frame // self.block)
        if np.isfinite(self.done).all():
            self.floor = self.done


class _State(enum.Enum):
    IDLE = "idle"  # tracking the floor, waiting for an onset
    ACTIVE = "active"  # inside an event
    SUSTAINED = "sustained"  # a too-long sound: waiting for the floor to catch up


class _EnergyStream:
    """Incremental state machine of :class:`EnergyDetector` (one per stream)."""

    def __init__(self, sample_rate: int, cfg: EnergyDetectorConfig) -> None:
        self.sr, self.cfg = sample_rate, cfg
        self.win = max(16, int(round(cfg.frame_s * sample_rate)))
        self.hop = max(1, int(round(cfg.hop_s * sample_rate)))
        self.n_fft = 1 << (self.win - 1).bit_length()
        # 4-term Blackman-Harris: -92 dB side lobes, so a loud pure tone stays in its own band
        n = 2.0 * np.pi * np.arange(self.win) / self.win
        self.taper = (0.35875 - 0.48829 * np.cos(n) + 0.14128 * np.cos(2 * n)
                      - 0.01168 * np.cos(3 * n))
        self.norm = 2.0 / (self.n_fft * float(np.sum(self.taper**2)))
        self.taper = self.taper.astype(np.float32)
        self.band_of_bin = self._bands()
        inband = np.flatnonzero(self.band_of_bin >= 0)
        self.bins = slice(int(inband[0]), int(inband[-1]) + 1)  # bands are contiguous, in order
        counts = np.bincount(self.band_of_bin[inband], minlength=cfg.n_bands)
        if np.any(counts == 0):
            raise ValueError(f"{cfg.n_bands} bands are too many for a {self.n_fft}-point FFT")
        self.band_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.hop_t = self.hop / sample_rate
        self.buf = np.zeros(0, dtype=np.float32)
        self.frame = 0  # index of the next frame to compute
        self.floors = _FloorTracker(1 + cfg.n_bands, int(round(cfg.floor_window_s / self.hop_t)))
        self.history: deque[np.ndarray] = deque(maxlen=64)  # recent band levels (onset flux)
        self.state = _State.IDLE
        self.run_start: int | None = None  # first frame of the current run above off (IDLE)
        self.ev: dict[str, Any] | None = None  # event being built (ACTIVE, or pending merge)
        self.pending: dict[str, Any] | None = None
        self.flushed = False
        self.max_latency_s = cfg.merge_gap_s + cfg.hop_s + cfg.frame_s

    def _bands(self) -> np.ndarray:
        """Band index (0..n_bands-1) of each rfft bin, -1 outside fmin..fmax; mel-spaced edges."""
        cfg = self.cfg
        fmax = min(cfg.fmax, 0.47 * self.sr)
        mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
        edges = np.linspace(mel(cfg.fmin), mel(fmax), cfg.n_bands + 1)
        freqs = np.arange(self.n_fft // 2 + 1) * self.sr / self.n_fft
        idx = np.searchsorted(edges, mel(freqs), side="right") - 1
        idx[(freqs < cfg.fmin) | (freqs >= fmax)] = -1
        return idx

    # ------------------------------------------------------------------------------ frames
    def _levels(self, frames: np.ndarray) -> np.ndarray:
        """[F, win] samples -> [F, 1 + n_bands] dB levels: total band power, then each band."""
        spec = np.fft.rfft(frames * self.taper, n=self.n_fft, axis=1)
        spec = spec[:, self.bins]
        power = np.square(spec.real, dtype=np.float64) + np.square(spec.imag, dtype=np.float64)
        # per-row sequential sums (not BLAS): the same frame gives the same levels whatever the
        # batch, so streaming and offline detection agree exactly
        bands = np.add.reduceat(power, self.band_starts, axis=1) * self.norm
        total = bands.sum(axis=1, keepdims=True)
        return np.maximum(10.0 * np.log10(np.concatenate([total, bands], axis=1) + _EPS), _MIN_DB)

    def push(self, chunk: np.ndarray) -> list[Event]:
        if self.flushed:
            raise RuntimeError("push after flush: start a new stream")
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x.copy()
        n = 0 if self.buf.size < self.win else (self.buf.size - self.win) // self.hop + 1
        if n == 0:
            return []
        frames = np.lib.stride_tricks.sliding_window_view(self.buf, self.win)[:: self.hop]
        out: list[Event] = []
        for i in range(0, n, _FRAMES_PER_BATCH):  # bounded memory on long recordings
            batch = frames[i : min(n, i + _FRAMES_PER_BATCH)]
            zeros = np.count_nonzero(batch == 0, axis=1) >= _SILENT_ZERO_FRACTION * self.win
            for lv, z in zip(self._levels(batch), zeros):
                out.extend(self._step(lv, bool(z)))
        self.buf = self.buf[n * self.hop :].copy()
        return out

    def flush(self) -> list[Event]:
        """End of audio: the last partial frame (zero-padded), then close any open event."""
        if self.flushed:
            return []
        out: list[Event] = []
        if self.buf.size > self.win - self.hop:
            pad = np.zeros(self.win, dtype=np.float32)
            real = self.buf[: self.win]
            pad[: real.size] = real
            zeros = np.count_nonzero(real == 0) >= _SILENT_ZERO_FRACTION * real.size
            out.extend(self._step(self._levels(pad[None])[0], bool(zeros)))
        self.flushed = True
        if self.state is _State.ACTIVE and self.ev is not None:
            self._close_active()
        if self.pending is not None:
            ev = self._finish(self.pending)
            self.pending = None
            if ev is not None:
                out.append(ev)
        return out

    # ------------------------------------------------------------------------ state machine
    def _t(self, frame: int) -> float:
        """Time of a frame: its window centre."""
        return (frame * self.hop + 0.5 * self.win) / self.sr

    def _thresholds(self, floor_total: float) -> tuple[float, float]:
        cfg = self.cfg
        on = max(floor_total + cfg.on_db, cfg.abs_min_db)
        off = max(floor_total + cfg.off_db, cfg.abs_min_db - (cfg.on_db - cfg.off_db))
        return on, off

    def _step(self, lv: np.ndarray, zeros: bool = False) -> list[Event]:
        cfg, f = self.cfg, self.frame
        self.frame += 1
        out: list[Event] = []
        if self.state is not _State.ACTIVE and lv[0] > _SILENCE_DB and not zeros:
            self.floors.feed(f, lv)
        else:
            self.floors.age(f)
        level = float(lv[0])

        if self.state is _State.SUSTAINED:
            _, off = self._thresholds(float(self.floors.floor[0]))
            if level < off:
                self.state, self.run_start = _State.IDLE, None
        elif self.state is _State.IDLE:
            if self.pending is not None and self._t(f) - self.pending["end_t"] > cfg.merge_gap_s:
                ev = self._finish(self.pending)
                self.pending = None
                if ev is not None:
                    out.append(ev)
            on, off = self._thresholds(float(self.floors.floor[0]))
            if level >= off:
                if self.run_start is None:
                    self.run_start = f
            else:
                self.run_start = None
            if level >= on:
                self._open(f, lv)
        else:  # ACTIVE
            ev = self.ev
            assert ev is not None
            if level >= ev["off"]:
                ev["last"] = f
                ev["end_t"] = self._t(f)
                if level > ev["peak"]:
                    ev["peak"] = level
                if f <= ev["on_frame"] + 3:
                    ev["post"].append(lv[1:])
                if self._t(f) - ev["start_t"] > cfg.max_event_s:
                    self.ev = self.pending = None  # sustained sound: not a transient
                    self.state = _State.SUSTAINED
            else:
                self._close_active()
        self.history.append(lv[1:])
        return out

    def _open(self, f: int, lv: np.ndarray) -> None:
        floor = self.floors.floor.copy()
        _, off = self._thresholds(float(floor[0]))
        start = self.run_start if self.run_start is not None else f
        back = f - start  # frames between the run start and now, all in self.history
        hist = list(self.history)
        pre = hist[max(0, len(hist) - back - 5) : max(0, len(hist) - back)]
        if not pre:
            pre = [floor[1:]]
        ev = {"start_t": self._t(start), "end_t": self._t(f), "last": f, "on_frame": f,
              "peak": float(lv[0]), "floor": float(floor[0]), "off": off,
              "pre": np.mean(pre, axis=0), "post": [lv[1:]], "flux": 0.0}
        if self.pending is not None:  # merge with the event that ended < merge_gap_s ago
            merged = self.pending
            merged["peak"] = max(merged["peak"], ev["peak"])
            merged["pending_flux"] = max(merged["flux"], merged.get("pending_flux", 0.0))
            merged.update(on_frame=f, pre=ev["pre"], post=ev["post"], off=off)
            ev = merged
            self.pending = None
        self.ev = ev
        self.state = _State.ACTIVE

    def _close_active(self) -> None:
        ev = self.ev
        assert ev is not None
        post = np.mean(ev["post"], axis=0)
        rise = np.clip(post - ev["pre"], 0.0, _MAX_RISE_DB)
        ev["flux"] = max(float(np.mean(rise)), ev.get("pending_flux", 0.0))
        self.pending, self.ev = ev, None
        self.state, self.run_start = _State.IDLE, None

    def _finish(self, ev: dict[str, Any]) -> Event | None:
        cfg = self.cfg
        duration = ev["end_t"] - ev["start_t"]
        if duration < cfg.min_event_s or ev["flux"] < cfg.min_flux_db:
            return None
        snr = ev["peak"] - ev["floor"]
        s = 1.0 - math.exp(-max(0.0, snr - cfg.on_db + 1.0) / 8.0)
        fl = 1.0 - math.exp(-ev["flux"] / 8.0)
        half = 0.5 * self.hop_t
        return Event(start_s=max(0.0, ev["start_t"] - half), end_s=ev["end_t"] + half,
                     confidence=float(min(1.0, max(0.0, s * fl))), snr_db=float(snr))


# ---------------------------------------------------------------------------- plug-in point
DETECTOR_KINDS = tuple(k.value for k in DetectorKind)


def detector_from_bundle(bundle: Any, sample_rate: int | None = None, *,
                         embed: Callable[[np.ndarray], np.ndarray] | None = None
                         ) -> EventDetector:
    """The event detector a bundle declares, else the energy baseline at the bundle's rate.

    A bundle declares one in ``manifest["heads"]`` as an entry with ``"role": "detector"``:
    ``{"name": "cough-events", "role": "detector", "kind": "energy", "params": {...}}``, or the
    learned ``energy_head`` kind (``hai_edge.runtime.events_learned``), which verifies each
    energy candidate with a head on the bundle's embedding and so needs ``embed`` (model inputs
    -> embeddings). A kind this version does not know is refused with a clear message instead
    of being run without it.
    """
    manifest = bundle.manifest
    rate = int(sample_rate or getattr(manifest.preprocessing, "sample_rate", 16000))
    try:
        entry = detector_entry_of(manifest.heads)  # the bundle contract's one parser
    except BundleError as exc:
        raise BundleError(f"{bundle.root}: {exc}") from None
    if entry is None:
        return EnergyDetector(rate)
    if entry.kind is DetectorKind.ENERGY:
        return EnergyDetector(rate, EnergyDetectorConfig.from_dict(entry.energy_params))
    from hai_edge.runtime.events_learned import verified_detector_from_entry

    spec = manifest.preprocessing
    if rate != getattr(spec, "sample_rate", None):
        raise BundleError(f"{bundle.root}: the energy_head detector runs at the bundle rate")
    return verified_detector_from_entry(bundle, entry, spec, embed)

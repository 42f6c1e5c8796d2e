"""Audio front end in plain numpy: mono -> resample -> fixed windows -> per-window features.

This module is the single definition of audio preprocessing. The export side, calibration, every
runtime and the JavaScript app follow it step by step, so each step is written out explicitly:

1. ``to_mono``: average the channels (float32).
2. ``resample`` (see ``_resample``) to ``spec.sample_rate``.
3. ``split_windows``: windows of ``spec.window_samples`` every ``spec.hop_samples`` starting at 0;
   short clips and the tail are zero-padded (rules in its docstring); quiet windows are skipped.
4. ``window_features``: per-window clip normalisation, then the model input: the raw waveform, a
   log-mel spectrogram or a PCEN mel spectrogram, standardised with constants fixed at export.

Spectrogram convention (TensorFlow ``tf.signal.stft(..., pad_end=True)``): ``n_frames =
ceil(N / hop_length)`` frames of ``win_length`` samples, frame ``f`` starting at ``f * hop_length``,
the window zero-padded at its end as needed; each frame is multiplied by a *periodic* Hann window
``w[n] = 0.5 - 0.5 * cos(2 * pi * n / win_length)``, then zero-padded **at its end** to ``n_fft``
(left-aligned, not centred, as TF does) and transformed with a real FFT; power = ``|X|^2``.
The FFT runs in float64, the non-negative sums after it (power, mel, log) in float32 (PCEN in
float64); the Hann window and the mel matrix are computed once per configuration.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading

import numpy as np

from hai_edge.errors import InputError
from hai_edge.runtime.frontends._resample import resample
from hai_edge.bundle.frontend import AudioFeatures, AudioFrontendSpec, ClipNormalization

__all__ = [
    "AudioWindow",
    "mel_filterbank",
    "pcen",
    "prepare_audio",
    "split_windows",
    "to_mono",
    "window_features",
]

# TensorFlow's mel scale: mel(f) = 1127 * ln(1 + f / 700) (== HTK's 2595 * log10(1 + f / 700)).
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


@dataclasses.dataclass(frozen=True)
class AudioWindow:
    """One analysis window of a recording.

    ``index`` is the window's position on the hop grid (``start_s == index * hop_s``), kept stable
    when quiet windows are skipped, so reports can say which part of the recording a result is
    for. ``end_s`` is where the real audio in the window ends (zero padding is not counted).
    ``rms_db`` is the RMS level of the real samples in dBFS (``-inf`` for digital silence).
    ``samples`` holds exactly ``spec.window_samples`` float32 samples, zero-padded at the end.
    """

    index: int
    start_s: float
    end_s: float
    rms_db: float
    samples: np.ndarray


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``[n]`` or ``[n, channels]`` -> float32 ``[n]``, the mean of the channels.

    Integer PCM (e.g. int16 from a WAV decoder) is scaled to [-1, 1) by its full scale
    (``2 ** (bits - 1)``; unsigned types are centred first) so levels are in dBFS either way.
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio samples must be [n] or [n, channels], got shape {x.shape}")
    if x.ndim == 2 and x.shape[1] == 0:
        raise ValueError("audio samples have 0 channels")
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"audio samples must be numeric, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError("audio samples must be real, got complex values")
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        full_scale = 2.0 ** (info.bits - 1)
        offset = full_scale if info.min == 0 else 0.0
        x = (x.astype(np.float64) - offset) / full_scale
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64)
    return np.ascontiguousarray(x, dtype=np.float32)


def _rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS: ``20 * log10(sqrt(mean(x ** 2)))``; ``-inf`` for zero RMS/no samples."""
    if x.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0.0 else -math.inf


def _format_seconds_pair(a: float, b: float) -> tuple[str, str]:
    """Format two durations with 2 decimals, or more if needed so unequal values print unequal."""
    for digits in range(2, 7):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if sa != sb or a == b:
            return sa, sb
    return sa, sb


def _format_db(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.1f}"


def split_windows(mono: np.ndarray, spec: AudioFrontendSpec, source: str) -> list[AudioWindow]:
    """Cut a mono recording (already at ``spec.sample_rate``) into the model's fixed windows.

    Rules (``N`` samples, window ``W``, hop ``S``, ``min = round(min_clip_s * sample_rate)``):

    * non-finite samples, ``N < min``, or every window quieter than ``skip_quiet_db`` raise
      :class:`InputError` naming ``source``;
    * windows start at ``0, S, 2S, ...`` until one reaches the end of the audio
      (``start + W >= N``); no window is started after that one, as it would only repeat audio
      already covered;
    * a window with fewer than ``W`` real samples is zero-padded at its end. It is kept when it
      is the only window (a clip shorter than ``W`` becomes one padded window), otherwise only if
      ``spec.pad_last`` and it holds ``>= min`` real samples;
    * when ``skip_quiet_db`` is not None, windows whose real samples have an RMS below it (dBFS)
      are skipped; ``index`` stays the grid position.
    """
    x = np.asarray(mono)
    if x.ndim != 1:
        raise ValueError(f"split_windows expects mono [n] samples, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError(source, "contains NaN or infinite samples")
    sr = spec.sample_rate
    n, win, hop = x.size, spec.window_samples, max(1, spec.hop_samples)
    min_samples = int(round(spec.min_clip_s * sr))
    if n < max(min_samples, 1):
        have, need = _format_seconds_pair(n / sr, spec.min_clip_s)
        raise InputError(source, f"audio is {have} s long; at least {need} s is needed")

    windows: list[AudioWindow] = []
    peak_db = -math.inf
    index = 0
    while True:
        start = index * hop
        real = min(win, n - start)
        if real <= 0:  # only when hop > window: the previous window ended in a gap
            break
        last = start + win >= n
        if real == win or index == 0 or (spec.pad_last and real >= min_samples):
            chunk = x[start : start + real]
            level = _rms_db(chunk)
            peak_db = max(peak_db, level)
            if spec.skip_quiet_db is None or level >= spec.skip_quiet_db:
                padded = np.zeros(win, dtype=np.float32)
                padded[:real] = chunk
                windows.append(
                    AudioWindow(
                        index=index,
                        start_s=start / sr,
                        end_s=(start + real) / sr,
                        rms_db=level,
                        samples=padded,
                    )
                )
        if last:
            break
        index += 1

    if not windows:
        raise InputError(
            source,
            f"audio is silent (peak window RMS {_format_db(peak_db)} dBFS, "
            f"threshold {spec.skip_quiet_db:g} dBFS)",
        )
    return windows


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Mel weight matrix ``[n_fft // 2 + 1, n_mels]`` (float64), TF's convention exactly.

    Same as ``tf.signal.linear_to_mel_weight_matrix(n_mels, n_fft // 2 + 1, sample_rate, fmin,
    fmax)``: HTK mel scale; spectrogram bin ``i`` sits at ``i * (sr / 2) / (n_fft // 2)`` Hz; band
    ``m`` is a triangle in the *mel* domain with edges ``e[m], e[m+1], e[m+2]`` taken from
    ``linspace(mel(fmin), mel(fmax), n_mels + 2)``: weight ``max(0, min((mel - lower) / (centre -
    lower), (upper - mel) / (upper - centre)))``. Not area-normalised. The DC bin row is zero.
    """
    n_bins = n_fft // 2 + 1
    if n_bins < 2 or n_mels < 1 or not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError("mel_filterbank needs n_fft >= 2, n_mels >= 1, 0 <= fmin < fmax <= sr/2")

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return _MEL_HIGH_Q * np.log(1.0 + np.asarray(f, dtype=np.float64) / _MEL_BREAK_HZ)

    bin_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins)[1:])[:, None]  # no DC
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, n_mels)), weights], axis=0)


def _normalise_clips(x: np.ndarray, mode: ClipNormalization) -> np.ndarray:
    """Per-window normalisation over the whole (possibly zero-padded) window, float64 ``[B, N]``."""
    if mode is ClipNormalization.NONE:
        return x
    if mode is ClipNormalization.PEAK:
        peak = np.max(np.abs(x), axis=1, keepdims=True)
        return np.divide(x, peak, out=x.copy(), where=peak > 0)
    lo = np.min(x, axis=1, keepdims=True)
    hi = np.max(x, axis=1, keepdims=True)
    span = hi - lo
    out = np.zeros_like(x)
    np.divide(2.0 * (x - lo), span, out=out, where=span > 0)
    out -= 1.0
    out[np.broadcast_to(span <= 0, x.shape)] = 0.0  # constant window -> zeros
    return out


@functools.lru_cache(maxsize=16)
def _periodic_hann(win_len: int) -> np.ndarray:
    """``w[n] = 0.5 - 0.5 * cos(2 * pi * n / win_len)`` (float64, read-only: cached and shared)."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_len) / win_len)
    hann.setflags(write=False)
    return hann


# Cost of one extra mel block in multiply-adds per frame (a matmul call's fixed overhead),
# measured: 11 blocks for 64 mels at n_fft 512 run ~2x faster than the dense product.
_MEL_BLOCK_OVERHEAD = 250


@functools.lru_cache(maxsize=16)
def _mel_blocks(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
                ) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """:func:`mel_filterbank` as blocks ``(m0, m1, c0, c1, w)`` of adjacent bands, for speed.

    The matrix is ~97 % zeros (each bin feeds at most two triangles), so a dense product wastes
    most of its work. Bands ``m0:m1`` take input only from bins ``c0 // 2 : c1 // 2`` and
    ``w`` (float32 ``[m1 - m0, c1 - c0]``, read-only) is that block transposed with each bin's
    row repeated twice: applied to the squared interleaved (re, im) parts of a spectrum it
    gives ``(re ** 2 + im ** 2) @ mel``. The split minimises multiply-adds plus a fixed cost
    per block (dynamic programming over the band boundaries). Computed once per configuration.
    """
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    first, last, prev = np.zeros(n_mels, int), np.zeros(n_mels, int), 0
    for m in range(n_mels):
        rows = np.flatnonzero(mel[:, m])
        first[m], last[m] = (rows[0], rows[-1] + 1) if rows.size else (prev, prev + 1)
        prev = first[m]
    best, cut = [0.0] + [math.inf] * n_mels, [0] * (n_mels + 1)
    for end in range(1, n_mels + 1):
        for beg in range(end):
            span = int(last[beg:end].max() - first[beg:end].min())
            cost = best[beg] + 2 * span * (end - beg) + _MEL_BLOCK_OVERHEAD
            if cost < best[end]:
                best[end], cut[end] = cost, beg
    blocks, end = [], n_mels
    while end > 0:
        beg = cut[end]
        lo, hi = int(first[beg:end].min()), int(last[beg:end].max())
        w = np.ascontiguousarray(np.repeat(mel[lo:hi, beg:end], 2, axis=0).T, dtype=np.float32)
        w.setflags(write=False)
        blocks.append((beg, end, 2 * lo, 2 * hi, w))
        end = beg
    return tuple(reversed(blocks))


_SCRATCH = threading.local()


def _scratch(n_frames: int, n_fft: int, win_length: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's frame, spectrum and squares buffers for one window, reused by calls.

    Fresh multi-MB arrays for a whole batch cost page faults and cache misses worth more than
    the arithmetic; one window's buffers (~2 MB at n_fft 512) stay in L2 from the framing to
    the mel product. The frame buffer's columns ``win_length:`` are zeroed here once and never
    written afterwards (every frame's zero padding up to ``n_fft``; hence ``win_length`` in the
    key). Per thread, as callers (data loaders, servers) may run the front end in several
    threads at once.
    """
    cache: dict = _SCRATCH.__dict__.setdefault("buffers", {})
    key = (n_frames, n_fft, win_length)
    if key not in cache:
        if len(cache) >= 4:
            cache.clear()
        n_bins = n_fft // 2 + 1
        cache[key] = (np.zeros((n_frames, n_fft)),
                      np.empty((n_frames, n_bins), np.complex128),
                      np.empty((n_frames, 2 * n_bins), np.float32))
    return cache[key]


def _frame_views(x: np.ndarray, spec: AudioFrontendSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``x [B, N]`` as strided views, no copies: ``(head, tail)``, ``[B, n, win]``.

    ``head`` holds the frames wholly inside the window, read straight from ``x``; ``tail`` the
    last few, which run past its end (TF pad_end), read from a small zero-padded copy of the
    end of ``x``. Together they are the ``n_frames`` frames in order.
    """
    n, hop, win = x.shape[1], spec.hop_length, spec.win_length
    n_head = min(spec.n_frames, max(0, (n - win) // hop + 1))
    n_tail = spec.n_frames - n_head
    end = np.zeros((x.shape[0], max(0, (n_tail - 1) * hop + win)), dtype=x.dtype)
    count = max(0, min(end.shape[1], n - n_head * hop))
    end[:, :count] = x[:, n_head * hop : n_head * hop + count]
    views = []
    for arr, count in ((x, n_head), (end, n_tail)):
        views.append(np.lib.stride_tricks.as_strided(
            arr, shape=(x.shape[0], count, win),
            strides=(arr.strides[0], hop * arr.strides[1], arr.strides[1]), writeable=False))
    return views[0], views[1]


def _mel_power_t(x: np.ndarray, spec: AudioFrontendSpec, out: np.ndarray) -> None:
    """``[B, N]`` float32/64 -> mel power into ``out [B, n_mels, n_frames]`` (float32).

    Each window in turn: Hann-windowed frames written straight into the FFT buffer (float64;
    float32 samples are cast exactly by the multiply), the FFT in float64 (it subtracts large
    terms), then the squares and mel product in float32: after the FFT every value is a sum of
    non-negative terms, which float32 keeps to a relative error of ~1e-6. The product writes
    the [mel, time] layout the model takes, so no transpose pass follows.
    """
    blocks = _mel_blocks(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
    frames, spectrum, squares = _scratch(spec.n_frames, spec.n_fft, spec.win_length)
    hann = _periodic_hann(spec.win_length)
    head, tail = _frame_views(x, spec)
    windowed_head = frames[: head.shape[1], : spec.win_length]
    windowed_tail = frames[head.shape[1]:, : spec.win_length]
    inputs = [(m0, m1, w, squares[:, c0:c1].T) for m0, m1, c0, c1, w in blocks]
    for b in range(x.shape[0]):
        np.multiply(head[b], hann, out=windowed_head)
        np.multiply(tail[b], hann, out=windowed_tail)
        np.fft.rfft(frames, axis=-1, out=spectrum)
        squares[...] = spectrum.view(np.float64)  # interleaved (re, im), rounded once
        np.square(squares, out=squares)
        for m0, m1, w, part in inputs:
            np.matmul(w, part, out=out[b, m0:m1])


def pcen(
    energy: np.ndarray,
    alpha: float,
    smooth: float,
    delta: float,
    root: float,
    floor: float,
) -> np.ndarray:
    """Per-channel energy normalisation of ``energy [..., n_frames, n_channels]`` (float64).

    Smoother: ``M[t] = (1 - smooth) * M[t-1] + smooth * E[t]`` with ``M[-1] = E[0]`` (so
    ``M[0] = E[0]``: no start-up transient from an all-zero state). Output:
    ``(E / (floor + M) ** alpha + delta) ** (1 / root) - delta ** (1 / root)``.
    """
    e = np.asarray(energy, dtype=np.float64)
    smoothed = np.empty_like(e)
    state = e[..., 0, :]
    for t in range(e.shape[-2]):  # a short loop over frames, vectorised over batch and channels
        state = (1.0 - smooth) * state + smooth * e[..., t, :]
        smoothed[..., t, :] = state
    inv_root = 1.0 / root
    return (e / (floor + smoothed) ** alpha + delta) ** inv_root - delta**inv_root


def window_features(windows: np.ndarray, spec: AudioFrontendSpec) -> np.ndarray:
    """Model inputs for stacked windows: ``[B, window_samples]`` (or one 1-D window) -> float32
    ``[B, *spec.input_shape()]``.

    Clip normalisation (``spec.clip_normalization``) first, then by ``spec.features``: WAVEFORM
    returns the normalised windows; LOG_MEL is ``log(mel power + log_offset)``; PCEN is
    :func:`pcen` of the mel power. Spectral features are laid out ``[1, n_mels, n_frames]`` and
    standardised as ``(x - feature_mean) / feature_std`` (waveforms are not standardised).
    """
    x = np.asarray(windows)
    if x.dtype != np.float32 or spec.clip_normalization is not ClipNormalization.NONE:
        x = x.astype(np.float64)  # float32 goes to the frame multiply as is: cast there, exactly
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != spec.window_samples:
        raise ValueError(
            f"window_features expects [B, {spec.window_samples}] samples, got shape "
            f"{np.asarray(windows).shape}"
        )
    x = _normalise_clips(x, spec.clip_normalization)
    if spec.features is AudioFeatures.WAVEFORM:
        return np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], 1, spec.n_mels, spec.n_frames), dtype=np.float32)
    feats = out[:, 0]  # [B, n_mels, n_frames], the model's layout
    _mel_power_t(x, spec, feats)
    if spec.features is AudioFeatures.LOG_MEL:
        feats += np.float32(spec.log_offset)
        np.log(feats, out=feats)
        feats -= np.float32(spec.feature_mean)
        feats /= np.float32(spec.feature_std)
        return out
    energy = pcen(
        np.swapaxes(feats, 1, 2),  # [B, n_frames, n_mels]: pcen smooths over frames
        alpha=spec.pcen_alpha,
        smooth=spec.pcen_smooth,
        delta=spec.pcen_delta,
        root=spec.pcen_root,
        floor=spec.pcen_floor,
    )
    energy -= spec.feature_mean
    energy /= spec.feature_std
    feats[...] = np.swapaxes(energy, 1, 2)  # cast to float32 once
    return out


def _is_positive_int(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return value > 0
    return isinstance(value, (float, np.floating)) and value.is_integer() and value > 0


def prepare_audio(
    samples: np.ndarray, sample_rate: int, spec: AudioFrontendSpec, source: str
) -> tuple[list[AudioWindow], np.ndarray]:
    """Decoded samples -> (windows, model inputs ``[n_windows, *spec.input_shape()]`` float32).

    ``to_mono`` -> reject non-finite samples -> ``resample`` to ``spec.sample_rate`` ->
    :func:`split_windows` -> :func:`window_features` on the stacked windows.
    """
    try:
        mono = to_mono(samples)
    except ValueError as exc:
        raise InputError(source, str(exc)) from None
    if not _is_positive_int(sample_rate):
        raise InputError(source, f"invalid sample rate {sample_rate!r}")
    if not np.all(np.isfinite(mono)):
        raise InputError(source, "contains NaN or infinite samples")
    mono = resample(mono, int(sample_rate), spec.sample_rate)
    windows = split_windows(mono, spec, source)
    inputs = window_features(np.stack([w.samples for w in windows]), spec)
    return windows, inputs

"""Audio front end in plain numpy: mono -> resample -> fixed windows -> per-window features.

This module is the single definition of audio preprocessing. The export side, calibration, every
runtime and the JavaScript app follow it step by step, so each step is written out explicitly:

1. ``to_mono``: average the channels (float32).
2. ``resample`` (see ``_resample``) to ``spec.sample_rate``.
3. ``split_windows``: windows of ``spec.window_samples`` every ``spec.hop_samples`` starting at 0;
   short clips and the tail are zero-padded (rules in its docstring); quiet windows are skipped.
4. ``window_features``: per-window clip normalisation, then the model input: the raw waveform, a
   log-mel spectrogram or a PCEN mel spectrogram, standardised with constants fixed at export.

The spectrogram itself (framing, Hann window, FFT, mel product) is ``_spectrogram``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from hai_edge.errors import InputError
from hai_edge.runtime.frontends._resample import resample
from hai_edge.runtime.frontends._spectrogram import mel_filterbank, mel_power_into
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


def window_features(windows: np.ndarray, spec: AudioFrontendSpec, *,
                    grid: Sequence[int] | None = None) -> np.ndarray:
    """Model inputs for stacked windows: ``[B, window_samples]`` (or one 1-D window) -> float32
    ``[B, *spec.input_shape()]``.

    ``grid``: each window's position on the hop grid (``AudioWindow.index``) when the windows
    were cut from one recording by :func:`split_windows`, as :func:`prepare_audio` passes it.
    A window right after its grid neighbour then takes the frames the two share from it instead
    of computing them again (about a tenth of the work at a 2 s window and 1.8 s hop); the
    values are the same to float32 rounding of the mel product (~1e-7). Windows from different
    recordings must not be passed with a grid.

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
    if grid is not None and len(grid) != x.shape[0]:
        raise ValueError(f"grid has {len(grid)} positions for {x.shape[0]} windows")
    x = _normalise_clips(x, spec.clip_normalization)
    if spec.features is AudioFeatures.WAVEFORM:
        return np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], 1, spec.n_mels, spec.n_frames), dtype=np.float32)
    feats = out[:, 0]  # [B, n_mels, n_frames], the model's layout
    mel_power_into(x, spec, feats, grid)
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
    :func:`split_windows` -> :func:`window_features` on the stacked windows (with their grid
    positions, so overlapping windows share frames).
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
    inputs = window_features(np.stack([w.samples for w in windows]), spec,
                             grid=[w.index for w in windows])
    return windows, inputs

"""The spectrogram of the audio front end: framing, Hann window, FFT and mel product, in numpy.

Convention (TensorFlow ``tf.signal.stft(..., pad_end=True)``): ``n_frames = ceil(N / hop_length)``
frames of ``win_length`` samples, frame ``f`` starting at ``f * hop_length``, the window
zero-padded at its end as needed; each frame is multiplied by a *periodic* Hann window
``w[n] = 0.5 - 0.5 * cos(2 * pi * n / win_length)``, then zero-padded **at its end** to ``n_fft``
(left-aligned, not centred, as TF does) and transformed with a real FFT; power = ``|X|^2``, then
the mel matrix (:func:`mel_filterbank`). The FFT runs in float64, the non-negative sums after it
(power, mel) in float32; the Hann window, the mel matrix and the buffers are made once per
configuration (and thread). ``_audio.window_features`` takes it from here (log or PCEN).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Sequence

import numpy as np

from hai_edge.bundle.frontend import AudioFrontendSpec

__all__ = ["mel_filterbank", "mel_power_into"]

# TensorFlow's mel scale: mel(f) = 1127 * ln(1 + f / 700) (== HTK's 2595 * log10(1 + f / 700)).
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


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


def _shared_frames(spec: AudioFrontendSpec, grid: Sequence[int] | None, n_windows: int
                   ) -> tuple[int, int]:
    """``spec.shared_frames`` when the windows come with their grid, else ``(0, 0)``."""
    if grid is None or n_windows < 2:
        return 0, 0
    return spec.shared_frames


@dataclasses.dataclass(frozen=True)
class _Pass:
    """Views into this thread's buffers for one window whose frames ``first:`` are computed."""

    first: int
    samples: np.ndarray  # the window in float64, zero-padded past its end (TF pad_end)
    frames_in: np.ndarray  # strided view of ``samples``: the frames ``first:``, unwindowed
    windowed: np.ndarray  # where the Hann-windowed frames go: the FFT rows' first win_length
    frames: np.ndarray  # all rows the FFT reads
    spectrum: np.ndarray
    squares: np.ndarray
    mel_inputs: tuple  # (m0, m1, weights, squares block transposed) per mel block


def _passes(spec: AudioFrontendSpec, shared: int) -> dict[int, _Pass]:
    """This thread's :class:`_Pass` for whole windows (``first == 0``) and for windows that
    take their first ``shared`` frames from a neighbour, built once per configuration (setting
    up ~30 views per call cost as much as the log and standardisation together)."""
    cache: dict = _SCRATCH.__dict__.setdefault("passes", {})
    key = (spec.n_frames, spec.n_fft, spec.win_length, spec.hop_length, spec.window_samples,
           spec.sample_rate, spec.n_mels, spec.fmin, spec.fmax, shared)
    if key not in cache:
        if len(cache) >= 8:
            cache.clear()
        blocks = _mel_blocks(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
        frames, spectrum, squares = _scratch(spec.n_frames, spec.n_fft, spec.win_length)
        win, hop = spec.win_length, spec.hop_length
        # zeros past the window's end are written here once: each call copies only N samples
        samples = np.zeros(max(spec.window_samples, (spec.n_frames - 1) * hop + win))
        all_frames = np.lib.stride_tricks.as_strided(
            samples, shape=(spec.n_frames, win), strides=(hop * samples.itemsize, samples.itemsize),
            writeable=False)
        passes = {}
        for first in sorted({0, shared}):
            n = spec.n_frames - first
            inputs = tuple((m0, m1, w, squares[:n, c0:c1].T) for m0, m1, c0, c1, w in blocks)
            passes[first] = _Pass(first, samples, all_frames[first:], frames[:n, :win],
                                  frames[:n], spectrum[:n], squares[:n], inputs)
        cache[key] = passes
    return cache[key]


def mel_power_into(x: np.ndarray, spec: AudioFrontendSpec, out: np.ndarray,
                   grid: Sequence[int] | None = None) -> None:
    """``[B, N]`` float32/64 -> mel power into ``out [B, n_mels, n_frames]`` (float32).

    Each window in turn: copied (cast) into a float64 buffer whose zero tail gives TF's
    ``pad_end``, its frames Hann-windowed straight into the FFT buffer (``einsum``: ~1.8x faster
    than ``multiply`` broadcasting the window over strided rows, the same products), the FFT in
    float64 (it subtracts large terms), then the squares and mel product in float32: after the
    FFT every value is a sum of non-negative terms, which float32 keeps to a relative error of
    ~1e-6. The product writes the [mel, time] layout the model takes, so no transpose pass
    follows. With ``grid`` (see :func:`window_features`) a window that follows its grid
    neighbour copies the frames they share (:func:`_shared_frames`) from it and computes only
    the rest.
    """
    hann = _periodic_hann(spec.win_length)
    shared, step = _shared_frames(spec, grid, x.shape[0])
    passes = _passes(spec, shared)
    n = x.shape[1]
    for b in range(x.shape[0]):
        p = passes[shared if shared and b and grid[b] == grid[b - 1] + 1 else 0]
        p.samples[:n] = x[b]
        np.einsum("fn,n->fn", p.frames_in, hann, out=p.windowed)
        np.fft.rfft(p.frames, axis=-1, out=p.spectrum)
        p.squares[...] = p.spectrum.view(np.float64)  # interleaved (re, im), rounded once
        np.square(p.squares, out=p.squares)
        for m0, m1, w, part in p.mel_inputs:
            np.matmul(w, part, out=out[b, m0:m1, p.first:])
        if p.first:
            out[b, :, : p.first] = out[b - 1, :, step : step + p.first]

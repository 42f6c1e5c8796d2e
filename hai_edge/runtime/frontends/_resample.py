"""Rational polyphase resampling in plain numpy (no scipy): the one resampler every runtime follows.

Maths (the same design as ``scipy.signal.resample_poly`` with its defaults, so results agree with
it to float32 precision):

* The rate change ``target_sr / orig_sr`` is reduced to ``L / M`` (up / down) by their gcd.
* Conceptually the input is upsampled by ``L`` (``L - 1`` zeros between samples), low-pass filtered
  and decimated by ``M``. The filter is a Kaiser-windowed sinc with ``2 * H + 1`` taps,
  ``H = 10 * max(L, M)``, Kaiser ``beta = 5.0`` (about 50 dB stop-band attenuation), cutoff at the
  lower of the two Nyquist frequencies (``1 / max(L, M)`` of the upsampled Nyquist). Its taps are
  scaled so that their sum is ``L`` (unit DC gain after zero-stuffing). The roll-off is centred on
  the lower Nyquist (-6 dB there); for 44.1 kHz -> 16 kHz the transition band is roughly
  6.7..9.3 kHz, so content below ~6.5 kHz passes with < 0.01 dB error and content above ~9.5 kHz
  is attenuated by >= 50 dB.
* The filter is applied centred (zero phase), so there is no time shift: output sample ``k`` is

      y[k] = sum_i x[i] * h[k * M - i * L + H]        (x is zero outside 0..n-1)

  i.e. ``y[k]`` estimates the signal at time ``k / target_sr``. The output has
  ``ceil(n * L / M)`` samples.

Only the taps that meet non-zero input are evaluated (polyphase): for output ``k`` with
``t = k * M + H`` the taps are ``h[t % L + q * L]`` against ``x[t // L - q]``, ``q = 0..Q-1``,
``Q = ceil((2 * H + 1) / L)``.

Implementation: for the usual rate pairs the pattern repeats every ``L`` outputs / ``M`` inputs, so
each block of ``L`` outputs is one small dense matrix product of an input segment of ``J`` samples
with a fixed ``[J, L]`` weight matrix (BLAS; 60 s of 44.1 kHz audio takes a few tens of ms). For odd
rate pairs where that matrix would be large, a gather-based polyphase path is used instead. Both
process the output in chunks, so the extra memory is bounded regardless of the recording length.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["resample"]

KAISER_BETA = 5.0  # Kaiser window shape parameter (scipy.signal.resample_poly's default)
HALF_LEN_FACTOR = 10  # filter half-length = HALF_LEN_FACTOR * max(L, M) (scipy's default)
_CHUNK_ELEMENTS = 1 << 20  # working-set size (elements) of one chunk of either path
_DENSE_MAX_ELEMENTS = 1 << 21  # largest [J, L] block matrix for the dense path (8 MiB float32)


@functools.lru_cache(maxsize=32)
def _lowpass(up: int, down: int) -> np.ndarray:
    """Kaiser-windowed sinc, float64, ``2 * H + 1`` taps centred on index ``H``, sum == ``up``."""
    max_rate = max(up, down)
    half_len = HALF_LEN_FACTOR * max_rate
    n = np.arange(-half_len, half_len + 1, dtype=np.float64)
    cutoff = 1.0 / max_rate  # fraction of the upsampled Nyquist
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half_len + 1, KAISER_BETA)
    h *= up / h.sum()
    h.setflags(write=False)
    return h


@functools.lru_cache(maxsize=32)
def _polyphase(up: int, down: int) -> tuple[np.ndarray, int, int]:
    """Polyphase table ``P[p, q] = h[p + q * L]`` (zero past the end), plus ``H`` and ``Q``."""
    h = _lowpass(up, down)
    half_len = (h.size - 1) // 2
    n_taps = -(-h.size // up)
    padded = np.zeros(n_taps * up, dtype=np.float64)
    padded[: h.size] = h
    table = np.ascontiguousarray(padded.reshape(n_taps, up).T).astype(np.float32)
    table.setflags(write=False)
    return table, half_len, n_taps


@functools.lru_cache(maxsize=32)
def _block_matrix(up: int, down: int) -> tuple[np.ndarray, int, int] | None:
    """Dense ``[J, L]`` weights mapping the input segment of one output block to ``L`` outputs.

    Output ``k = r * L + k0`` reads ``x[r * M + b[k0] - q]`` with ``b[k0] = (k0 * M + H) // L``;
    with ``j = b[k0] - q`` ranging over ``jlo..jhi`` for all ``k0``, block ``r`` is
    ``x[r * M + jlo : r * M + jhi + 1] @ W``. Returns ``(W, jlo, J)`` or None when too large.
    """
    table, half_len, n_taps = _polyphase(up, down)
    k0 = np.arange(up, dtype=np.int64)
    t0 = k0 * down + half_len
    base, phase = t0 // up, t0 % up
    jlo = int(base[0]) - (n_taps - 1)
    span = int(base[-1]) - jlo + 1
    if span * up > _DENSE_MAX_ELEMENTS:
        return None
    weights = np.zeros((span, up), dtype=np.float32)
    rows = base[:, None] - np.arange(n_taps)[None, :] - jlo  # [L, Q]
    cols = np.broadcast_to(k0[:, None], rows.shape)
    weights[rows, cols] = table[phase]
    weights.setflags(write=False)
    return weights, jlo, span


def _segment(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x[start:stop]`` with zeros where the range leaves ``0..len(x)-1`` (a copy)."""
    out = np.zeros(stop - start, dtype=np.float32)
    lo, hi = max(start, 0), min(stop, x.size)
    if hi > lo:
        out[lo - start : hi - start] = x[lo:hi]
    return out


def _resample_dense(x: np.ndarray, up: int, down: int, n_out: int, block: tuple) -> np.ndarray:
    weights, jlo, span = block
    n_blocks = -(-n_out // up)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(span, up))
    out = np.empty(n_blocks * up, dtype=np.float32)
    for r0 in range(0, n_blocks, rows_per_chunk):
        r1 = min(n_blocks, r0 + rows_per_chunk)
        seg = _segment(x, r0 * down + jlo, (r1 - 1) * down + jlo + span)
        frames = np.lib.stride_tricks.sliding_window_view(seg, span)[::down]  # [r1 - r0, J]
        out[r0 * up : r1 * up] = (frames @ weights).ravel()
    return out[:n_out]


def _resample_gather(x: np.ndarray, up: int, down: int, n_out: int) -> np.ndarray:
    table, half_len, n_taps = _polyphase(up, down)
    per_chunk = max(1, _CHUNK_ELEMENTS // n_taps)
    q = np.arange(n_taps, dtype=np.int64)
    out = np.empty(n_out, dtype=np.float32)
    for k0 in range(0, n_out, per_chunk):
        k = np.arange(k0, min(n_out, k0 + per_chunk), dtype=np.int64)
        t = k * down + half_len
        base, phase = t // up, t % up
        start = int(base[0]) - (n_taps - 1)
        seg = _segment(x, start, int(base[-1]) + 1)
        vals = seg[base[:, None] - q[None, :] - start]  # [K, Q]
        out[k0 : k0 + k.size] = np.einsum("kq,kq->k", vals, table[phase])
    return out


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal from ``orig_sr`` to ``target_sr`` Hz; float32, ``ceil(n*L/M)`` long.

    Band-limited (Kaiser-windowed sinc at the lower Nyquist, see the module docstring) so
    downsampling does not alias, and zero-phase so events keep their timestamps. Returns a float32
    copy when the rates are equal.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample expects a 1-D signal, got shape {x.shape}")
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if orig_sr == target_sr:
        return x.copy()
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    n_out = -(-x.size * up // down)
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    block = _block_matrix(up, down)
    if block is not None:
        return _resample_dense(x, up, down, n_out, block)
    return _resample_gather(x, up, down, n_out)

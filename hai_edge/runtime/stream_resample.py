"""Streaming resampling for live capture: chunks in, the samples of one whole-signal resample out.

The microphone may only run at its own default rate; :class:`StreamResampler` converts its blocks
to the bundle rate as they arrive, so live results equal offline results on the same audio.
"""

from __future__ import annotations

import math

import numpy as np

from hai_edge.runtime.frontends import resample
from hai_edge.runtime.frontends._resample import HALF_LEN_FACTOR

__all__ = ["StreamResampler"]


class StreamResampler:
    """Chunk-by-chunk :func:`~hai_edge.runtime.frontends.resample`: the concatenated output of
    ``push`` calls plus ``flush`` equals resampling the whole signal at once (to float rounding).

    Output ``k`` is emitted once every input its filter reaches has arrived; the input kept
    between calls starts at a multiple of the decimation factor so the output grid never shifts.
    """

    def __init__(self, orig_sr: int, target_sr: int) -> None:
        g = math.gcd(int(orig_sr), int(target_sr))
        self.orig_sr, self.target_sr = int(orig_sr), int(target_sr)
        self.up, self.down = self.target_sr // g, self.orig_sr // g
        self.half = HALF_LEN_FACTOR * max(self.up, self.down)  # filter half-length, upsampled
        self.buf = np.zeros(0, dtype=np.float32)
        self.b0 = 0  # global input index of buf[0] (a multiple of self.down)
        self.n_in = 0
        self.k_next = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        self.buf = np.concatenate([self.buf, x])
        self.n_in += x.size
        return self._emit(((self.n_in - 1) * self.up - self.half) // self.down)

    def flush(self) -> np.ndarray:
        return self._emit(-(-self.n_in * self.up // self.down) - 1)

    def _emit(self, k_last: int) -> np.ndarray:
        if k_last < self.k_next or self.n_in == 0:
            return np.zeros(0, dtype=np.float32)
        y = resample(self.buf, self.orig_sr, self.target_sr)
        offset = self.b0 // self.down * self.up
        out = y[self.k_next - offset : k_last + 1 - offset].copy()
        self.k_next = k_last + 1
        first_needed = max(0, -(-(self.k_next * self.down - self.half) // self.up))
        new_b0 = max(self.b0, first_needed // self.down * self.down)
        self.buf = self.buf[new_b0 - self.b0 :]
        self.b0 = new_b0
        return out

"""Tiny seeded nets for the INT8 tests: a waveform model with an in-graph log-mel front end.

``TinyWaveNet`` is the toolchain notes' AUDW pattern shrunk: raw waveform [N, samples] -> an
in-graph front end (zero-pad, STFT as a Conv1d with fixed Hann-windowed DFT kernels, re^2 + im^2,
mel as a fixed 1x1 Conv1d, log) held in the ``frontend`` attribute -> a small CNN encoder. The
front end's power spectrum spans many decades, so quantizing it to INT8 ruins the embedding; the
quantizers must keep it float. Deterministic in ``seed``, global RNG untouched, eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hai_edge.runtime.frontends import AudioFrontendSpec, mel_filterbank

__all__ = ["WAVE_SPEC", "TinyWaveNet", "wave_inputs"]

# 0.5 s at 16 kHz -> 50 frames of hop 160; 32 mels from a 256-point FFT.
WAVE_SPEC = AudioFrontendSpec(
    features="waveform", window_s=0.5, hop_s=0.5, min_clip_s=0.25, n_fft=256, win_length=256,
    hop_length=160, n_mels=32, skip_quiet_db=None,
)


class LogMelFrontEnd(nn.Module):
    """[N, samples] -> [N, 1, n_mels, n_frames] log-mel, all float ops (Conv1d STFT)."""

    def __init__(self, n_fft: int = 256, hop: int = 160, n_mels: int = 32, sr: int = 16000,
                 frames: int = 50) -> None:
        super().__init__()
        bins = n_fft // 2 + 1
        t = np.arange(n_fft)
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * t / n_fft)
        k = np.arange(bins)[:, None]
        re = np.cos(2 * np.pi * k * t / n_fft) * hann
        im = -np.sin(2 * np.pi * k * t / n_fft) * hann
        kernel = np.concatenate([re, im])[:, None, :].astype(np.float32)
        self.stft = nn.Conv1d(1, 2 * bins, n_fft, stride=hop, bias=False)
        self.stft.weight.data.copy_(torch.from_numpy(kernel))
        mel = mel_filterbank(sr, n_fft, n_mels, 60.0, 7800.0).T.astype(np.float32)  # [mels, bins]
        self.mel = nn.Conv1d(bins, n_mels, 1, bias=False)
        self.mel.weight.data.copy_(torch.from_numpy(mel)[:, :, None])
        self.bins = bins
        self.pad = n_fft // 2
        self.frames = frames
        self.register_buffer("mean", torch.zeros(()))  # feature standardisation, fitted on data
        self.register_buffer("std", torch.ones(()))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(wav[:, None, :], (0, self.pad))
        spec = self.stft(x)[:, :, : self.frames]
        re, im = spec[:, : self.bins], spec[:, self.bins :]
        power = re * re + im * im
        return ((torch.log(self.mel(power) + 1e-6) - self.mean) / self.std)[:, None]


class TinyWaveNet(nn.Module):
    """Waveform [N, 8000] -> [N, 32]: ``frontend`` (float, in-graph) then a conv encoder."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.frontend = LogMelFrontEnd()
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.Conv2d(32, 48, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(48),
                nn.ReLU(),
            )
            self.proj = nn.Linear(48, 32)
        x = torch.from_numpy(wave_inputs(32, seed=seed + 500))
        bns = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        gen = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            feats = self.frontend(x)
            self.frontend.mean.copy_(feats.mean())
            self.frontend.std.copy_(feats.std())
            for bn in bns:
                bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
                bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            self.train()
            self(x)
            self.eval()
            pooled = self.encoder(self.frontend(x)).mean(dim=(2, 3))
            self.proj.bias.copy_(-(pooled.mean(0) @ self.proj.weight.T))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.frontend(wav))
        return self.proj(z.mean(dim=(2, 3)))


def wave_inputs(n: int, seed: int = 0, samples: int = 8000) -> np.ndarray:
    """Cough-like noise bursts plus hum and noise, each clip with its own level and timbre."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    out = np.empty((n, samples), dtype=np.float32)
    for i in range(n):
        level = 10 ** rng.uniform(-2.0, -0.5)
        x = rng.normal(0, 0.02 * level, samples)
        x += 0.05 * level * np.sin(2 * np.pi * rng.uniform(50, 400) * t)
        for _ in range(rng.integers(1, 4)):
            start, dur = rng.uniform(0, 0.4), rng.uniform(0.03, 0.15)
            env = np.exp(-0.5 * ((t - start - dur / 2) / (dur / 4)) ** 2)
            burst = np.convolve(rng.normal(0, 1, samples), np.ones(rng.integers(1, 12)), "same")
            x += level * env * burst / 4
        out[i] = np.clip(x, -1, 1)
    return out

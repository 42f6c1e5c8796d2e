"""Two tiny seeded torch students for export tests (no weights downloaded, nothing trained).

Random init alone gives a poor test model: post-ReLU features are all positive, global average
pooling averages the input away, and every embedding points the same way (plain cosine between
different inputs ~0.999, so a parity check at cosine 0.9999 would barely tell inputs apart). So, as
in the toolchain notes' "realism tweaks": BatchNorm gets random affine parameters and running
statistics re-estimated on synthetic data (non-trivial, data-derived, folded by every exporter),
and the projection bias centres the embeddings over that data. Embeddings then depend on the input
(tests/test_export_fp32.py checks plain and centred cosines between different inputs).
Construction is deterministic (``seed``), leaves the global torch RNG alone, and returns the net in
eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AUDIO_SHAPE", "EMBED_DIM", "IMAGE_SHAPE", "TinyAudioNet", "TinyImageNet"]

EMBED_DIM = 32
AUDIO_SHAPE = (1, 32, 100)  # AudioFrontendSpec(n_mels=32, window_s=1.0).input_shape()
IMAGE_SHAPE = (3, 64, 64)  # ImageFrontendSpec(height=64, width=64).input_shape()


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class TinyAudioNet(nn.Module):
    """Log-mel [N, 1, n_mels, n_frames] -> [N, 32]: three conv-BN-ReLU blocks, GAP, Linear."""

    def __init__(self, seed: int = 0, calib_shape: Sequence[int] = AUDIO_SHAPE) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build()
        _calibrate(self, seed, calib_shape)

    def _build(self) -> None:
        self.features = nn.Sequential(
            _conv_bn_relu(1, 8),
            _conv_bn_relu(8, 16, stride=2),
            _conv_bn_relu(16, 32, stride=2),
        )
        self.proj = nn.Linear(32, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))


class TinyImageNet(nn.Module):
    """RGB [N, 3, H, W] -> [N, 32]: strided convs incl. one depthwise block, ReLU, GAP, Linear."""

    def __init__(self, seed: int = 0, calib_shape: Sequence[int] = IMAGE_SHAPE) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build()
        _calibrate(self, seed, calib_shape)

    def _build(self) -> None:
        self.features = nn.Sequential(
            _conv_bn_relu(3, 16, stride=2),
            _conv_bn_relu(16, 16, stride=2, groups=16),  # depthwise
            nn.Conv2d(16, 32, 1, bias=False),  # pointwise
            nn.BatchNorm2d(32),
            nn.ReLU(),
            _conv_bn_relu(32, 48, stride=2),
        )
        self.proj = nn.Linear(48, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))


def _calibrate(net: nn.Module, seed: int, calib_shape: Sequence[int], n: int = 32) -> None:
    """Random BN affine params; BN running stats and a centring projection bias from data."""
    from hai_edge.export.fp32_bundle import synthetic_inputs

    gen = torch.Generator().manual_seed(seed + 1000)
    x = torch.from_numpy(synthetic_inputs(calib_shape, n=n, seed=seed + 2000))
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            c = bn.num_features
            bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(c, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one pass = this batch's statistics
        net.train()
        net(x)
        net.eval()
        for bn in bns:
            bn.momentum = 0.1
        proj: nn.Linear = net.proj  # type: ignore[assignment]
        pooled = net.features(x).mean(dim=(2, 3))
        proj.bias.copy_(-(pooled.mean(0) @ proj.weight.T))

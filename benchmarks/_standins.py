"""Stand-in students for the export benchmarks (random init + realism tweaks, nothing trained).

* image: MobileNetV2-like (inverted residuals, ReLU6, width ~0.75) at 224 px -> 512-d, ~1.6 M params
* audio: depthwise-separable CNN on a 64 x 200 log-mel -> 512-d (HeAR's size), ~0.3 M params

As in tests/_tiny_models.py: BatchNorm gets random affine parameters and running statistics
re-estimated on front-end outputs of synthetic media, and the projection bias centres the
embeddings, so INT8 drift is measured on input-dependent embeddings. Residual branches get a small
gain (last BN gamma 0.1-0.3, as trained MobileNetV2s and the zero-gamma init of the real students
have): with gamma ~1 everywhere a random 17-block net is chaotic (0.1% input noise turned the
output cosine into 0.84), which no quantizer could survive and no trained net behaves like. With random weights the
drift is still only indicative of trained students.
"""

from __future__ import annotations

import torch
from torch import nn

from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec

__all__ = ["AUDIO_SPEC", "IMAGE_SPEC", "audio_standin", "image_standin", "n_params"]

AUDIO_SPEC = AudioFrontendSpec(clip_normalization="peak", feature_mean=-6.0, feature_std=4.0)
IMAGE_SPEC = ImageFrontendSpec(height=224, width=224)


def _cba(cin: int, cout: int, k: int = 3, s: int | tuple[int, int] = 1, g: int = 1,
         act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, s: int | tuple[int, int], t: int) -> None:
        super().__init__()
        hid = cin * t
        self.block = nn.Sequential(*([_cba(cin, hid, 1)] if t != 1 else []),
                                   _cba(hid, hid, 3, s, hid), _cba(hid, cout, 1, act=False))
        self.res = s in (1, (1, 1)) and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.res else y


class StandIn(nn.Module):
    def __init__(self, features: nn.Sequential, last: int, dim: int) -> None:
        super().__init__()
        self.features = features
        self.proj = nn.Linear(last, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))


def _stages(cin: int, cfg: list[tuple[int, int, int, int | tuple[int, int]]]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for t, c, n, s in cfg:
        for i in range(n):
            out.append(InvRes(cin, c, s if i == 0 else 1, t))
            cin = c
    return out


def image_standin(seed: int = 0) -> StandIn:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 24, 3, 2), (6, 48, 4, 2), (6, 72, 3, 1),
               (6, 120, 3, 2), (6, 240, 1, 1)]
        feats = nn.Sequential(_cba(3, 24, 3, 2), *_stages(24, cfg), _cba(240, 960, 1))
        net = StandIn(feats, 960, 512)
    return _calibrate(net, IMAGE_SPEC, seed)


def audio_standin(seed: int = 0) -> StandIn:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = [(1, 24, 1, 1), (4, 32, 2, 2), (4, 48, 2, 2), (4, 64, 2, 2), (4, 96, 1, 1)]
        feats = nn.Sequential(_cba(1, 24, 3, 2), *_stages(24, cfg), _cba(96, 256, 1))
        net = StandIn(feats, 256, 512)
    return _calibrate(net, AUDIO_SPEC, seed)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _calibrate(net: StandIn, spec: AudioFrontendSpec | ImageFrontendSpec, seed: int,
               pca: bool = False) -> StandIn:
    from hai_edge.export.golden import synthetic_model_inputs

    gen = torch.Generator().manual_seed(seed + 1000)
    x = torch.from_numpy(synthetic_model_inputs(spec, 48, seed=seed + 2000))
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None
        for m in net.modules():  # small residual-branch gain: a random deep net is otherwise
            if isinstance(m, InvRes) and m.res:  # chaotic (0.1% input noise -> output cos 0.84)
                last = m.block[-1][1]
                last.weight.copy_(0.02 + 0.08 * torch.rand(last.num_features, generator=gen))
                last.bias.mul_(0.2)
        net.train()
        net(x)
        net.eval()
        pooled = net.features(x).mean(dim=(2, 3))
        if pca:  # project on the principal axes of the pooled features (see module docstring)
            centred = pooled - pooled.mean(0)
            _, _, vt = torch.linalg.svd(centred, full_matrices=True)
            w = torch.zeros_like(net.proj.weight)
            k = min(w.shape[0], vt.shape[0])
            w[:k] = vt[:k]
            net.proj.weight.copy_(w)
        net.proj.bias.copy_(-(pooled.mean(0) @ net.proj.weight.T))
    return net

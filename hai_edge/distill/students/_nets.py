"""Student networks in plain torch: conv + BatchNorm + ReLU/ReLU6 only, so every exporter (ONNX
dynamo, OpenVINO, litert-torch) folds BN into the convs and INT8 kernels stay on their fast paths
(no HardSwish/HardSigmoid/SE: see the toolchain notes, section 4c).

Layout: ``features`` (stem + inverted-residual blocks + 1x1 conv) -> global average pool ->
``embed`` Linear to the student's own dimension. The projection to the teacher's space is a
separate module (:class:`ProjectionHead`) so either embedding can be exported.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hai_edge.distill.students import BlockSpec

__all__ = ["DistillNet", "EmbeddingModel", "ProjectionHead", "StudentNet", "build_features"]


def _act(relu6: bool) -> nn.Module:
    return nn.ReLU6() if relu6 else nn.ReLU()


def _conv_bn_act(cin: int, cout: int, k: int, stride: int | tuple[int, int], groups: int,
                 relu6: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        _act(relu6),
    )


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when expand == 1) -> 3x3 depthwise -> 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int], expand: int,
                 relu6: bool) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_act(cin, hidden, 1, 1, 1, relu6))
        layers += [
            _conv_bn_act(hidden, hidden, 3, stride, hidden, relu6),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride in (1, (1, 1)) and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def build_features(in_channels: int, stem: int, stem_stride: int | tuple[int, int],
                   blocks: Sequence[BlockSpec], last: int, relu6: bool) -> nn.Sequential:
    """Stem conv3x3 -> stages of inverted residuals -> 1x1 conv to ``last`` channels."""
    layers: list[nn.Module] = [_conv_bn_act(in_channels, stem, 3, stem_stride, 1, relu6)]
    cin = stem
    for b in blocks:
        for i in range(b.repeats):
            layers.append(InvertedResidual(cin, b.channels, b.stride if i == 0 else 1, b.expand,
                                           relu6))
            cin = b.channels
    layers.append(_conv_bn_act(cin, last, 1, 1, 1, relu6))
    return nn.Sequential(*layers)


class StudentNet(nn.Module):
    """features -> global average pool -> Linear: input -> the student's own embedding."""

    def __init__(self, features: nn.Sequential, last: int, dim: int) -> None:
        super().__init__()
        self.features = features
        self.embed = nn.Linear(last, dim)
        self.dim = dim
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(x).mean(dim=(2, 3)))


class ProjectionHead(nn.Module):
    """Student space -> (normalised) teacher space. A Linear when the dims differ, else identity.

    Training targets are ``(t - shift) / scale``; ``denorm`` maps predictions back to the teacher's
    own space. :class:`EmbeddingModel` folds that affine map into the last Linear for export.
    """

    def __init__(self, dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Linear(dim, teacher_dim) if dim != teacher_dim else nn.Identity()
        self.register_buffer("shift", torch.zeros(teacher_dim))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(z)

    def denorm(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.shift


class DistillNet(nn.Module):
    """Training module: student -> projection head; predicts normalised teacher embeddings."""

    def __init__(self, student: StudentNet, teacher_dim: int) -> None:
        super().__init__()
        self.student = student
        self.head = ProjectionHead(student.dim, teacher_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.student(x))

    def denorm(self, y: torch.Tensor) -> torch.Tensor:
        return self.head.denorm(y)


class EmbeddingModel(nn.Module):
    """What a bundle exports: the student plus (optionally) the projection, with the target
    de-normalisation folded into the last Linear so the graph ends in one Gemm/FullyConnected."""

    def __init__(self, student: StudentNet, head: ProjectionHead | None) -> None:
        super().__init__()
        import copy

        self.features = copy.deepcopy(student.features)
        last = copy.deepcopy(student.embed)
        if head is not None:
            with torch.no_grad():
                w, b = last.weight, last.bias
                if isinstance(head.proj, nn.Linear):
                    w, b = head.proj.weight @ w, head.proj.weight @ b + head.proj.bias
                w = w * head.scale
                b = b * head.scale + head.shift
                last = nn.Linear(w.shape[1], w.shape[0])
                last.weight.copy_(w)
                last.bias.copy_(b)
        self.out = last
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x).mean(dim=(2, 3)))


def _init(model: nn.Module) -> None:
    """MobileNetV2's init (kaiming fan-out convs; Linear layers keep torch's default), and the last
    BN gamma of each residual block zeroed so every block starts as identity (trains faster from
    scratch)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, InvertedResidual) and m.residual:
            nn.init.zeros_(m.block[-1].weight)

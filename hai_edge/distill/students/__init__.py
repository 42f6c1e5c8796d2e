"""Student presets: small CNNs that mimic a teacher encoder and export cleanly to every format.

``STUDENTS`` is a dict of frozen :class:`StudentPreset` rows keyed by name. Each preset carries the
front-end spec its inputs are computed with, so a bundle's manifest records exactly what training
used. Listing presets imports nothing heavy; building one imports torch.

Audio students read the log-mel ``[N, 1, n_mels, n_frames]`` of the runtime front end; image
students read ``[N, 3, H, W]`` (MobileNetV2-like, ReLU6). Both: conv + BN + ReLU only, global
average pool, Linear to the student dimension; a separate projection head maps to the teacher's
dimension (see ``_nets``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hai_edge.bundle import Modality
from hai_edge.errors import HaiEdgeError
from hai_edge.bundle.frontend import (
    AudioFeatures,
    AudioFrontendSpec,
    ClipNormalization,
    ImageFrontendSpec,
)

if TYPE_CHECKING:
    import torch

    from hai_edge.distill.students._nets import StudentNet

__all__ = [
    "STUDENTS",
    "BlockSpec",
    "EmbeddingModel",
    "StudentPreset",
    "count_params_and_macs",
    "get_preset",
    "student_table",
]


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A MobileNetV2 stage: ``repeats`` inverted residuals with ``expand`` ratio to ``channels``;
    the first has ``stride`` (int, or a (freq, time) / (h, w) pair), the others stride 1."""

    expand: int
    channels: int
    repeats: int
    stride: int | tuple[int, int] = 1


@dataclasses.dataclass(frozen=True)
class StudentPreset:
    """One student architecture plus the front end its inputs come from."""

    name: str
    modality: Modality
    stem: int
    stem_stride: int
    blocks: tuple[BlockSpec, ...]
    last: int  # channels of the final 1x1 conv (before pooling)
    dim: int  # the student's own embedding size
    relu6: bool
    frontend: AudioFrontendSpec | ImageFrontendSpec
    description: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.frontend.input_shape())

    def build(self, seed: int = 0) -> StudentNet:
        """A freshly initialised student (deterministic in ``seed``; global RNG untouched)."""
        import torch

        from hai_edge.distill.students._nets import StudentNet, build_features

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            in_ch = self.input_shape[0]
            feats = build_features(in_ch, self.stem, self.stem_stride, self.blocks, self.last,
                                   self.relu6)
            return StudentNet(feats, self.last, self.dim)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modality": self.modality.value,
            "stem": self.stem,
            "stem_stride": self.stem_stride,
            "blocks": [dataclasses.asdict(b) for b in self.blocks],
            "last": self.last,
            "dim": self.dim,
            "activation": "relu6" if self.relu6 else "relu",
            "description": self.description,
        }


def _audio_spec() -> AudioFrontendSpec:
    # 2 s at 16 kHz, 64 log-mels x 200 frames (hop 160), the reference teacher's own front end.
    # No clip normalisation: a student must see what its teacher sees (a gain-sensitive teacher
    # cannot be mimicked from peak-normalised input). feature_mean/std are refitted on the
    # training data by distill and recorded in run.json (these defaults are typical values).
    return AudioFrontendSpec(
        sample_rate=16000, window_s=2.0, hop_s=1.8, clip_normalization=ClipNormalization.NONE,
        features=AudioFeatures.LOG_MEL, n_fft=512, win_length=400, hop_length=160, n_mels=64,
        fmin=60.0, fmax=7800.0, log_offset=1e-6, feature_mean=-6.0, feature_std=4.0,
    )


def _b(expand: int, channels: int, repeats: int, stride: int | tuple[int, int] = 1) -> BlockSpec:
    return BlockSpec(expand, channels, repeats, stride)


STUDENTS: dict[str, StudentPreset] = {
    p.name: p
    for p in (
        StudentPreset(
            name="audio-s",
            modality=Modality.AUDIO,
            stem=16,
            stem_stride=2,
            blocks=(_b(1, 16, 1), _b(4, 24, 2, 2), _b(4, 32, 2, 2), _b(4, 64, 2, 2),
                    _b(4, 96, 1)),
            last=256,
            dim=256,
            relu6=False,
            frontend=_audio_spec(),
            description="log-mel 64x200 CNN, inverted residuals, ReLU",
        ),
        StudentPreset(
            name="audio-m",
            modality=Modality.AUDIO,
            stem=24,
            stem_stride=2,
            blocks=(_b(1, 24, 1), _b(4, 32, 2, 2), _b(4, 48, 3, 2), _b(4, 96, 3, 2),
                    _b(4, 128, 2)),
            last=384,
            dim=384,
            relu6=False,
            frontend=_audio_spec(),
            description="log-mel 64x200 CNN, wider/deeper, ReLU",
        ),
        StudentPreset(
            name="image-s",
            modality=Modality.IMAGE,
            stem=16,
            stem_stride=2,
            blocks=(_b(1, 8, 1), _b(6, 16, 2, 2), _b(6, 16, 3, 2), _b(6, 32, 4, 2),
                    _b(6, 48, 3), _b(6, 80, 3, 2), _b(6, 160, 1)),
            last=640,
            dim=384,
            relu6=True,
            frontend=ImageFrontendSpec(height=160, width=160),
            description="MobileNetV2 x0.5 at 160 px, ReLU6",
        ),
        StudentPreset(
            name="image-m",
            modality=Modality.IMAGE,
            stem=24,
            stem_stride=2,
            blocks=(_b(1, 16, 1), _b(6, 24, 2, 2), _b(6, 24, 3, 2), _b(6, 48, 4, 2),
                    _b(6, 72, 3), _b(6, 120, 3, 2), _b(6, 240, 1)),
            last=768,
            dim=512,
            relu6=True,
            frontend=ImageFrontendSpec(height=192, width=192),
            description="MobileNetV2 x0.75 at 192 px, ReLU6",
        ),
    )
}


def get_preset(name: str) -> StudentPreset:
    try:
        return STUDENTS[name]
    except KeyError:
        raise HaiEdgeError(
            f"unknown student preset {name!r} (known: {', '.join(STUDENTS)})"
        ) from None


def count_params_and_macs(model: torch.nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """(parameters, multiply-accumulates) for one input of ``input_shape`` (no batch dim).

    MACs are counted by forward hooks on Conv2d/Conv1d/Linear (the ops that matter on a CPU;
    BN folds away, activations/pooling/adds are not counted).
    """
    import torch
    from torch import nn

    macs = 0

    def conv_hook(m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        k = int(torch.tensor(m.kernel_size).prod())
        macs += out[0].numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        macs += (out[0].numel() // m.out_features) * m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return int(params), int(macs)


def student_table(teacher_dim: int = 512) -> list[dict[str, Any]]:
    """One row per preset: params/MACs of the exported model (student + projection to
    ``teacher_dim``) and of the student alone; for ``hai-edge distill --list-students``."""
    from hai_edge.distill.students._nets import EmbeddingModel, ProjectionHead

    rows = []
    for p in STUDENTS.values():
        net = p.build()
        s_params, s_macs = count_params_and_macs(net, p.input_shape)
        exported = EmbeddingModel(net, ProjectionHead(p.dim, teacher_dim))
        e_params, e_macs = count_params_and_macs(exported, p.input_shape)
        rows.append({
            "name": p.name,
            "modality": p.modality.value,
            "input": list(p.input_shape),
            "dim": p.dim,
            "params": e_params,
            "macs": e_macs,
            "student_params": s_params,
            "student_macs": s_macs,
            "description": p.description,
        })
    return rows


def __getattr__(name: str) -> Any:
    """``EmbeddingModel`` (what a bundle exports) loads on first use: it needs torch (PEP 562)."""
    if name == "EmbeddingModel":
        from hai_edge.distill.students._nets import EmbeddingModel

        return EmbeddingModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

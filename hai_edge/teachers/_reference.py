"""The project's own reference teachers: small ResNet-style encoders trained on public data.

Real HeAR / Derm Foundation weights cannot be fetched everywhere, so the offline demo distils from
these instead. They keep the *contracts* of the real teachers (audio: 2 s of 16 kHz mono ->
512-d, like HeAR; image: an RGB photo of any size -> 512-d) but are NOT HeAR or Derm Foundation:
demo, not for clinical use. ``train_reference`` trains them; the weights (fp16 safetensors) and a
JSON manifest (architecture, front end, data + licences, held-out figures, sha256) live as package
data under ``reference/{audio,image}/``.

Preprocessing is the project's numpy front end (``hai_edge.runtime.frontends``): the audio teacher
computes ``window_features`` with the manifest's ``AudioFrontendSpec`` (float log-mel), the image
teacher ``prepare_image`` with its ``ImageFrontendSpec``; the torch module only sees the result.
torch and safetensors are imported only when a module is built or loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import sha256_file
from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.runtime.frontends import (
    AudioFrontendSpec,
    ImageFrontendSpec,
    prepare_image,
    spec_from_dict,
    window_features,
)
from hai_edge.teachers._base import TeacherInfo
from hai_edge.teachers._common import audio_batch, check_rgb

__all__ = [
    "ARCHITECTURES",
    "EMBEDDING_DIM",
    "LICENCE",
    "NOTICE",
    "WEIGHTS_DIR",
    "EncoderConfig",
    "ReferenceAudioTeacher",
    "ReferenceImageTeacher",
    "ReferenceTeacher",
    "build_module",
    "default_config",
    "default_frontend",
    "load_reference_teacher",
    "read_manifest",
    "reference_teacher_module",
    "sha256_file",
]

EMBEDDING_DIM = 512
NOTICE = "demo, not for clinical use"
LICENCE = ("reference-demo (weights Apache-2.0; trained on CC0 / ODbL+DbCL / CC BY 4.0 data)")
WEIGHTS_DIR = Path(__file__).resolve().parent / "reference"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = "hai-edge/reference-teacher/1"
MODALITIES = ("audio", "image")
_BATCH = 32  # rows per forward pass inside embed(): bounds memory, results do not depend on it


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """A ResNet-style 2-D CNN: a strided conv stem, one basic-block stage per width, pooling,
    and a linear projection to the embedding. Recorded verbatim in the manifest."""

    in_channels: int
    stem: tuple[tuple[int, int], ...]  # (out_channels, stride) of each 3x3 conv-BN-ReLU
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    strides: tuple[int, ...]
    pooling: str = "avg"  # "avg" | "avgmax" (mean and max over positions, concatenated)
    embedding_dim: int = EMBEDDING_DIM

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem", tuple(tuple(int(v) for v in s) for s in self.stem))
        for name in ("widths", "depths", "strides"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not len(self.widths) == len(self.depths) == len(self.strides) or not self.widths:
            raise HaiEdgeError("reference teacher config: widths/depths/strides differ in length")
        if self.pooling not in ("avg", "avgmax"):
            raise HaiEdgeError(f"reference teacher config: unknown pooling {self.pooling!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stem"] = [list(s) for s in self.stem]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        try:
            return cls(**data)
        except TypeError as exc:
            raise HaiEdgeError(f"reference teacher config: {exc}") from None


ARCHITECTURES = {"audio": "ReferenceAudioTeacher", "image": "ReferenceImageTeacher"}


def default_config(which: str) -> EncoderConfig:
    """The shipped architectures (the manifest's config is what a loader actually builds)."""
    if which == "audio":  # log-mel [1, 64, 200] -> /4 stem -> 16x50, 8x25, 4x13, 2x7
        return EncoderConfig(in_channels=1, stem=((32, 2), (64, 2)), widths=(96, 192, 512),
                             depths=(1, 1, 1), strides=(2, 2, 2), pooling="avgmax")
    if which == "image":  # RGB 224 -> /4 stem -> 28, 14, 7, 4 (trained on 128 px crops)
        return EncoderConfig(in_channels=3, stem=((32, 2), (64, 2)), widths=(96, 192, 384, 640),
                             depths=(1, 1, 1, 1), strides=(2, 2, 2, 2), pooling="avg")
    raise HaiEdgeError(f"reference teacher {which!r}: expected one of {', '.join(MODALITIES)}")


def default_frontend(which: str) -> AudioFrontendSpec | ImageFrontendSpec:
    """Front-end specs before training (training fixes the audio standardisation constants)."""
    if which == "audio":
        return AudioFrontendSpec(sample_rate=16000, window_s=2.0, hop_s=1.8, n_mels=64,
                                 fmin=60.0, fmax=7800.0)
    if which == "image":
        return ImageFrontendSpec(height=224, width=224, crop_fraction=1.0)
    raise HaiEdgeError(f"reference teacher {which!r}: expected one of {', '.join(MODALITIES)}")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the reference teachers", "export", "torch") from None
    return torch


@functools.cache
def _torch_classes() -> dict[str, type]:
    """Define the nn.Module classes on first use, so importing this module never imports torch."""
    torch = _import_torch()
    from torch import nn

    class BasicBlock(nn.Module):
        """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, ReLU after the sum."""

        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    class ReferenceEncoder(nn.Module):
        """Feature map -> stem -> residual stages -> pooling -> linear 512-d embedding."""

        def __init__(self, config: EncoderConfig) -> None:
            super().__init__()
            self.config = config
            layers: list[nn.Module] = []
            c = config.in_channels
            for cout, stride in config.stem:
                layers += [nn.Conv2d(c, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                           nn.ReLU()]
                c = cout
            self.stem = nn.Sequential(*layers)
            blocks: list[nn.Module] = []
            for width, depth, stride in zip(config.widths, config.depths, config.strides):
                for i in range(depth):
                    blocks.append(BasicBlock(c, width, stride if i == 0 else 1))
                    c = width
            self.stages = nn.Sequential(*blocks)
            pooled = 2 * c if config.pooling == "avgmax" else c
            self.proj = nn.Linear(pooled, config.embedding_dim)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stages(self.stem(x))
            if self.config.pooling == "avgmax":
                return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            return h.mean(dim=(2, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(self.features(x))

    class ReferenceAudioTeacher(ReferenceEncoder):
        """Log-mel ``[N, 1, 64, 200]`` (``window_features`` of 2 s at 16 kHz) -> ``[N, 512]``."""

    class ReferenceImageTeacher(ReferenceEncoder):
        """Normalised RGB ``[N, 3, H, W]`` (``prepare_image``; 224 px shipped) -> ``[N, 512]``."""

    return {"ReferenceAudioTeacher": ReferenceAudioTeacher,
            "ReferenceImageTeacher": ReferenceImageTeacher}


def __getattr__(name: str) -> Any:  # PEP 562: the module classes exist once torch is imported
    if name in ("ReferenceAudioTeacher", "ReferenceImageTeacher"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_module(which: str, config: EncoderConfig | None = None) -> Any:
    """A freshly initialised (untrained) reference encoder of the given modality."""
    if which not in MODALITIES:
        raise HaiEdgeError(f"reference teacher {which!r}: expected one of {', '.join(MODALITIES)}")
    return _torch_classes()[ARCHITECTURES[which]](config or default_config(which))


def _weights_dir(which: str, weights_dir: str | os.PathLike[str] | None) -> Path:
    if which not in MODALITIES:
        raise HaiEdgeError(f"reference teacher {which!r}: expected one of {', '.join(MODALITIES)}")
    return Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR / which


def read_manifest(which: str, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of a trained reference teacher; missing or malformed files are HaiEdgeErrors."""
    root = _weights_dir(which, weights_dir)
    path = root / MANIFEST_FILE
    hint = ("train it with: python -m hai_edge.teachers.train_reference "
            f"--modality {which} --data /path/to/data -o {root}")
    if not path.is_file() or not (root / WEIGHTS_FILE).is_file():
        raise HaiEdgeError(f"reference teacher {which!r}: no weights in {root} ({hint})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HaiEdgeError(f"reference teacher {which!r}: unreadable {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise HaiEdgeError(f"reference teacher {which!r}: {path} is not a {MANIFEST_SCHEMA} "
                           "manifest")
    if manifest.get("modality") != which:
        raise HaiEdgeError(f"reference teacher {which!r}: {path} is for "
                           f"{manifest.get('modality')!r}")
    return manifest


def reference_teacher_module(
    which: str, weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> tuple[Any, AudioFrontendSpec | ImageFrontendSpec]:
    """(trained nn.Module in eval mode, float32, its front-end spec) for code that wants torch.

    The weights file must match the manifest's sha256 (a modified file is an error)."""
    torch = _import_torch()
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise MissingDependencyError("the reference teachers", "export", "safetensors") from None
    manifest = read_manifest(which, weights_dir)
    root = _weights_dir(which, weights_dir)
    weights = root / WEIGHTS_FILE
    expected = (manifest.get("weights") or {}).get("sha256")
    if sha256_file(weights) != expected:
        raise HaiEdgeError(f"reference teacher {which!r}: {weights} does not match the sha256 in "
                           f"its manifest (modified or partial file)")
    arch = manifest.get("architecture") or {}
    if arch.get("name") != ARCHITECTURES[which]:
        raise HaiEdgeError(f"reference teacher {which!r}: unknown architecture "
                           f"{arch.get('name')!r}")
    module = build_module(which, EncoderConfig.from_dict(dict(arch.get("config") or {})))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(weights).items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise HaiEdgeError(f"reference teacher {which!r}: weights do not fit the architecture: "
                           f"{str(exc).splitlines()[0]}") from None
    spec = spec_from_dict(manifest.get("frontend") or {})
    expected_kind = AudioFrontendSpec if which == "audio" else ImageFrontendSpec
    if not isinstance(spec, expected_kind):
        raise HaiEdgeError(f"reference teacher {which!r}: manifest front end is not {which}")
    module = module.to(device=torch.device(device), dtype=torch.float32).eval()
    return module, spec


class ReferenceTeacher:
    """The Teacher protocol around a reference encoder: numpy front end, then the torch module.

    ``embed`` runs in eval mode without gradients, in fixed chunks, so a row's embedding does not
    depend on its batch mates (BatchNorm uses its stored statistics)."""

    def __init__(self, which: str, module: Any, spec: AudioFrontendSpec | ImageFrontendSpec,
                 manifest: dict[str, Any], device: str = "cpu") -> None:
        self._which = which
        self._module = module
        self._spec = spec
        self._device = device
        self.manifest = manifest
        arch = (manifest.get("architecture") or {}).get("name")
        notes = f"{NOTICE}; not HeAR / Derm Foundation; {arch}"
        if which == "audio":
            assert isinstance(spec, AudioFrontendSpec)
            self.info = TeacherInfo(id="reference:audio", modality="audio",
                                    embedding_dim=EMBEDDING_DIM, licence=LICENCE,
                                    sample_rate=spec.sample_rate,
                                    window_samples=spec.window_samples, notes=notes)
        else:
            assert isinstance(spec, ImageFrontendSpec)
            self.info = TeacherInfo(id="reference:image", modality="image",
                                    embedding_dim=EMBEDDING_DIM, licence=LICENCE,
                                    image_size=spec.height, notes=notes)

    @property
    def frontend(self) -> AudioFrontendSpec | ImageFrontendSpec:
        return self._spec

    def model_inputs(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """The float32 tensor the torch module sees for ``batch`` (front end only)."""
        who = self.info.id
        if self._which == "audio":
            assert isinstance(self._spec, AudioFrontendSpec)
            windows = audio_batch(batch, self._spec.window_samples, who)
            if not np.all(np.isfinite(windows)):
                raise HaiEdgeError(f"{who}: audio windows contain NaN or infinite samples")
            return window_features(windows, self._spec)
        if len(batch) == 0:
            raise HaiEdgeError(f"{who}: empty batch")
        assert isinstance(self._spec, ImageFrontendSpec)
        return np.stack([prepare_image(check_rgb(img, who), self._spec, source=f"{who} input {i}")
                         for i, img in enumerate(batch)])

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed_inputs(self.model_inputs(batch))

    def embed_inputs(self, x: np.ndarray) -> np.ndarray:
        """Embeddings of front-end outputs (``model_inputs``), e.g. features cached once."""
        if self._module is None:
            raise HaiEdgeError(f"{self.info.id}: teacher is closed")
        torch = _import_torch()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != tuple(self._spec.input_shape()):
            raise HaiEdgeError(f"{self.info.id}: model inputs must be [N, "
                               f"{', '.join(map(str, self._spec.input_shape()))}], got {x.shape}")
        out = np.empty((len(x), EMBEDDING_DIM), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(x), _BATCH):
                chunk = torch.from_numpy(np.ascontiguousarray(x[s : s + _BATCH]))
                out[s : s + _BATCH] = self._module(chunk.to(self._device)).float().cpu().numpy()
        return out

    def close(self) -> None:
        self._module = None


def load_reference_teacher(
    which: str, device: str = "cpu", *, weights_dir: str | os.PathLike[str] | None = None
) -> ReferenceTeacher:
    """``reference:audio`` / ``reference:image`` as a Teacher (weights from the package data, or
    ``weights_dir``). Missing weights, a sha256 mismatch or a wrong architecture: HaiEdgeError."""
    which = str(which).strip().lower()
    module, spec = reference_teacher_module(which, weights_dir, device=device)
    return ReferenceTeacher(which, module, spec, read_manifest(which, weights_dir), device)

"""The ``Teacher`` protocol: a large encoder we distil from, behind one tiny interface.

Teachers take *media-level* inputs, each adapter doing its model's own preprocessing (HeAR's PCEN
mel, Derm Foundation's PNG-in-tf.Example, SigLIP's resize/normalise):

- audio teachers: a batch of mono float32 windows at ``info.sample_rate``, each exactly
  ``info.window_samples`` long (HeAR: 32000 = 2 s at 16 kHz);
- image teachers: a batch of RGB uint8 arrays [H, W, 3] of any size.

They return float32 embeddings [N, info.embedding_dim].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Teacher", "TeacherInfo"]


@dataclasses.dataclass(frozen=True)
class TeacherInfo:
    id: str  # e.g. "google/hear", "reference:audio", "onnx:/path/model.onnx"
    modality: str  # "audio" | "image"
    embedding_dim: int
    licence: str  # e.g. "HAI-DEF", "CC-BY-4.0 data / Apache-2.0 weights", "unknown"
    sample_rate: int | None = None  # audio
    window_samples: int | None = None  # audio
    image_size: int | None = None  # image: the size the teacher resizes to (informational)
    notes: str = ""

    @property
    def is_hai_def(self) -> bool:
        return self.licence.upper().startswith("HAI-DEF")

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, "")}


@runtime_checkable
class Teacher(Protocol):
    info: TeacherInfo

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray: ...

    def close(self) -> None: ...

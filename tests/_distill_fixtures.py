"""Fakes and tiny corpora for test_distill: a fixed random-conv teacher and generated audio and
photo corpora with subject ids, labels and subgroups."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hai_edge.bundle import Modality
from hai_edge.distill.students import BlockSpec, StudentPreset
from hai_edge.runtime.frontends import (
    AudioFrontendSpec,
    ImageFrontendSpec,
    prepare_image,
    window_features,
)
from hai_edge.teachers import TeacherInfo
from tests._csv_files import write_csv

SR = 16000
AUDIO_SPEC = AudioFrontendSpec(sample_rate=SR, window_s=1.0, hop_s=0.9, n_mels=32)
IMAGE_SPEC = ImageFrontendSpec(height=32, width=32)

# tiny student presets, registered by the tests that distil (the real ones: test_students.py)
TINY = {
    "t-audio": StudentPreset(
        name="t-audio", modality=Modality.AUDIO, stem=8, stem_stride=2,
        blocks=(BlockSpec(2, 16, 1, 2), BlockSpec(2, 24, 1, 2)), last=32, dim=16, relu6=False,
        frontend=AudioFrontendSpec(sample_rate=SR, window_s=2.0, hop_s=1.8, n_mels=32),
        description="test"),
    "t-image": StudentPreset(
        name="t-image", modality=Modality.IMAGE, stem=8, stem_stride=2,
        blocks=(BlockSpec(2, 16, 1, 2), BlockSpec(2, 24, 1, 2)), last=32, dim=24, relu6=True,
        frontend=IMAGE_SPEC, description="test"),
}


class ConvTeacher:
    """A fixed random conv net on the front end's output: conv -> ReLU -> GAP -> linear."""

    def __init__(self, modality: str, dim: int) -> None:
        self.modality = modality
        if modality == "audio":
            self.info = TeacherInfo(id="fake:conv-audio", modality="audio", embedding_dim=dim,
                                    licence="test-only", sample_rate=SR, window_samples=SR)
        else:
            self.info = TeacherInfo(id="fake:conv-image", modality="image", embedding_dim=dim,
                                    licence="test-only", image_size=32)
        g = torch.Generator().manual_seed(3)
        cin = 1 if modality == "audio" else 3
        self.conv = torch.randn(16, cin, 5, 5, generator=g) * 0.3
        self.lin = torch.randn(16, dim, generator=g)
        self.offset = torch.zeros(dim)

    def centre_on(self, batch: Sequence[np.ndarray]) -> ConvTeacher:
        """Fix the output offset so these inputs embed around a small common direction (with the
        raw ReLU features every embedding would point the same way and plain cosine would say
        nothing)."""
        mean = self.embed(batch).mean(axis=0)
        self.offset = torch.from_numpy(0.3 * np.abs(mean) - mean)
        return self

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if self.modality == "audio":
            x = window_features(np.stack(batch), AUDIO_SPEC)
            x = (x + 6.0) / 4.0
        else:
            x = np.stack([prepare_image(b, IMAGE_SPEC) for b in batch])
        h = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), self.conv, stride=2))
        return (h.mean(dim=(2, 3)) @ self.lin + self.offset).numpy().astype(np.float32)

    def close(self) -> None:
        pass


def audio_corpus(root: Path) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = []
    for i in range(16):
        t = np.arange(int(rng.uniform(1.5, 4.0) * SR)) / SR
        f0 = rng.uniform(200, 3000)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 5) * t)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) * envelope
        x += rng.uniform(0.002, 0.05) * rng.standard_normal(t.size)
        sf.write(root / f"a{i:02d}.wav", x.astype(np.float32), SR)
        rows.append({"path": f"a{i:02d}.wav", "subject_id": f"s{i // 2}",
                     "label": str(int(f0 > 1500)), "sex": "MF"[i % 2], "age": str(20 + 4 * i)})
    return write_csv(root / "meta.csv", rows)


def image_corpus(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    rows = []
    for i in range(16):
        h, w = (int(v) for v in rng.integers(40, 80, size=2))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        colour = rng.uniform(0, 255, 3)
        freq = rng.uniform(2, 14)
        pattern = 0.5 + 0.5 * np.sin(freq * xx + rng.uniform(0, 6)) * np.cos(freq * yy)
        img = colour * pattern[..., None] + rng.normal(0, 8, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"p{i:02d}.png")
        rows.append({"path": f"p{i:02d}.png", "patient_id": f"p{i // 2}",
                     "diagnostic": ["BCC", "NEV", "MEL", "SEK"][i % 4], "sex": "MF"[i % 2]})
    return write_csv(root / "meta.csv", rows)

"""Tiny teachers for tests: numpy fakes implementing the Teacher protocol, and torch modules for
the ``torch:`` adapter (torch is imported only inside the ``make_*_net`` factories)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hai_edge.teachers import TeacherInfo

__all__ = [
    "FakeAudioTeacher",
    "FakeImageTeacher",
    "make_audio_net",
    "make_fake_audio_teacher",
    "make_fake_image_teacher",
    "make_image_net",
]

AUDIO_RATE = 8000
AUDIO_WINDOW = 4000  # 0.5 s at 8 kHz
IMAGE_FEATURE = 16


class FakeAudioTeacher:
    """Per-window embedding from frame energies through a fixed random projection."""

    def __init__(self, dim: int = 8, fail_on_call: int | None = None) -> None:
        self.info = TeacherInfo(id="fake:audio", modality="audio", embedding_dim=dim,
                                licence="test-only", sample_rate=AUDIO_RATE,
                                window_samples=AUDIO_WINDOW)
        self.w = np.random.default_rng(0).standard_normal((40, dim)).astype(np.float32)
        self.calls = 0
        self.rows = 0
        self.fail_on_call = fail_on_call

    def embed_one(self, x: np.ndarray) -> np.ndarray:
        frames = np.asarray(x, np.float64).reshape(40, -1)
        return np.tanh(np.log(np.mean(frames**2, axis=1) + 1e-6) @ self.w / 10).astype(np.float32)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        for x in batch:
            assert x.shape == (AUDIO_WINDOW,) and x.dtype == np.float32
        self.rows += len(batch)
        return np.stack([self.embed_one(x) for x in batch])

    def close(self) -> None:
        pass


class FakeImageTeacher:
    """Embedding from 4x4 block means of the photo resized by striding (any size works)."""

    def __init__(self, dim: int = 6, fail_on_call: int | None = None) -> None:
        self.info = TeacherInfo(id="fake:image", modality="image", embedding_dim=dim,
                                licence="test-only", image_size=16)
        self.w = np.random.default_rng(1).standard_normal((48, dim)).astype(np.float32)
        self.calls = 0
        self.rows = 0
        self.fail_on_call = fail_on_call

    def embed_one(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        ys = (np.arange(4) * h) // 4
        xs = (np.arange(4) * w) // 4
        feats = np.array([[img[y : y + max(1, h // 4), x : x + max(1, w // 4)].mean(axis=(0, 1))
                           for x in xs] for y in ys]).reshape(-1) / 255.0
        return np.tanh(feats @ self.w).astype(np.float32)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        for img in batch:
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        self.rows += len(batch)
        return np.stack([self.embed_one(x) for x in batch])

    def close(self) -> None:
        pass


def make_fake_audio_teacher() -> FakeAudioTeacher:
    return FakeAudioTeacher()


def make_fake_image_teacher() -> FakeImageTeacher:
    return FakeImageTeacher()


def make_audio_net():  # noqa: ANN201 - torch types stay out of this module's import
    """[N, 4000] waveform -> [N, 16]; says its rate/window, lets the adapter find the modality."""
    import torch
    from torch import nn

    class AudioNet(nn.Module):
        sample_rate = AUDIO_RATE
        window_samples = AUDIO_WINDOW

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.proj = nn.Linear(100, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            frames = x.reshape(x.shape[0], -1, 100)  # fails on image input
            return torch.tanh(self.proj(frames * 10)).mean(dim=1)

    return AudioNet()


def make_image_net():  # noqa: ANN201
    """[N, 3, 32, 32] in [0, 1] -> [N, 12]; the audio dummy input fails, so it is an image net."""
    import torch
    from torch import nn

    class ImageNet(nn.Module):
        image_size = 32
        licence = "Apache-2.0"

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(1)
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc = nn.Linear(8 * 16 * 16, 12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    return ImageNet()

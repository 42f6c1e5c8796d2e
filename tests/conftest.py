"""Shared fixtures only: no optional extras imported at module level, no side effects."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP32 bundles of the tiny audio and image students in ONNX, OpenVINO and TFLite.

    Built once per session (each export takes seconds) and gated against torch by
    ``build_fp32_bundle``; tests must treat the directories as read-only. Skips where the
    ``export`` extra is not installed.
    """
    import importlib.util

    needed = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "litert_torch",
              "ai_edge_litert")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]  # found, not imported
    if missing:
        pytest.skip(f"the export extra is not installed ({', '.join(missing)})")
    from hai_edge.export.fp32_bundle import build_fp32_bundle
    from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec

    from ._tiny_models import TinyAudioNet, TinyImageNet

    root = tmp_path_factory.mktemp("tiny_bundles")
    audio = build_fp32_bundle(
        TinyAudioNet(),
        AudioFrontendSpec(n_mels=32, window_s=1.0, hop_s=1.0),
        root / "tiny-audio",
        name="tiny-audio",
        notices=("test bundle: random weights, not for any use",),
    )
    image = build_fp32_bundle(
        TinyImageNet(),
        ImageFrontendSpec(height=64, width=64),
        root / "tiny-image",
        name="tiny-image",
        notices=("test bundle: random weights, not for any use",),
    )
    return {"audio": audio.root, "image": image.root}


@pytest.fixture()
def no_trust_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No bundle trust store configured, whatever this machine has (signed-bundle tests)."""
    from hai_edge.bundle import signing

    monkeypatch.setenv(signing.TRUST_ENV, "")  # recorded, so the teardown restores it (the
    monkeypatch.delenv(signing.TRUST_ENV)  # CLI's --trust sets it for the whole process)
    monkeypatch.setenv(signing.CONFIG_ENV, str(tmp_path / "config"))

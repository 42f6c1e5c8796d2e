"""One full FP32 + INT8 bundle of the in-graph-front-end net, built once per test session.

pytest caches a session fixture per defining module, and conftest.py is shared with other work,
so the bundle is cached here by path under the session's base temp directory: the first test
module that asks builds it, the others reuse it. Tests must treat it as read-only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

NEEDED = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "litert_torch",
          "ai_edge_litert", "ai_edge_quantizer")
HEAD = {"name": "cough-vs-rest", "kind": "logistic", "threshold": 0.5}


def require_export_extra() -> None:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the export extra is not installed ({', '.join(missing)})")


def wave_data() -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out) waveforms: different seeds, so no row is shared."""
    from ._quant_models import wave_inputs

    return wave_inputs(32, seed=1), wave_inputs(16, seed=2)


def get_wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_export_extra()
    root = tmp_path_factory.getbasetemp() / "hai-edge-wave-bundle"
    if (root / "manifest.json").is_file():
        return root
    from hai_edge.export.bundle_builder import build_bundle

    from ._quant_models import WAVE_SPEC, TinyWaveNet

    cal, held = wave_data()
    rng = np.random.default_rng(5)
    head = dict(HEAD, weights=rng.standard_normal(32).tolist(), bias=0.1)
    build_bundle(
        TinyWaveNet(), WAVE_SPEC, root, name="wave-test", calibration=cal, heldout=held,
        teacher={"id": "google/hear", "licence": "HAI-DEF"}, heads=[head],
        notices=("test bundle: random weights, not for any use",),
    )
    return root

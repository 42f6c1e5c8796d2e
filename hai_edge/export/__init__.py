"""Build side: export students to ONNX / OpenVINO / TFLite, gate parity, write bundles.

Needs the ``export`` extra (torch, onnx, openvino, litert-torch). This package file stays tiny and
imports nothing heavy, so ``import hai_edge.export`` is cheap; the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BuildOptions",
    "ExportFormat",
    "ExportSource",
    "ExportedModel",
    "FORMATS",
    "ParityReport",
    "PrecisionChoice",
    "build_bundle",
    "build_fp32_bundle",
    "check_parity",
    "export_fp32",
    "gate",
    "synthetic_inputs",
]

_LAZY = {
    "FORMATS": ".formats",
    "ExportFormat": ".formats",
    "ExportedModel": ".formats",
    "export_fp32": ".formats",
    "ParityReport": ".parity",
    "check_parity": ".parity",
    "gate": ".parity",
    "build_fp32_bundle": ".fp32_bundle",
    "synthetic_inputs": ".steps",
    "BuildOptions": ".bundle_builder",
    "PrecisionChoice": ".bundle_builder",
    "build_bundle": ".bundle_builder",
    "ExportSource": ".source",
}


def __getattr__(name: str) -> Any:
    """Lazy re-exports (PEP 562): importing the package must not import torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The small interface each INT8 backend implements, and the table that dispatches to them."""

from __future__ import annotations

import abc
import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import ModelFormat, TensorSpec
from hai_edge.errors import MissingDependencyError
from hai_edge.quantize._graph import OpGraph
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import QuantConfig

__all__ = ["QUANT_BACKENDS", "QuantBackend", "QuantizedArtifact", "get_backend", "tool_version"]


@dataclasses.dataclass
class QuantizedArtifact:
    """One INT8 model written by a backend (files main-first, real I/O specs, how it was made)."""

    format: ModelFormat
    files: list[Path]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    options: dict[str, Any]
    excluded: tuple[str, ...]  # ops kept float (front end + extra), backend names
    frontend_ops: tuple[str, ...]  # the in-graph front end (and every op before it)
    frontend_float: bool  # False only when the front end was forced into INT8 (debug)
    reference: Path  # FP32 model with the same op names (for per-layer comparisons)
    seconds: float = 0.0

    @property
    def main_file(self) -> Path:
        return self.files[0]


class QuantBackend(abc.ABC):
    """Per-format INT8 implementation; the ladder in ``recipes.py`` is written against this."""

    format: ModelFormat
    requires: tuple[str, ...] = ()

    @abc.abstractmethod
    def graph(self, fp32_path: Path, frontend_scope: str | None) -> OpGraph:
        """The FP32 model's ops, with front-end ops tagged (``frontend_scope`` module path)."""

    @abc.abstractmethod
    def quantize(self, fp32_path: Path, out_dir: Path, basename: str, calib: CalibrationSource,
                 config: QuantConfig, exclude: Sequence[str] = (),
                 cache_dir: Path | None = None) -> QuantizedArtifact:
        """Write the INT8 model into ``out_dir``; keep the front end and ``exclude`` float.
        ``cache_dir``: where activation ranges may be cached between calls on the same FP32 model
        and calibration set (the ladder's retries differ only in which ops stay float)."""

    @abc.abstractmethod
    def activations(self, path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every float-comparable intermediate tensor of the model at ``path`` for inputs ``x``,
        keyed by the names ``graph`` uses (INT8 tensors dequantized)."""


QUANT_BACKENDS: dict[ModelFormat, str] = {
    ModelFormat.ONNX: ".onnx:OnnxQuantBackend",
    ModelFormat.OPENVINO: ".openvino:OpenVinoQuantBackend",
    ModelFormat.TFLITE: ".tflite:TfliteQuantBackend",
}

_REQUIRES: Mapping[ModelFormat, tuple[tuple[str, str], ...]] = {
    ModelFormat.ONNX: (("onnx", "onnx"), ("onnxruntime", "onnxruntime")),
    ModelFormat.OPENVINO: (("openvino", "openvino"), ("nncf", "nncf")),
    ModelFormat.TFLITE: (("ai_edge_quantizer", "ai-edge-quantizer"),
                         ("ai_edge_litert", "ai-edge-litert")),
}


def get_backend(fmt: ModelFormat | str) -> QuantBackend:
    """The backend for ``fmt``; MissingDependencyError (pip hint) when its tool is missing."""
    import importlib.util

    fmt = ModelFormat(fmt)
    for module, dist in _REQUIRES[fmt]:
        if importlib.util.find_spec(module) is None:
            extra = "export" if fmt is ModelFormat.TFLITE else "build"
            raise MissingDependencyError(f"INT8 quantization to {fmt.value}", extra, dist)
    module_name, cls_name = QUANT_BACKENDS[fmt].split(":")
    module = importlib.import_module(module_name, package=__package__)
    return getattr(module, cls_name)()


def tool_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"

"""FP32 export formats: a typed table (``FORMATS``) plus one module per format.

Each row names the modules it needs and the exporter that implements it (``"module:function"``
relative to this package), so listing formats or checking availability never imports torch or a
converter. ``export_fp32`` is the one entry point: it checks dependencies (raising
``MissingDependencyError`` with the ``pip install 'hai-edge[export]'`` hint, never installing
anything), runs the exporter quietly and returns the artifact's files with the *real* tensor names
the run-side engines accept.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hai_edge.bundle import ModelFormat, TensorSpec
from hai_edge.errors import MissingDependencyError
from hai_edge.tools import env_override, quiet  # re-exported: formats' callers keep these names

if TYPE_CHECKING:
    import torch

__all__ = ["ExportFormat", "ExportedModel", "FORMATS", "env_override", "export_fp32", "quiet",
           "resolve_format"]

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"

# import name -> distribution name, for the "which package is missing" part of the message
_PIP_NAMES = {
    "litert_torch": "litert-torch",
    "ai_edge_litert": "ai-edge-litert",
}


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """Registry row for one export format (typed, keyed by ``name``; never indexed by position)."""

    name: str
    format: ModelFormat
    title: str
    suffixes: tuple[str, ...]  # suffixes[0] is the file the engine opens
    extra: str
    requires: tuple[str, ...]  # importable modules, all needed
    exporter: str  # "module:function(model, example, out_dir, basename) -> ExportedModel"

    def missing(self) -> list[str]:
        """Modules that are not importable (found without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def is_available(self) -> bool:
        return not self.missing()

    def load_exporter(self) -> Callable[..., ExportedModel]:
        missing = self.missing()
        if missing:
            raise MissingDependencyError(
                f"exporting to {self.title}", self.extra, _PIP_NAMES.get(missing[0], missing[0])
            )
        module_name, func_name = self.exporter.split(":")
        module = importlib.import_module(module_name, package=__name__)
        return getattr(module, func_name)


@dataclasses.dataclass
class ExportedModel:
    """One exported artifact. ``inputs``/``outputs`` carry the names the engine itself reports."""

    format: ModelFormat
    files: list[Path]  # main file first (.onnx, .xml then .bin, .tflite)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # how it was exported
    seconds: float = 0.0

    @property
    def main_file(self) -> Path:
        return self.files[0]


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        name="onnx",
        format=ModelFormat.ONNX,
        title="ONNX (torch dynamo exporter, opset 18, dynamic batch)",
        suffixes=(".onnx",),
        extra="build",
        requires=("torch", "onnx", "onnxscript"),
        exporter=".onnx:export_onnx",
    ),
    "openvino": ExportFormat(
        name="openvino",
        format=ModelFormat.OPENVINO,
        title="OpenVINO IR (ov.convert_model, FP32 weights, dynamic batch)",
        suffixes=(".xml", ".bin"),
        extra="build",
        requires=("torch", "openvino"),
        exporter=".openvino:export_openvino",
    ),
    "tflite": ExportFormat(
        name="tflite",
        format=ModelFormat.TFLITE,
        title="TFLite / LiteRT (litert-torch, batch 1)",
        suffixes=(".tflite",),
        extra="export",
        requires=("torch", "litert_torch", "ai_edge_litert"),
        exporter=".tflite:export_tflite",
    ),
}


def resolve_format(fmt: ModelFormat | str) -> ExportFormat:
    """``"onnx"``/``ModelFormat.ONNX`` -> its row; unknown names list the choices."""
    key = fmt.value if isinstance(fmt, ModelFormat) else str(fmt).lower()
    if key not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return FORMATS[key]


def export_fp32(
    model: torch.nn.Module,
    example: torch.Tensor,
    fmt: ModelFormat | str,
    out_dir: Path,
    basename: str = "model_fp32",
    *,
    quiet_logs: bool = True,
) -> ExportedModel:
    """Export ``model`` (one float input [N, ...] -> one output [N, dim]) in FP32.

    ``example`` is a real input batch (any N >= 1); it fixes every non-batch dimension. The model is
    exported in eval mode and its train/eval mode is restored afterwards. Files are written into
    ``out_dir`` as ``basename`` + the format's suffixes.
    """
    row = resolve_format(fmt)
    exporter = row.load_exporter()
    if example.ndim < 1 or example.shape[0] < 1:
        raise ValueError(f"example must be a batch [N, ...], N >= 1; got {tuple(example.shape)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        with quiet(enabled=quiet_logs):
            exported: ExportedModel = exporter(model, example.detach().float(), out_dir, basename)
    finally:
        model.train(was_training)
    exported.seconds = time.perf_counter() - t0
    return exported

"""TFLite export with litert-torch (FP32, batch 1).

litert-torch traces a static batch of 1; the run-side TFLite backend feeds a batch one item at a
time, so this costs nothing at run time. The tensor names are the converter's own
(``serving_default_args_0`` style); they are read back from the file with the LiteRT interpreter
and written into the manifest as they are, so the backend needs no aliasing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle import ModelFormat, TensorSpec
from hai_edge.export.formats import ExportedModel
from hai_edge.tools import env_override

if TYPE_CHECKING:
    import torch

__all__ = ["export_tflite"]

# litert-torch prints a rich progress tree to stdout unless this is off (litert_torch/_config.py);
# TF_CPP_MIN_LOG_LEVEL quiets TensorFlow-style C++ INFO lines emitted while importing the converter.
_QUIET_ENV = {"LITERT_TORCH_SHOW_PROGRESS": "n", "TF_CPP_MIN_LOG_LEVEL": "2"}


def export_tflite(
    model: torch.nn.Module, example: torch.Tensor, out_dir: Path, basename: str
) -> ExportedModel:
    """Export to ``out_dir/basename.tflite`` with a batch-1 example."""
    path = Path(out_dir) / f"{basename}.tflite"
    with env_override(_QUIET_ENV):
        import litert_torch

        edge_model = litert_torch.convert(model.eval(), (example[:1].contiguous(),))
        edge_model.export(str(path))
    inputs, outputs = _inspect(path)
    return ExportedModel(
        format=ModelFormat.TFLITE,
        files=[path],
        inputs=inputs,
        outputs=outputs,
        options={"exporter": f"litert_torch.convert {_version('litert-torch')}", "batch": "static"},
    )


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _inspect(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The input/output detail names and shapes the LiteRT interpreter reports for the file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)

    def spec(d: dict[str, Any]) -> TensorSpec:
        sig = d.get("shape_signature")
        dims = sig if sig is not None and len(sig) else d["shape"]
        shape = tuple(int(s) if int(s) >= 0 else None for s in dims)
        return TensorSpec(name=str(d["name"]), shape=shape, dtype=np.dtype(d["dtype"]).name)

    try:
        return (
            tuple(spec(d) for d in interp.get_input_details()),
            tuple(spec(d) for d in interp.get_output_details()),
        )
    finally:
        del interp

"""ONNX export with the torch dynamo exporter (opset 18, dynamic batch, weights inside the file).

Opset 18 is torchlib's native opset in torch 2.13, so no version conversion runs, and it is
loadable by onnxruntime (desktop and web). The graph's input is named ``input`` and its output
``embedding``; those are the names written into the manifest (read back from the saved file).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hai_edge.bundle import ModelFormat
from hai_edge.export.formats import INPUT_NAME, OUTPUT_NAME, ExportedModel
from hai_edge.quantize.inspect import inspect_onnx

if TYPE_CHECKING:
    import torch

__all__ = ["ONNX_OPSET", "export_onnx"]

ONNX_OPSET = 18


def export_onnx(
    model: torch.nn.Module, example: torch.Tensor, out_dir: Path, basename: str
) -> ExportedModel:
    """Export to ``out_dir/basename.onnx``; fall back to a fixed batch of 1 only if the model
    cannot be traced with a symbolic batch (run-side engines loop over a batch-1 model)."""
    import torch

    path = Path(out_dir) / f"{basename}.onnx"
    # torch.export specialises a dimension whose example size is 1, so trace with a batch of 2.
    ex = torch.cat([example[:1], example[:1]]) if example.shape[0] == 1 else example
    common: dict[str, Any] = dict(
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=ONNX_OPSET,
        external_data=False,
        verbose=False,
    )
    try:
        program = torch.onnx.export(
            model, (ex,), dynamic_shapes=({0: torch.export.Dim("batch")},), **common
        )
        batch = "dynamic"
    except Exception:  # e.g. a reshape that bakes in the batch size
        program = torch.onnx.export(model, (example[:1],), **common)
        batch = "static"
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    inputs, outputs, opset = inspect_onnx(path, min_opset=ONNX_OPSET)
    return ExportedModel(
        format=ModelFormat.ONNX,
        files=[path],
        inputs=inputs,
        outputs=outputs,
        options={
            "exporter": f"torch.onnx.export(dynamo=True) torch {torch.__version__}",
            "opset": opset,
            "batch": batch,
        },
    )


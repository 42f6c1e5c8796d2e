"""ONNX export with the torch dynamo exporter (opset 18, dynamic batch, weights inside the file).

Opset 18 is torchlib's native opset in torch 2.13, so no version conversion runs, and it is
loadable by onnxruntime (desktop and web). The graph's input is named ``input`` and its output
``embedding``; those are the names written into the manifest (read back from the saved file).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hai_edge.bundle import ModelFormat, TensorSpec
from hai_edge.export.formats import INPUT_NAME, OUTPUT_NAME, ExportedModel

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
    inputs, outputs, opset = _inspect(path)
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


def _inspect(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
    """Check the file is self-contained and valid; return its real I/O specs and opset."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if uses_external_data(t)]
    if external:
        raise RuntimeError(f"{path.name}: weights were saved as external data ({external[:3]} ...)")
    onnx.checker.check_model(proto)
    opset = max(
        (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0
    )
    if opset < ONNX_OPSET:
        raise RuntimeError(f"{path.name}: exported opset {opset} is below {ONNX_OPSET}")
    inits = {t.name for t in proto.graph.initializer}

    def spec(value: Any) -> TensorSpec:
        tt = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        return TensorSpec(name=value.name, shape=dims, dtype=dtype)

    inputs = tuple(spec(v) for v in proto.graph.input if v.name not in inits)
    outputs = tuple(spec(v) for v in proto.graph.output)
    return inputs, outputs, opset

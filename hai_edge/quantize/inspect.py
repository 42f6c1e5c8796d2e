"""Read a saved model back: the tensor names, shapes and dtypes its own engine reports.

Both the FP32 exporters (``hai_edge.export.formats``) and the INT8 backends write these specs into
the manifest, so a bundle names exactly what the run-side engine accepts. The inspection lives here
(quantize is below export: export imports it, never the reverse). Frameworks load inside the calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hai_edge.bundle import TensorSpec

__all__ = ["MIN_ONNX_OPSET", "inspect_onnx", "inspect_openvino"]

# The export side writes this opset (hai_edge.export.formats.onnx.ONNX_OPSET) and quantization keeps
# it; a file below it was not written by this toolchain's ONNX path.
MIN_ONNX_OPSET = 18


def inspect_onnx(path: Path, min_opset: int = MIN_ONNX_OPSET
                 ) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
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
    if opset < min_opset:
        raise RuntimeError(f"{path.name}: exported opset {opset} is below {min_opset}")
    inits = {t.name for t in proto.graph.initializer}

    def spec(value: Any) -> TensorSpec:
        tt = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        return TensorSpec(name=value.name, shape=dims, dtype=dtype)

    inputs = tuple(spec(v) for v in proto.graph.input if v.name not in inits)
    outputs = tuple(spec(v) for v in proto.graph.output)
    return inputs, outputs, opset


def inspect_openvino(xml: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Read the saved IR back: the names and shapes a fresh ``Core`` reports.

    Callers import openvino inside ``hai_edge.tools.no_openvino_telemetry()`` first (the export and
    INT8 paths do), so this import finds it loaded and sends nothing.
    """
    import openvino as ov

    model = ov.Core().read_model(str(xml))

    def spec(port: Any) -> TensorSpec:
        shape = port.get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else None for d in shape)
        dtype = port.get_element_type().to_dtype().name
        return TensorSpec(name=port.get_any_name(), shape=dims, dtype=dtype)

    return tuple(spec(p) for p in model.inputs), tuple(spec(p) for p in model.outputs)

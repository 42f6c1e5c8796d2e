"""INT8 ONNX with onnxruntime: ``quant_pre_process`` then ``quantize_static`` (QDQ, per-channel).

Activations uint8 and weights int8 (U8S8): on x86 the S8S8 QDQ path is ~3x slower for the same
accuracy (toolchain trap F10). Front-end nodes (and every node before them) go into
``nodes_to_exclude`` so they run in float; the encoder's input is then quantized at the boundary.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import ModelFormat
from hai_edge.quantize._backend import QuantBackend, QuantizedArtifact, tool_version
from hai_edge.quantize._graph import Op, OpGraph
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import ActivationType, CalibrationMethod, QuantConfig, check_supported
from hai_edge.quantize.inspect import inspect_onnx
from hai_edge.tools import quiet

__all__ = ["OnnxQuantBackend", "float_graph_outputs"]


def float_graph_outputs(path: Path) -> int:
    """Drop the QuantizeLinear -> DequantizeLinear pair in front of each graph output (in place;
    returns how many were dropped).

    ``quantize_static`` quantizes the last layer's output too, so the embedding comes out on an
    8-bit grid: ~2 % relative noise that nothing downstream needs (heads read it in float), and a
    value near a grid midpoint rounds differently on each engine (OpenVINO and LiteRT keep that
    output in float), which moved head scores between engines by up to 0.19 (issue #18).
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    by_output = {o: n for n in graph.node for o in n.output}
    dropped = 0
    for out in graph.output:
        dq = by_output.get(out.name)
        q = by_output.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        producer = by_output.get(q.input[0])
        users = [n for n in graph.node if q.input[0] in n.input]
        if producer is None or users != [q]:  # the float value feeds something else too
            continue
        producer.output[list(producer.output).index(q.input[0])] = out.name
        graph.node.remove(dq)
        graph.node.remove(q)
        dropped += 1
    if dropped:
        used = {i for n in graph.node for i in n.input}
        keep = [init for init in graph.initializer if init.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        tmp = Path(path).with_suffix(".float-outputs.tmp")
        onnx.save(model, str(tmp))
        tmp.replace(path)
    return dropped


def _scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                value = ast.literal_eval(prop.value)  # a list-of-strings literal, never eval'd
            except (ValueError, SyntaxError):
                return []
            return [str(v) for v in value] if isinstance(value, list) else []
    return []


def _in_scope(node: Any, scope: str | None) -> bool:
    if not scope:
        return False
    if node.name.startswith(scope):  # a declared node-name prefix
        return True
    return any(s == scope or s.startswith(scope + ".") for s in _scopes(node))


def _cache_kwargs(quantize_static: Any, cache_dir: Path | None, config: QuantConfig
                  ) -> dict[str, Any]:
    """Reuse activation ranges across ladder rungs (``calibration_cache_path``, onnxruntime >=
    1.2x); older onnxruntime simply recalibrates."""
    import inspect

    if cache_dir is None or "calibration_cache_path" not in inspect.signature(
            quantize_static).parameters:
        return {}
    return {"calibration_cache_path": Path(cache_dir) / f"ort-ranges-{config.calibration.value}.json"}


class OnnxQuantBackend(QuantBackend):
    format = ModelFormat.ONNX

    def graph(self, fp32_path: Path, frontend_scope: str | None) -> OpGraph:
        import onnx

        proto = onnx.load(str(fp32_path), load_external_data=False)
        return OpGraph([
            Op(n.name, n.op_type, tuple(i for i in n.input if i), tuple(n.output),
               _in_scope(n, frontend_scope))
            for n in proto.graph.node
        ])

    def quantize(self, fp32_path: Path, out_dir: Path, basename: str, calib: CalibrationSource,
                 config: QuantConfig, exclude: Sequence[str] = (),
                 cache_dir: Path | None = None) -> QuantizedArtifact:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod as OrtCalib,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )

        scheme = check_supported(self.format, config)
        t0 = time.perf_counter()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pre = out_dir / f"{basename}.pre.onnx"
        out = out_dir / f"{basename}.onnx"
        with quiet():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        original = self.graph(fp32_path, config.frontend_scope)
        pre_graph = self.graph(pre, config.frontend_scope)
        frontend = pre_graph.frontend_ops() or pre_graph.ops_before(original.frontend_boundary())
        excluded = pre_graph.excluded_ops(frontend, (*config.exclude, *exclude), config.quantize_frontend)
        input_name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        percentile = config.calibration is CalibrationMethod.PERCENTILE
        extra_options: dict[str, Any] = {}
        if percentile:
            extra_options["CalibPercentile"] = config.percentile
        act = QuantType.QUInt8 if config.activation_type is ActivationType.UINT8 else QuantType.QInt8
        with quiet():
            quantize_static(
                str(pre), str(out), calib.to_ort_reader(input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                activation_type=act,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded or None,
                calibrate_method=OrtCalib.Percentile if percentile else OrtCalib.MinMax,
                extra_options=extra_options,
                **_cache_kwargs(quantize_static, cache_dir, config),
            )
        n_float_outputs = float_graph_outputs(out)
        inputs, outputs, _ = inspect_onnx(out)
        options = {
            "tool": f"onnxruntime.quantization {tool_version('onnxruntime')}",
            "float_outputs": n_float_outputs,
            "scheme": scheme.to_dict(),
            "quant_format": "QDQ",
            "activation_type": config.activation_type.value,
            "weight_type": "int8",
            "per_channel": config.per_channel,
            "reduce_range": config.reduce_range,
            "calibration": config.calibration.value,
            **({"percentile": config.percentile} if percentile else {}),
            "preprocess": "quant_pre_process(skip_symbolic_shape=True)",
        }
        return QuantizedArtifact(
            format=self.format, files=[out], inputs=inputs, outputs=outputs, options=options,
            excluded=tuple(excluded),
            frontend_ops=tuple(frontend), frontend_float=not config.quantize_frontend,
            reference=pre, seconds=time.perf_counter() - t0,
        )

    def activations(self, path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
        import onnx

        from hai_edge.tools import import_onnxruntime

        ort = import_onnxruntime()
        proto = onnx.load(str(path), load_external_data=False)
        have = {o.name for o in proto.graph.output}
        for node in proto.graph.node:
            for t in node.output:
                if t and t not in have:
                    proto.graph.output.append(onnx.ValueInfoProto(name=t))
                    have.add(t)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(proto.SerializeToString(), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        feed_name = sess.get_inputs()[0].name
        runs = [sess.run(names, {feed_name: x[i : i + 1]}) for i in range(len(x))]
        out: dict[str, np.ndarray] = {}
        for j, n in enumerate(names):
            vals = [r[j] for r in runs]
            if all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in vals):
                out[n] = np.stack(vals)
        return out

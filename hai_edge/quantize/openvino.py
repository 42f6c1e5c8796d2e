"""INT8 OpenVINO IR with NNCF on the OpenVINO model (not on torch: faster, as accurate).

``nncf.quantize`` with ``subset_size`` = the number of calibration samples (NNCF's default of 300
would silently use fewer or cycle), bias correction on (fast by default), front-end ops in the
``ignored_scope`` and the IR saved uncompressed. Everything OpenVINO/NNCF runs inside
``no_openvino_telemetry()`` so nothing is sent or written to the home directory. Gates run the
result with ``INFERENCE_PRECISION_HINT=f32`` (the run-side backend sets it).

``from_shared_int8`` is the other way to an INT8 IR: OpenVINO converts the bundle's ONNX INT8
(QDQ) model, so both engines run one quantization (the same scales and zero points). NNCF's own
calibration and bias correction give OpenVINO embeddings that differ from onnxruntime's by
~3 % in one direction, enough to flip head verdicts between engines (issue #18).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import ModelFormat
from hai_edge.quantize._backend import QuantBackend, QuantizedArtifact, tool_version
from hai_edge.quantize._graph import Op, OpGraph
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import BiasCorrection, CalibrationMethod, QuantConfig, check_supported
from hai_edge.quantize.inspect import inspect_openvino
from hai_edge.tools import no_openvino_telemetry, quiet

__all__ = ["OpenVinoQuantBackend"]

_SKIP_OUTPUTS = ("Constant", "Parameter", "Result")


def _in_scope(name: str, scope: str | None) -> bool:
    if not scope:
        return False
    return (name.startswith(f"__module.{scope}/") or name.startswith(f"__module.{scope}.")
            or name.startswith(scope))


def _tensor_id(node: Any, index: int) -> str:
    return f"{node.get_friendly_name()}:{index}"


class OpenVinoQuantBackend(QuantBackend):
    format = ModelFormat.OPENVINO

    def graph(self, fp32_path: Path, frontend_scope: str | None) -> OpGraph:
        with no_openvino_telemetry():
            import openvino as ov

            model = ov.Core().read_model(str(fp32_path))
        ops = []
        for node in model.get_ordered_ops():
            name = node.get_friendly_name()
            ins = tuple(_tensor_id(i.get_source_output().get_node(), i.get_source_output().get_index())
                        for i in node.inputs())
            outs = tuple(_tensor_id(node, k) for k in range(node.get_output_size()))
            ops.append(Op(name, node.get_type_name(), ins, outs,
                          _in_scope(name, frontend_scope) and node.get_type_name() != "Constant"))
        return OpGraph(ops)

    def quantize(self, fp32_path: Path, out_dir: Path, basename: str, calib: CalibrationSource,
                 config: QuantConfig, exclude: Sequence[str] = (),
                 cache_dir: Path | None = None) -> QuantizedArtifact:
        scheme = check_supported(self.format, config)
        t0 = time.perf_counter()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        xml = out_dir / f"{basename}.xml"
        graph = self.graph(fp32_path, config.frontend_scope)
        frontend = graph.frontend_ops()
        excluded = graph.excluded_ops(frontend, (*config.exclude, *exclude), config.quantize_frontend)
        with no_openvino_telemetry(), quiet():
            import nncf
            import openvino as ov
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
            from nncf.quantization.range_estimator import (
                AggregatorType,
                RangeEstimatorParameters,
                RangeEstimatorParametersSet,
                StatisticsCollectorParameters,
                StatisticsType,
            )

            adv: dict[str, Any] = {
                "disable_bias_correction": config.bias_correction is BiasCorrection.NONE,
            }
            if config.calibration is CalibrationMethod.MINMAX:
                # NNCF's default for per-tensor activations is MEAN_MINMAX (mean over samples of
                # per-sample min/max), which under-covers the calibration set; MINMAX is global.
                adv["activations_range_estimator_params"] = RangeEstimatorParametersSet.MINMAX
            else:
                q = (100.0 - config.percentile) / 100.0
                stat = StatisticsCollectorParameters(
                    statistics_type=StatisticsType.QUANTILE, aggregator_type=AggregatorType.MEAN,
                    quantile_outlier_prob=q,
                )
                adv["activations_range_estimator_params"] = RangeEstimatorParameters(min=stat,
                                                                                     max=stat)
            model = ov.Core().read_model(str(fp32_path))
            qmodel = nncf.quantize(
                model,
                calib.to_nncf_dataset(),
                subset_size=len(calib),
                fast_bias_correction=config.bias_correction is not BiasCorrection.FULL,
                ignored_scope=nncf.IgnoredScope(names=excluded, validate=False) if excluded else None,
                advanced_parameters=AdvancedQuantizationParameters(**adv),
            )
            ov.save_model(qmodel, str(xml), compress_to_fp16=False)
            inputs, outputs = inspect_openvino(xml)
        options = {
            "tool": f"nncf {tool_version('nncf')} / openvino {tool_version('openvino')}",
            "scheme": scheme.to_dict(),
            "preset": "performance",
            "subset_size": len(calib),
            "bias_correction": config.bias_correction.value,
            "calibration": config.calibration.value,
            **({"percentile": config.percentile, "range_estimator": "mean_quantile"}
               if config.calibration is CalibrationMethod.PERCENTILE
               else {"range_estimator": "global min/max"}),
            "compress_to_fp16": False,
            "inference_precision_hint": "f32",
        }
        return QuantizedArtifact(
            format=self.format, files=[xml, xml.with_suffix(".bin")], inputs=inputs,
            outputs=outputs, options=options, excluded=tuple(excluded),
            frontend_ops=tuple(frontend), frontend_float=not config.quantize_frontend,
            reference=Path(fp32_path), seconds=time.perf_counter() - t0,
        )

    def from_shared_int8(self, onnx: QuantizedArtifact, fp32_path: Path, out_dir: Path,
                         basename: str) -> QuantizedArtifact:
        """OpenVINO's conversion of an ONNX INT8 (QDQ) model, saved uncompressed as IR; what
        stayed float there (front end, kept layers) stays float here."""
        onnx_int8 = onnx.main_file
        t0 = time.perf_counter()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        xml = out_dir / f"{basename}.xml"
        with no_openvino_telemetry(), quiet():
            import openvino as ov

            ov.save_model(ov.convert_model(str(onnx_int8)), str(xml), compress_to_fp16=False)
            inputs, outputs = inspect_openvino(xml)
        options = {
            "tool": f"openvino {tool_version('openvino')} convert_model of the ONNX INT8 model",
            "source": Path(onnx_int8).name,
            # the ONNX model's quantization: its scheme, calibration and scales
            **{k: onnx.options[k] for k in ("scheme", "calibration", "percentile",
                                            "range_estimator") if k in onnx.options},
            "shared_with": "onnx",
            "compress_to_fp16": False,
            "inference_precision_hint": "f32",
        }
        return QuantizedArtifact(
            format=self.format, files=[xml, xml.with_suffix(".bin")], inputs=inputs,
            outputs=outputs, options=options, excluded=onnx.excluded, frontend_ops=onnx.frontend_ops,
            frontend_float=onnx.frontend_float, reference=Path(fp32_path),
            seconds=time.perf_counter() - t0,
        )

    def activations(self, path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
        with no_openvino_telemetry():
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(path))
            ports, names = [], []
            for node in model.get_ordered_ops():
                if node.get_type_name() in _SKIP_OUTPUTS:
                    continue
                for k in range(node.get_output_size()):
                    ports.append(node.output(k))
                    names.append(_tensor_id(node, k))
            for j, port in enumerate(ports):
                port.get_tensor().add_names({f"hai_edge_act_{j}"})
            model.add_outputs(ports)
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            found = {nm: cp for cp in compiled.outputs for nm in cp.get_names()
                     if nm.startswith("hai_edge_act_")}
            pairs = [(n, found[f"hai_edge_act_{j}"]) for j, n in enumerate(names)
                     if f"hai_edge_act_{j}" in found]
            request = compiled.create_infer_request()
            out: dict[str, list[np.ndarray]] = {n: [] for n, _ in pairs}
            for i in range(len(x)):
                res = request.infer({0: np.ascontiguousarray(x[i : i + 1])})
                for n, cport in pairs:
                    out[n].append(np.array(res[cport]))
        return {n: np.stack(v) for n, v in out.items()
                if v and all(a.dtype == np.float32 for a in v)}

"""OpenVINO engine: f32 inference precision (the CPU default may be bf16), latency hint.

On Arm (aarch64) the CPU plugin's low-precision transformations are switched off
(``LP_TRANSFORMS_MODE``): with them, OpenVINO 2026.4 runs some int8 convolutions of the built-in
bundles in f16 (golden cosine 0.994-0.997 on Cortex-A76) and returns an empty output on
Cortex-A72. Without them the int8 model's quantize/dequantize steps run in f32, which passes the
golden vectors on both (cosine >= 0.99995; docs/devices.md, scripts/aarch64_check.py).

``import openvino`` sends a telemetry event unless declined: the import happens inside
``hai_edge.tools.no_openvino_telemetry`` so nothing is sent or written to the home directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import BackendError
from hai_edge.runtime.backends._onnxruntime import _first_line

__all__ = ["OpenVinoBackend", "open_openvino", "openvino_config"]

_ARM = ("aarch64", "arm64")


def openvino_config(threads: int | None = None, machine: str | None = None) -> dict[str, Any]:
    """The CPU plugin configuration for this machine (``machine``: ``platform.machine()``)."""
    import platform

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if (machine or platform.machine()).lower() in _ARM:
        config["LP_TRANSFORMS_MODE"] = False
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from hai_edge.tools import import_openvino

        ov = import_openvino()

        core = ov.Core()
        config = openvino_config(threads)
        try:
            model = core.read_model(str(path))
            self._compiled: Any = core.compile_model(model, "CPU", config)
        except Exception as exc:
            why = _first_line(exc)
            if "LP_TRANSFORMS_MODE" in config and "LP_TRANSFORMS_MODE" in why:
                why = (f"this OpenVINO ({ov.__version__}) cannot switch off its int8 fallback on "
                       f"Arm (LP_TRANSFORMS_MODE); use tflite or onnxruntime")
            raise BackendError(f"OpenVINO could not load {path.name}: {why}") from None
        self._request = self._compiled.create_infer_request()
        self._inputs = {p.get_any_name(): p for p in self._compiled.inputs}
        self._outputs = [(p.get_any_name(), p) for p in self._compiled.outputs]
        self._batch_fixed = {
            name: (p.get_partial_shape().rank.get_length() > 0
                   and p.get_partial_shape()[0].is_static
                   and p.get_partial_shape()[0].get_length() == 1)
            for name, p in self._inputs.items()
        }

    def _run_once(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self._request.infer({self._inputs[k]: np.ascontiguousarray(v) for k, v in inputs.items()})
        return {name: np.array(res[port]) for name, port in self._outputs}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        unknown = set(inputs) - set(self._inputs)
        if unknown:
            raise BackendError(f"OpenVINO model has no input(s) {sorted(unknown)}")
        batch = max((len(v) for v in inputs.values() if np.ndim(v) > 0), default=1)
        try:
            if batch > 1 and any(self._batch_fixed.get(k) for k in inputs):
                outs = [self._run_once({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(batch)]
                return {n: np.concatenate([o[n] for o in outs]) for n, _ in self._outputs}
            return self._run_once(inputs)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"OpenVINO failed to run the model: {_first_line(exc)}") from None

    def close(self) -> None:
        self._request = None
        self._compiled = None


def open_openvino(path: Path, entry: object, threads: int | None) -> OpenVinoBackend:
    return OpenVinoBackend(path, threads)

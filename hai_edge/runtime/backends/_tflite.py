"""TFLite engine: ai-edge-litert first, tflite-runtime 2.14 as a fallback.

Integer I/O (full-INT8 models) is handled here: float inputs are quantized and integer outputs
dequantized with each tensor's scale/zero-point, so callers always see float32.
Models exported with a fixed batch of 1 are run one item at a time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import BackendError
from hai_edge.tools import quiet
from hai_edge.runtime.backends._base import dequantize_output, quantize_input
from hai_edge.runtime.backends._onnxruntime import _first_line

__all__ = ["TfliteBackend", "open_tflite"]


def _interpreter_class() -> Any:
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    from tflite_runtime.interpreter import Interpreter  # fallback: numpy<2, slower INT8

    return Interpreter


class TfliteBackend:
    name = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        Interpreter = _interpreter_class()
        try:
            # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on every load;
            # quiet() keeps it (and replays it only if loading fails); --verbose shows it
            with quiet():
                self._interp: Any = Interpreter(model_path=str(path), num_threads=int(threads or 1))
                self._interp.allocate_tensors()
        except Exception as exc:
            raise BackendError(f"TFLite could not load {path.name}: {_first_line(exc)}") from None
        self._in = {d["name"]: d for d in self._interp.get_input_details()}
        self._out = [(d["name"], d) for d in self._interp.get_output_details()]
        self._alias = _signature_aliases(self._interp)

    def _name(self, key: str) -> str:
        if key in self._in:
            return key
        if key in self._alias:
            return self._alias[key]
        if len(self._in) == 1:
            return next(iter(self._in))
        raise BackendError(f"TFLite model has no input {key!r} (inputs: {sorted(self._in)})")

    def _run_one(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for key, value in inputs.items():
            d = self._in[self._name(key)]
            value = np.asarray(value)
            if tuple(d["shape"]) != value.shape:
                self._interp.resize_tensor_input(d["index"], list(value.shape))
                self._interp.allocate_tensors()
            if np.issubdtype(d["dtype"], np.integer) and not np.issubdtype(value.dtype, np.integer):
                scale, zp = d["quantization"]
                value = quantize_input(value, d["dtype"], scale, zp)
            self._interp.set_tensor(d["index"], value.astype(d["dtype"], copy=False))
        self._interp.invoke()
        out = {}
        for name, d in self._out:
            y = self._interp.get_tensor(d["index"])
            if np.issubdtype(y.dtype, np.integer) and d["quantization"][0]:
                y = dequantize_output(y, *d["quantization"])
            out[name] = np.array(y, dtype=np.float32)
        return out

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = max((len(v) for v in inputs.values() if np.ndim(v) > 0), default=1)
        try:
            outs = [self._run_one({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(batch)]
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"TFLite failed to run the model: {_first_line(exc)}") from None
        return {name: np.concatenate([o[name] for o in outs]) for name, _ in self._out}

    def close(self) -> None:
        self._interp = None


def _signature_aliases(interp: Any) -> dict[str, str]:
    """Map signature input names (e.g. 'args_0') to tensor names."""
    aliases: dict[str, str] = {}
    try:
        sigs = interp.get_signature_list()
    except Exception:
        return aliases
    details = {d["index"]: d["name"] for d in interp.get_input_details()}
    for key in sigs:
        try:
            runner = interp.get_signature_runner(key)
            for alias, d in runner.get_input_details().items():
                if d["index"] in details:
                    aliases[alias] = details[d["index"]]
        except Exception:
            continue
    return aliases


def open_tflite(path: Path, entry: object, threads: int | None) -> TfliteBackend:
    return TfliteBackend(path, threads)

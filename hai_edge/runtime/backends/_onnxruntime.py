"""onnxruntime engine (CPU execution provider)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import BackendError

__all__ = ["OrtBackend", "open_onnxruntime"]


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from hai_edge.tools import import_onnxruntime

        ort = import_onnxruntime()

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # engine messages vary; keep one line
            raise BackendError(f"onnxruntime could not load {path.name}: {_first_line(exc)}") from None
        self._batch_fixed = {
            i.name: (isinstance(i.shape[0], int) and i.shape[0] == 1) if i.shape else False
            for i in self._session.get_inputs()
        }

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        batch = {len(v) for v in inputs.values() if np.ndim(v) > 0}
        try:
            if any(self._batch_fixed.get(k) for k in inputs) and batch and max(batch) > 1:
                outs = [
                    self._session.run(names, {k: v[i : i + 1] for k, v in inputs.items()})
                    for i in range(max(batch))
                ]
                return {n: np.concatenate([o[j] for o in outs]) for j, n in enumerate(names)}
            result = self._session.run(names, dict(inputs))
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run the model: {_first_line(exc)}") from None
        return dict(zip(names, result))

    def close(self) -> None:
        self._session = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def open_onnxruntime(path: Path, entry: object, threads: int | None) -> OrtBackend:
    return OrtBackend(path, threads)

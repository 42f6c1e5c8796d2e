"""Calibration data: any iterable of items plus an optional transform (the NNCF ``Dataset`` idea).

Each quantizer wants its own reader protocol (onnxruntime's ``get_next()``/None sentinel, an
``nncf.Dataset``, ai-edge-quantizer's ``{signature: [{input_name: array}]}``). They stay inside
the adapters here; the rest of the code passes one :class:`CalibrationSource`, so every format of
a bundle is calibrated on exactly the same samples, whose hash goes into the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

__all__ = ["CalibrationSource", "OrtCalibrationReader"]


class CalibrationSource:
    """Samples for INT8 calibration: ``items`` (any iterable), each mapped by ``transform`` to one
    model input ``[*input_shape]`` or a batch ``[n, *input_shape]`` of float32.

    The samples are materialised once (calibration sets are small: 64-300 inputs) so every
    backend and every retry sees the same data in the same order.
    """

    def __init__(self, items: Iterable[Any], transform: Callable[[Any], np.ndarray] | None = None,
                 *, limit: int | None = None, description: str = "") -> None:
        rows: list[np.ndarray] = []
        n = 0
        for item in items:
            x = np.asarray(transform(item) if transform is not None else item, dtype=np.float32)
            rows.append(x)
            n += 1
            if limit is not None and n >= limit:
                break
        self._rows = rows
        self.description = description
        self._array: np.ndarray | None = None

    @classmethod
    def from_array(cls, x: np.ndarray, description: str = "") -> CalibrationSource:
        """A batch ``[n, *input_shape]``: each row is one sample."""
        src = cls((), description=description)
        src._array = np.ascontiguousarray(x, dtype=np.float32)
        return src

    def as_array(self, input_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """All samples stacked ``[n, *input_shape]`` (rows that are batches are split)."""
        if self._array is None:
            parts = []
            for r in self._rows:
                if input_shape is not None and r.shape == tuple(input_shape):
                    parts.append(r[None])
                elif input_shape is not None and r.shape[1:] == tuple(input_shape):
                    parts.append(r)
                elif input_shape is None:
                    parts.append(r[None])
                else:
                    raise ValueError(
                        f"calibration sample of shape {list(r.shape)} does not match the model "
                        f"input {list(input_shape)}"
                    )
            if not parts:
                raise ValueError("the calibration source is empty")
            self._array = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        if input_shape is not None and tuple(self._array.shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"calibration samples have shape {list(self._array.shape[1:])}, the model input "
                f"is {list(input_shape)}"
            )
        return self._array

    def __len__(self) -> int:
        return len(self.as_array()) if self._array is not None or self._rows else 0

    def __iter__(self) -> Iterator[np.ndarray]:
        """One sample at a time, with a batch dimension of 1 (what every quantizer feeds)."""
        x = self.as_array()
        for i in range(len(x)):
            yield x[i : i + 1]

    def sha256(self) -> str:
        """Hash of the exact float32 samples (shape + bytes): the manifest's calibration_hash."""
        x = self.as_array()
        h = hashlib.sha256()
        h.update(repr((tuple(x.shape), str(x.dtype))).encode())
        h.update(np.ascontiguousarray(x).tobytes())
        return h.hexdigest()

    # -------------------------------------------------------------------- adapters
    def to_ort_reader(self, input_name: str) -> OrtCalibrationReader:
        return OrtCalibrationReader(self, input_name)

    def to_nncf_dataset(self) -> Any:
        import nncf

        return nncf.Dataset(list(self), lambda x: x)

    def to_aeq_data(self, signature_key: str, input_name: str) -> dict[str, list[dict[str, Any]]]:
        """ai-edge-quantizer calibration data: ``{signature: [{input_name: [1, ...]}, ...]}``."""
        return {signature_key: [{input_name: x} for x in self]}


class OrtCalibrationReader:
    """onnxruntime ``CalibrationDataReader`` protocol (``get_next`` returns None when done)."""

    def __init__(self, source: CalibrationSource, input_name: str) -> None:
        self._source = source
        self._name = input_name
        self._it: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(self._source)
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:
        return len(self._source)

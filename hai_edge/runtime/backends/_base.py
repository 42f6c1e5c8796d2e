"""The ``Backend`` protocol: load one model file, run named inputs to named outputs, close.

Each engine module declares what it needs (``BackendInfo.requires``) and which extra installs it;
``is_available()`` only looks for the modules (never imports a framework), and loading a missing
one raises ``MissingDependencyError`` with the ``pip install 'hai-edge[extra]'`` line. Nothing is
ever installed at run time.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from hai_edge.errors import MissingDependencyError

if TYPE_CHECKING:
    from hai_edge.bundle import ModelEntry, ModelFormat

__all__ = ["Backend", "BackendInfo", "MockBackend", "dequantize_output", "quantize_input"]


@runtime_checkable
class Backend(Protocol):
    """An opened model. ``run`` takes and returns float/int arrays keyed by tensor name."""

    name: str

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """Registry row for one engine (pydicom-style plugin declaration)."""

    name: str
    format: ModelFormat
    extra: str
    requires: tuple[tuple[str, ...], ...]  # alternatives: any one group of importable modules
    loader: str  # "module:callable(path, entry, threads) -> Backend"
    title: str

    def missing(self) -> list[str]:
        """Modules of the first alternative that is not importable ([] when one is available)."""
        first_missing: list[str] = []
        for group in self.requires:
            miss = [m for m in group if importlib.util.find_spec(m) is None]
            if not miss:
                return []
            first_missing = first_missing or miss
        return first_missing

    def is_available(self) -> bool:
        return not self.missing()

    def open(self, path: Path, entry: ModelEntry, threads: int | None = None) -> Backend:
        missing = self.missing()
        if missing:
            raise MissingDependencyError(f"the {self.name} engine", self.extra, missing[0])
        module_name, func_name = self.loader.split(":")
        module = importlib.import_module(module_name, package=__package__)
        return getattr(module, func_name)(path, entry, threads)


class MockBackend:
    """A backend driven by a function, for app tests that need no engine."""

    name = "mock"

    def __init__(self, handler: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]):
        self._handler = handler
        self.calls = 0
        self.closed = False

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self._handler(inputs)

    def close(self) -> None:
        self.closed = True


def quantize_input(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8/uint8 with the tensor's affine parameters (round half to even, saturate)."""
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)

"""Run side: numpy + one inference engine. Never imports torch, onnx, nncf, tensorflow or
litert-torch (tests/test_import_guard.py proves it in a subprocess).

Names are loaded lazily so that importing a submodule (e.g. the front-end specs, which the
bundle module needs) does not pull in the whole runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AudioEmbedding", "Embedder", "ImageEmbedding"]

if TYPE_CHECKING:
    from hai_edge.runtime._embedder import AudioEmbedding, Embedder, ImageEmbedding


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hai_edge.runtime import _embedder

        return getattr(_embedder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

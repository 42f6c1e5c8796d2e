"""Keep inference engines from phoning home or writing into the user's home directory.

- OpenVINO: ``import openvino`` and ``convert_model`` send Google-Analytics events unless consent
  is declined, and create ``~/intel/...``. The telemetry code checks ``CI=true`` before touching
  any file, so imports happen with ``CI=true`` set for the duration, and the telemetry singleton
  is then told ``consent = False``.
- onnxruntime: ``import onnxruntime`` creates ``~/.cache/Microsoft/DeveloperTools`` unless
  ``ORT_DISABLE_TELEMETRY=1`` is set before its first import.

Nothing happens at import of this module; the guards run only when an engine is first imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["env_override", "import_onnxruntime", "import_openvino", "no_openvino_telemetry",
           "openvino_telemetry_consent"]


@contextlib.contextmanager
def env_override(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block and restore them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _telemetry_singleton() -> Any:
    tm = sys.modules.get("openvino_telemetry")
    cls = getattr(tm, "Telemetry", None) if tm is not None else None
    # SingletonMetaClass keeps the instance in a name-mangled class attribute.
    return getattr(cls, "_SingletonMetaClass__single_instance", None) if cls is not None else None


def openvino_telemetry_consent() -> bool | None:
    """Consent of OpenVINO's telemetry singleton (None: not created in this process)."""
    inst = _telemetry_singleton()
    return None if inst is None else bool(getattr(inst, "consent", False))


def _decline() -> None:
    inst = _telemetry_singleton()
    if inst is not None:
        with contextlib.suppress(Exception):
            inst.consent = False


@contextlib.contextmanager
def no_openvino_telemetry() -> Iterator[None]:
    """Import/use OpenVINO (runtime or converter) with telemetry declined and nothing written."""
    with env_override({"CI": "true"}):
        _decline()
        with contextlib.suppress(ImportError):
            import openvino  # noqa: F401  (its import-time event runs here, declined)
        _decline()
        try:
            yield
        finally:
            _decline()


def import_openvino() -> Any:
    with no_openvino_telemetry():
        import openvino

    return openvino


def import_onnxruntime() -> Any:
    with env_override({"ORT_DISABLE_TELEMETRY": "1"}):
        import onnxruntime

    return onnxruntime

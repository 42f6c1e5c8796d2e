"""INT8 post-training quantization for ONNX (onnxruntime), OpenVINO (NNCF) and TFLite
(ai-edge-quantizer), with fidelity gates and a retry ladder. Build side: importing this package
imports no framework; each backend imports its tool inside the functions that need it.

The export flow (``hai_edge.export``) sits above this package and uses only the names below and
the public modules (``calibration``, ``config``, ``gates``, ``inspect``, ``recipes``).
"""

from __future__ import annotations

from hai_edge.quantize._backend import (
    QUANT_BACKENDS,
    QuantBackend,
    QuantizedArtifact,
    get_backend,
    tool_version,
)
from hai_edge.quantize._graph import find_frontend_scope
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import (
    SUPPORTED_SCHEMES,
    ActivationType,
    BiasCorrection,
    CalibrationMethod,
    QuantConfig,
    QuantScheme,
    Recipe,
)

__all__ = [
    "QUANT_BACKENDS",
    "SUPPORTED_SCHEMES",
    "ActivationType",
    "BiasCorrection",
    "CalibrationMethod",
    "CalibrationSource",
    "QuantBackend",
    "QuantConfig",
    "QuantScheme",
    "QuantizedArtifact",
    "Recipe",
    "find_frontend_scope",
    "get_backend",
    "tool_version",
]

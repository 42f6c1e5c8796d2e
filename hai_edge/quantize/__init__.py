"""INT8 post-training quantization for ONNX (onnxruntime), OpenVINO (NNCF) and TFLite
(ai-edge-quantizer), with fidelity gates and a retry ladder. Build side: importing this package
imports no framework; each backend imports its tool inside the functions that need it.
"""

from __future__ import annotations

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
    "SUPPORTED_SCHEMES",
    "ActivationType",
    "BiasCorrection",
    "CalibrationMethod",
    "CalibrationSource",
    "QuantConfig",
    "QuantScheme",
    "Recipe",
]

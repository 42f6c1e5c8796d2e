"""Quantization options as frozen dataclasses + enums, and the schemes each backend supports.

One :class:`QuantConfig` drives all three quantizers (onnxruntime, NNCF on OpenVINO,
ai-edge-quantizer on TFLite); options a backend cannot honour are rejected by
:func:`check_supported` instead of being silently ignored. Nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from hai_edge.bundle import ModelFormat
from hai_edge.errors import HaiEdgeError

__all__ = [
    "ActivationType",
    "BiasCorrection",
    "CalibrationMethod",
    "QuantConfig",
    "QuantScheme",
    "Recipe",
    "SUPPORTED_SCHEMES",
    "check_supported",
    "scheme_for",
]


class CalibrationMethod(str, enum.Enum):
    """How activation ranges are estimated from the calibration set."""

    MINMAX = "minmax"  # global min / max over all samples
    PERCENTILE = "percentile"  # clip outliers: ORT histogram percentile, NNCF mean-quantile, ours on TFLite


class Recipe(str, enum.Enum):
    """Rungs of the retry ladder (recipes.py), tried in this order until the gate passes."""

    DEFAULT = "default"  # MinMax calibration, everything but the front end INT8
    PERCENTILE = "percentile"  # percentile calibration
    KEEP_SENSITIVE = "keep_sensitive"  # + the k layers with the largest local error kept float
    # OpenVINO only, tried first when the bundle has an ONNX INT8 model: OpenVINO compiles that
    # QDQ model (one quantization, one set of scales for both engines), so the two engines'
    # embeddings and head decisions stay close (issue #18)
    SHARED_ONNX = "shared_onnx"


class ActivationType(str, enum.Enum):
    """onnxruntime activation type. U8S8 (uint8 activations) is the fast path on x86 (trap F10)."""

    UINT8 = "uint8"
    INT8 = "int8"


class BiasCorrection(str, enum.Enum):
    """NNCF bias correction after quantization (OpenVINO)."""

    FAST = "fast"  # FastBiasCorrection (NNCF default)
    FULL = "full"  # BiasCorrection (slower, statistics per layer)
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class QuantScheme:
    """What one backend's INT8 path produces (recorded in the manifest's options)."""

    name: str
    tool: str
    activations: str  # e.g. "uint8 per-tensor asymmetric"
    weights: str  # e.g. "int8 per-channel symmetric"
    calibration: tuple[CalibrationMethod, ...]
    activation_types: tuple[ActivationType, ...] = ()  # empty: fixed by the tool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tool": self.tool, "activations": self.activations,
                "weights": self.weights}


SUPPORTED_SCHEMES: dict[ModelFormat, tuple[QuantScheme, ...]] = {
    ModelFormat.ONNX: (
        QuantScheme(
            name="qdq-u8s8-per-channel",
            tool="onnxruntime.quantization.quantize_static (QDQ, after quant_pre_process)",
            activations="uint8 per-tensor asymmetric",
            weights="int8 per-channel symmetric",
            calibration=(CalibrationMethod.MINMAX, CalibrationMethod.PERCENTILE),
            activation_types=(ActivationType.UINT8, ActivationType.INT8),
        ),
    ),
    ModelFormat.OPENVINO: (
        QuantScheme(
            name="nncf-performance",
            tool="nncf.quantize on the OpenVINO model (FakeQuantize, bias correction)",
            activations="int8/uint8 per-tensor symmetric",
            weights="int8 per-channel symmetric",
            calibration=(CalibrationMethod.MINMAX, CalibrationMethod.PERCENTILE),
        ),
    ),
    ModelFormat.TFLITE: (
        QuantScheme(
            name="a8w8-static",
            tool="ai-edge-quantizer static a8w8 on the FP32 .tflite",
            activations="int8 per-tensor asymmetric",
            weights="int8 per-channel symmetric",
            calibration=(CalibrationMethod.MINMAX, CalibrationMethod.PERCENTILE),
        ),
    ),
}


def scheme_for(fmt: ModelFormat | str) -> QuantScheme:
    return SUPPORTED_SCHEMES[ModelFormat(fmt)][0]


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """Options of one INT8 quantization (shared by every format; see ``check_supported``).

    ``frontend_scope`` names the module path of an in-graph float front end (e.g. ``"frontend"``);
    None means auto-detect a submodule called ``frontend``. Its ops, and every op before them,
    stay float in every format. ``quantize_frontend`` is a DEBUG switch that forces the front end
    into INT8 (the gate must then fail). ``exclude`` lists format-specific op names kept float.
    """

    calibration: CalibrationMethod = CalibrationMethod.MINMAX
    percentile: float = 99.99
    activation_type: ActivationType = ActivationType.UINT8
    per_channel: bool = True
    reduce_range: bool = False  # onnxruntime: 7-bit weights, avoids U8S8 saturation on AVX2/no-VNNI
    bias_correction: BiasCorrection = BiasCorrection.FAST
    float_io: bool = True  # TFLite: keep model input/output float (QUANTIZE/DEQUANTIZE in-graph)
    frontend_scope: str | None = None
    quantize_frontend: bool = False
    exclude: tuple[str, ...] = ()
    sensitive_k: tuple[int, ...] = (2, 5)  # ladder: keep the k most sensitive layers float
    sensitivity_samples: int = 8  # calibration samples used to rank layers
    ladder_budget_s: float = 90.0  # no further rung starts once a format's ladder used this long

    def __post_init__(self) -> None:
        for name, cls in (("calibration", CalibrationMethod), ("activation_type", ActivationType),
                          ("bias_correction", BiasCorrection)):
            try:
                object.__setattr__(self, name, cls(getattr(self, name)))
            except ValueError:
                allowed = "|".join(m.value for m in cls)
                raise HaiEdgeError(f"quantization: {name} must be one of {allowed}") from None
        object.__setattr__(self, "exclude", tuple(str(e) for e in self.exclude))
        object.__setattr__(self, "sensitive_k", tuple(int(k) for k in self.sensitive_k))
        if not 50.0 < self.percentile < 100.0:
            raise HaiEdgeError("quantization: percentile must be in (50, 100)")
        if any(k < 1 for k in self.sensitive_k) or list(self.sensitive_k) != sorted(self.sensitive_k):
            raise HaiEdgeError("quantization: sensitive_k must be increasing positive integers")
        if self.sensitivity_samples < 1:
            raise HaiEdgeError("quantization: sensitivity_samples must be >= 1")
        if self.ladder_budget_s <= 0:
            raise HaiEdgeError("quantization: ladder_budget_s must be positive")

    def replace(self, **changes: Any) -> QuantConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, enum.Enum):
                d[k] = v.value
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise HaiEdgeError(f"quantization: unknown option(s) {unknown}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def check_supported(fmt: ModelFormat | str, config: QuantConfig) -> QuantScheme:
    """The scheme ``fmt`` uses for ``config``; raise if an option cannot be honoured there."""
    fmt = ModelFormat(fmt)
    scheme = scheme_for(fmt)
    if config.calibration not in scheme.calibration:
        raise HaiEdgeError(f"{fmt.value}: calibration {config.calibration.value} is not supported")
    if scheme.activation_types and config.activation_type not in scheme.activation_types:
        raise HaiEdgeError(f"{fmt.value}: activation type {config.activation_type.value} is not "
                           "supported")
    if not config.per_channel and fmt is not ModelFormat.ONNX:
        raise HaiEdgeError(f"{fmt.value}: per-tensor weights are only offered for onnx")
    return scheme

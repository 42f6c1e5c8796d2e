"""Inference engines behind one small protocol, chosen by name or by what is installed."""

from __future__ import annotations

from hai_edge.bundle import Bundle, ModelEntry, ModelFormat, Precision
from hai_edge.errors import BundleError, MissingDependencyError
from hai_edge.runtime.backends._base import (
    Backend,
    BackendInfo,
    MockBackend,
    dequantize_output,
    quantize_input,
)
from hai_edge.runtime.backends._openvino import openvino_config

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendInfo",
    "MockBackend",
    "available_backends",
    "dequantize_output",
    "open_model",
    "quantize_input",
    "openvino_config",
    "select_model",
]

BACKENDS: dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo(
        name="onnxruntime",
        format=ModelFormat.ONNX,
        extra="onnx",
        requires=(("onnxruntime",),),
        loader="._onnxruntime:open_onnxruntime",
        title="ONNX Runtime (CPU)",
    ),
    "openvino": BackendInfo(
        name="openvino",
        format=ModelFormat.OPENVINO,
        extra="openvino",
        requires=(("openvino",),),
        loader="._openvino:open_openvino",
        title="OpenVINO (CPU, f32 precision hint)",
    ),
    "tflite": BackendInfo(
        name="tflite",
        format=ModelFormat.TFLITE,
        extra="tflite",
        requires=(("ai_edge_litert",), ("tflite_runtime",)),
        loader="._tflite:open_tflite",
        title="LiteRT / TFLite (ai-edge-litert, tflite-runtime fallback)",
    ),
}

_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "ov": "openvino", "litert": "tflite"}


def available_backends() -> list[str]:
    return [name for name, info in BACKENDS.items() if info.is_available()]


def _backend_info(name: str) -> BackendInfo:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in BACKENDS:
        raise BundleError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[key]


def select_model(
    bundle: Bundle,
    backend: str | None = None,
    precision: Precision | str | None = None,
    order: tuple[str, ...] = ("onnxruntime", "openvino", "tflite"),
) -> tuple[BackendInfo, ModelEntry]:
    """Pick (engine, model): the named engine, else the first installed one the bundle has a model
    for. INT8 is preferred over FP32 unless ``precision`` says otherwise."""
    prefs = [Precision(precision)] if precision else [Precision.INT8, Precision.FP32]
    have = sorted({m.format.value for m in bundle.manifest.models})
    if not bundle.manifest.models:
        raise BundleError(f"{bundle.root}: bundle has no models")
    if precision and not any(m.precision is prefs[0] for m in bundle.manifest.models):
        raise BundleError(f"{bundle.manifest.name} has no {prefs[0].value} model; it has: "
                          f"{_inventory(bundle)}")
    if backend:
        info = _backend_info(backend)
        candidates = [info]
    else:
        candidates = [BACKENDS[n] for n in order if n in BACKENDS]
    for info in candidates:
        entries = [m for p in prefs for m in bundle.models(info.format, p)]
        if not entries:
            if backend:
                what = f"{info.format.value} model" + (f" at {prefs[0].value}" if precision else "")
                raise BundleError(
                    f"{bundle.root}: bundle has no {what} for the {info.name} backend "
                    f"(it has: {', '.join(have)})"
                )
            continue
        if not info.is_available():
            if backend:
                raise MissingDependencyError(f"the {info.name} engine", info.extra, info.missing()[0])
            continue
        return info, entries[0]
    # every engine with a model of the wanted precision is missing (the precision exists)
    fits = {m.format for m in bundle.manifest.models if m.precision in prefs}
    missing = [BACKENDS[n] for n in order if BACKENDS[n].format in fits and BACKENDS[n].missing()]
    if missing:
        info = missing[0]
        raise MissingDependencyError(f"this bundle ({', '.join(have)})", info.extra, info.missing()[0])
    raise BundleError(f"{bundle.manifest.name}: no engine of {', '.join(order)} runs a "
                      f"{'/'.join(p.value for p in prefs)} model of it; it has: {_inventory(bundle)}")


def _inventory(bundle: Bundle) -> str:
    """What a bundle holds, by precision: ``int8 (onnx, openvino, tflite), fp32 (onnx)``."""
    by: dict[str, list[str]] = {}
    for m in bundle.manifest.models:
        fmts = by.setdefault(m.precision.value, [])
        if m.format.value not in fmts:
            fmts.append(m.format.value)
    return ", ".join(f"{p} ({', '.join(sorted(f))})" for p, f in by.items())


def open_model(
    bundle: Bundle,
    backend: str | None = None,
    precision: Precision | str | None = None,
    threads: int | None = None,
    model_id: str | None = None,
) -> tuple[Backend, ModelEntry]:
    """Verify the chosen model's files and open it on its engine."""
    if model_id:
        entry = bundle.model(model_id)
        info = next(i for i in BACKENDS.values() if i.format is entry.format)
        if backend and _backend_info(backend) is not info:
            raise BundleError(f"model {model_id} is {entry.format.value}, not for {backend}")
    else:
        info, entry = select_model(bundle, backend, precision)
    bundle.verify(entry.files)
    return info.open(bundle.path_of(entry.main_file), entry, threads), entry

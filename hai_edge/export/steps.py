"""The steps every bundle build shares: parity inputs, the FP32 export-and-gate of one format, the
manifest entry of an artifact, and the provenance and fidelity summaries.

``build_fp32_bundle`` (FP32 only, synthetic parity inputs) and ``build_bundle`` (FP32 + gated INT8)
are two compositions of these steps, so an FP32 model is exported, checked through the run-side
engine and described in the manifest the same way in both. Each artifact is checked *through the
run-side backend* with the exact ``ModelEntry`` that goes into the manifest, so a wrong tensor
name, layout or batch handling fails at build time instead of on a clinic device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from hai_edge.bundle import Modality, ModelEntry, ModelFormat, Precision, TensorSpec
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.errors import BundleError
from hai_edge.evaluation.metrics import cosine_rows
from hai_edge.export.parity import check_parity, gate
from hai_edge.tools import import_onnxruntime, no_openvino_telemetry, quiet

if TYPE_CHECKING:
    import torch

    from hai_edge.export.formats import ExportedModel, ExportFormat

__all__ = [
    "DEFAULT_PARITY_SEED",
    "TOOL_DISTRIBUTIONS",
    "Artifact",
    "GatedFp32",
    "add_files",
    "bundle_fidelity",
    "export_gated_fp32",
    "frontend_modality",
    "jsonable",
    "model_entry",
    "model_provenance",
    "run_entry",
    "run_quiet",
    "synthetic_inputs",
    "torch_outputs",
]

TOOL_DISTRIBUTIONS = (
    "torch", "onnx", "onnxscript", "onnxruntime", "openvino", "litert-torch", "ai-edge-litert",
    "numpy",
)
DEFAULT_PARITY_SEED = 0


class Artifact(Protocol):
    """What an exported or quantized model file offers the manifest (ExportedModel,
    QuantizedArtifact)."""

    format: ModelFormat
    files: list[Path]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def synthetic_inputs(input_shape: Sequence[int], n: int = 8, seed: int = DEFAULT_PARITY_SEED
                     ) -> np.ndarray:
    """A seeded float32 batch [n, *input_shape] whose items differ in more than noise.

    Each item is noise plus its own gain, offset, per-channel offsets, a spectral-tilt-like ramp
    along the second-to-last axis and two smooth 2-D patterns. A net with global average pooling
    then gives clearly different embeddings per item; pure i.i.d. noise would average out to
    nearly the same embedding for every item and make a parity check weak.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in input_shape)
    ones = (1,) * len(shape)
    x = rng.standard_normal((n, *shape)) * rng.uniform(0.3, 1.5, size=(n, *ones))
    x += rng.normal(0.0, 0.75, size=(n, *ones))
    if len(shape) >= 3:  # per-channel offsets (colour cast for images)
        x += rng.normal(0.0, 0.5, size=(n, shape[0], *ones[1:]))
    if len(shape) >= 2:
        h, w = shape[-2], shape[-1]
        yy = np.linspace(-1.0, 1.0, h)[:, None]
        xx = np.linspace(-1.0, 1.0, w)[None, :]
        for i in range(n):
            x[i] += rng.normal(0.0, 1.0) * yy  # tilt along rows (mel bands / image height)
            for _ in range(2):
                fy, fx = rng.uniform(0.25, 3.0, size=2)
                py, px = rng.uniform(0.0, 2.0 * np.pi, size=2)
                wave = np.cos(np.pi * fy * yy + py) * np.cos(np.pi * fx * xx + px)
                x[i] += rng.uniform(0.3, 1.5) * wave
    return x.astype(np.float32)


def frontend_modality(spec: AudioFrontendSpec | ImageFrontendSpec) -> tuple[Modality, str | None]:
    """The bundle's modality and the input layout its entries declare (images only)."""
    if isinstance(spec, AudioFrontendSpec):
        return Modality.AUDIO, None
    if isinstance(spec, ImageFrontendSpec):
        return Modality.IMAGE, spec.layout
    raise TypeError(f"spec must be an AudioFrontendSpec or ImageFrontendSpec, not {type(spec)}")


def run_entry(
    path: Path, entry: ModelEntry, x: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Run ``x`` through the run-side backend for ``entry.format``, feeding the manifest's names."""
    from hai_edge.runtime.backends import BACKENDS

    info = next(i for i in BACKENDS.values() if i.format is entry.format)
    backend = info.open(Path(path), entry, threads)
    try:
        res = backend.run({entry.inputs[0].name: np.ascontiguousarray(x, dtype=np.float32)})
    finally:
        backend.close()
    name = entry.outputs[0].name
    if name not in res:
        raise BundleError(
            f"{entry.id}: backend {info.name} returned outputs {sorted(res)}, not {name!r}"
        )
    return np.asarray(res[name], dtype=np.float32).reshape(len(x), -1)


def run_quiet(path: Path, entry: ModelEntry, x: np.ndarray) -> np.ndarray:
    """``run_entry`` with the engines' telemetry declined and their log chatter captured.

    onnxruntime >= 1.2x ships 1DS telemetry that, on ``import onnxruntime``, creates
    ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}`` unless
    ``ORT_DISABLE_TELEMETRY=1`` is set before the first import in the process; OpenVINO: see
    ``formats/openvino.py``. The run-side backends import both engines that way too; the guards
    here also cover a run that happens to be the process's first import.
    """
    with quiet():
        if entry.format is ModelFormat.OPENVINO:
            with no_openvino_telemetry():
                return run_entry(path, entry, x)
        if entry.format is ModelFormat.ONNX:
            import_onnxruntime()  # the first import decides; see the docstring
        return run_entry(path, entry, x)


def torch_outputs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The reference: ``model`` on ``x`` without gradients, as float32 numpy."""
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.require(x, requirements=["C", "W"]))).float().numpy()


def model_entry(art: Artifact, precision: Precision, layout: str | None,
                options: Mapping[str, Any] | None = None) -> ModelEntry:
    """The manifest entry for an artifact (file names relative to the bundle root); ``layout``
    (images) is written onto the first input."""
    inputs = art.inputs
    if layout is not None and inputs:
        inputs = (dataclasses.replace(inputs[0], layout=layout), *inputs[1:])
    return ModelEntry(
        id=f"{art.format.value}-{precision.value}",
        format=art.format,
        precision=precision,
        files=tuple(f.name for f in art.files),
        inputs=inputs,
        outputs=art.outputs,
        options=dict(options or {}),
    )


def add_files(files: dict[str, Path], new: Iterable[Path]) -> None:
    """Collect model files by bundle file name; two models must never write the same name."""
    for f in new:
        if f.name in files:
            raise RuntimeError(f"two models produced the same file name {f.name}")
        files[f.name] = f


@dataclasses.dataclass(frozen=True)
class GatedFp32:
    """One FP32 artifact that passed its parity gate: its files, its manifest entry (parity figures
    in ``fidelity``) and its outputs on the parity inputs."""

    exported: ExportedModel
    entry: ModelEntry
    outputs: np.ndarray


def export_gated_fp32(model: torch.nn.Module, row: ExportFormat, example: torch.Tensor,
                      x: np.ndarray, reference: np.ndarray, *, layout: str | None, out_dir: Path,
                      atol: float, min_cosine: float, inputs_note: str) -> GatedFp32:
    """Export ``model`` to ``row``'s format, run it on ``x`` through the run-side engine and gate
    it against ``reference`` (torch on ``x``); raises ``GateError`` with the figures on a miss."""
    from hai_edge.export.formats import export_fp32

    exported = export_fp32(model, example, row.format, out_dir)
    entry = model_entry(exported, Precision.FP32, layout, exported.options)
    y = run_quiet(exported.main_file, entry, x)
    report = check_parity(reference, y, fmt=row.format, atol=atol, min_cosine=min_cosine)
    gate(report)
    fidelity = {"parity": report.to_dict(), "parity_inputs": inputs_note}
    return GatedFp32(exported, dataclasses.replace(entry, fidelity=fidelity), y)


def bundle_fidelity(outputs: Mapping[str, np.ndarray], atol: float, min_cosine: float, n: int,
                    inputs_note: str) -> dict[str, Any]:
    """Bundle-level summary: the gate that every FP32 model passed and cross-engine agreement."""
    names = sorted(outputs)
    cross = [
        float(np.min(cosine_rows(outputs[a], outputs[b])))
        for i, a in enumerate(names) for b in names[i + 1:]
    ]
    return {
        "fp32_parity_gate": {
            "reference": "torch-fp32", "atol": atol, "min_cosine": min_cosine, "n": n,
            "inputs": inputs_note, "passed": True, "formats": names,
        },
        "fp32_cross_engine_min_cosine": min(cross) if cross else 1.0,
    }


def model_provenance(model: torch.nn.Module, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's provenance plus tool versions and the student's class and size (the caller's
    values win), JSON-ready."""
    prov = dict(given or {})
    tools = {}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            tools[dist] = version(dist)
        except PackageNotFoundError:
            continue
    prov["tool_versions"] = {**tools, **dict(prov.get("tool_versions") or {})}
    params = sum(int(p.numel()) for p in model.parameters())
    student = {"arch": type(model).__name__, "params": params}
    prov["student"] = {**student, **dict(prov.get("student") or {})}
    return jsonable(prov)


def jsonable(obj: Any) -> Any:
    """Provenance goes into JSON: keep plain types, stringify the rest (e.g. Paths)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)

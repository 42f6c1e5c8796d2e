"""Export a student to every requested format, prove each file matches torch, write one bundle.

Each artifact is checked *through the run-side backend* (``hai_edge.runtime.backends``) with the
exact ``ModelEntry`` that goes into the manifest, so a wrong tensor name, layout or batch handling
fails here, at build time, instead of on a clinic device. Nothing is written unless every format
passes the gate; the bundle itself is written atomically by ``write_bundle``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle import Bundle, Manifest, Modality, ModelEntry, ModelFormat, Precision, write_bundle
from hai_edge.errors import BundleError
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.export.parity import ParityReport, check_parity, cosine_rows, gate

if TYPE_CHECKING:
    import torch

    from hai_edge.export.formats import ExportedModel

__all__ = ["TOOL_DISTRIBUTIONS", "build_fp32_bundle", "run_entry", "synthetic_inputs"]

TOOL_DISTRIBUTIONS = (
    "torch", "onnx", "onnxscript", "onnxruntime", "openvino", "litert-torch", "ai-edge-litert",
    "numpy",
)
DEFAULT_PARITY_SEED = 0


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


def build_fp32_bundle(
    model: torch.nn.Module,
    spec: AudioFrontendSpec | ImageFrontendSpec,
    dest: Path,
    *,
    name: str,
    formats: Sequence[str] = ("onnx", "openvino", "tflite"),
    parity_inputs: np.ndarray | None = None,
    provenance: Mapping[str, Any] | None = None,
    notices: Sequence[str] = (),
    overwrite: bool = False,
    atol: float = 1e-4,
    min_cosine: float = 0.9999,
) -> Bundle:
    """Export ``model`` (front-end output [N, *spec.input_shape()] -> [N, dim]) to ``formats``,
    gate each artifact against torch on ``parity_inputs`` (default: ``synthetic_inputs`` of 8),
    and write the bundle at ``dest``. Raises ``GateError`` (nothing written) if any format fails.
    """
    import torch

    from hai_edge.export.formats import export_fp32, resolve_format

    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest}: already exists (pass overwrite to replace it)")
    rows = [resolve_format(f) for f in formats]
    if not rows:
        raise ValueError("build_fp32_bundle needs at least one format")
    if len({r.name for r in rows}) != len(rows):
        raise ValueError(f"duplicate formats in {list(formats)}")
    for row in rows:  # fail before any slow export if a converter is missing
        row.load_exporter()
    if isinstance(spec, AudioFrontendSpec):
        modality, layout = Modality.AUDIO, None
    elif isinstance(spec, ImageFrontendSpec):
        modality, layout = Modality.IMAGE, spec.layout
    else:
        raise TypeError(f"spec must be an AudioFrontendSpec or ImageFrontendSpec, not {type(spec)}")
    input_shape = tuple(spec.input_shape())
    if parity_inputs is None:
        x = synthetic_inputs(input_shape)
        inputs_note = f"synthetic_inputs(n=8, seed={DEFAULT_PARITY_SEED})"
    else:
        x = np.ascontiguousarray(parity_inputs, dtype=np.float32)
        inputs_note = "caller-provided"
        if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape or len(x) == 0:
            raise ValueError(
                f"parity_inputs must be [N, {', '.join(map(str, input_shape))}] for this "
                f"front end, got {list(x.shape)}"
            )

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model must return one tensor [N, dim], not {type(out).__name__}")
        ref = out.detach().cpu().float().numpy()
        if ref.ndim != 2 or len(ref) != len(x):
            raise ValueError(f"the model must return [N, dim]; got {list(ref.shape)}, N={len(x)}")
        dim = int(ref.shape[1])
        example = torch.from_numpy(x[:2].copy())

        entries: list[ModelEntry] = []
        files: dict[str, Path] = {}
        outputs: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="hai-edge-fp32-") as tmp:
            for row in rows:
                exported = export_fp32(model, example, row.format, Path(tmp) / row.name)
                entry = _entry_for(exported, layout)
                y = _run_checked(exported, entry, x)
                report = check_parity(ref, y, fmt=row.format, atol=atol, min_cosine=min_cosine)
                gate(report)
                entries.append(dataclasses.replace(entry, fidelity=_fidelity(report, inputs_note)))
                for f in exported.files:
                    if f.name in files:
                        raise RuntimeError(f"two formats produced the same file name {f.name}")
                    files[f.name] = f
                outputs[row.name] = y

            manifest = Manifest(
                name=name,
                modality=modality,
                preprocessing=spec,
                embedding_dim=dim,
                models=tuple(entries),
                provenance=_provenance(model, provenance),
                fidelity=_bundle_fidelity(outputs, atol, min_cosine, len(x), inputs_note),
                notices=tuple(notices),
            )
            return write_bundle(dest, manifest, files, overwrite=overwrite)
    finally:
        model.train(was_training)


def _entry_for(exported: ExportedModel, layout: str | None) -> ModelEntry:
    """The manifest entry for an exported artifact (file names relative to the bundle root)."""
    inputs = exported.inputs
    if layout is not None and inputs:
        inputs = (dataclasses.replace(inputs[0], layout=layout), *inputs[1:])
    return ModelEntry(
        id=f"{exported.format.value}-{Precision.FP32.value}",
        format=exported.format,
        precision=Precision.FP32,
        files=tuple(f.name for f in exported.files),
        inputs=inputs,
        outputs=exported.outputs,
        options=dict(exported.options),
    )


def _run_checked(exported: ExportedModel, entry: ModelEntry, x: np.ndarray) -> np.ndarray:
    """``run_entry`` with the engines' telemetry declined and their log chatter captured.

    onnxruntime >= 1.2x ships 1DS telemetry that, on ``import onnxruntime``, creates
    ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}``; the variable
    ``ORT_DISABLE_TELEMETRY=1`` prevents that, but only if set before the first import in the
    process (verified with ``HOME`` pointed at an empty directory). OpenVINO: see
    ``formats/openvino.py``.
    """
    from hai_edge.export.formats import env_override, quiet

    with quiet():
        if exported.format is ModelFormat.OPENVINO:
            from hai_edge.export.formats.openvino import no_telemetry

            with no_telemetry():
                return run_entry(exported.main_file, entry, x)
        if exported.format is ModelFormat.ONNX:
            with env_override({"ORT_DISABLE_TELEMETRY": "1"}):
                import onnxruntime  # noqa: F401  (first import decides; see docstring)

                return run_entry(exported.main_file, entry, x)
        return run_entry(exported.main_file, entry, x)


def _fidelity(report: ParityReport, inputs_note: str) -> dict[str, Any]:
    return {"parity": report.to_dict(), "parity_inputs": inputs_note}


def _bundle_fidelity(outputs: Mapping[str, np.ndarray], atol: float, min_cosine: float, n: int,
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


def _provenance(model: torch.nn.Module, given: Mapping[str, Any] | None) -> dict[str, Any]:
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
    return _jsonable(prov)


def _jsonable(obj: Any) -> Any:
    """Provenance goes into JSON: keep plain types, stringify the rest (e.g. Paths)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


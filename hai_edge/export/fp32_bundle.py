"""An FP32-only bundle: export a student to every requested format, prove each file matches
torch, write one bundle (the quick path for tests and demos; ``build_bundle`` adds INT8).

It is ``build_bundle``'s FP32 half with seeded synthetic parity inputs instead of held-out data and
no golden vectors: both use the same steps (``hai_edge.export.steps``). Nothing is written unless
every format passes the gate; the bundle itself is written atomically by ``write_bundle``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle import Bundle, Manifest, ModelEntry, write_bundle
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.errors import BundleError
from hai_edge.export.steps import (
    DEFAULT_PARITY_SEED,
    TOOL_DISTRIBUTIONS,
    add_files,
    bundle_fidelity,
    export_gated_fp32,
    frontend_modality,
    model_provenance,
    run_entry,
    synthetic_inputs,
)

if TYPE_CHECKING:
    import torch

__all__ = ["TOOL_DISTRIBUTIONS", "build_fp32_bundle", "run_entry", "synthetic_inputs"]


def _parity_inputs(parity_inputs: np.ndarray | None, input_shape: tuple[int, ...]
                   ) -> tuple[np.ndarray, str]:
    if parity_inputs is None:
        return (synthetic_inputs(input_shape),
                f"synthetic_inputs(n=8, seed={DEFAULT_PARITY_SEED})")
    x = np.ascontiguousarray(parity_inputs, dtype=np.float32)
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape or len(x) == 0:
        raise ValueError(
            f"parity_inputs must be [N, {', '.join(map(str, input_shape))}] for this "
            f"front end, got {list(x.shape)}"
        )
    return x, "caller-provided"


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

    from hai_edge.export.formats import resolve_format

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
    modality, layout = frontend_modality(spec)
    x, inputs_note = _parity_inputs(parity_inputs, tuple(spec.input_shape()))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(np.require(x, requirements=["C", "W"])))  # memmaps: read-only
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model must return one tensor [N, dim], not {type(out).__name__}")
        ref = out.detach().cpu().float().numpy()
        if ref.ndim != 2 or len(ref) != len(x):
            raise ValueError(f"the model must return [N, dim]; got {list(ref.shape)}, N={len(x)}")
        example = torch.from_numpy(x[:2].copy())

        entries: list[ModelEntry] = []
        files: dict[str, Path] = {}
        outputs: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="hai-edge-fp32-") as tmp:
            for row in rows:
                done = export_gated_fp32(model, row, example, x, ref, layout=layout,
                                         out_dir=Path(tmp) / row.name, atol=atol,
                                         min_cosine=min_cosine, inputs_note=inputs_note)
                entries.append(done.entry)
                add_files(files, done.exported.files)
                outputs[row.name] = done.outputs

            manifest = Manifest(
                name=name,
                modality=modality,
                preprocessing=spec,
                embedding_dim=int(ref.shape[1]),
                models=tuple(entries),
                provenance=model_provenance(model, provenance),
                fidelity=bundle_fidelity(outputs, atol, min_cosine, len(x), inputs_note),
                notices=tuple(notices),
            )
            return write_bundle(dest, manifest, files, overwrite=overwrite)
    finally:
        model.train(was_training)

"""Re-derive an existing bundle's OpenVINO INT8 model from its ONNX INT8 model (issue #18).

New exports do this inside the quantization ladder (``Recipe.SHARED_ONNX``). A bundle exported
before that carries NNCF's own OpenVINO quantization, whose embeddings differ from onnxruntime's
by ~3 % in one direction, enough to change head verdicts between engines. This rewrites such a
bundle without the FP32 student: OpenVINO converts the bundle's own ``model_int8.onnx`` (so both
engines run one quantization), the OpenVINO entry records how it was made and its measured
agreement with the ONNX INT8 model (and with the torch FP32 reference outputs stored in
golden.json), and golden.json gets the new model's outputs. Everything else is kept; the result
is a NEW, unsigned bundle (sign it afterwards: ``hai_edge.bundle.signing``).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import Bundle, ModelFormat, Precision, write_bundle
from hai_edge.errors import BundleError
from hai_edge.evaluation.metrics import cosine_rows
from hai_edge.export.golden import tolerance_for
from hai_edge.export.steps import run_quiet
from hai_edge.quantize import QuantizedArtifact, get_backend
from hai_edge.runtime.verify import (
    GOLDEN_NAME,
    decode_array,
    encode_array,
    golden_model_inputs,
    load_golden,
)

__all__ = ["share_onnx_int8_with_openvino"]


def _entry(bundle: Bundle, fmt: ModelFormat) -> Any:
    for e in bundle.manifest.models:
        if e.format is fmt and e.precision is Precision.INT8:
            return e
    raise BundleError(f"{bundle.root}: no {fmt.value} INT8 model")


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = cosine_rows(a, b)
    return {"n": int(len(a)), "mean_cosine": round(float(np.mean(cos)), 6),
            "min_cosine": round(float(np.min(cos)), 6),
            "max_abs_diff": round(float(np.max(np.abs(a - b))), 6)}


def _bundle_fidelity(bundle: Bundle, models: tuple[Any, ...], paths: dict[str, Path],
                     inputs: np.ndarray | None, note: str) -> dict[str, Any]:
    """The manifest's bundle-level figures with the OpenVINO model's rows remeasured: the INT8
    gate row names the shared quantization, the cross-format table is measured anew (every
    INT8 model on ``inputs``)."""
    from hai_edge.quantize.gates import cross_format_agreement

    fid = json.loads(json.dumps(bundle.manifest.fidelity))
    gate = (fid.get("int8_gate") or {}).get("formats") or {}
    if "openvino" in gate and "onnx" in gate:
        gate["openvino"] = {**gate["onnx"], "recipe": "shared_onnx",
                            "note": "OpenVINO compiles the ONNX INT8 model (figures: onnx's)"}
    cross = fid.get("int8_cross_format")
    if cross is not None and inputs is not None:
        outs = {e.format.value: run_quiet(paths.get(e.id, bundle.root / e.main_file), e, inputs)
                for e in models if e.precision is Precision.INT8}
        fid["int8_cross_format"] = {**cross_format_agreement(outs, float(cross["threshold"])),
                                    "inputs": note, "remeasured": "after the OpenVINO model "
                                    "was compiled from the ONNX INT8 model"}
    return fid


def share_onnx_int8_with_openvino(bundle: Bundle, dest: str | Path, *,
                                  inputs: np.ndarray | None = None, inputs_note: str = "",
                                  overwrite: bool = False) -> Bundle:
    """A new bundle at ``dest`` whose OpenVINO INT8 model is OpenVINO's conversion of the
    bundle's ONNX INT8 model. ``inputs`` (model inputs, e.g. held-out windows or photos) add an
    agreement figure on real data besides the golden items."""
    bundle.verify()
    onnx_e, ov_e = _entry(bundle, ModelFormat.ONNX), _entry(bundle, ModelFormat.OPENVINO)
    doc = load_golden(bundle)
    x_golden, _ = golden_model_inputs(bundle, doc)
    with tempfile.TemporaryDirectory(prefix="hai-edge-share-") as tmp:
        onnx_art = QuantizedArtifact(
            format=ModelFormat.ONNX, files=[bundle.root / onnx_e.main_file], inputs=onnx_e.inputs,
            outputs=onnx_e.outputs, options=dict(onnx_e.options), excluded=tuple(
                onnx_e.options.get("excluded_ops", ())), frontend_ops=(),
            frontend_float=True, reference=bundle.root / onnx_e.main_file)
        art = get_backend(ModelFormat.OPENVINO).from_shared_int8(
            onnx_art, bundle.root / onnx_e.main_file, Path(tmp), Path(ov_e.main_file).stem)
        new_e = dataclasses.replace(ov_e, files=tuple(p.name for p in art.files))
        main = Path(tmp) / new_e.main_file
        figures: dict[str, Any] = {}
        for note, x in (("golden items", x_golden), (inputs_note or "caller inputs", inputs)):
            if x is None:
                continue
            got = run_quiet(main, new_e, x)
            ref8 = run_quiet(bundle.root / onnx_e.main_file, onnx_e, x)
            figures[note] = {"vs_onnx_int8": _agreement(got, ref8)}
        golden_out = run_quiet(main, new_e, x_golden)
        ref = (decode_array(doc["reference"]["outputs"], "golden reference").reshape(
            len(golden_out), -1) if "reference" in doc else None)
        if ref is not None:
            figures["golden items"]["vs_torch_fp32"] = _agreement(golden_out, ref)
        options = {**{k: v for k, v in ov_e.options.items()
                      if k in ("calibration_samples", "calibration_hash", "frontend")},
                   **art.options, "recipe": "shared_onnx",
                   "replaced": {"recipe": ov_e.options.get("recipe"),
                                "tool": ov_e.options.get("tool")}}
        fidelity = {"shared_with": onnx_e.id, "agreement": figures,
                    "note": "compiled from the ONNX INT8 model after export: its INT8-vs-FP32 "
                            f"figures are the ONNX model's ({onnx_e.id})",
                    "previous": {k: ov_e.fidelity.get(k) for k in ("mean_cosine", "p5_cosine")}}
        new_e = dataclasses.replace(new_e, options=options, fidelity=fidelity)
        models = doc.get("models") or {}
        models[ov_e.id] = {"outputs": encode_array(golden_out),
                           "tolerance": tolerance_for(new_e, golden_out, ref)}
        doc = {**doc, "models": models}
        files: dict[str, Any] = {n: bundle.root / n for n in bundle.manifest.files
                                 if n not in ov_e.files}
        files.update({p.name: p for p in art.files})
        files[GOLDEN_NAME] = (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")
        models_new = tuple(new_e if e.id == ov_e.id else e for e in bundle.manifest.models)
        bundle_fid = _bundle_fidelity(bundle, models_new, {ov_e.id: main}, inputs, inputs_note)
        manifest = dataclasses.replace(bundle.manifest, files={}, created="", models=models_new,
                                       fidelity=bundle_fid)
        return write_bundle(dest, manifest, files, overwrite=overwrite)

"""Make an existing bundle's INT8 engines agree, without its FP32 student (issue #18).

New exports do both steps themselves: the ONNX quantizer keeps the embedding output float
(``quantize.onnx.float_graph_outputs``) and OpenVINO compiles the ONNX INT8 model
(``Recipe.SHARED_ONNX``). A bundle exported before that has an ONNX model whose embedding comes
out on an 8-bit grid (~2 % relative noise that the other engines do not add) and an OpenVINO model
quantized separately by NNCF (~3 % off onnxruntime in one direction): enough to change head
verdicts between engines. ``align_int8_engines`` rewrites such a bundle: the ONNX INT8 model with
its output quantization dropped, OpenVINO's conversion of that model, both entries recording how
they were made and their measured agreement (with the previous models, with each other, with the
torch FP32 outputs stored in golden.json), golden.json updated. The TFLite model and everything
else are kept. The result is a NEW, unsigned bundle (sign it afterwards: ``bundle.signing``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import Bundle, ModelEntry, ModelFormat, Precision, write_bundle
from hai_edge.errors import BundleError
from hai_edge.evaluation.metrics import cosine_rows
from hai_edge.export.golden import tolerance_for
from hai_edge.export.steps import run_quiet
from hai_edge.quantize import QuantizedArtifact, get_backend
from hai_edge.quantize.onnx import float_graph_outputs
from hai_edge.runtime.verify import (
    GOLDEN_NAME,
    decode_array,
    encode_array,
    golden_model_inputs,
    load_golden,
)

__all__ = ["align_int8_engines"]

# the INT8-vs-FP32 gate figures an INT8 entry carries; the OpenVINO model compiled from the ONNX
# model runs its quantization, so it repeats them (and says so in "note")
_GATE_KEYS = ("mean_cosine", "p5_cosine", "min_cosine", "centred_mean_cosine", "passed",
              "int8_vs_fp32", "gate")


def _entry(bundle: Bundle, fmt: ModelFormat) -> ModelEntry:
    for e in bundle.manifest.models:
        if e.format is fmt and e.precision is Precision.INT8:
            return e
    raise BundleError(f"{bundle.root}: no {fmt.value} INT8 model")


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = cosine_rows(a, b)
    return {"n": int(len(a)), "mean_cosine": round(float(np.mean(cos)), 7),
            "min_cosine": round(float(np.min(cos)), 7),
            "max_abs_diff": round(float(np.max(np.abs(a - b))), 6)}


class _Outputs:
    """Each model's outputs on each named input set, run once through its engine: the same
    outputs feed several agreement figures, golden.json and the cross-format table."""

    def __init__(self, sets: dict[str, np.ndarray]) -> None:
        self.sets = sets
        self._done: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, model: tuple[Path, ModelEntry], set_name: str) -> np.ndarray:
        key = (str(model[0]), set_name)
        if key not in self._done:
            self._done[key] = run_quiet(model[0], model[1], self.sets[set_name])
        return self._done[key]


def _figures(new: tuple[Path, ModelEntry], others: dict[str, tuple[Path, ModelEntry]],
             outputs: _Outputs, ref: np.ndarray | None) -> dict[str, Any]:
    """Agreement of the new model with each other model (and the FP32 reference on golden)."""
    out: dict[str, Any] = {}
    for note in outputs.sets:
        got = outputs(new, note)
        out[note] = {f"vs_{k}": _agreement(got, outputs(m, note)) for k, m in others.items()}
        if ref is not None and note == "golden items":
            out[note]["vs_torch_fp32"] = _agreement(got, ref)
    return out


def _bundle_fidelity(bundle: Bundle, models: dict[str, tuple[Path, ModelEntry]],
                     outputs: _Outputs, note: str | None) -> dict[str, Any]:
    """Bundle-level figures with the rewritten models' rows remeasured."""
    from hai_edge.quantize.gates import cross_format_agreement

    fid = json.loads(json.dumps(bundle.manifest.fidelity))
    gate = (fid.get("int8_gate") or {}).get("formats") or {}
    if "openvino" in gate and "onnx" in gate:
        gate["openvino"] = {**gate["onnx"], "recipe": "shared_onnx",
                            "note": "OpenVINO compiles the ONNX INT8 model (figures: onnx's)"}
    cross = fid.get("int8_cross_format")
    if cross is not None and note is not None:
        outs = {m[1].format.value: outputs(m, note) for m in models.values()}
        fid["int8_cross_format"] = {**cross_format_agreement(outs, float(cross["threshold"])),
                                    "inputs": note, "remeasured": "after align_int8_engines"}
    return fid


def align_int8_engines(bundle: Bundle, dest: str | Path, *, inputs: np.ndarray | None = None,
                       inputs_note: str = "", overwrite: bool = False) -> Bundle:
    """A new bundle at ``dest``: float embedding output in the ONNX INT8 model, OpenVINO INT8
    compiled from it. ``inputs`` (model inputs: held-out windows or photos) add agreement
    figures on real data besides the golden items."""
    bundle.verify()
    onnx_e, ov_e = _entry(bundle, ModelFormat.ONNX), _entry(bundle, ModelFormat.OPENVINO)
    int8 = {e.id: (bundle.root / e.main_file, e) for e in bundle.manifest.models
            if e.precision is Precision.INT8}
    doc = load_golden(bundle)
    x_golden, _ = golden_model_inputs(bundle, doc)
    note = None if inputs is None else inputs_note or "caller inputs"
    outputs = _Outputs({"golden items": x_golden, **({note: inputs} if note else {})})
    ref = (decode_array(doc["reference"]["outputs"], "golden reference").reshape(
        len(x_golden), -1) if "reference" in doc else None)
    with tempfile.TemporaryDirectory(prefix="hai-edge-align-") as tmp_name:
        tmp = Path(tmp_name)
        onnx_path = tmp / onnx_e.main_file
        shutil.copyfile(bundle.root / onnx_e.main_file, onnx_path)
        dropped = float_graph_outputs(onnx_path)
        new_onnx = dataclasses.replace(
            onnx_e, options={**onnx_e.options, "float_outputs": dropped})
        new_onnx = dataclasses.replace(new_onnx, fidelity={
            **onnx_e.fidelity, "aligned": {
                "change": f"{dropped} output QuantizeLinear/DequantizeLinear pair(s) dropped: "
                          "the embedding comes out of the INT8 network in float",
                "agreement": _figures((onnx_path, new_onnx), {"previous": int8[onnx_e.id]},
                                      outputs, ref)}})
        art = get_backend(ModelFormat.OPENVINO).from_shared_int8(
            QuantizedArtifact(format=ModelFormat.ONNX, files=[onnx_path], inputs=onnx_e.inputs,
                              outputs=onnx_e.outputs, options=dict(new_onnx.options),
                              excluded=tuple(onnx_e.options.get("excluded_ops", ())),
                              frontend_ops=(), frontend_float=True, reference=onnx_path),
            onnx_path, tmp / "ov", Path(ov_e.main_file).stem)
        new_ov = dataclasses.replace(ov_e, files=tuple(p.name for p in art.files), options={
            **{k: v for k, v in ov_e.options.items()
               if k in ("calibration_samples", "calibration_hash", "frontend")},
            **art.options, "recipe": "shared_onnx",
            "replaced": {"recipe": ov_e.options.get("recipe"), "tool": ov_e.options.get("tool")}})
        ov_path = tmp / "ov" / new_ov.main_file
        new_ov = dataclasses.replace(new_ov, fidelity={
            **{k: onnx_e.fidelity[k] for k in _GATE_KEYS if k in onnx_e.fidelity},
            "shared_with": onnx_e.id,
            "note": "compiled from the ONNX INT8 model after export: its INT8-vs-FP32 figures "
                    f"are the ONNX model's ({onnx_e.id})",
            "previous": {k: ov_e.fidelity.get(k) for k in ("mean_cosine", "p5_cosine")},
            "agreement": _figures((ov_path, new_ov), {"onnx_int8": (onnx_path, new_onnx),
                                                      "previous": int8[ov_e.id]}, outputs, ref)})
        int8[onnx_e.id], int8[ov_e.id] = (onnx_path, new_onnx), (ov_path, new_ov)
        models = dict(doc.get("models") or {})
        for model in (int8[onnx_e.id], int8[ov_e.id]):
            out, entry = outputs(model, "golden items"), model[1]
            models[entry.id] = {"outputs": encode_array(out),
                                "tolerance": tolerance_for(entry, out, ref)}
        doc = {**doc, "models": models}
        files: dict[str, Any] = {n: bundle.root / n for n in bundle.manifest.files
                                 if n not in ov_e.files}
        files[onnx_e.main_file] = onnx_path
        files.update({p.name: p for p in art.files})
        files[GOLDEN_NAME] = (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")
        manifest = dataclasses.replace(
            bundle.manifest, files={}, created="",
            models=tuple({new_onnx.id: new_onnx, new_ov.id: new_ov}.get(e.id, e)
                         for e in bundle.manifest.models),
            fidelity=_bundle_fidelity(bundle, int8, outputs, note))
        return write_bundle(dest, manifest, files, overwrite=overwrite)

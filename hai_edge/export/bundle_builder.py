"""The full export flow: FP32 per format (parity vs torch) -> INT8 per format (one shared
calibration set, fidelity gates on held-out inputs, retry ladder) -> cross-format agreement ->
golden vectors -> NOTICE -> one atomically written bundle with provenance and every figure.

Nothing is written unless every gate passes (or ``allow_degraded`` is given, which is recorded in
the manifest as an explicit override). Each artifact is checked through the run-side engine with
the exact ``ModelEntry`` that goes into the manifest.
"""

from __future__ import annotations

import dataclasses
import enum
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle import Bundle, Manifest, Modality, ModelEntry, ModelFormat, Precision, write_bundle
from hai_edge.errors import BundleError, GateError, HaiEdgeError
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import QuantConfig
from hai_edge.quantize.gates import GateThresholds, compare, cross_format_agreement, head_agreement
from hai_edge.quantize.gates import overlapping_rows
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.export.fp32_bundle import _bundle_fidelity, _entry_for, _jsonable, _provenance, run_entry
from hai_edge.export.parity import check_parity, cosine_rows, gate

if TYPE_CHECKING:
    import torch

__all__ = [
    "HAI_DEF_NOTICE",
    "HAI_DEF_TERMS_URL",
    "BuildOptions",
    "PrecisionChoice",
    "build_bundle",
    "notice_text",
]

HAI_DEF_TERMS_URL = "https://developers.google.com/health-ai-developer-foundations/terms"
HAI_DEF_NOTICE = ("HAI-DEF is provided under and subject to the Health AI Developer Foundations "
                  f"Terms of Use found at {HAI_DEF_TERMS_URL}")
QUANT_DISTRIBUTIONS = ("nncf", "ai-edge-quantizer")
# every bundle distilled from one of the project's reference teachers says so (teachers/_reference)
REFERENCE_NOTICE = "demo, not for clinical use"


class PrecisionChoice(str, enum.Enum):
    FP32 = "fp32"
    INT8 = "int8"
    BOTH = "both"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """What to build and how strictly to gate it."""

    formats: tuple[str, ...] = ("onnx", "openvino", "tflite")
    precision: PrecisionChoice = PrecisionChoice.BOTH
    quant: QuantConfig = QuantConfig()
    thresholds: GateThresholds = GateThresholds()
    allow_degraded: bool = False
    parity_atol: float = 1e-4
    parity_min_cosine: float = 0.9999
    golden_items: int = 3
    n_calibration: int = 64  # synthetic calibration size when no data is given
    n_heldout: int = 32  # synthetic held-out size when no data is given
    device: str | None = None  # device profile id (recorded in provenance)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", PrecisionChoice(self.precision))
        object.__setattr__(self, "formats", tuple(self.formats))


def _teacher_dict(teacher: Any) -> dict[str, Any] | None:
    if teacher is None:
        return None
    d = teacher.to_dict() if hasattr(teacher, "to_dict") else dict(teacher)
    if not d.get("id"):
        raise HaiEdgeError("teacher info needs an 'id' (and a 'licence')")
    d.setdefault("licence", "unknown")
    return {k: v for k, v in d.items() if v not in (None, "")}


def _is_hai_def(teacher: Mapping[str, Any] | None) -> bool:
    return bool(teacher) and str(teacher.get("licence", "")).upper().startswith("HAI-DEF")


def notice_text(teacher: Mapping[str, Any], model_files: Sequence[str], version: str) -> str:
    """The NOTICE a bundle distilled from a HAI-DEF teacher must carry (teachers.md)."""
    files = "\n".join(f"  - {f}" for f in model_files)
    return (
        "NOTICE\n\n"
        f"{HAI_DEF_NOTICE}\n\n"
        "This bundle contains a Model Derivative of HAI-DEF. The model files listed below were "
        f"distilled from outputs of the HAI-DEF model {teacher['id']} and modified: a smaller "
        f"student network was trained on those outputs, then exported and quantized by hai-edge "
        f"{version}. They are not the original HAI-DEF model.\n\n"
        "Use and redistribution of these files are subject to the use restrictions of the Health "
        "AI Developer Foundations Terms of Use (including its prohibited uses), which apply to "
        "every recipient; give each recipient a copy of, or the link to, those terms together "
        "with this NOTICE.\n\n"
        f"Modified files:\n{files}\n"
    )


def _inputs(data: Any, n_default: int, seed: int, spec: Any, what: str) -> tuple[np.ndarray, str]:
    from hai_edge.export.golden import synthetic_model_inputs

    shape = tuple(spec.input_shape())
    if data is None:
        return synthetic_model_inputs(spec, n_default, seed), f"synthetic (n={n_default})"
    if isinstance(data, CalibrationSource):
        x, note = data.as_array(shape), data.description or "caller-provided"
    else:
        x, note = np.ascontiguousarray(data, dtype=np.float32), "caller-provided"
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise HaiEdgeError(f"{what} must be [N, {', '.join(map(str, shape))}] for this front "
                           f"end, got {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise HaiEdgeError(f"{what} contains NaN or infinite values")
    return x, f"{note} (n={len(x)})"


def _run(fmt: ModelFormat, path: Path, entry: ModelEntry, x: np.ndarray) -> np.ndarray:
    """Through the run-side engine (its imports decline telemetry), engine chatter captured."""
    from hai_edge.export.formats import quiet

    with quiet():
        return run_entry(path, entry, x)


def build_bundle(
    model: torch.nn.Module,
    spec: AudioFrontendSpec | ImageFrontendSpec,
    dest: str | Path,
    *,
    name: str,
    options: BuildOptions = BuildOptions(),
    calibration: np.ndarray | CalibrationSource | None = None,
    heldout: np.ndarray | None = None,
    teacher: Any = None,
    teacher_targets: np.ndarray | None = None,
    heads: Sequence[Mapping[str, Any]] = (),
    provenance: Mapping[str, Any] | None = None,
    notices: Sequence[str] = (),
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """Export ``model`` (front-end output [N, *spec.input_shape()] -> [N, dim]) and write the
    bundle at ``dest``. ``calibration`` feeds every quantizer; ``heldout`` (never used for
    calibration; default synthetic) feeds every gate; ``teacher_targets`` are the teacher's
    embeddings of ``heldout`` (adds INT8-vs-teacher figures). Raises ``GateError`` with the
    measured figures when a gate fails; nothing is written then.
    """
    import torch

    from hai_edge.quantize._backend import get_backend
    from hai_edge.quantize._graph import find_frontend_scope
    from hai_edge.quantize.recipes import quantize_with_ladder
    from hai_edge.export.formats import export_fp32, resolve_format
    from hai_edge.export.golden import build_golden, golden_items

    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest}: already exists (pass overwrite to replace it)")
    rows = [resolve_format(f) for f in options.formats]
    if not rows or len({r.name for r in rows}) != len(rows):
        raise HaiEdgeError(f"need distinct formats, got {list(options.formats)}")
    want_fp32 = options.precision in (PrecisionChoice.FP32, PrecisionChoice.BOTH)
    want_int8 = options.precision in (PrecisionChoice.INT8, PrecisionChoice.BOTH)
    for row in rows:  # fail before any slow step if a tool is missing
        row.load_exporter()
        if want_int8:
            get_backend(row.format)
    if isinstance(spec, AudioFrontendSpec):
        modality, layout = Modality.AUDIO, None
    elif isinstance(spec, ImageFrontendSpec):
        modality, layout = Modality.IMAGE, spec.layout
    else:
        raise TypeError(f"spec must be an AudioFrontendSpec or ImageFrontendSpec, not {type(spec)}")

    x_cal, cal_note = _inputs(calibration, options.n_calibration, 11, spec, "calibration data")
    x_held, held_note = _inputs(heldout, options.n_heldout, 12, spec, "held-out data")
    if overlapping_rows(x_cal, x_held):
        raise HaiEdgeError("held-out inputs overlap the calibration inputs; gates need unseen data")
    calib = CalibrationSource.from_array(x_cal, description=cal_note)
    scope = find_frontend_scope(model, options.quant.frontend_scope)
    qcfg = options.quant.replace(frontend_scope=scope)
    teacher_d = _teacher_dict(teacher)
    if teacher_targets is not None and len(teacher_targets) != len(x_held):
        raise HaiEdgeError("teacher_targets must have one row per held-out input")

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(x_held))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x_held):
            raise HaiEdgeError("the model must return one tensor [N, dim]")
        ref = out.float().numpy()
        centre = ref.mean(axis=0)
        example = torch.from_numpy(x_held[:2].copy())
        entries: list[ModelEntry] = []
        paths: dict[str, Path] = {}
        files: dict[str, Path] = {}
        fp32_out: dict[str, np.ndarray] = {}
        int8_out: dict[str, np.ndarray] = {}
        overrides: list[dict[str, Any]] = []
        seconds: dict[str, float] = {}
        int8_summary: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="hai-edge-bundle-") as tmp:
            for row in rows:
                t0 = time.perf_counter()
                say(f"{row.name}: exporting FP32")
                exported = export_fp32(model, example, row.format, Path(tmp) / row.name)
                entry = _entry_for(exported, layout)
                y = _run(row.format, exported.main_file, entry, x_held)
                report = check_parity(ref, y, fmt=row.format, atol=options.parity_atol,
                                      min_cosine=options.parity_min_cosine)
                gate(report)
                fp32_out[row.name] = y
                seconds[f"{row.name}-fp32"] = time.perf_counter() - t0
                if want_fp32:
                    entry = dataclasses.replace(entry, fidelity={
                        "parity": report.to_dict(), "parity_inputs": f"held-out {held_note}"})
                    entries.append(entry)
                    paths[entry.id] = exported.main_file
                    files.update({f.name: f for f in exported.files})
                if not want_int8:
                    continue
                t0 = time.perf_counter()
                say(f"{row.name}: quantizing to INT8 ({len(calib)} calibration inputs)")

                def evaluate(art: Any, x: np.ndarray, _fmt: ModelFormat = row.format) -> np.ndarray:
                    e = _int8_entry(art, layout)
                    return _run(_fmt, art.main_file, e, x)

                ladder = quantize_with_ladder(
                    row.format, exported.main_file, Path(tmp) / row.name / "int8", calib,
                    x_held, ref, evaluate, qcfg, options.thresholds,
                    allow_degraded=options.allow_degraded, centre=centre)
                art = ladder.artifact
                y8 = evaluate(art, x_held)
                int8_out[row.name] = y8
                seconds[f"{row.name}-int8"] = time.perf_counter() - t0
                chosen = ladder.attempts[ladder.chosen]
                rep = ladder.report
                e8 = dataclasses.replace(
                    _int8_entry(art, layout),
                    fidelity={
                        "mean_cosine": rep.mean_cosine, "p5_cosine": rep.p5_cosine,
                        "min_cosine": rep.min_cosine, "centred_mean_cosine": rep.centred_mean_cosine,
                        "passed": rep.passed,
                        "int8_vs_fp32": rep.to_dict(),
                        "gate": {"metric": "mean_cosine", "threshold": rep.threshold,
                                 "inputs": f"held-out {held_note}, disjoint from calibration",
                                 "passed": rep.passed, "degraded_override": ladder.degraded},
                        "recipes_tried": ladder.table(),
                    },
                    options={
                        **art.options,
                        "recipe": chosen.recipe.value,
                        "calibration_samples": len(calib),
                        "calibration_hash": calib.sha256(),
                        "frontend": {"scope": scope, "float": art.frontend_float,
                                     "n_ops": len(art.frontend_ops)},
                        "float_layers": list(chosen.float_layers),
                        "excluded_ops": list(art.excluded),
                        "seconds": round(art.seconds, 2),
                    },
                )
                entries.append(e8)
                paths[e8.id] = art.main_file
                for f in art.files:
                    if f.name in files:
                        raise RuntimeError(f"two models produced the same file name {f.name}")
                    files[f.name] = f
                int8_summary[row.name] = {
                    "mean_cosine": round(rep.mean_cosine, 6), "p5_cosine": round(rep.p5_cosine, 6),
                    "centred_mean_cosine": round(rep.centred_mean_cosine, 6),
                    "recipe": chosen.recipe.value, "passed": rep.passed}
                if ladder.degraded:
                    say(f"{row.name}: INT8 gate FAILED, kept because of --allow-degraded")
                    overrides.append({"override": "allow_degraded", "gate": "int8_vs_fp32",
                                      "model": e8.id, "mean_cosine": round(rep.mean_cosine, 6),
                                      "threshold": rep.threshold})

            fidelity = _bundle_fidelity(fp32_out, options.parity_atol, options.parity_min_cosine,
                                        len(x_held), f"held-out {held_note}")
            if int8_out:
                fidelity["int8_gate"] = {
                    "reference": "torch-fp32", "metric": "mean_cosine",
                    "threshold": options.thresholds.min_mean_cosine,
                    "inputs": f"held-out {held_note}, disjoint from calibration",
                    "calibration": cal_note, "formats": int8_summary,
                    "passed": all(v["passed"] for v in int8_summary.values())}
            if len(int8_out) >= 2:
                cross = cross_format_agreement(int8_out, options.thresholds.min_cross_cosine)
                fidelity["int8_cross_format"] = cross
                if not cross["passed"]:
                    pairs = ", ".join(f"{k} {v['mean_cosine']:.4f}" for k, v in cross["pairs"].items())
                    msg = (f"INT8 cross-format agreement gate failed: worst pair mean cosine "
                           f"{cross['min_pair_mean_cosine']:.4f} < {cross['threshold']} ({pairs})")
                    if not options.allow_degraded:
                        raise GateError(msg, figures=cross)
                    overrides.append({"override": "allow_degraded", "gate": "int8_cross_format",
                                      "min_pair_mean_cosine": cross["min_pair_mean_cosine"],
                                      "threshold": cross["threshold"]})
            if teacher_targets is not None:
                fidelity["teacher"] = _teacher_figures(ref, fp32_out, int8_out, teacher_targets,
                                                       options.thresholds, overrides,
                                                       options.allow_degraded)
            if heads and int8_out:
                fidelity["heads"] = {f"{fmt}-int8": head_agreement(heads, ref, y8s)
                                     for fmt, y8s in int8_out.items()}
                _gate_heads(fidelity["heads"], options.thresholds, overrides,
                            options.allow_degraded)
            fidelity["degraded"] = bool(overrides)
            fidelity["overrides"] = overrides

            say("writing golden vectors")
            items = golden_items(spec, x_held, n=options.golden_items)
            golden_bytes, golden_meta = build_golden(
                spec, items, entries,
                run=lambda e, x: _run(e.format, paths[e.id], e, x),
                reference=lambda x: _torch_out(model, x))
            bundle_files: dict[str, Any] = dict(files)
            bundle_files[golden_meta["file"]] = golden_bytes
            prov = _provenance(model, provenance)
            prov["tool_versions"] = {**prov["tool_versions"], **_quant_tool_versions()}
            prov["calibration_hash"] = calib.sha256()
            prov["calibration"] = {"source": cal_note, "n": len(calib), "sha256": calib.sha256()}
            prov["heldout"] = {"source": held_note, "n": len(x_held),
                               "sha256": CalibrationSource.from_array(x_held).sha256()}
            if want_int8:
                prov["quantization"] = qcfg.to_dict()
            if options.device:
                prov["device_profile"] = options.device
            all_notices = list(notices)
            if teacher_d is not None:
                prov["teacher"] = {**dict(prov.get("teacher") or {}), **teacher_d}
            if str((prov.get("teacher") or {}).get("id", "")).startswith("reference:"):
                all_notices.insert(0, REFERENCE_NOTICE)  # the project's demo teachers
            if _is_hai_def(prov.get("teacher")):
                from hai_edge import __version__

                prov["licence_terms"] = HAI_DEF_TERMS_URL
                model_files = sorted(f for e in entries for f in e.files)
                bundle_files["NOTICE"] = notice_text(prov["teacher"], model_files,
                                                     __version__).encode()
                all_notices += [HAI_DEF_NOTICE,
                                f"Model Derivative distilled from {prov['teacher']['id']} outputs "
                                "and modified (see NOTICE)."]
            if overrides:
                all_notices.append("DEGRADED: exported with --allow-degraded; some fidelity "
                                   "gates failed (see fidelity.overrides)")
            prov["export_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
            prov["export_seconds"]["total"] = round(time.perf_counter() - t_start, 2)
            manifest = Manifest(
                name=name, modality=modality, preprocessing=spec,
                embedding_dim=int(ref.shape[1]), models=tuple(entries),
                heads=tuple(dict(h) for h in heads), provenance=_jsonable(prov),
                fidelity=_jsonable(fidelity), notices=tuple(dict.fromkeys(all_notices)),
                golden=golden_meta,
            )
            say(f"writing bundle {dest}")
            return write_bundle(dest, manifest, bundle_files, overwrite=overwrite)
    finally:
        model.train(was_training)


def _torch_out(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()


def _int8_entry(art: Any, layout: str | None) -> ModelEntry:
    inputs = art.inputs
    if layout is not None and inputs:
        inputs = (dataclasses.replace(inputs[0], layout=layout), *inputs[1:])
    return ModelEntry(id=f"{art.format.value}-{Precision.INT8.value}", format=art.format,
                      precision=Precision.INT8, files=tuple(f.name for f in art.files),
                      inputs=inputs, outputs=art.outputs)


def _quant_tool_versions() -> dict[str, str]:
    from hai_edge.quantize._backend import tool_version

    return {d: tool_version(d) for d in QUANT_DISTRIBUTIONS}


def _teacher_figures(ref: np.ndarray, fp32: Mapping[str, np.ndarray], int8: Mapping[str, np.ndarray],
                     targets: np.ndarray, th: GateThresholds, overrides: list[dict[str, Any]],
                     allow: bool) -> dict[str, Any]:
    """Mean cosine of each model to the teacher's held-out embeddings, and INT8's loss vs FP32."""
    t = np.asarray(targets, dtype=np.float64)
    if t.shape != ref.shape:
        return {"skipped": f"teacher targets {list(t.shape)} do not match outputs {list(ref.shape)}"}
    base = float(np.mean(cosine_rows(ref, t)))
    per = {f"{k}-fp32": float(np.mean(cosine_rows(v, t))) for k, v in fp32.items()}
    per.update({f"{k}-int8": float(np.mean(cosine_rows(v, t))) for k, v in int8.items()})
    drops = {f"{k}-int8": round(base - per[f"{k}-int8"], 6) for k in int8}
    out = {"torch_fp32_mean_cosine": round(base, 6),
           "mean_cosine": {k: round(v, 6) for k, v in per.items()},
           "int8_cosine_drop": drops, "max_drop": th.max_teacher_cosine_drop}
    if th.max_teacher_cosine_drop is not None:
        bad = {k: d for k, d in drops.items() if d > th.max_teacher_cosine_drop}
        if bad and not allow:
            raise GateError(f"INT8-vs-teacher gate failed: cosine drop {bad} > "
                            f"{th.max_teacher_cosine_drop}", figures=out)
        if bad:
            overrides.append({"override": "allow_degraded", "gate": "int8_vs_teacher", **bad})
    return out


def _gate_heads(figs: Mapping[str, list[dict[str, Any]]], th: GateThresholds,
                overrides: list[dict[str, Any]], allow: bool) -> None:
    if th.min_head_agreement is None:
        return
    bad = {f"{m}/{h['head']}": h["decision_agreement"] for m, hs in figs.items() for h in hs
           if "decision_agreement" in h and h["decision_agreement"] < th.min_head_agreement}
    if bad and not allow:
        raise GateError(f"head agreement gate failed: {bad} < {th.min_head_agreement}",
                        figures=dict(figs))
    if bad:
        overrides.append({"override": "allow_degraded", "gate": "head_agreement", **bad})

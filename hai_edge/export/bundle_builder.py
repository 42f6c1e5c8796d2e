"""The full export flow: FP32 per format (parity vs torch) -> INT8 per format (one shared
calibration set, fidelity gates on held-out inputs, retry ladder) -> cross-format agreement ->
golden vectors -> NOTICE -> one atomically written bundle with provenance and every figure.

Nothing is written unless every gate passes (or ``allow_degraded`` is given, which is recorded in
the manifest as an explicit override). Each artifact is checked through the run-side engine with
the exact ``ModelEntry`` that goes into the manifest (``hai_edge.export.steps``, shared with the
FP32-only ``build_fp32_bundle``).
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

from hai_edge.bundle import (
    Bundle,
    Manifest,
    Modality,
    ModelEntry,
    ModelFormat,
    Precision,
    write_bundle,
)
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.errors import BundleError, HaiEdgeError
from hai_edge.export.bundle_gates import (
    cross_format_gate,
    decision_accept,
    gate_heads,
    teacher_figures,
)
from hai_edge.export.notice import (
    HAI_DEF_NOTICE,
    HAI_DEF_TERMS_URL,
    REFERENCE_NOTICE,
    licence_notices,
    notice_text,
    teacher_dict,
)
from hai_edge.export.steps import (
    add_files,
    bundle_fidelity,
    export_gated_fp32,
    frontend_modality,
    jsonable,
    model_entry,
    model_provenance,
    run_quiet,
    torch_outputs,
)
from hai_edge.quantize import CalibrationSource, QuantConfig, find_frontend_scope, get_backend
from hai_edge.quantize import tool_version
from hai_edge.quantize.gates import GateThresholds, head_agreement, overlapping_rows

if TYPE_CHECKING:
    import torch

    from hai_edge.export.formats import ExportFormat
    from hai_edge.quantize import QuantizedArtifact
    from hai_edge.quantize.recipes import LadderResult

__all__ = [
    "HAI_DEF_NOTICE",
    "HAI_DEF_TERMS_URL",
    "QUANT_DISTRIBUTIONS",
    "REFERENCE_NOTICE",
    "BuildOptions",
    "PrecisionChoice",
    "build_bundle",
    "notice_text",
]

QUANT_DISTRIBUTIONS = ("nncf", "ai-edge-quantizer")


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
    # OpenVINO INT8 = OpenVINO's compilation of the ONNX INT8 model when both are built (one
    # quantization, so the engines' decisions agree; issue #18); False: NNCF quantizes its own
    openvino_shares_onnx_int8: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", PrecisionChoice(self.precision))
        object.__setattr__(self, "formats", tuple(self.formats))


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
    """Everything decided and checked before the first (slow) export."""

    rows: tuple[ExportFormat, ...]
    modality: Modality
    layout: str | None
    want_fp32: bool
    want_int8: bool
    calib: CalibrationSource
    cal_note: str
    x_held: np.ndarray
    held_note: str
    scope: str | None
    qcfg: QuantConfig
    teacher: dict[str, Any] | None
    heads: tuple[Mapping[str, Any], ...] = ()  # the run's heads: their decisions are gated too


@dataclasses.dataclass
class _Collected:
    """What the per-format steps accumulate for the manifest."""

    entries: list[ModelEntry] = dataclasses.field(default_factory=list)
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)  # entry id -> main file
    files: dict[str, Path] = dataclasses.field(default_factory=dict)  # bundle name -> file
    fp32_out: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    int8_out: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    int8_artifacts: dict[str, QuantizedArtifact] = dataclasses.field(default_factory=dict)
    int8_summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    overrides: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


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


def _plan(model: torch.nn.Module, spec: AudioFrontendSpec | ImageFrontendSpec, dest: Path,
          options: BuildOptions, calibration: np.ndarray | CalibrationSource | None,
          heldout: np.ndarray | None, teacher: Any, teacher_targets: np.ndarray | None,
          overwrite: bool) -> _Plan:
    """Check everything that can fail fast, before any slow step."""
    from hai_edge.export.formats import resolve_format

    if dest.exists() and not overwrite:
        raise BundleError(f"{dest}: already exists (pass overwrite to replace it)")
    rows = tuple(resolve_format(f) for f in options.formats)
    if not rows or len({r.name for r in rows}) != len(rows):
        raise HaiEdgeError(f"need distinct formats, got {list(options.formats)}")
    want_fp32 = options.precision in (PrecisionChoice.FP32, PrecisionChoice.BOTH)
    want_int8 = options.precision in (PrecisionChoice.INT8, PrecisionChoice.BOTH)
    for row in rows:  # fail before any slow step if a tool is missing
        row.load_exporter()
        if want_int8:
            get_backend(row.format)
    modality, layout = frontend_modality(spec)
    x_cal, cal_note = _inputs(calibration, options.n_calibration, 11, spec, "calibration data")
    x_held, held_note = _inputs(heldout, options.n_heldout, 12, spec, "held-out data")
    if overlapping_rows(x_cal, x_held):
        raise HaiEdgeError("held-out inputs overlap the calibration inputs; gates need unseen data")
    calib = CalibrationSource.from_array(x_cal, description=cal_note)
    scope = find_frontend_scope(model, options.quant.frontend_scope)
    teacher_d = teacher_dict(teacher)
    if teacher_targets is not None and len(teacher_targets) != len(x_held):
        raise HaiEdgeError("teacher_targets must have one row per held-out input")
    return _Plan(rows=rows, modality=modality, layout=layout, want_fp32=want_fp32,
                 want_int8=want_int8, calib=calib, cal_note=cal_note, x_held=x_held,
                 held_note=held_note, scope=scope,
                 qcfg=options.quant.replace(frontend_scope=scope), teacher=teacher_d)


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

    from hai_edge.export.golden import build_golden, golden_items

    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    dest = Path(dest)
    plan = _plan(model, spec, dest, options, calibration, heldout, teacher, teacher_targets,
                 overwrite)
    plan = dataclasses.replace(plan, heads=tuple(heads))
    was_training = model.training
    model.eval()
    try:
        ref = _reference(model, plan.x_held)
        example = torch.from_numpy(plan.x_held[:2].copy())
        got = _Collected()
        with tempfile.TemporaryDirectory(prefix="hai-edge-bundle-") as tmp:
            for row in plan.rows:
                fp32_path = _add_fp32(model, row, example, plan, ref, options, Path(tmp), got, say)
                if plan.want_int8:
                    _add_int8(row, fp32_path, plan, ref, options, Path(tmp), got, say)
            fidelity = _fidelity(plan, ref, got, options, teacher_targets, heads)

            say("writing golden vectors")
            items = golden_items(spec, plan.x_held, n=options.golden_items)
            golden_bytes, golden_meta = build_golden(
                spec, items, got.entries,
                run=lambda e, x: run_quiet(got.paths[e.id], e, x),
                reference=lambda x: torch_outputs(model, x))
            bundle_files: dict[str, Any] = dict(got.files)
            bundle_files[golden_meta["file"]] = golden_bytes
            prov = _provenance(model, provenance, plan, options)
            said = licence_notices(prov, [f for e in got.entries for f in e.files], notices,
                                   degraded=bool(got.overrides))
            if said.notice_file is not None:
                bundle_files["NOTICE"] = said.notice_file
            prov["export_seconds"] = {k: round(v, 2) for k, v in got.seconds.items()}
            prov["export_seconds"]["total"] = round(time.perf_counter() - t_start, 2)
            manifest = Manifest(
                name=name, modality=plan.modality, preprocessing=spec,
                embedding_dim=int(ref.shape[1]), models=tuple(got.entries),
                heads=tuple(dict(h) for h in heads), provenance=jsonable(prov),
                fidelity=jsonable(fidelity), notices=said.notices, golden=golden_meta,
            )
            say(f"writing bundle {dest}")
            return write_bundle(dest, manifest, bundle_files, overwrite=overwrite)
    finally:
        model.train(was_training)


def _reference(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """torch's output on the held-out inputs: what every artifact is gated against."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.require(x, requirements=["C", "W"])))  # memmaps: read-only
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x):
        raise HaiEdgeError("the model must return one tensor [N, dim]")
    return out.float().numpy()


def _add_fp32(model: torch.nn.Module, row: ExportFormat, example: torch.Tensor, plan: _Plan,
              ref: np.ndarray, options: BuildOptions, tmp: Path, got: _Collected,
              say: Callable[[str], None]) -> Path:
    """Export and gate one FP32 model (needed for INT8 even when not shipped); its main file."""
    t0 = time.perf_counter()
    say(f"{row.name}: exporting FP32")
    done = export_gated_fp32(model, row, example, plan.x_held, ref, layout=plan.layout,
                             out_dir=tmp / row.name, atol=options.parity_atol,
                             min_cosine=options.parity_min_cosine,
                             inputs_note=f"held-out {plan.held_note}")
    got.fp32_out[row.name] = done.outputs
    got.seconds[f"{row.name}-fp32"] = time.perf_counter() - t0
    if plan.want_fp32:
        got.entries.append(done.entry)
        got.paths[done.entry.id] = done.exported.main_file
        add_files(got.files, done.exported.files)
    return done.exported.main_file


def _add_int8(row: ExportFormat, fp32_path: Path, plan: _Plan, ref: np.ndarray,
              options: BuildOptions, tmp: Path, got: _Collected,
              say: Callable[[str], None]) -> None:
    """Quantize one format with the retry ladder, gated on the held-out inputs."""
    from hai_edge.quantize.recipes import quantize_with_ladder

    t0 = time.perf_counter()
    say(f"{row.name}: quantizing to INT8 ({len(plan.calib)} calibration inputs)")

    def evaluate(art: QuantizedArtifact, x: np.ndarray) -> np.ndarray:
        return run_quiet(art.main_file, model_entry(art, Precision.INT8, plan.layout), x)

    shared = (got.int8_artifacts.get("onnx") if row.format is ModelFormat.OPENVINO
              and options.openvino_shares_onnx_int8 else None)
    ladder = quantize_with_ladder(
        row.format, fp32_path, tmp / row.name / "int8", plan.calib, plan.x_held, ref, evaluate,
        plan.qcfg, options.thresholds, allow_degraded=options.allow_degraded,
        centre=ref.mean(axis=0), accept=decision_accept(plan.heads, ref), shared_int8=shared)
    art = ladder.artifact
    got.int8_artifacts[row.name] = art
    got.int8_out[row.name] = ladder.heldout_outputs
    got.seconds[f"{row.name}-int8"] = time.perf_counter() - t0
    e8 = _int8_entry(ladder, plan)
    got.entries.append(e8)
    got.paths[e8.id] = art.main_file
    add_files(got.files, art.files)
    rep = ladder.report
    got.int8_summary[row.name] = {
        "mean_cosine": round(rep.mean_cosine, 6), "p5_cosine": round(rep.p5_cosine, 6),
        "centred_mean_cosine": round(rep.centred_mean_cosine, 6),
        "recipe": ladder.attempts[ladder.chosen].recipe.value, "passed": rep.passed}
    if ladder.degraded:
        say(f"{row.name}: INT8 gate FAILED, kept because of --allow-degraded")
        got.overrides.append({"override": "allow_degraded", "gate": "int8_vs_fp32",
                              "model": e8.id, "mean_cosine": round(rep.mean_cosine, 6),
                              "threshold": rep.threshold})


def _int8_entry(ladder: LadderResult, plan: _Plan) -> ModelEntry:
    """The INT8 model's manifest entry: its gate figures, the ladder's table and its recipe."""
    art, rep = ladder.artifact, ladder.report
    chosen = ladder.attempts[ladder.chosen]
    options = {
        **art.options,
        "recipe": chosen.recipe.value,
        "calibration_samples": len(plan.calib),
        "calibration_hash": plan.calib.sha256(),
        "frontend": {"scope": plan.scope, "float": art.frontend_float,
                     "n_ops": len(art.frontend_ops)},
        "float_layers": list(chosen.float_layers),
        "excluded_ops": list(art.excluded),
        "seconds": round(art.seconds, 2),
    }
    fidelity = {
        "mean_cosine": rep.mean_cosine, "p5_cosine": rep.p5_cosine,
        "min_cosine": rep.min_cosine, "centred_mean_cosine": rep.centred_mean_cosine,
        "passed": rep.passed,
        "int8_vs_fp32": rep.to_dict(),
        "gate": {"metric": "mean_cosine", "threshold": rep.threshold,
                 "inputs": f"held-out {plan.held_note}, disjoint from calibration",
                 "passed": rep.passed, "degraded_override": ladder.degraded},
        "recipes_tried": ladder.table(),
    }
    entry = model_entry(art, Precision.INT8, plan.layout, options)
    return dataclasses.replace(entry, fidelity=fidelity)


def _fidelity(plan: _Plan, ref: np.ndarray, got: _Collected, options: BuildOptions,
              teacher_targets: np.ndarray | None,
              heads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bundle's fidelity section; the bundle-level gates raise here (or record overrides)."""
    th, allow = options.thresholds, options.allow_degraded
    fidelity = bundle_fidelity(got.fp32_out, options.parity_atol, options.parity_min_cosine,
                               len(plan.x_held), f"held-out {plan.held_note}")
    if got.int8_out:
        fidelity["int8_gate"] = {
            "reference": "torch-fp32", "metric": "mean_cosine",
            "threshold": th.min_mean_cosine,
            "inputs": f"held-out {plan.held_note}, disjoint from calibration",
            "calibration": plan.cal_note, "formats": got.int8_summary,
            "passed": all(v["passed"] for v in got.int8_summary.values())}
    if len(got.int8_out) >= 2:
        fidelity["int8_cross_format"] = cross_format_gate(got.int8_out, th, got.overrides, allow)
    if teacher_targets is not None:
        fidelity["teacher"] = teacher_figures(ref, got.fp32_out, got.int8_out, teacher_targets,
                                              th, got.overrides, allow)
    if heads and got.int8_out:
        fidelity["heads"] = {f"{fmt}-int8": [{**h, "n": len(ref)}
                                             for h in head_agreement(heads, ref, y8s)]
                             for fmt, y8s in got.int8_out.items()}
        gate_heads(fidelity["heads"], th, got.overrides, allow)
    fidelity["degraded"] = bool(got.overrides)
    fidelity["overrides"] = got.overrides
    return fidelity


def _provenance(model: torch.nn.Module, given: Mapping[str, Any] | None, plan: _Plan,
                options: BuildOptions) -> dict[str, Any]:
    """Provenance: tools, calibration and held-out data (hashes), quantization, device, teacher."""
    prov = model_provenance(model, given)
    prov["tool_versions"] = {**prov["tool_versions"],
                             **{d: tool_version(d) for d in QUANT_DISTRIBUTIONS}}
    prov["calibration_hash"] = plan.calib.sha256()
    prov["calibration"] = {"source": plan.cal_note, "n": len(plan.calib),
                           "sha256": plan.calib.sha256()}
    prov["heldout"] = {"source": plan.held_note, "n": len(plan.x_held),
                       "sha256": CalibrationSource.from_array(plan.x_held).sha256()}
    if plan.want_int8:
        prov["quantization"] = plan.qcfg.to_dict()
    if options.device:
        prov["device_profile"] = options.device
    if plan.teacher is not None:
        prov["teacher"] = {**dict(prov.get("teacher") or {}), **plan.teacher}
    return prov

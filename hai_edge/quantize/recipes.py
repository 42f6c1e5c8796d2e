"""The retry ladder: quantize, gate on held-out data, and on failure try the next recipe.

Rungs (``Recipe``): SHARED_ONNX (OpenVINO only, given an ONNX INT8 model: OpenVINO compiles it,
so both engines share one quantization) -> DEFAULT (MinMax) -> PERCENTILE calibration ->
KEEP_SENSITIVE: the k layers that add the most error are kept float, for each k of
``QuantConfig.sensitive_k``. Layers are ranked once, from the better calibrated model, by
per-node output error against FP32 on calibration samples (``_graph.rank_sensitive_ops``). No new
rung starts once a format's ladder has run for ``QuantConfig.ladder_budget_s`` (bounds export
time). Every attempt is kept in a table that goes into the manifest. When no rung passes,
``GateError`` carries that table, unless the caller allows a degraded model, which is then
recorded as an explicit override.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import ModelFormat
from hai_edge.errors import GateError, HaiEdgeError
from hai_edge.quantize._backend import QuantizedArtifact, get_backend
from hai_edge.quantize.calibration import CalibrationSource
from hai_edge.quantize.config import CalibrationMethod, QuantConfig, Recipe
from hai_edge.quantize.gates import FidelityReport, GateThresholds, compare

__all__ = ["Attempt", "LadderResult", "format_table", "quantize_with_ladder"]


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One rung tried: what was done and what it measured (or the error it raised)."""

    recipe: Recipe
    calibration: CalibrationMethod
    float_layers: tuple[str, ...]  # layers kept float by this rung (besides the front end)
    n_float_ops: int  # every op kept float, front end included
    report: FidelityReport | None
    seconds: float
    error: str | None = None
    decision: str | None = None  # why the head decision gate refused this rung (None: passed)

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed and not self.decision

    def row(self) -> dict[str, Any]:
        r = self.report
        return {
            "recipe": self.recipe.value,
            "calibration": self.calibration.value,
            "float_layers": list(self.float_layers),
            "n_float_ops": self.n_float_ops,
            "mean_cosine": None if r is None else round(r.mean_cosine, 6),
            "p5_cosine": None if r is None else round(r.p5_cosine, 6),
            "centred_mean_cosine": None if r is None else round(r.centred_mean_cosine, 6),
            "passed": self.passed,
            "seconds": round(self.seconds, 2),
            **({"error": self.error} if self.error else {}),
            **({"decision_gate": self.decision} if self.decision else {}),
        }


@dataclasses.dataclass
class LadderResult:
    artifact: QuantizedArtifact
    report: FidelityReport
    attempts: list[Attempt]
    chosen: int  # index into attempts
    degraded: bool
    heldout_outputs: np.ndarray  # the chosen model's outputs on the held-out inputs

    def table(self) -> list[dict[str, Any]]:
        return [a.row() for a in self.attempts]


def format_table(fmt: str, attempts: list[Attempt]) -> str:
    """Compact text table of the attempts (used in GateError messages)."""
    lines = [f"  {fmt:<9} {'recipe':<15} {'calib':<10} {'float':>5} {'mean':>7} {'p5':>7} "
             f"{'centred':>7}"]
    for a in attempts:
        r = a.report
        figs = (f"{r.mean_cosine:7.4f} {r.p5_cosine:7.4f} {r.centred_mean_cosine:7.4f}"
                if r is not None else f"error: {a.error}")
        lines.append(f"  {'':<9} {a.recipe.value:<15} {a.calibration.value:<10} "
                     f"{a.n_float_ops:>5} {figs}")
    return "\n".join(lines)


def quantize_with_ladder(
    fmt: ModelFormat | str,
    fp32_path: Path,
    work_dir: Path,
    calib: CalibrationSource,
    heldout: np.ndarray,
    reference: np.ndarray,
    evaluate: Callable[[QuantizedArtifact, np.ndarray], np.ndarray],
    config: QuantConfig = QuantConfig(),
    thresholds: GateThresholds = GateThresholds(),
    *,
    allow_degraded: bool = False,
    basename: str = "model_int8",
    centre: np.ndarray | None = None,
    accept: Callable[[np.ndarray], str] | None = None,
    shared_int8: QuantizedArtifact | None = None,
) -> LadderResult:
    """Quantize ``fp32_path`` until the INT8-vs-FP32 gate passes on ``heldout``.

    ``reference`` is the FP32 output for ``heldout``; ``evaluate(artifact, x)`` runs an INT8
    artifact (through the run-side engine) and returns ``[N, dim]``. Each attempt writes into its
    own sub-directory of ``work_dir``. Raises ``GateError`` (the table in message and figures)
    when no rung passes and ``allow_degraded`` is false. ``accept(outputs)`` (the heads'
    decision gate) returns why a rung whose cosines pass must still be refused ("" accepts it),
    so the ladder keeps climbing until the heads' decisions agree too. ``shared_int8`` (the ONNX
    INT8 artifact; OpenVINO only) is the first rung: OpenVINO compiles that model instead of
    quantizing its own.
    """
    fmt = ModelFormat(fmt)
    backend = get_backend(fmt)
    work_dir = Path(work_dir)
    (work_dir / "ranges").mkdir(parents=True, exist_ok=True)
    attempts: list[Attempt] = []
    artifacts: list[QuantizedArtifact | None] = []
    outputs: dict[int, np.ndarray] = {}  # attempt index -> its held-out outputs (for the caller)

    started = time.perf_counter()

    def attempt(recipe: Recipe, cfg: QuantConfig, layers: tuple[str, ...] = ()) -> None:
        t0 = time.perf_counter()
        if attempts and t0 - started > config.ladder_budget_s:
            attempts.append(Attempt(recipe, cfg.calibration, layers, 0, None, 0.0,
                                    error=f"skipped: ladder time budget ({config.ladder_budget_s:.0f} s) "
                                          "used up"))
            artifacts.append(None)
            return
        out = work_dir / f"attempt{len(attempts)}-{recipe.value}"
        shutil.rmtree(out, ignore_errors=True)
        try:
            if recipe is Recipe.SHARED_ONNX:
                art = backend.from_shared_int8(shared_int8, fp32_path, out, basename)
            else:
                art = backend.quantize(fp32_path, out, basename, calib, cfg, exclude=layers,
                                       cache_dir=work_dir / "ranges")
            y = outputs[len(attempts)] = evaluate(art, heldout)
            rep = compare(reference, y, threshold=thresholds.min_mean_cosine, centre=centre,
                          reference_name="fp32", candidate_name=f"{fmt.value}-int8",
                          centred_threshold=thresholds.min_centred_cosine)
            why = accept(y) if accept is not None and rep.passed else ""
            attempts.append(Attempt(recipe, cfg.calibration, layers, len(art.excluded), rep,
                                    time.perf_counter() - t0, decision=why or None))
            artifacts.append(art)
        except HaiEdgeError:
            raise
        except Exception as exc:  # a tool failure on one rung: record it, try the next
            msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            attempts.append(Attempt(recipe, cfg.calibration, layers, 0, None,
                                    time.perf_counter() - t0, error=f"{type(exc).__name__}: {msg}"))
            artifacts.append(None)

    def best(own: bool = False) -> int | None:  # own: among the format's own quantizations
        scored = [(a.report.mean_cosine, i) for i, a in enumerate(attempts) if a.report is not None
                  and not (own and a.recipe is Recipe.SHARED_ONNX)]
        return max(scored)[1] if scored else None

    if shared_int8 is not None and hasattr(backend, "from_shared_int8"):
        attempt(Recipe.SHARED_ONNX, config)
    if not any(a.passed for a in attempts):
        attempt(Recipe.DEFAULT if config.calibration is CalibrationMethod.MINMAX
                else Recipe.PERCENTILE, config)
    if not any(a.passed for a in attempts) and config.calibration is CalibrationMethod.MINMAX:
        attempt(Recipe.PERCENTILE, config.replace(calibration=CalibrationMethod.PERCENTILE))
    if (not any(a.passed for a in attempts) and best(own=True) is not None
            and time.perf_counter() - started <= config.ladder_budget_s):
        i = best(own=True)
        ranked = _rank_layers(backend, artifacts[i], calib, config)  # type: ignore[arg-type]
        cfg = config.replace(calibration=attempts[i].calibration)  # type: ignore[index]
        for k in config.sensitive_k:
            layers = tuple(n for unit, _ in ranked[:k] for n in unit)
            if not layers or (attempts[-1].recipe is Recipe.KEEP_SENSITIVE
                              and attempts[-1].float_layers == layers):
                break
            attempt(Recipe.KEEP_SENSITIVE, cfg, layers)
            if attempts[-1].passed:
                break

    passed = [i for i, a in enumerate(attempts) if a.passed]
    chosen = passed[0] if passed else best()
    if not passed and (not allow_degraded or chosen is None):
        best_rep = None if chosen is None else attempts[chosen].report
        worst = "no attempt ran" if best_rep is None else (
            f"best mean cosine {best_rep.mean_cosine:.4f} (>= {thresholds.min_mean_cosine})"
            + (f", centred {best_rep.centred_mean_cosine:.4f} (>= {thresholds.min_centred_cosine})"
               if thresholds.min_centred_cosine is not None else "")
            + " not met"
            + "".join(f"; {a.recipe.value}: head decision gate: {a.decision}"
                      for a in attempts if a.decision))
        raise GateError(
            f"{fmt.value} INT8 fidelity gate failed on {len(heldout)} held-out inputs: {worst} "
            f"after {len(attempts)} recipe(s) (pass --allow-degraded to keep it anyway)\n"
            + format_table(fmt.value, attempts),
            figures={"format": fmt.value, "threshold": thresholds.min_mean_cosine,
                     "attempts": [a.row() for a in attempts]},
        )
    art = artifacts[chosen]  # type: ignore[index]
    assert art is not None and attempts[chosen].report is not None  # type: ignore[index]
    return LadderResult(art, attempts[chosen].report, attempts, chosen,  # type: ignore[index,arg-type]
                        degraded=not passed, heldout_outputs=outputs[chosen])


def _rank_layers(backend: Any, art: QuantizedArtifact, calib: CalibrationSource,
                 config: QuantConfig) -> list[tuple[tuple[str, ...], float]]:
    """Layers by added error (front-end ops never offered: they are float, or forced INT8)."""
    from hai_edge.quantize._graph import rank_sensitive_ops

    x = calib.as_array()[: config.sensitivity_samples]
    graph = backend.graph(art.reference, config.frontend_scope)
    frontend = set(art.frontend_ops) | set(graph.frontend_ops())
    candidates = [op.name for op in graph.ops if op.name not in frontend]
    try:
        fp = backend.activations(art.reference, x)
        q = backend.activations(art.main_file, x)
    except Exception:  # per-layer comparison unavailable: no ranking, the rung is skipped
        return []
    return [(u, s) for u, s in rank_sensitive_ops(graph, fp, q, candidates=candidates) if s > 0]

"""Bundle-level INT8 gates, applied once every format is quantized: agreement between the INT8
formats, INT8-vs-teacher cosine drop and head decisions (issue #18: for every head and every
INT8 engine x format, against the FP32 student on the held-out inputs, max |score difference|
<= 0.02 and no verdict flip at the head's threshold; ``decision_accept`` also runs inside the
quantization ladder, so a rung whose cosines pass but whose decisions do not is refused and the
safer rungs are tried first).

Each gate raises ``GateError`` with its figures, unless ``allow`` (``--allow-degraded``) is given:
then the failure is appended to ``overrides``, which the manifest records next to the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hai_edge.errors import GateError
from hai_edge.evaluation.decisions import DecisionThresholds
from hai_edge.evaluation.metrics import cosine_rows
from hai_edge.quantize.gates import GateThresholds, cross_format_agreement, head_agreement

__all__ = ["DECISIONS", "cross_format_gate", "decision_accept", "decision_failures_of",
           "gate_heads", "teacher_figures"]

DECISIONS = DecisionThresholds()


def decision_failures_of(figs: list[dict[str, Any]], th: DecisionThresholds = DECISIONS
                         ) -> list[str]:
    """What ``head_agreement`` figures of one model fail, one phrase per head."""
    bad = []
    for h in figs:
        if "max_abs_prob_diff" not in h:
            continue
        n = h.get("n") or 0
        flips = int(round((1.0 - h["decision_agreement"]) * n)) if n else int(
            h["decision_agreement"] < 1.0)
        why = []
        if h["max_abs_prob_diff"] > th.max_abs_score_diff:
            why.append(f"max |score diff| {h['max_abs_prob_diff']:.4f} > "
                       f"{th.max_abs_score_diff}")
        if flips > th.max_flips:
            why.append(f"{flips} verdict flip(s) at threshold {h['threshold']:.4f}")
        if why:
            bad.append(f"head {h['head']}: " + ", ".join(why))
    return bad


def decision_accept(heads: Any, reference: np.ndarray,
                    th: DecisionThresholds = DECISIONS) -> Any:
    """``outputs -> why refused ("" accepted)`` for the quantization ladder; None without
    heads."""
    if not heads:
        return None

    def accept(outputs: np.ndarray) -> str:
        figs = head_agreement(heads, reference, outputs)
        for f in figs:
            f["n"] = len(reference)
        return "; ".join(decision_failures_of(figs, th))

    return accept


def cross_format_gate(int8: Mapping[str, np.ndarray], th: GateThresholds,
                      overrides: list[dict[str, Any]], allow: bool) -> dict[str, Any]:
    """Mean cosine between every pair of INT8 formats on the held-out inputs, gated."""
    cross = cross_format_agreement(int8, th.min_cross_cosine)
    if not cross["passed"]:
        pairs = ", ".join(f"{k} {v['mean_cosine']:.4f}" for k, v in cross["pairs"].items())
        msg = (f"INT8 cross-format agreement gate failed: worst pair mean cosine "
               f"{cross['min_pair_mean_cosine']:.4f} < {cross['threshold']} ({pairs})")
        if not allow:
            raise GateError(msg, figures=cross)
        overrides.append({"override": "allow_degraded", "gate": "int8_cross_format",
                          "min_pair_mean_cosine": cross["min_pair_mean_cosine"],
                          "threshold": cross["threshold"]})
    return cross


def teacher_figures(ref: np.ndarray, fp32: Mapping[str, np.ndarray], int8: Mapping[str, np.ndarray],
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


def gate_heads(figs: Mapping[str, list[dict[str, Any]]], th: GateThresholds,
               overrides: list[dict[str, Any]], allow: bool,
               decisions: DecisionThresholds = DECISIONS) -> None:
    """Gate each head's decisions (INT8 vs FP32): the decision thresholds always, and the
    decision agreement when ``min_head_agreement`` is set."""
    bad: dict[str, Any] = {}
    if th.min_head_agreement is not None:
        bad = {f"{m}/{h['head']}": h["decision_agreement"] for m, hs in figs.items() for h in hs
               if "decision_agreement" in h and h["decision_agreement"] < th.min_head_agreement}
        if bad and not allow:
            raise GateError(f"head agreement gate failed: {bad} < {th.min_head_agreement}",
                            figures=dict(figs))
    decided = {m: decision_failures_of(hs, decisions) for m, hs in figs.items()}
    decided = {m: v for m, v in decided.items() if v}
    if decided and not allow:
        raise GateError("head decision gate failed vs the FP32 student: "
                        + "; ".join(f"{m}: {', '.join(v)}" for m, v in decided.items())
                        + " (refit the head with `hai-edge probe train --recipe robust`, or "
                          "pass --allow-degraded)", figures=dict(figs))
    if bad:
        overrides.append({"override": "allow_degraded", "gate": "head_agreement", **bad})
    for m, v in decided.items():
        overrides.append({"override": "allow_degraded", "gate": "head_decisions", "model": m,
                          "failures": v})

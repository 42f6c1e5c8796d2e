"""Decision agreement: does a candidate model (an INT8 engine x format) give the same *answers*
as the reference (the FP32 student) through a head, not merely similar embeddings?

Figures on held-out rows, per head and candidate: max |score difference|, verdict flips at the
head's threshold, and, where labels are known, ΔAUROC and the change of sensitivity at the head's
operating specificity, each with a grouped bootstrap CI (groups resampled together). The gate
(:func:`decision_failures`) uses point estimates; the CIs say how much the held-out rows can tell.
Numpy only: shared by ``export`` (bundle gates), ``heads`` (``probe train``) and ``report``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

# re-exported: the gates' callers use them
from hai_edge.runtime.heads import verdict_codes, verdict_flips

__all__ = [
    "DecisionThresholds",
    "auroc",
    "compare_decisions",
    "decision_failures",
    "ece",
    "sensitivity_at_specificity",
    "verdict_codes",
    "verdict_flips",
]


@dataclasses.dataclass(frozen=True)
class DecisionThresholds:
    """Hard limits of the decision gate (issue #18)."""

    max_abs_score_diff: float = 0.02
    max_flips: int = 0
    max_delta_auroc: float = 0.01
    max_delta_sensitivity: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half); NaN without both classes."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inv]  # average rank of each tie block
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sensitivity_at_specificity(y: np.ndarray, s: np.ndarray, specificity: float) -> float:
    """Sensitivity at the lowest threshold whose specificity (``s < t`` on negatives) reaches
    ``specificity``; NaN without both classes."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    neg, pos = np.sort(s[~y]), s[y]
    if not neg.size or not pos.size:
        return float("nan")
    k = int(np.ceil(specificity * neg.size - 1e-9))  # negatives that must lie below t
    t = neg[k - 1] if k >= 1 else -np.inf
    if k >= 1:
        t = np.nextafter(t, np.inf)  # s >= t positive: the k-th negative falls below
    return float(np.mean(pos >= t))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, Any]]]:
    """Expected calibration error over equal-width bins, and the reliability table."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    table, total = [], 0.0
    for b in range(bins):
        m = idx == b
        if not m.any():
            continue
        conf, acc = float(p[m].mean()), float(y[m].mean())
        total += m.sum() * abs(conf - acc)
        table.append({"bin": [b / bins, (b + 1) / bins], "n": int(m.sum()),
                      "mean_score": round(conf, 4), "positive_rate": round(acc, 4)})
    return (round(total / max(len(p), 1), 4), table)


def _groups_index(groups: Sequence[Any], n: int) -> list[np.ndarray]:
    g = np.asarray([str(v) for v in groups]) if groups is not None else np.arange(n).astype(str)
    _, inv = np.unique(g, return_inverse=True)
    return [np.flatnonzero(inv == k) for k in range(inv.max() + 1)]


def _ci(stats: list[float]) -> list[float | None]:
    vals = [v for v in stats if np.isfinite(v)]
    if len(vals) < 10:
        return [None, None]
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


def compare_decisions(reference: np.ndarray, candidate: np.ndarray, threshold: float, *,
                      y: np.ndarray | None = None, groups: Sequence[Any] | None = None,
                      specificity: float | None = None, n_boot: int = 1000,
                      seed: int = 0, borderline: float = 0.0) -> dict[str, Any]:
    """Figures of ``candidate`` scores vs ``reference`` scores (same rows, probabilities).
    ``flips``: rows whose definite verdicts disagree (positive vs negative; with a
    ``borderline`` band, a change to or from "borderline" is counted apart)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    diff = np.abs(ref - cand)
    v_ref, v_cand = verdict_codes(ref, threshold, borderline), verdict_codes(cand, threshold,
                                                                             borderline)
    out: dict[str, Any] = {
        "n": int(ref.size), "threshold": round(float(threshold), 6),
        "borderline": round(float(borderline), 6),
        "max_abs_diff": round(float(diff.max(initial=0.0)), 6),
        "mean_abs_diff": round(float(diff.mean()) if diff.size else 0.0, 6),
        "flips": int(np.sum(v_ref * v_cand < 0)),  # verdict_flips, on the codes already made
        "borderline_changes": int(np.sum((v_ref != v_cand) & (v_ref * v_cand == 0))),
        "borderline_reference": int(np.sum(v_ref == 0)) if borderline > 0 else 0,
    }
    if y is None:
        out["labelled"] = False
        return out
    y = np.asarray(y).astype(bool)
    if specificity is None:
        specificity = float(np.mean(ref[~y] < threshold)) if (~y).any() else 0.9
    a_ref, a_cand = auroc(y, ref), auroc(y, cand)
    s_ref = sensitivity_at_specificity(y, ref, specificity)
    s_cand = sensitivity_at_specificity(y, cand, specificity)
    members = _groups_index(groups, ref.size)
    rng = np.random.default_rng(seed)
    d_auc, d_sens = [], []
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        d_auc.append(auroc(y[idx], cand[idx]) - auroc(y[idx], ref[idx]))
        d_sens.append(sensitivity_at_specificity(y[idx], cand[idx], specificity)
                      - sensitivity_at_specificity(y[idx], ref[idx], specificity))
    out.update({
        "labelled": True, "n_positive": int(y.sum()), "groups": len(members),
        "auroc_reference": round(a_ref, 4), "auroc": round(a_cand, 4),
        "delta_auroc": round(a_cand - a_ref, 4), "delta_auroc_ci95": _ci(d_auc),
        "operating_specificity": round(specificity, 4),
        "sensitivity_reference": round(s_ref, 4), "sensitivity": round(s_cand, 4),
        "delta_sensitivity": round(s_cand - s_ref, 4), "delta_sensitivity_ci95": _ci(d_sens),
    })
    return out


def decision_failures(figures: dict[str, Any], th: DecisionThresholds) -> list[str]:
    """What the figures of one head x candidate fail, as short phrases (empty: passed)."""
    bad = []
    if figures["max_abs_diff"] > th.max_abs_score_diff:
        bad.append(f"max |score diff| {figures['max_abs_diff']:.4f} > {th.max_abs_score_diff}")
    if figures["flips"] > th.max_flips:
        band = figures.get("borderline") or 0.0
        bad.append(f"{figures['flips']} verdict flip(s) of {figures['n']} at threshold "
                   f"{figures['threshold']:.4f}" + (f" ± {band:g}" if band else ""))
    if figures.get("labelled"):
        if abs(figures["delta_auroc"]) > th.max_delta_auroc:
            bad.append(f"ΔAUROC {figures['delta_auroc']:+.4f} (CI {figures['delta_auroc_ci95']}) "
                       f"beyond ±{th.max_delta_auroc}")
        if abs(figures["delta_sensitivity"]) > th.max_delta_sensitivity:
            bad.append(f"Δsensitivity at specificity {figures['operating_specificity']:.2f} "
                       f"{figures['delta_sensitivity']:+.4f} (CI "
                       f"{figures['delta_sensitivity_ci95']}) beyond ±{th.max_delta_sensitivity}")
    return bad

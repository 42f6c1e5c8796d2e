"""Figures with grouped bootstrap CIs, paired across scorers and conditions.

One set of draws serves every number: each draw resamples the G groups (patients, recording
groups) with replacement, G times (``numpy.random.default_rng(seed)``), and all items of a drawn
group enter. Every metric, every scorer and every condition is computed on the same draws, so
differences (clean minus shifted, INT8 minus teacher) get their own CIs: 2.5th and 97.5th
percentiles of the per-draw difference. Draws without both classes are skipped for AUROC.

Per head, scorer and shift: AUROC of the item score; sensitivity and specificity at the head's
own threshold (its operating point); the AUROC / sensitivity *drop* from clean; score drift
(mean |p_shifted - p_clean| of the same item) and flip rate (decisions that change); and the
*excess drop* of each student over the reference (the teacher, else the FP32 student):
``drop(student) - drop(reference)``. A verdict says ``loses more`` when the excess drop's CI is
above 0, ``loses less`` when below, else ``no difference``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hai_edge.stress.measure import Measurements

__all__ = ["auroc", "group_draws", "summarise"]


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC with mid-ranks (= scikit-learn's roc_auc_score); NaN without both
    classes."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def group_draws(groups: Sequence[str], n_boot: int, seed: int) -> list[np.ndarray]:
    g = np.asarray([str(v) for v in groups])
    uniq, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
            for _ in range(n_boot)]


def _r(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def _ci(point: float, draws: Sequence[float]) -> dict[str, float | None]:
    d = np.asarray([v for v in draws if math.isfinite(v)])
    lo, hi = (np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan))
    return {"value": _r(point), "ci_low": _r(lo), "ci_high": _r(hi)}


def _head_metrics(y: np.ndarray, s: np.ndarray, thr: float) -> tuple[float, float, float]:
    pos = y == 1
    sens = float(np.mean(s[pos] >= thr)) if pos.any() else float("nan")
    spec = float(np.mean(s[~pos] < thr)) if (~pos).any() else float("nan")
    return auroc(y, s), sens, spec


def _verdict(ci: dict[str, float | None]) -> str:
    lo, hi = ci["ci_low"], ci["ci_high"]
    if lo is None or hi is None:
        return "n/a"
    return "loses more" if lo > 0 else "loses less" if hi < 0 else "no difference"


def _head_section(meas: Measurements, head: Any, y: np.ndarray, draws: list[np.ndarray],
                  ref: int | None) -> dict[str, Any]:
    sc = meas.scores[head.name]
    thr = float(head.threshold)
    lab = y >= 0
    names = meas.scorers
    out: dict[str, Any] = {"threshold": round(thr, 4), "clean": {}, "shifts": []}
    clean_ok = lab & np.all(np.isfinite(sc[0]), axis=0)
    out["n"], out["n_positive"] = int(clean_ok.sum()), int((y[clean_ok] == 1).sum())
    for si, name in enumerate(names):
        pts = _head_metrics(y[clean_ok], sc[0, si, clean_ok], thr)
        per = [_head_metrics(y[d], sc[0, si, d], thr) for d in (d[clean_ok[d]] for d in draws)]
        out["clean"][name] = {k: _ci(pts[j], [p[j] for p in per])
                              for j, k in enumerate(("auroc", "sensitivity", "specificity"))}
    for ci in range(1, len(meas.conditions)):
        ok = clean_ok & np.all(np.isfinite(sc[ci]), axis=0)
        shift, sev = meas.conditions[ci]
        row: dict[str, Any] = {"shift": shift, "severity": sev, "n": int(ok.sum()), "scorers": {}}
        sub = [d[ok[d]] for d in draws]
        m_clean = [[_head_metrics(y[d], sc[0, si, d], thr) for d in sub] for si in range(len(names))]
        m_shift = [[_head_metrics(y[d], sc[ci, si, d], thr) for d in sub] for si in range(len(names))]
        for si, name in enumerate(names):
            p0 = _head_metrics(y[ok], sc[0, si, ok], thr)
            p1 = _head_metrics(y[ok], sc[ci, si, ok], thr)
            drift = np.abs(sc[ci, si] - sc[0, si])
            flips = (sc[ci, si] >= thr) != (sc[0, si] >= thr)
            ent = {
                "auroc": _ci(p1[0], [m[0] for m in m_shift[si]]),
                "auroc_drop": _ci(p0[0] - p1[0], [a[0] - b[0] for a, b in
                                                  zip(m_clean[si], m_shift[si])]),
                "sensitivity": _ci(p1[1], [m[1] for m in m_shift[si]]),
                "sensitivity_drop": _ci(p0[1] - p1[1], [a[1] - b[1] for a, b in
                                                        zip(m_clean[si], m_shift[si])]),
                "specificity": _ci(p1[2], [m[2] for m in m_shift[si]]),
                "score_drift": _ci(float(np.mean(drift[ok])),
                                   [float(np.mean(drift[d])) for d in sub if len(d)]),
                "flip_rate": _ci(float(np.mean(flips[ok])),
                                 [float(np.mean(flips[d])) for d in sub if len(d)]),
            }
            if ref is not None and si != ref:
                r0 = _head_metrics(y[ok], sc[0, ref, ok], thr)
                r1 = _head_metrics(y[ok], sc[ci, ref, ok], thr)
                for j, key in ((0, "auroc"), (1, "sensitivity")):
                    pt = (p0[j] - p1[j]) - (r0[j] - r1[j])
                    dr = [(a[j] - b[j]) - (c[j] - e[j]) for a, b, c, e in
                          zip(m_clean[si], m_shift[si], m_clean[ref], m_shift[ref])]
                    ent[f"excess_{key}_drop"] = _ci(pt, dr)
                ent["verdict"] = _verdict(ent["excess_auroc_drop"])
            row["scorers"][name] = ent
        out["shifts"].append(row)
    return out


def _fidelity(meas: Measurements, draws: list[np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for ci, (shift, sev) in enumerate(meas.conditions):
        row: dict[str, Any] = {"shift": shift, "severity": sev, "scorers": {}}
        for si, name in enumerate(meas.scorers):
            ent = {}
            for key, arr in (("cosine_vs_teacher", meas.cos_teacher),
                             ("centred_cosine_vs_teacher", meas.ccos_teacher),
                             ("cosine_vs_fp32", meas.cos_fp32)):
                v = arr[ci, si]
                if not np.isfinite(v).any():
                    continue
                ent[key] = _ci(float(np.nanmean(v)),
                               [float(np.nanmean(v[d])) for d in draws
                                if np.isfinite(v[d]).any()])
            if ent:
                row["scorers"][name] = ent
        rows.append(row)
    return rows


def summarise(meas: Measurements, heads: Sequence[Any], y: np.ndarray, groups: Sequence[str],
              *, n_boot: int, seed: int, reference: str | None) -> dict[str, Any]:
    """The ``results`` part of stress.json (see the module docstring)."""
    import warnings

    draws = group_draws(groups, n_boot, seed)
    ref = meas.scorers.index(reference) if reference in meas.scorers else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "reference": reference,
            "bootstrap": {"n_boot": n_boot, "seed": seed, "groups": len(set(map(str, groups))),
                          "ci": "2.5th-97.5th percentile, groups resampled, paired draws"},
            "heads": {h.name: _head_section(meas, h, y, draws, ref) for h in heads
                      if (y >= 0).any()},
            "fidelity": _fidelity(meas, draws),
            "failed_items": {f"{s}:{k}" if k else s: n for (s, k), n in
                             zip(meas.conditions, meas.failed) if n},
            "seconds": {f"{s}:{k}" if k else s: round(t, 2) for (s, k), t in
                        zip(meas.conditions, meas.seconds)},
        }

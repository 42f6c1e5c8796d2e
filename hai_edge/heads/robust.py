"""Heads whose decisions do not depend on the engine (issue #18).

The three INT8 engines round differently: their embeddings agree at cosine >= 0.9999, yet the
standard probe (per-dimension standardisation, then logistic regression) gives large weights to
low-variance dimensions, so the ~1.4 % nearly isotropic rounding noise becomes a logit change of
~0.3 and verdicts flip between engines. A :class:`HeadRecipe` changes three things:

- ``pool_engines``: fit on the windows of *every* engine (each engine's copy of a recording is
  a window of that recording), so the fit sees the rounding differences as within-class noise;
- ``shrinkage`` λ: scale each dimension by ``sqrt((1 - λ) var_j + λ mean(var))`` instead of
  its own sd (λ = 1: isotropic; the L2 penalty then bounds the weights in the raw space, which
  is where the noise is isotropic);
- ``noise_subspace``: fit in the ``m`` directions where the embeddings' spread is largest
  *relative to the engines' rounding differences* (generalised eigenvectors of the pooled
  covariance against the measured engine-difference covariance, ridge-regularised); ``m`` is
  chosen like ``C``. Rounding noise is far from isotropic (one OpenVINO direction held 24 % of
  it), so a head confined to the quiet, informative directions moves little between engines;
- ``max_score_diff``: the L2 strength ``C`` is the best grouped-CV AUROC among those whose
  *out-of-fold* recording scores differ between engines by at most this much (noise-aware
  regularisation: the criterion the decision gate applies later, measured on data the fit did
  not see). Without a setting that meets it, the one with the smallest difference is taken.

Calibration (Platt on out-of-fold logits of all engines) and threshold (on the out-of-fold
recording scores of all engines) follow ``hai_edge.heads.probe_train``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.evaluation.decisions import verdict_codes
from hai_edge.heads.engine_rows import EngineRows
from hai_edge.heads.probe_train import (
    CS,
    _fit,
    _recording_mean,
    _require_sklearn,
    auroc,
    fit_platt,
    pick_threshold,
    sens_spec,
)

__all__ = ["RECIPES", "ROBUST", "STANDARD", "HeadRecipe", "engine_differences", "engine_scores",
           "same_windows", "score_agreement", "train_engine_head"]


@dataclasses.dataclass(frozen=True)
class HeadRecipe:
    """How a head is fitted; see the module docstring."""

    name: str
    pool_engines: bool = False
    shrinkage: float = 0.0
    max_score_diff: float | None = None
    # the out-of-fold statistic held to max_score_diff: this quantile of the per-recording engine
    # differences (1.0: the max). Over ~500 training recordings the max is set by two or three
    # recordings; the 99th percentile describes the tail that ~100-150 held-out recordings'
    # max (what the decision gate checks) will see
    diff_quantile: float = 1.0
    cs: tuple[float, ...] = CS  # the L2 strengths tried
    noise_gain: float = 0.0  # > 0: add training copies with `gain` x measured engine noise
    noise_copies: int = 2
    # whiten by the measured engine-noise covariance (regularised): the L2 penalty becomes
    # w' Σ_noise w, the logit variance the engines' rounding would cause
    noise_whiten: bool = False
    noise_subspace: tuple[int, ...] = ()  # subspace sizes m tried (empty: the full space)
    noise_ridge: float = 0.1  # x the mean engine-noise variance, added to its covariance

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError("shrinkage must be within [0, 1]")

    def describe(self) -> str:
        parts = ["embeddings of every engine" if self.pool_engines else "one engine's embeddings",
                 "standardised" if self.shrinkage == 0 else f"scale shrunk (λ={self.shrinkage:g})",
                 "class-balanced logistic regression"]
        if self.noise_whiten:
            parts[1] = "whitened by the measured engine-noise covariance"
        if self.noise_subspace:
            parts[1] = ("projected on the m directions of largest spread relative to the measured "
                        f"engine differences (m from {', '.join(map(str, self.noise_subspace))}), "
                        "standardised")
        if self.noise_gain > 0:
            parts.insert(1, f"plus {self.noise_copies} copies with {self.noise_gain:g}x the "
                            "measured engine-to-engine differences added")
        if self.max_score_diff is not None:
            what = "m and C" if self.noise_subspace else "C"
            parts.append(f"{what}: best grouped-CV AUROC with out-of-fold engine score difference "
                         f"<= {self.max_score_diff:g}"
                         + (f" (its {100 * self.diff_quantile:g}th percentile)"
                            if self.diff_quantile < 1 else ""))
        else:
            parts.append("C: best grouped-CV AUROC")
        return "; ".join(parts) + "; Platt on out-of-fold logits"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# C above 1e2 is practically unregularised (and slow to fit on pooled rows): the engine-aware
# recipes stop there
_CS_ROBUST = tuple(c for c in CS if c <= 1e2)
# grouped-CV AUROCs closer than this are not told apart (~its standard error with ~500 rows);
# among them the setting whose engines agree most is taken
AUROC_TIE = 0.01
# a head fitted for several engines gives no verdict within this of its threshold: half the
# decision gate's score tolerance (0.02), so engines that pass the gate cannot call one
# recording positive and another negative
ENGINE_BORDERLINE = 0.01
STANDARD = HeadRecipe("standard")
ROBUST = HeadRecipe("robust", pool_engines=True, max_score_diff=0.02, diff_quantile=0.99,
                    cs=(0.01, 0.1, 1.0),
                    noise_subspace=(2, 4, 6, 8, 10, 12, 14, 16, 24, 32))
RECIPES: dict[str, HeadRecipe] = {r.name: r for r in (
    STANDARD,
    HeadRecipe("pooled", pool_engines=True, cs=_CS_ROBUST),
    HeadRecipe("shrunk", shrinkage=1.0, cs=_CS_ROBUST),
    HeadRecipe("pooled-shrunk", pool_engines=True, shrinkage=1.0, cs=_CS_ROBUST),
    HeadRecipe("pooled-shrunk-budget", pool_engines=True, shrinkage=1.0, max_score_diff=0.01,
               cs=_CS_ROBUST),
    ROBUST,
)}


def engine_scores(head: Any, rows: EngineRows) -> dict[str, np.ndarray]:
    """Recording scores (mean of window probabilities) of ``head`` per engine."""
    return {e: _recording_mean(head.predict_proba(r.x), r.rec, len(r.y))
            for e, r in rows.rows.items()}


def score_agreement(scores: Mapping[str, np.ndarray], threshold: float,
                    borderline: float = 0.0) -> dict[str, Any]:
    """Worst pairwise disagreement between engines: max |score difference| and verdict flips
    (recordings that one engine calls positive and another negative; with a ``borderline``
    band, recordings only some engines call borderline are ``borderline_changes``)."""
    names = list(scores)
    diffs = {f"{a}~{b}": float(np.max(np.abs(scores[a] - scores[b])))
             for a, b in itertools.combinations(names, 2)}
    codes = [verdict_codes(scores[n], threshold, borderline) for n in names]
    hi, lo = (np.max(codes, axis=0), np.min(codes, axis=0)) if codes else (np.zeros(0),) * 2
    flips = int(np.sum((hi > 0) & (lo < 0)))
    changed = int(np.sum(hi != lo))
    return {"max_abs_diff": round(max(diffs.values(), default=0.0), 6),
            "pairs": {k: round(v, 6) for k, v in diffs.items()}, "flips": flips,
            "borderline_changes": changed - flips, "borderline": borderline,
            "n": int(len(next(iter(scores.values())))) if scores else 0}


def _scaler(x: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    scale = np.sqrt((1.0 - shrinkage) * var + shrinkage * var.mean())
    return mean, np.where(scale > 0, scale, 1.0)


def _noise_cov(d: np.ndarray, ridge: float) -> np.ndarray | None:
    """Covariance of the engine differences ``d`` plus ``ridge`` x its mean variance; None when
    there is nothing to estimate (fewer than two rows, or engines that agree exactly)."""
    if len(d) < 2:
        return None
    cov = np.cov(d, rowvar=False)
    if not np.isfinite(cov).all() or np.trace(cov) <= 0:
        return None
    return cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov))


def _noise_whitener(rows: EngineRows, ridge: float = 0.05) -> np.ndarray | None:
    """``Σ^-1/2`` of the engine differences' covariance plus ``ridge`` x its mean variance."""
    cov = _noise_cov(engine_differences(rows), ridge)
    if cov is None:
        return None
    vals, vecs = np.linalg.eigh(cov)
    return (vecs / np.sqrt(vals)) @ vecs.T


def _snr_basis(rows: EngineRows, recipe: HeadRecipe, recs: np.ndarray) -> np.ndarray | None:
    """Directions by decreasing spread relative to the engine differences (columns), from the
    windows of ``recs`` only: ``Σ_total v = λ (Σ_noise + ridge I) v``, largest λ first."""
    noise = _noise_cov(engine_differences(rows, recs), recipe.noise_ridge)
    if noise is None:
        return None
    x, _ = _training_windows(rows, recipe, recs)
    total = np.cov(x, rowvar=False)
    inv_l = np.linalg.inv(np.linalg.cholesky(noise))
    _, vecs = np.linalg.eigh(inv_l @ total @ inv_l.T)
    return (inv_l.T @ vecs)[:, ::-1]


def _fit_raw(x: np.ndarray, y: np.ndarray, c: float, shrinkage: float,
             whiten: np.ndarray | None = None, proj: np.ndarray | None = None
             ) -> tuple[np.ndarray, float]:
    """(raw-space weights, bias) of the recipe's logistic regression."""
    if proj is not None:  # standardised coordinates in the subspace, mapped back to raw space
        mean = x.mean(axis=0)
        z = (x - mean) @ proj
        sd = z.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        clf = _fit_plain(z / sd, y, c)
        w = proj @ (clf.coef_[0] / sd)
        return w, float(clf.intercept_[0] - mean @ w)
    if whiten is not None:
        mean = x.mean(axis=0)
        clf = _fit_plain((x - mean) @ whiten, y, c)
        w = whiten @ clf.coef_[0]
        return w, float(clf.intercept_[0] - mean @ w)
    if shrinkage == 0:  # exactly probe_train's standard recipe
        scaler, clf = _fit(x, y, c)
        w = clf.coef_[0] / np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        return w, float(clf.intercept_[0] - scaler.mean_ @ w)
    mean, scale = _scaler(x, shrinkage)
    clf = _fit_plain((x - mean) / scale, y, c)
    w = clf.coef_[0] / scale
    return w, float(clf.intercept_[0] - mean @ w)


def _fit_plain(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def _same_counts(rows: EngineRows) -> np.ndarray:
    """Recordings for which every engine kept the same number of windows."""
    n = len(rows.first.y)
    counts = [np.bincount(r.rec, minlength=n) for r in rows.rows.values()]
    return np.all([c == counts[0] for c in counts], axis=0)


def same_windows(rows: EngineRows, min_cosine: float = 0.995) -> np.ndarray:
    """Recordings that every engine windowed alike: the same number of windows, each within
    ``min_cosine`` of the first engine's (the cough detector runs on each engine's embeddings,
    so a window near its threshold can go either way, and a head cannot undo that; the same
    window through two engines agrees at cosine >= 0.999)."""
    first = rows.first
    ok = _same_counts(rows)
    for r in list(rows.rows.values())[1:]:
        a = np.isin(first.rec, np.flatnonzero(ok))
        b = np.isin(r.rec, np.flatnonzero(ok))
        xa, xb = first.x[a], r.x[b]
        cos = np.sum(xa * xb, axis=1) / np.maximum(
            np.linalg.norm(xa, axis=1) * np.linalg.norm(xb, axis=1), 1e-12)
        bad = np.unique(first.rec[a][cos < min_cosine])
        ok[bad] = False
    return ok


def engine_differences(rows: EngineRows, recs: np.ndarray | None = None) -> np.ndarray:
    """Window-wise differences between each engine and the first, on the recordings (of
    ``recs``) where every engine produced the same number of windows: samples of the rounding
    noise, with its real (far from isotropic) covariance."""
    first = rows.first
    same = _same_counts(rows)
    if recs is not None:
        same &= np.isin(np.arange(len(first.y)), recs)
    m0 = np.isin(first.rec, np.flatnonzero(same))
    out = [r.x[np.isin(r.rec, np.flatnonzero(same))] - first.x[m0]
           for r in list(rows.rows.values())[1:]]
    return np.concatenate(out) if out else np.zeros((0, first.x.shape[1]))


def _training_windows(rows: EngineRows, recipe: HeadRecipe, recs: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    use = rows.rows.values() if recipe.pool_engines else [rows.first]
    xs, ys = [], []
    for r in use:
        m = np.isin(r.rec, recs)
        xs.append(r.x[m])
        ys.append(r.y[r.rec[m]])
    if recipe.noise_gain > 0:
        diffs = engine_differences(rows, recs)
        if len(diffs):
            rng = np.random.default_rng(0)
            m = np.isin(rows.first.rec, recs)
            base, yb = rows.first.x[m], rows.first.y[rows.first.rec[m]]
            for _ in range(recipe.noise_copies):
                pick = rng.integers(0, len(diffs), len(base))
                sign = rng.choice((-1.0, 1.0), (len(base), 1))
                xs.append(base + recipe.noise_gain * sign * diffs[pick])
                ys.append(yb)
    return np.concatenate(xs), np.concatenate(ys)


def _cv(rows: EngineRows, recipe: HeadRecipe, c: float,
        folds: list[tuple[np.ndarray, np.ndarray]], whiten: np.ndarray | None = None,
        m: int | None = None, bases: list[np.ndarray | None] | None = None
        ) -> dict[str, np.ndarray]:
    """Out-of-fold window logits per engine at ``c`` (and subspace size ``m``, with each fold's
    basis from ``bases``)."""
    z = {e: np.full(len(r.rec), np.nan) for e, r in rows.rows.items()}
    for k, (tr, te) in enumerate(folds):
        x, y = _training_windows(rows, recipe, tr)
        basis = bases[k] if bases is not None else None
        proj = basis[:, :m] if basis is not None and m else None
        w, b = _fit_raw(x, y, c, recipe.shrinkage, whiten, proj)
        for e, r in rows.rows.items():
            held = np.isin(r.rec, te)
            z[e][held] = r.x[held] @ w + b
    return z


def _calibrated(rows: EngineRows, z: Mapping[str, np.ndarray]
                ) -> tuple[tuple[float, float], dict[str, np.ndarray]]:
    zs = np.concatenate(list(z.values()))
    ys = np.concatenate([r.y[r.rec] for r in rows.rows.values()])
    a, b = fit_platt(zs, ys)
    a = a if a > 0 else 1e-6
    rec = {e: _recording_mean(0.5 * (1 + np.tanh(0.5 * (a * z[e] + b))), r.rec, len(r.y))
           for e, r in rows.rows.items()}
    return (a, b), rec


def _diff_stat(rec: dict[str, np.ndarray], rows: np.ndarray, quantile: float) -> float:
    """``quantile`` of the per-recording largest difference between engines (``rows`` only)."""
    scores = np.stack([s[rows] for s in rec.values()])
    d = scores.max(axis=0) - scores.min(axis=0)
    return float(np.quantile(d, quantile)) if d.size else 0.0


def _search(rows: EngineRows, recipe: HeadRecipe, folds: list[tuple[np.ndarray, np.ndarray]],
            whiten: np.ndarray | None, same: np.ndarray, sensitivity: float | None,
            log: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Grouped-CV AUROC and out-of-fold engine agreement (on the recordings ``same``) of every
    (subspace size, C) tried."""
    first = rows.first
    bases = ([_snr_basis(rows, recipe, tr) for tr, _ in folds] if recipe.noise_subspace
             else None)
    if bases is not None and all(b is None for b in bases):  # no engine difference to avoid
        bases = None
    dims = [m for m in recipe.noise_subspace if m < first.x.shape[1]] if bases else []
    dims = dims or [None]
    tried = []
    for m, c in itertools.product(dims, recipe.cs):
        z = _cv(rows, recipe, c, folds, whiten, m, bases)
        (a, b), rec = _calibrated(rows, z)
        cv_auroc = float(np.mean([auroc(first.y, s) for s in rec.values()]))
        pooled_t = pick_threshold(np.tile(first.y, len(rec)), np.concatenate(list(rec.values())),
                                  sensitivity)
        agree = score_agreement({e: s[same] for e, s in rec.items()}, pooled_t)
        tried.append({"m": m, "C": c, "auroc_cv": cv_auroc,
                      "oof_max_abs_diff": agree["max_abs_diff"], "oof_flips": agree["flips"],
                      "oof_diff": _diff_stat(rec, same, recipe.diff_quantile),
                      "z": z, "platt": (a, b), "rec": rec})
        if log:
            log(f"{f'm={m:<3} ' if m else ''}C={c:<8.0e} AUROC {cv_auroc:.4f}  out-of-fold "
                f"engine diff {agree['max_abs_diff']:.4f} ({agree['flips']} flips)")
    return tried


def train_engine_head(rows: EngineRows, name: str, recipe: HeadRecipe = ROBUST, *,
                      labels: tuple[str, str] = ("negative", "positive"),
                      borderline: float = ENGINE_BORDERLINE,
                      sensitivity: float | None = None, seed: int = 0, n_splits: int = 5,
                      notice: str = "", extra_training: dict[str, Any] | None = None,
                      log: Callable[[str], None] | None = None) -> Any:
    """Fit a head with ``recipe`` on the rows of every engine -> a compact ``Head``."""
    _require_sklearn()
    from hai_edge.evaluation.probes import grouped_folds
    from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

    first = rows.first
    folds = grouped_folds(first.y, first.groups, n_splits, seed)
    whiten = _noise_whitener(rows) if recipe.noise_whiten else None
    same = same_windows(rows)  # a head cannot make engines agree on recordings they window apart
    tried = _search(rows, recipe, folds, whiten, same, sensitivity, log)
    ok = [t for t in tried if recipe.max_score_diff is None
          or t["oof_diff"] <= recipe.max_score_diff]
    noise_limited = not ok
    if ok:  # within AUROC_TIE of the best AUROC (CV noise): the engines that agree most
        top = max(t["auroc_cv"] for t in ok)
        near = [t for t in ok if t["auroc_cv"] >= top - AUROC_TIE]
        best = min(near, key=lambda t: (t["oof_diff"], -t["auroc_cv"]))
    else:  # none meets the budget: the setting whose engines differ least
        best = min(tried, key=lambda t: (t["oof_diff"], -t["auroc_cv"]))
    x, y = _training_windows(rows, recipe, np.arange(len(first.y)))
    basis = _snr_basis(rows, recipe, np.arange(len(first.y))) if best["m"] else None
    w, bias = _fit_raw(x, y, best["C"], recipe.shrinkage, whiten,
                       None if basis is None else basis[:, :best["m"]])
    a, b = best["platt"]
    rec_all = np.concatenate(list(best["rec"].values()))
    y_all = np.tile(first.y, len(best["rec"]))
    threshold = pick_threshold(y_all, rec_all, sensitivity)
    se, sp = sens_spec(y_all, rec_all, threshold)
    if not np.isfinite(best["auroc_cv"]):
        raise HaiEdgeError("probe: cross-validation produced no usable scores")
    training = {
        "data_hash": first.data_hash, "n": len(first.y), "n_positive": int(first.y.sum()),
        "n_windows": int(len(first.rec)), "groups": len(set(first.groups.tolist())),
        "n_failed": len(first.failed), "label": first.label_info.get("label"),
        "recipe": recipe.describe(), "head_recipe": recipe.to_dict(),
        "engines": rows.engines, "C": best["C"], "folds": len(folds), "seed": seed,
        **({"subspace_dim": best["m"]} if best["m"] else {}),
        "auroc_cv": round(best["auroc_cv"], 4),
        "oof_engine_max_abs_diff": best["oof_max_abs_diff"], "oof_engine_flips": best["oof_flips"],
        "oof_engine_diff_q": {"quantile": recipe.diff_quantile,
                              "value": round(best["oof_diff"], 6)},
        "oof_agreement_rows": "recordings every engine windowed alike "
                              f"({int(same.sum())} of {len(first.y)})",
        "threshold_rule": f"sensitivity>={sensitivity:g}" if sensitivity is not None else "youden",
        "sensitivity_cv": round(se, 4), "specificity_cv": round(sp, 4),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        **(extra_training or {}),
    }
    if noise_limited:
        training["warnings"] = [f"no setting kept the out-of-fold engine difference within "
                                f"{recipe.max_score_diff}; the one with the smallest is used"]
    dim = first.x.shape[1]
    return Head(name=name, weights=w, bias=bias, mean=np.zeros(dim), scale=np.ones(dim),
                threshold=float(threshold), calibration=Calibration(CalibrationKind.PLATT, a=a, b=b),
                labels=labels, training=training, notice=notice,
                borderline=borderline).compact()

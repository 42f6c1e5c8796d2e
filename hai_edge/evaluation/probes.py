"""The official linear-probe recipe (HeAR / HAI-DEF notebooks), shared by the fidelity report and
``hai-edge probe``.

Binary labels from one metadata column (``--label diagnostic --positive BCC,SCC,MEL``; rows can be
restricted with ``--label-filter source=call-center``). The probe is a class-balanced logistic
regression on standardised embeddings; its L2 strength ``C`` is picked from
``logspace(-5, 5, 11)`` by an inner grouped cross-validation on the training folds only, and the
AUROC comes from the out-of-fold scores of an outer grouped, stratified 5-fold CV: no subject /
patient / group is ever on both sides of a split. Teacher and student are probed on the same folds,
so their AUROCs are a paired comparison. scikit-learn is imported lazily (``export`` extra).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError, MissingDependencyError

__all__ = [
    "DEFAULT_CS",
    "LabelSpec",
    "ProbeResult",
    "binary_labels",
    "grouped_folds",
    "probe_auroc",
]

DEFAULT_CS = tuple(float(c) for c in np.logspace(-5, 5, 11))
_TRUE = {"1", "true", "yes", "y", "positive", "pos", "t"}
_FALSE = {"0", "false", "no", "n", "negative", "neg", "f"}


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """Which column is the label, which of its values count as positive (empty: infer from
    0/1, true/false, yes/no) and which ``(column, value)`` filters select the probed rows."""

    column: str
    positive: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "positive": list(self.positive),
                "filters": [f"{c}={v}" for c, v in self.filters]}


def binary_labels(metas: Sequence[Mapping[str, str]], spec: LabelSpec
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(y, keep, info): y is 0/1 (-1 where not kept); ``keep`` marks rows that pass the filters
    and have a label. ``info`` counts what was excluded and why."""
    n = len(metas)
    y = np.full(n, -1, dtype=np.int64)
    passed = np.array([all(m.get(c, "") == v for c, v in spec.filters) for m in metas], bool)
    raw = [(m.get(spec.column) or "").strip() for m in metas]
    present = np.array([bool(r) for r in raw]) & passed
    values = sorted({r for r, p in zip(raw, present) if p})
    if spec.positive:
        pos = set(spec.positive)
        unknown = pos - set(values)
        positive_of = lambda v: v in pos  # noqa: E731
    else:
        low = {v.lower() for v in values}
        if not low <= (_TRUE | _FALSE) or not low & _TRUE or not low & _FALSE:
            raise HaiEdgeError(
                f"label column {spec.column!r} has values {values[:8]}; say which are positive "
                f"with --positive (e.g. --positive {values[-1] if values else 'VALUE'})")
        unknown = set()
        positive_of = lambda v: v.lower() in _TRUE  # noqa: E731
    for i, (r, p) in enumerate(zip(raw, present)):
        if p:
            y[i] = 1 if positive_of(r) else 0
    keep = y >= 0
    info = {
        "label": spec.to_dict(),
        "n_rows": n,
        "n_filtered_out": int((~passed).sum()),
        "n_unlabelled": int((passed & ~present).sum()),
        "n": int(keep.sum()),
        "n_positive": int((y == 1).sum()),
        "n_negative": int((y == 0).sum()),
        "values": values,
    }
    if unknown:
        info["positive_values_not_seen"] = sorted(unknown)
    return y, keep, info


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependencyError("the linear probe", "export", "scikit-learn") from None
    return sklearn


def grouped_folds(y: np.ndarray, groups: Sequence[str], n_splits: int = 5, seed: int = 0
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified grouped K-fold (train_idx, test_idx) pairs; groups never straddle a split.

    ``n_splits`` shrinks to the number of groups of the rarer class when that is smaller."""
    _sklearn()
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y)
    g = np.asarray([str(v) for v in groups])
    per_class = min(len(set(g[y == c])) for c in (0, 1))
    k = min(n_splits, per_class)
    if k < 2:
        raise HaiEdgeError(f"probe needs at least 2 groups per class, have {per_class}")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y, g)]


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    auroc: float
    scores: np.ndarray  # out-of-fold probabilities (NaN where a fold could not be scored)
    n: int
    n_positive: int
    folds: int
    chosen_c: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"auroc": round(self.auroc, 4), "n": self.n, "n_positive": self.n_positive,
                "folds": self.folds, "chosen_C": [float(f"{c:.3g}") for c in self.chosen_c]}


def _fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, c: float) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_tr), y_tr)
    return clf.predict_proba(scaler.transform(x_te))[:, 1]


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def _choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cs: Sequence[float], seed: int
              ) -> float:
    try:
        inner = grouped_folds(y, groups, 5, seed)
    except HaiEdgeError:
        return 1.0  # too few groups to tune: sklearn's default strength
    best_c, best = cs[0], -1.0
    for c in cs:
        oof = np.full(len(y), np.nan)
        for tr, te in inner:
            if len(set(y[tr].tolist())) < 2:
                continue
            oof[te] = _fit_predict(x[tr], y[tr], x[te], c)
        ok = ~np.isnan(oof)
        score = _auroc(y[ok], oof[ok]) if ok.any() else float("nan")
        if score > best:  # NaN never wins; ties keep the stronger regularisation
            best_c, best = c, score
    return float(best_c)


def probe_auroc(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *,
                folds: list[tuple[np.ndarray, np.ndarray]] | None = None, seed: int = 0,
                cs: Sequence[float] = DEFAULT_CS) -> ProbeResult:
    """Out-of-fold AUROC of the official probe on embeddings ``x`` (rows already filtered).

    BLAS runs single-threaded here: these are hundreds of tiny fits, and threaded OpenBLAS on a
    busy machine made them ten times slower."""
    _sklearn()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _probe_auroc(x, y, groups, folds=folds, seed=seed, cs=cs)


def _probe_auroc(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *,
                 folds: list[tuple[np.ndarray, np.ndarray]] | None, seed: int,
                 cs: Sequence[float]) -> ProbeResult:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    g = np.asarray([str(v) for v in groups])
    if folds is None:
        folds = grouped_folds(y, g, 5, seed)
    scores = np.full(len(y), np.nan)
    chosen = []
    for tr, te in folds:
        if len(set(y[tr].tolist())) < 2:
            continue
        c = _choose_c(x[tr], y[tr], g[tr], cs, seed)
        chosen.append(c)
        scores[te] = _fit_predict(x[tr], y[tr], x[te], c)
    ok = ~np.isnan(scores)
    return ProbeResult(auroc=_auroc(y[ok], scores[ok]), scores=scores, n=int(len(y)),
                       n_positive=int(y.sum()), folds=len(folds), chosen_c=tuple(chosen))

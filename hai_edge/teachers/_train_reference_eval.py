"""Held-out figures for ``train_reference``: classification reports, linear probes, AUROC under
grouped cross-validation and embedding geometry. numpy + scikit-learn (imported when called)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "auroc_ci95",
    "classification_report",
    "embedding_geometry",
    "grouped_cv_auroc",
    "linear_probe",
]


def _r(v: float) -> float:
    return round(float(v), 4)


def classification_report(y: np.ndarray, scores: np.ndarray, classes: Sequence[str]
                          ) -> dict[str, Any]:
    """Accuracy, per-class recall with counts, one-vs-rest AUROC per class and its macro mean
    (classes absent from ``y`` or alone in it are reported as null and left out of the mean)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    pred = np.asarray(scores).argmax(1)
    per_class: dict[str, Any] = {}
    aurocs = []
    for k, name in enumerate(classes):
        sel = y == k
        auc = None
        if 0 < sel.sum() < len(y):
            auc = _r(roc_auc_score(sel, scores[:, k]))
            aurocs.append(auc)
        per_class[name] = {"n": int(sel.sum()),
                           "recall": _r(np.mean(pred[sel] == k)) if sel.any() else None,
                           "auroc_ovr": auc}
    return {"n": int(len(y)), "accuracy": _r(np.mean(pred == y)),
            "balanced_accuracy": _r(np.mean([v["recall"] for v in per_class.values()
                                             if v["recall"] is not None])),
            "macro_auroc_ovr": _r(np.mean(aurocs)) if aurocs else None, "per_class": per_class}


def auroc_ci95(y: np.ndarray, score: np.ndarray, seed: int = 0, n_boot: int = 1000
               ) -> list[float] | None:
    """Percentile bootstrap 95% interval of a binary AUROC (items resampled with replacement)."""
    from sklearn.metrics import roc_auc_score

    y, score = np.asarray(y), np.asarray(score)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            vals.append(roc_auc_score(y[idx], score[idx]))
    if not vals:
        return None
    return [_r(np.percentile(vals, 2.5)), _r(np.percentile(vals, 97.5))]


def _probe_model(c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced",
                                                              max_iter=3000))


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 classes: Sequence[str], c: float = 1.0) -> dict[str, Any]:
    """Logistic regression (standardised, balanced, fixed C) fitted on the training split's
    embeddings, scored on the held-out split: what a downstream user gets from the embedding."""
    model = _probe_model(c).fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    scores = np.zeros((len(x_test), len(classes)))
    scores[:, model.classes_] = proba
    out = classification_report(y_test, scores, classes)
    out["what"] = f"logistic regression (standardised, class_weight=balanced, C={c}) on " \
                  f"{len(x_train)} training-split embeddings"
    if len(classes) == 2:
        out["auroc"] = out["per_class"][classes[1]]["auroc_ovr"]
        out["auroc_ci95"] = auroc_ci95(np.asarray(y_test) == 1, scores[:, 1])
    return out


def grouped_cv_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, folds: int = 5
                     ) -> float | None:
    """Pooled out-of-fold AUROC of the probe under stratified grouped k-fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    if len(set(y.tolist())) < 2:
        return None
    oof = np.zeros(len(y))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in cv.split(x, y, groups):
        oof[te] = _probe_model().fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
    return _r(roc_auc_score(y, oof))


def embedding_geometry(emb: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """How spread out the embeddings are (a collapsed embedding teaches a student nothing).

    effective_rank: exp(entropy) of the normalised singular values of the centred embeddings
    (Roy & Vetterli 2007); participation_ratio: (sum l)^2 / sum l^2 of the PCA variances;
    centred cosine: pairwise cosines after subtracting the mean embedding (off-diagonal);
    raw cosine: the same without centring; within/between: centred cosine of same-label pairs vs
    different-label pairs.
    """
    e = np.asarray(emb, dtype=np.float64)
    c = e - e.mean(0)
    s = np.linalg.svd(c, compute_uv=False)
    p = s / s.sum()
    lam = s**2
    var = lam / lam.sum()

    def cos(m: np.ndarray) -> np.ndarray:
        u = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return u @ u.T

    off = ~np.eye(len(e), dtype=bool)
    cc, rc = cos(c), cos(e)
    out: dict[str, Any] = {
        "n": int(len(e)), "dim": int(e.shape[1]),
        "effective_rank": _r(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())),
        "participation_ratio": _r(lam.sum() ** 2 / (lam**2).sum()),
        "variance_top1": _r(var[0]), "variance_top10": _r(var[:10].sum()),
        "centred_cosine_mean": _r(cc[off].mean()), "centred_cosine_std": _r(cc[off].std()),
        "centred_cosine_p05_p95": [_r(np.percentile(cc[off], 5)), _r(np.percentile(cc[off], 95))],
        "raw_cosine_mean": _r(rc[off].mean()),
        "mean_norm": _r(np.linalg.norm(e, axis=1).mean()),
    }
    if labels is not None:
        same = (labels[:, None] == labels[None, :]) & off
        diff = labels[:, None] != labels[None, :]
        out["centred_cosine_within_label"] = _r(cc[same].mean())
        out["centred_cosine_between_labels"] = _r(cc[diff].mean())
    return out

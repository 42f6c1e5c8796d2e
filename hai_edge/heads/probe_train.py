"""``hai-edge probe train / eval``: fit a calibrated logistic head on a bundle's embeddings, and
evaluate one with grouped confidence intervals.

Training data are the *windows the cough pipeline scores* (event windows, or the plain sliding
windows when a recording has no events; one embedding per photo for image bundles), each with its
recording's label and group, so a head is trained on exactly what it will see. The recipe (HeAR's
probe): standardise, class-balanced logistic regression, L2 strength ``C`` from
``logspace(-5, 5, 11)`` by grouped stratified 5-fold CV (AUROC of the recording score = mean of
window probabilities; no group on both sides of a split), refit on everything. Out-of-fold window
logits at the chosen ``C`` fit a Platt calibration (``sigmoid(a z + b)``), and the threshold is
picked on the out-of-fold recording scores: Youden's J, or the highest threshold that reaches a
``--sensitivity`` target. The reported ``auroc_cv`` shares its folds with the choice of ``C``, so
it is slightly optimistic; judge a head with ``probe eval`` on held-out data.

scikit-learn is imported only here (extra ``probe``); metrics are plain numpy.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.evaluation.decisions import auroc  # re-exported: heads' callers use it

__all__ = [
    "EmbeddedRows",
    "auroc",
    "bootstrap_auroc_ci",
    "embed_corpus_rows",
    "evaluate_head",
    "fit_platt",
    "pick_threshold",
    "sens_spec",
    "train_head",
    "window_folds",
]

CS = tuple(float(c) for c in np.logspace(-5, 5, 11))


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependencyError("hai-edge probe", "probe", "scikit-learn") from None


# ------------------------------------------------------------------------------- metrics
def sens_spec(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of ``s >= threshold``."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(s) >= threshold
    sens = float(pred[y].mean()) if y.any() else float("nan")
    spec = float((~pred[~y]).mean()) if (~y).any() else float("nan")
    return sens, spec


def pick_threshold(y: np.ndarray, s: np.ndarray, sensitivity: float | None = None) -> float:
    """Youden's J maximum (ties: the higher threshold), or the highest threshold whose
    sensitivity reaches ``sensitivity``. Candidates are the scores themselves (``s >= t``)."""
    y = np.asarray(y).astype(bool)
    cands = np.unique(np.asarray(s, dtype=np.float64))[::-1]  # high to low
    best_t, best_j = float(cands[-1]), -np.inf
    for t in cands:
        se, sp = sens_spec(y, s, t)
        if sensitivity is not None:
            if se >= sensitivity:
                return float(t)
            continue
        if se + sp - 1.0 > best_j + 1e-12:
            best_t, best_j = float(t), se + sp - 1.0
    return best_t


def bootstrap_auroc_ci(y: np.ndarray, s: np.ndarray, groups: Sequence[str], n_boot: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the AUROC, resampling *groups* with replacement (rows of a group stay
    together, so repeated recordings of one person do not narrow the interval)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    g = np.asarray([str(v) for v in groups])
    uniq, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[k] for k in pick])
        a = auroc(y[idx], s[idx])
        if not np.isnan(a):
            stats.append(a)
    if len(stats) < max(10, n_boot // 10):
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ embedding
@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddedRows:
    """Window embeddings of a labelled corpus: ``x[i]`` belongs to recording ``rec[i]``."""

    x: np.ndarray  # [n_windows, dim]
    rec: np.ndarray  # [n_windows] recording index
    y: np.ndarray  # [n_recordings] 0/1
    groups: np.ndarray  # [n_recordings] str
    ids: list[str]
    metas: list[dict[str, str]]
    failed: list[str]
    data_hash: str
    label_info: dict[str, Any]


def embed_corpus_rows(bundle: Any, data: str, label: str, positive: Sequence[str] = (),
                      group: str | None = None, file_column: str | None = None,
                      backend: str | None = None, precision: str | None = None,
                      threads: int | None = None, progress: bool = False) -> EmbeddedRows:
    """Load the CSV, label it and embed every file with the pipeline that will score it."""
    from hai_edge.bundle import Bundle
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.cough import CoughPipeline
    from hai_edge.corpus import corpus_hash, load_corpus
    from hai_edge.evaluation.probes import LabelSpec, binary_labels

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    modality = b.manifest.modality.value
    items = load_corpus(data, modality, group_col=group, path_col=file_column)
    if not items or label not in items[0].meta:
        have = ", ".join(items[0].meta) if items else ""
        raise HaiEdgeError(f"{data}: no label column {label!r} (columns: {have})")
    y_all, keep, info = binary_labels([it.meta for it in items], LabelSpec(label, tuple(positive)))
    items = [it for it, k in zip(items, keep) if k]
    y_all = y_all[keep]
    xs, recs, ys, groups, ids, metas, failed = [], [], [], [], [], [], []
    if modality == "audio":
        runner: Any = CoughPipeline(b, backend, precision=precision, threads=threads, heads=(),
                                    keep_embeddings=True)
    else:
        runner = Embedder(b, backend, precision=precision, threads=threads)
    with runner:
        for n, (it, yv) in enumerate(zip(items, y_all)):
            if progress:
                print(f"\rembedding {n + 1}/{len(items)}", end="", file=sys.stderr, flush=True)
            try:
                if modality == "audio":
                    vecs = np.stack([w.embedding for w in runner.analyze_file(it.path).windows])
                else:
                    vecs = np.stack([e.vector for e in runner.embed_image_file(it.path)])
            except HaiEdgeError as exc:
                failed.append(str(exc))
                continue
            xs.append(vecs)
            recs.append(np.full(len(vecs), len(ids)))
            ys.append(int(yv))
            groups.append(it.group or it.item_id)
            ids.append(it.item_id)
            metas.append(dict(it.meta))
    if progress:
        print(file=sys.stderr)
    if not xs:
        raise HaiEdgeError(f"{data}: no file could be embedded ({failed[0] if failed else 'none'})")
    h = hashlib.sha256(corpus_hash(items).encode())
    for i, yv, g in zip(ids, ys, groups):
        h.update(f"{i}\t{yv}\t{g}\n".encode())
    return EmbeddedRows(np.concatenate(xs).astype(np.float64), np.concatenate(recs),
                        np.asarray(ys), np.asarray(groups), ids, metas, failed, h.hexdigest(),
                        info)


# -------------------------------------------------------------------------------- training
def _fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[Any, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x), y)
    return scaler, clf


def _recording_mean(values: np.ndarray, rec: np.ndarray, n_rec: int) -> np.ndarray:
    return np.bincount(rec, weights=values, minlength=n_rec) / np.maximum(
        np.bincount(rec, minlength=n_rec), 1)


def fit_platt(z: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a z + b)`` fitted to Platt's smoothed targets
    (``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)`` instead of 1 and 0), so separable scores give a
    finite slope instead of a step; Newton steps with backtracking (Lin, Lin & Weng 2007)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(a: float, b: float) -> float:
        f = a * z + b  # cross-entropy with soft targets, written to avoid overflow
        return float(np.sum(np.logaddexp(0.0, f) - t * f))

    a, b = 0.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))
    current = loss(a, b)
    for _ in range(max_iter):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        if np.max(np.abs(g)) < 1e-9 * max(1, z.size):
            break
        w = p * (1.0 - p)
        h = np.array([[np.sum(w * z * z) + 1e-12, np.sum(w * z)],
                      [np.sum(w * z), np.sum(w) + 1e-12]])
        step = np.linalg.solve(h, g)
        lr, new = 1.0, np.inf
        while lr > 1e-10:  # backtrack until the loss decreases
            na, nb = a - lr * step[0], b - lr * step[1]
            new = loss(na, nb)
            if new < current:
                break
            lr *= 0.5
        if not new < current:
            break
        a, b, gain, current = na, nb, current - new, new
        if gain < 1e-12 * max(1.0, abs(current)):
            break
    return float(a), float(b)


def window_folds(rows: EmbeddedRows, n_splits: int = 5, seed: int = 0
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped stratified folds over *recordings* (by group), as window index arrays: all
    windows of a recording, and all recordings of a group, fall on the same side."""
    from hai_edge.evaluation.probes import grouped_folds

    rec_folds = grouped_folds(rows.y, rows.groups, n_splits, seed)
    folds = [(np.flatnonzero(np.isin(rows.rec, tr)), np.flatnonzero(np.isin(rows.rec, te)))
             for tr, te in rec_folds]
    gw = rows.groups[rows.rec]
    for tr, te in folds:  # the guarantee every CV figure of a head rests on
        if set(gw[tr]) & set(gw[te]):
            raise AssertionError("a group straddles a CV split")
    return folds


def train_head(rows: EmbeddedRows, name: str, *, labels: tuple[str, str],
               sensitivity: float | None = None, seed: int = 0, n_splits: int = 5,
               notice: str = "", cs: Sequence[float] = CS, extra_training: dict[str, Any] | None = None,
               log: Callable[[str], None] | None = None) -> Any:
    """The recipe in the module docstring -> a :class:`~hai_edge.runtime.heads.Head`."""
    _require_sklearn()
    from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

    n_rec = len(rows.y)
    yw = rows.y[rows.rec]  # window labels
    folds = window_folds(rows, n_splits, seed)
    best = (-np.inf, cs[0], None)
    for c in cs:  # a large corpus may pass a shorter grid (large C converges slowly)
        z = np.full(len(yw), np.nan)
        for tr, te in folds:
            scaler, clf = _fit(rows.x[tr], yw[tr], c)
            z[te] = clf.decision_function(scaler.transform(rows.x[te]))
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        score = auroc(rows.y, _recording_mean(p, rows.rec, n_rec))
        if log:
            log(f"C={c:<8.0e} grouped {len(folds)}-fold AUROC {score:.4f}")
        if score > best[0] + 1e-12:  # ties keep the stronger regularisation (smaller C)
            best = (score, c, z)
    _, c_best, z_oof = best
    if z_oof is None:
        raise HaiEdgeError("probe: cross-validation produced no usable scores")
    scaler, clf = _fit(rows.x, yw, c_best)
    a, b = fit_platt(z_oof, yw)
    notes = []
    if a <= 0:
        notes.append("out-of-fold scores were not informative; calibration falls back to a=1e-6")
        a = 1e-6
    cal = Calibration(CalibrationKind.PLATT, a=a, b=b)
    rec_oof = _recording_mean(cal.apply(z_oof), rows.rec, n_rec)
    threshold = pick_threshold(rows.y, rec_oof, sensitivity)
    se, sp = sens_spec(rows.y, rec_oof, threshold)
    training = {
        "data_hash": rows.data_hash,
        "n": n_rec,
        "n_positive": int(rows.y.sum()),
        "n_windows": int(len(yw)),
        "groups": int(len(set(rows.groups.tolist()))),
        "n_failed": len(rows.failed),
        "label": rows.label_info.get("label"),
        "recipe": "standardise + class-balanced logistic regression; C by grouped stratified "
                  "CV on the recording score (mean of window probabilities); Platt on "
                  "out-of-fold window logits",
        "C": c_best,
        "folds": len(folds),
        "seed": seed,
        "auroc_cv": round(auroc(rows.y, rec_oof), 4),
        "auroc_cv_windows": round(auroc(yw, z_oof), 4),
        "threshold_rule": f"sensitivity>={sensitivity:g}" if sensitivity is not None else "youden",
        "sensitivity_cv": round(se, 4),
        "specificity_cv": round(sp, 4),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        **(extra_training or {}),
    }
    if notes:
        training["warnings"] = notes
    training["standardisation"] = "folded into the weights (Head.compact)"
    return Head(name=name, weights=clf.coef_[0].astype(np.float64),
                bias=float(clf.intercept_[0]), mean=scaler.mean_.astype(np.float64),
                scale=np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float64),
                threshold=float(threshold), calibration=cal, labels=labels,
                training=training, notice=notice).compact()


# ------------------------------------------------------------------------------ evaluation
def evaluate_head(head: Any, rows: EmbeddedRows, subgroups: Sequence[str] = (),
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Recording-level AUROC (mean of window probabilities) with a grouped bootstrap CI,
    sensitivity/specificity at the head's threshold, and the same per subgroup value."""
    scores = _recording_mean(head.predict_proba(rows.x), rows.rec, len(rows.y))

    def row(mask: np.ndarray) -> dict[str, Any]:
        y, s, g = rows.y[mask], scores[mask], rows.groups[mask]
        lo, hi = bootstrap_auroc_ci(y, s, g, n_boot, seed)
        se, sp = sens_spec(y, s, head.threshold)
        return {"n": int(mask.sum()), "n_positive": int(y.sum()), "groups": len(set(g.tolist())),
                "auroc": _r(auroc(y, s)), "ci95": [_r(lo), _r(hi)], "sensitivity": _r(se),
                "specificity": _r(sp)}

    out = {"head": head.name, "threshold": head.threshold, "n_failed": len(rows.failed),
           "data_hash": rows.data_hash, "overall": row(np.ones(len(rows.y), bool)),
           "subgroups": []}
    for col in subgroups:
        values = [m.get(col, "") for m in rows.metas]
        if not any(values):
            raise HaiEdgeError(f"no column {col!r} for subgroups")
        for v in sorted(set(values)):
            mask = np.array([x == v for x in values])
            out["subgroups"].append({"column": col, "value": v or "(empty)", **row(mask)})
    return out


def _r(v: float) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v), 4)

"""Fit a head's out-of-distribution gate (:class:`hai_edge.runtime.abstain.OodGate`).

The statistics (mean, leading principal directions and variances, residual variance) come from
the head's training embeddings (and, for photos, their quality scores). The threshold must come
from rows the statistics did not see, or it would sit too low (training points are closer to
their own mean): each training group (patient) is scored by statistics fitted without it
(grouped K-fold, out-of-fold distances), and the threshold is the ``percentile`` of those
distances. The final statistics use
every training embedding, so a new in-distribution photo is, if anything, closer than the
out-of-fold ones were: the held-out false-withhold rate lands at or under ``100 - percentile``.
Measure it on held-out groups with :func:`withhold_rate`. Numpy only.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.abstain import OodFeature, OodGate, OodMethod, PpcaStats

__all__ = ["fit_ood_gate", "fit_statistics", "withhold_rate"]


def fit_statistics(x: np.ndarray, components: int) -> PpcaStats:
    """Probabilistic PCA's maximum-likelihood Gaussian of rows ``[n, dim]``: the ``k`` leading
    directions with their variances, the residual variance = mean of the eigenvalues left out."""
    x = np.asarray(x, dtype=np.float64)
    n, dim = x.shape
    k = min(components, n - 2, dim - 1)
    if k < 1:
        raise HaiEdgeError(f"too few rows ({n}) to fit out-of-distribution statistics")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eig = s * s / (n - 1)
    total = float(np.sum(np.var(x, axis=0, ddof=1)))
    resid = max((total - float(eig[:k].sum())) / (dim - k), 1e-12 * max(total, 1e-12))
    return PpcaStats(mean, vt[:k], np.maximum(eig[:k], resid), resid)


def _folds(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    return np.array([zlib.crc32(f"{seed}:{g}".encode()) % folds for g in groups])


def _out_of_fold(x: np.ndarray, fold: np.ndarray, components: int) -> np.ndarray:
    """Each row's distance under statistics fitted without its fold (its group)."""
    out = np.full(x.shape[0], np.nan)
    for f in np.unique(fold):
        test = fold == f
        if test.all():
            continue
        out[test] = fit_statistics(x[~test], components).distance(x[test])
    return out


def fit_ood_gate(x: np.ndarray, groups: Sequence[str], *,
                 photo: Mapping[str, np.ndarray] | None = None, components: int = 16,
                 percentile: float = 99.0, folds: int = 5, seed: int = 0,
                 info: Mapping[str, Any] | None = None) -> OodGate:
    """A gate from training embeddings ``x`` ``[n, dim]``, their groups (patients) and, for
    photos, their quality scores (``photo``: check name -> ``[n]``: ``blur``,
    ``exposure_over``, ``not_skin``). Both stages are thresholded on out-of-fold values: the
    joint features use out-of-fold embedding distances, and the threshold is the
    ``percentile`` of out-of-fold joint distances."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(groups) != x.shape[0]:
        raise HaiEdgeError("embeddings must be [n, dim] with one group per row")
    if not 0 < percentile < 100:
        raise HaiEdgeError("percentile must be within (0, 100)")
    features = [OodFeature.EMBEDDING_DISTANCE, OodFeature.EMBEDDING_NORM]
    if photo is not None:
        features += [OodFeature.SHARPNESS, OodFeature.LUMA, OodFeature.SKIN]
    fold = _folds([str(g) for g in groups], folds, seed)
    emb_oof = _out_of_fold(x, fold, components)
    ok = np.isfinite(emb_oof)
    stats = fit_statistics(x, components)
    probe = OodGate(stats, tuple(features), stats, 1.0, percentile)
    feats = probe.feature_vectors(x, photo, embedding_distance=emb_oof)[ok]
    joint_k = len(features) - 1
    oof = _out_of_fold(feats, fold[ok], joint_k)
    oof = oof[np.isfinite(oof)]
    threshold = float(np.percentile(oof, percentile))
    meta = {"n_fit": int(x.shape[0]), "groups_fit": len(set(map(str, groups))),
            "threshold_source": f"{percentile:g}th percentile of grouped {folds}-fold "
                                f"out-of-fold joint distances of the training rows "
                                f"(n={oof.size})",
            **dict(info or {})}
    return OodGate(stats, tuple(features), fit_statistics(feats, joint_k), threshold,
                   float(percentile), OodMethod.MAHALANOBIS_PPCA_JOINT, meta)


def withhold_rate(gate: OodGate, x: np.ndarray,
                  photo: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Share of embeddings ``[n, dim]`` (with their ``photo`` scores) the gate withholds."""
    d = gate.joint.distance(gate.feature_vectors(x, photo))
    n, k = int(d.size), int(np.count_nonzero(d > gate.threshold))
    return {"n": n, "withheld": k, "rate": round(k / n, 4) if n else None}

"""Fit a head's out-of-distribution gate (:class:`hai_edge.runtime.abstain.OodGate`).

The statistics (mean, leading principal directions and variances, residual variance) come from
the head's training embeddings. The threshold must come from embeddings the statistics did not
see, or it would sit too low (training points are closer to their own mean): each training
group (patient) is scored by statistics fitted without it (grouped K-fold, out-of-fold
distances), and the threshold is the ``percentile`` of those distances. The final statistics use
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
from hai_edge.runtime.abstain import OodGate, OodMethod

__all__ = ["fit_ood_gate", "fit_statistics", "withhold_rate"]


def fit_statistics(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                            float]:
    """(mean, components [k, dim], variances [k], residual variance) of embeddings ``[n, dim]``:
    probabilistic PCA's maximum-likelihood estimate (the residual variance is the mean of the
    eigenvalues left out)."""
    x = np.asarray(x, dtype=np.float64)
    n, dim = x.shape
    k = min(components, n - 2, dim - 1)
    if k < 1:
        raise HaiEdgeError(f"too few embeddings ({n}) to fit out-of-distribution statistics")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eig = s * s / (n - 1)
    total = float(np.sum(np.var(x, axis=0, ddof=1)))
    resid = max((total - float(eig[:k].sum())) / (dim - k), 1e-12 * max(total, 1e-12))
    return mean, vt[:k], np.maximum(eig[:k], resid), resid


def _fold_of(group: str, folds: int, seed: int) -> int:
    return zlib.crc32(f"{seed}:{group}".encode()) % folds


def fit_ood_gate(x: np.ndarray, groups: Sequence[str], *, components: int = 32,
                 percentile: float = 99.0, folds: int = 5, seed: int = 0,
                 info: Mapping[str, Any] | None = None) -> OodGate:
    """A gate from training embeddings ``x`` ``[n, dim]`` and their groups (patients)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(groups) != x.shape[0]:
        raise HaiEdgeError("embeddings must be [n, dim] with one group per row")
    if not 0 < percentile < 100:
        raise HaiEdgeError("percentile must be within (0, 100)")
    fold = np.array([_fold_of(str(g), folds, seed) for g in groups])
    oof = np.full(x.shape[0], np.nan)
    for f in range(folds):
        test = fold == f
        if not test.any() or test.all():
            continue
        mean, comps, var, resid = fit_statistics(x[~test], components)
        gate = OodGate(mean, comps, var, resid, 1.0, percentile)
        oof[test] = gate.distance(x[test])
    oof = oof[np.isfinite(oof)]
    mean, comps, var, resid = fit_statistics(x, components)
    threshold = float(np.percentile(oof, percentile))
    meta = {"n_fit": int(x.shape[0]), "groups_fit": len(set(map(str, groups))),
            "threshold_source": f"{percentile:g}th percentile of grouped {folds}-fold "
                                f"out-of-fold distances of the training embeddings "
                                f"(n={oof.size})",
            **dict(info or {})}
    return OodGate(mean, comps, var, resid, threshold, float(percentile),
                   OodMethod.MAHALANOBIS_PPCA, meta)


def withhold_rate(gate: OodGate, x: np.ndarray) -> dict[str, Any]:
    """Share of embeddings ``[n, dim]`` the gate withholds, with the count."""
    d = gate.distance(np.asarray(x, dtype=np.float64))
    n, k = int(d.size), int(np.count_nonzero(d > gate.threshold))
    return {"n": n, "withheld": k, "rate": round(k / n, 4) if n else None}

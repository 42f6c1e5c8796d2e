"""Abstention: when a head's score is withheld instead of shown (issue #17).

A head's verdict is only worth showing on input like the data it was fit on. Three rules:

* **cough**: heads score cough events only; a recording with no (loud enough) cough event gets
  no score for any head (:data:`NO_COUGH`, :data:`QUIET_COUGH`);
* **derm, quality**: a photo that fails a *blocking* quality check (severe blur, very dark or
  very bright: :func:`hai_edge.runtime.quality.blocking_checks`) gets no score;
* **derm, out of distribution**: a head may carry an :class:`OodGate` (the ``"ood"`` object of
  its head file): the Mahalanobis distance of the embedding to the head's training embeddings
  under a probabilistic-PCA (shrunk) covariance; above the stored threshold (a percentile of
  in-distribution held-out distances) the head's score is withheld.

``score_anyway=True`` (CLI ``--score-anyway``) computes every score regardless; the result then
says ``scored_anyway`` and keeps the reasons it overrode. This module is the one place that
parses the ``"ood"`` field (head file and manifest entry). Numpy only.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hai_edge.errors import BundleError

__all__ = [
    "NO_COUGH",
    "OOD_FIELD",
    "QUIET_COUGH",
    "OodGate",
    "OodMethod",
    "check_ood_entry",
    "ood_gate",
    "ood_reason",
]

OOD_FIELD = "ood"
"""Name of the plain JSON field in a head file (full statistics) and its manifest entry
(summary: method, threshold, percentile and the measured rates, no arrays)."""

NO_COUGH = "no cough detected"
QUIET_COUGH = "the detected coughs were too quiet to score"
_SUMMARY_KEYS = ("method", "threshold", "percentile")


class OodMethod(str, enum.Enum):
    """``mahalanobis_ppca``: Mahalanobis distance under the probabilistic-PCA covariance
    ``W diag(v) W^T + s (I - W W^T)``: the ``k`` leading principal directions keep their own
    variances ``v``, the rest share their mean ``s``. It is a shrinkage estimate that stays
    well conditioned with fewer photos than dimensions, and it stores in ``k x dim`` numbers."""

    MAHALANOBIS_PPCA = "mahalanobis_ppca"


def _fail(where: str, msg: str) -> BundleError:
    return BundleError(f"{where}: ood: {msg}")


def _array(v: Any, where: str, name: str, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(where, f"{name} must hold numbers only") from None
    if a.ndim != ndim or a.size == 0 or not np.all(np.isfinite(a)):
        raise _fail(where, f"{name} must be a non-empty {ndim}-d array of finite numbers")
    return a


def _number(v: Any, where: str, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _fail(where, f"{name} must be a finite number")
    return float(v)


@dataclasses.dataclass(frozen=True, eq=False)
class OodGate:
    """Distance of embeddings to a head's training distribution, and the withhold threshold.

    ``info`` keeps the other fields of the JSON object as they are (fit sizes, the measured
    false-withhold rate on held-out photos, ...) so the summary can show them."""

    mean: np.ndarray  # [dim]
    components: np.ndarray  # [k, dim], orthonormal rows
    variances: np.ndarray  # [k], > 0
    residual_variance: float  # > 0
    threshold: float
    percentile: float
    method: OodMethod = OodMethod.MAHALANOBIS_PPCA
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Mahalanobis distance per row of ``[n, dim]`` (or one ``[dim]`` vector -> ``[1]``)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        d = x - self.mean
        p = d @ self.components.T
        resid = np.maximum(np.sum(d * d, axis=1) - np.sum(p * p, axis=1), 0.0)
        return np.sqrt(np.sum(p * p / self.variances, axis=1) + resid / self.residual_variance)

    def summary(self) -> dict[str, Any]:
        """The manifest entry's ``"ood"`` object: everything but the arrays."""
        return {"method": self.method.value, "threshold": self.threshold,
                "percentile": self.percentile, "components": int(self.components.shape[0]),
                **{k: v for k, v in self.info.items() if k not in _SUMMARY_KEYS}}

    def to_dict(self) -> dict[str, Any]:
        """The head file's ``"ood"`` object (9 significant digits: float32's precision)."""
        def r(a: np.ndarray) -> Any:
            return np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[float])(a).tolist()

        return {**self.summary(), "mean": r(self.mean), "components_matrix": r(self.components),
                "variances": r(self.variances), "residual_variance": self.residual_variance}

    @classmethod
    def from_dict(cls, d: Any, where: str, dim: int | None = None) -> OodGate:
        if not isinstance(d, dict):
            raise _fail(where, "must be an object")
        try:
            method = OodMethod(d.get("method"))
        except ValueError:
            raise _fail(where, f"unknown method {d.get('method')!r} (mahalanobis_ppca)") from None
        mean = _array(d.get("mean"), where, "mean", 1)
        comps = _array(d.get("components_matrix"), where, "components_matrix", 2)
        var = _array(d.get("variances"), where, "variances", 1)
        resid = _number(d.get("residual_variance"), where, "residual_variance")
        if dim is not None and mean.size != dim:
            raise _fail(where, f"mean has {mean.size} values, the head's embeddings {dim}")
        if comps.shape != (var.size, mean.size):
            raise _fail(where, f"components_matrix must be [{var.size}, {mean.size}]")
        if np.any(var <= 0) or resid <= 0:
            raise _fail(where, "variances and residual_variance must be > 0")
        threshold = _number(d.get("threshold"), where, "threshold")
        percentile = _number(d.get("percentile"), where, "percentile")
        if threshold <= 0 or not 0 < percentile <= 100:
            raise _fail(where, "threshold must be > 0 and percentile within (0, 100]")
        skip = {"method", "threshold", "percentile", "components", "mean",
                "components_matrix", "variances", "residual_variance"}
        info = {k: v for k, v in d.items() if k not in skip}
        return cls(mean, comps, var, resid, threshold, percentile, method, info)


def ood_gate(head_file: Mapping[str, Any], where: str, dim: int) -> OodGate | None:
    """The gate stored in a head file's dict (None when the head has none)."""
    d = head_file.get(OOD_FIELD)
    return None if d is None else OodGate.from_dict(d, where, dim)


def check_ood_entry(entry: Mapping[str, Any], gate: OodGate | None, where: str) -> None:
    """A manifest entry's ``"ood"`` summary must agree with the head file's statistics, so that
    neither can be edited alone (the file is also covered by its sha256)."""
    summary = entry.get(OOD_FIELD)
    if summary is None and gate is None:
        return
    if summary is None or gate is None or not isinstance(summary, dict):
        raise BundleError(f"{where}: the manifest and the head file disagree on ood statistics")
    mine = gate.summary()
    for key in _SUMMARY_KEYS:
        a, b = summary.get(key), mine.get(key)
        same = (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(float(a), float(b), rel_tol=1e-9)) or a == b
        if not same:
            raise BundleError(f"{where}: manifest ood.{key} differs from the head file")


def ood_reason(distance: float, threshold: float) -> str:
    """The plain-words reason shown when the gate withholds a score."""
    return (f"the photo does not look like the photos this head was trained on "
            f"(out-of-distribution score {distance:.1f}, limit {threshold:.1f}); it may be "
            "another kind of image, another camera or not a skin lesion")

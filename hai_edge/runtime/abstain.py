"""Abstention: when a head's score is withheld instead of shown (issue #17).

A head's verdict is only worth showing on input like the data it was fit on. Three rules:

* **cough**: heads score cough events only; a recording with no (loud enough) cough event gets
  no score for any head (:data:`NO_COUGH`, :data:`QUIET_COUGH`);
* **derm, quality**: a photo that fails a *blocking* quality check (severe blur, very dark or
  very bright: :func:`hai_edge.runtime.quality.blocking_checks`) gets no score;
* **derm, out of distribution**: a head may carry an :class:`OodGate` (the ``"ood"`` object of
  its head file): Mahalanobis distances under probabilistic-PCA (shrunk) covariances, of the
  embedding to the head's training embeddings and of a few photo features to the training
  photos' (:class:`OodMethod`); above the stored threshold (a percentile of in-distribution
  held-out distances) the head's score is withheld.

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
    "OodFeature",
    "OodGate",
    "OodMethod",
    "PpcaStats",
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
    """``mahalanobis_ppca_joint``: two Mahalanobis distances under probabilistic-PCA
    covariances ``W diag(v) W^T + s (I - W W^T)`` (the ``k`` leading principal directions keep
    their own variances ``v``, the rest share their mean ``s``: a shrinkage estimate that stays
    well conditioned with fewer photos than dimensions and stores in ``k x dim`` numbers).
    First the embedding's distance to the head's training embeddings; then the distance of a
    small feature vector (:class:`OodFeature`: that distance, the embedding's norm and, for
    photos, sharpness, brightness and skin-colour share) to the training photos' vectors. The
    second stage is what the threshold applies to: on the small derm student the embedding
    alone places noise, screenshots and non-skin photos inside the lesions' spread."""

    MAHALANOBIS_PPCA_JOINT = "mahalanobis_ppca_joint"


class OodFeature(str, enum.Enum):
    """One entry of the joint vector; photo features read the quality report's scores."""

    EMBEDDING_DISTANCE = "log_embedding_distance"
    EMBEDDING_NORM = "log_embedding_norm"
    SHARPNESS = "log_sharpness"  # quality check "blur"
    LUMA = "mean_luma"  # quality check "exposure_over" (the mean luma)
    SKIN = "skin_fraction"  # quality check "not_skin"


_CHECK_OF = {OodFeature.SHARPNESS: "blur", OodFeature.LUMA: "exposure_over",
             OodFeature.SKIN: "not_skin"}


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


def _r9(a: np.ndarray) -> Any:
    """9 significant digits (float32's precision) for the JSON file."""
    return np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[float])(a).tolist()


@dataclasses.dataclass(frozen=True, eq=False)
class PpcaStats:
    """Mean, leading principal directions ``[k, dim]`` (orthonormal rows) with their variances,
    and the shared residual variance: a probabilistic-PCA Gaussian."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    residual_variance: float

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distance per row of ``[n, dim]`` (or one ``[dim]`` vector -> ``[1]``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        d = x - self.mean
        p = d @ self.components.T
        resid = np.maximum(np.sum(d * d, axis=1) - np.sum(p * p, axis=1), 0.0)
        return np.sqrt(np.sum(p * p / self.variances, axis=1) + resid / self.residual_variance)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _r9(self.mean), "components_matrix": _r9(self.components),
                "variances": _r9(self.variances), "residual_variance": self.residual_variance}

    @classmethod
    def from_dict(cls, d: Any, where: str, dim: int | None) -> PpcaStats:
        if not isinstance(d, dict):
            raise _fail(where, "statistics must be an object")
        mean = _array(d.get("mean"), where, "mean", 1)
        comps = _array(d.get("components_matrix"), where, "components_matrix", 2)
        var = _array(d.get("variances"), where, "variances", 1)
        resid = _number(d.get("residual_variance"), where, "residual_variance")
        if dim is not None and mean.size != dim:
            raise _fail(where, f"mean has {mean.size} values, expected {dim}")
        if comps.shape != (var.size, mean.size):
            raise _fail(where, f"components_matrix must be [{var.size}, {mean.size}]")
        if np.any(var <= 0) or resid <= 0:
            raise _fail(where, "variances and residual_variance must be > 0")
        return cls(mean, comps, var, resid)


@dataclasses.dataclass(frozen=True, eq=False)
class OodGate:
    """A head's out-of-distribution gate: embedding statistics, the joint features and their
    statistics, and the threshold on the joint distance. ``info`` keeps the other JSON fields
    (fit sizes, the measured false-withhold rate on held-out photos, ...) for the summary."""

    embedding: PpcaStats
    features: tuple[OodFeature, ...]
    joint: PpcaStats
    threshold: float
    percentile: float
    method: OodMethod = OodMethod.MAHALANOBIS_PPCA_JOINT
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def needs_quality(self) -> bool:
        return any(f in _CHECK_OF for f in self.features)

    def feature_vectors(self, embeddings: np.ndarray, photo: Mapping[str, np.ndarray] | None
                        = None, embedding_distance: np.ndarray | None = None) -> np.ndarray:
        """The joint vectors ``[n, len(features)]``. ``photo``: quality-check name -> scores
        ``[n]`` (``blur``, ``exposure_over``, ``not_skin``); ``embedding_distance`` overrides
        the embedding stage (the fitter passes out-of-fold distances)."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        dist = self.embedding.distance(x) if embedding_distance is None else embedding_distance
        cols = []
        for f in self.features:
            if f is OodFeature.EMBEDDING_DISTANCE:
                cols.append(np.log(np.maximum(dist, 1e-9)))
            elif f is OodFeature.EMBEDDING_NORM:
                cols.append(np.log(np.maximum(np.linalg.norm(x, axis=1), 1e-9)))
            else:
                if photo is None or _CHECK_OF[f] not in photo:
                    raise ValueError(f"the {f.value} feature needs the photo's quality scores")
                v = np.asarray(photo[_CHECK_OF[f]], dtype=np.float64).reshape(-1)
                cols.append(np.log(np.maximum(v, 1e-3)) if f is OodFeature.SHARPNESS else v)
        return np.column_stack(cols)

    def distance(self, embeddings: np.ndarray, quality: Any = None) -> np.ndarray:
        """Joint distance per embedding; ``quality``: the photo's ``QualityReport`` (one row)."""
        photo = None
        if quality is not None:
            photo = {c.name.value: np.array([c.score]) for c in quality.checks}
        return self.joint.distance(self.feature_vectors(embeddings, photo))

    def summary(self) -> dict[str, Any]:
        """The manifest entry's ``"ood"`` object: everything but the statistics."""
        return {"method": self.method.value, "threshold": self.threshold,
                "percentile": self.percentile, "features": [f.value for f in self.features],
                "components": int(self.embedding.components.shape[0]),
                **{k: v for k, v in self.info.items() if k not in _SUMMARY_KEYS}}

    def to_dict(self) -> dict[str, Any]:
        """The head file's ``"ood"`` object."""
        return {**self.summary(), "embedding_stats": self.embedding.to_dict(),
                "joint_stats": self.joint.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, where: str, dim: int | None = None) -> OodGate:
        if not isinstance(d, dict):
            raise _fail(where, "must be an object")
        try:
            method = OodMethod(d.get("method"))
            features = tuple(OodFeature(f) for f in d.get("features") or ())
        except (ValueError, TypeError):
            raise _fail(where, f"unknown method {d.get('method')!r} or features "
                               f"{d.get('features')!r}") from None
        if not features:
            raise _fail(where, "features must list at least one feature")
        emb = PpcaStats.from_dict(d.get("embedding_stats"), where, dim)
        joint = PpcaStats.from_dict(d.get("joint_stats"), where, len(features))
        threshold = _number(d.get("threshold"), where, "threshold")
        percentile = _number(d.get("percentile"), where, "percentile")
        if threshold <= 0 or not 0 < percentile <= 100:
            raise _fail(where, "threshold must be > 0 and percentile within (0, 100]")
        skip = {*_SUMMARY_KEYS, "features", "components", "embedding_stats", "joint_stats"}
        info = {k: v for k, v in d.items() if k not in skip}
        return cls(emb, features, joint, threshold, percentile, method, info)


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

"""INT8 fidelity figures and gates, always on held-out inputs that calibration never saw.

Plain cosine alone flatters random-ish embeddings (a shared direction inflates it; toolchain notes
section 3), so every report also gives the *centred* cosine: both embeddings minus the mean FP32
embedding of the held-out set. The hard gate is on the mean cosine (default >= 0.99 per format;
cross-format INT8 agreement >= 0.98); p5/min/centred figures are recorded next to it, and the
centred mean cosine is gated too when ``min_centred_cosine`` is set (recommended for embeddings
with a large common offset, e.g. students exported in a teacher's de-normalised space, where the
plain cosine of INT8 vs FP32 reads 1.0000 whatever the item-specific error).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.evaluation.metrics import cosine_rows

__all__ = [
    "FidelityReport",
    "GateThresholds",
    "compare",
    "cross_format_agreement",
    "head_agreement",
    "overlapping_rows",
]


@dataclasses.dataclass(frozen=True)
class GateThresholds:
    """Hard limits. ``min_mean_cosine``: INT8 vs FP32 per format; ``min_cross_cosine``: mean
    cosine between every pair of INT8 formats. Teacher/head figures are reported, and gated only
    when their threshold is set."""

    min_mean_cosine: float = 0.99
    min_cross_cosine: float = 0.98
    # The centred cosine (both sides minus the FP32 mean) exposes embeddings whose input-specific
    # part INT8 destroyed while a shared offset keeps the plain cosine near 1. None: not gated.
    min_centred_cosine: float | None = 0.90
    max_teacher_cosine_drop: float | None = None  # INT8-vs-teacher may lose at most this vs FP32
    min_head_agreement: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_mean_cosine", "min_cross_cosine"):
            v = getattr(self, name)
            if not -1.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within [-1, 1], got {v}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FidelityReport:
    """Candidate vs reference embeddings on ``n`` held-out inputs."""

    reference: str
    candidate: str
    n: int
    mean_cosine: float
    p5_cosine: float
    min_cosine: float
    centred_mean_cosine: float
    centred_p5_cosine: float
    max_abs_diff: float
    rel_rmse: float  # ||cand - ref|| / ||ref|| over the whole batch
    threshold: float  # required mean cosine
    passed: bool
    centred_threshold: float | None = None  # required centred mean cosine (None: not gated)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in dataclasses.asdict(self).items()}

    def summary(self) -> str:
        req = f" (>= {self.centred_threshold})" if self.centred_threshold is not None else ""
        return (f"mean cos {self.mean_cosine:.4f} (>= {self.threshold}), p5 {self.p5_cosine:.4f}, "
                f"centred {self.centred_mean_cosine:.4f}{req}, n={self.n}")


def compare(reference: np.ndarray, candidate: np.ndarray, *, threshold: float,
            centre: np.ndarray | None = None, reference_name: str = "fp32",
            candidate_name: str = "int8", centred_threshold: float | None = None
            ) -> FidelityReport:
    """Figures of ``candidate`` against ``reference`` ([N, dim] each). ``centre`` defaults to
    the reference's mean embedding. Non-finite outputs fail with cosine 0."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    cand = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if ref.shape != cand.shape or len(ref) == 0:
        raise ValueError(f"compare: shapes differ or empty: {ref.shape} vs {cand.shape}")
    finite = bool(np.all(np.isfinite(cand)))
    if not finite:
        cand = np.nan_to_num(cand, nan=0.0, posinf=0.0, neginf=0.0)
    mu = ref.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64).ravel()
    cos = cosine_rows(ref, cand) if finite else np.zeros(len(ref))
    ccos = cosine_rows(ref - mu, cand - mu) if finite else np.zeros(len(ref))
    denom = float(np.linalg.norm(ref))
    rel = float(np.linalg.norm(cand - ref) / denom) if denom > 0 else 0.0
    mean = float(np.mean(cos))
    cmean = float(np.mean(ccos))
    ok = finite and mean >= threshold and (centred_threshold is None or cmean >= centred_threshold)
    return FidelityReport(
        reference=reference_name, candidate=candidate_name, n=int(len(ref)),
        mean_cosine=mean, p5_cosine=float(np.percentile(cos, 5)), min_cosine=float(np.min(cos)),
        centred_mean_cosine=cmean, centred_p5_cosine=float(np.percentile(ccos, 5)),
        max_abs_diff=float(np.max(np.abs(cand - ref))) if finite else math.inf,
        rel_rmse=rel if finite else math.inf, threshold=float(threshold),
        passed=bool(ok), centred_threshold=centred_threshold,
    )


def cross_format_agreement(outputs: Mapping[str, np.ndarray], threshold: float) -> dict[str, Any]:
    """Mean/min (and centred mean) cosine of every pair of models' outputs on the same inputs;
    gate on the worst pair's mean. One model alone passes trivially."""
    names = sorted(outputs)
    mu = np.mean([np.asarray(outputs[n], dtype=np.float64).mean(axis=0) for n in names], axis=0) \
        if names else 0.0
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            cos = cosine_rows(outputs[a], outputs[b])
            ccos = cosine_rows(np.asarray(outputs[a]) - mu, np.asarray(outputs[b]) - mu)
            pairs[f"{a}|{b}"] = {"mean_cosine": round(float(np.mean(cos)), 6),
                                 "min_cosine": round(float(np.min(cos)), 6),
                                 "centred_mean_cosine": round(float(np.mean(ccos)), 6)}
    worst = min((p["mean_cosine"] for p in pairs.values()), default=1.0)
    return {"models": names, "pairs": pairs, "min_pair_mean_cosine": worst,
            "threshold": threshold, "passed": bool(worst >= threshold)}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def head_agreement(heads: Sequence[Mapping[str, Any]], reference: np.ndarray,
                   candidate: np.ndarray) -> list[dict[str, Any]]:
    """Agreement of linear-probe heads on FP32 vs INT8 embeddings.

    Accepted head form (others are listed as skipped): ``{"name", "kind": "logistic",
    "weights": [dim], "bias": float, "mean"?: [dim], "scale"?: [dim], "threshold"?: float}``;
    probability ``sigmoid(((x - mean) / scale) . weights + bias)``.
    """
    out = []
    for h in heads:
        name = str(h.get("name", "?"))
        try:
            if h.get("kind", "logistic") != "logistic":
                raise ValueError(f"kind {h.get('kind')!r}")
            w = np.asarray(h["weights"], dtype=np.float64).ravel()
            mean = np.asarray(h.get("mean", 0.0), dtype=np.float64)
            scale = np.asarray(h.get("scale", 1.0), dtype=np.float64)
            bias = float(np.asarray(h.get("bias", 0.0)).ravel()[0])
            thr = float(h.get("threshold", 0.5))
            p_ref = _sigmoid(((reference - mean) / scale) @ w + bias)
            p_cand = _sigmoid(((candidate - mean) / scale) @ w + bias)
        except (KeyError, ValueError, TypeError) as exc:
            out.append({"head": name, "skipped": f"unsupported head ({exc})"})
            continue
        out.append({
            "head": name,
            "decision_agreement": round(float(np.mean((p_ref >= thr) == (p_cand >= thr))), 6),
            "max_abs_prob_diff": round(float(np.max(np.abs(p_ref - p_cand))), 6),
            "mean_abs_prob_diff": round(float(np.mean(np.abs(p_ref - p_cand))), 6),
            "threshold": thr,
        })
    return out


def overlapping_rows(a: np.ndarray, b: np.ndarray) -> int:
    """How many rows of ``b`` also occur (bit-identical) in ``a``: held-out must not overlap."""
    seen = {np.ascontiguousarray(r).tobytes() for r in np.asarray(a, dtype=np.float32)}
    return sum(np.ascontiguousarray(r).tobytes() in seen for r in np.asarray(b, dtype=np.float32))

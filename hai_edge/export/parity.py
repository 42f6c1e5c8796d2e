"""Parity between a reference (torch) and an exported artifact: measured, reported, gated.

The gate is hard: ``gate`` raises ``GateError`` with the measured figures and the tolerance; there
is no "warn and continue" mode, because a silently different export gives silently different
embeddings on every device that runs it. Both criteria must hold: every element within ``atol``
(catches a scale/offset bug that cosine would forgive) and every row's cosine at least
``min_cosine`` (catches a wrong direction in large-magnitude embeddings).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hai_edge.bundle import ModelFormat
from hai_edge.errors import GateError
from hai_edge.evaluation.metrics import cosine_rows

__all__ = ["ParityReport", "check_parity", "cosine_rows", "gate"]


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Figures of one parity check (JSON-ready ``to_dict``; stored in a ModelEntry's fidelity)."""

    format: str
    reference: str
    n: int
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float
    atol: float
    passed: bool
    cosine_floor: float = 0.9999  # the min_cosine the check required

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (
            f"{self.format} vs {self.reference} on {self.n} inputs: max |diff| "
            f"{self.max_abs_diff:.3g} (atol {self.atol:.3g}), cosine min {self.min_cosine:.6f} "
            f"mean {self.mean_cosine:.6f} (required >= {self.cosine_floor})"
        )


def check_parity(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    fmt: ModelFormat | str,
    atol: float,
    min_cosine: float = 0.9999,
    reference_name: str = "torch-fp32",
) -> ParityReport:
    """Compare ``candidate`` with ``reference`` (same shape [N, ...]); never raises on a mismatch
    of values (``gate`` does), only on unusable inputs (different shapes, empty batch)."""
    fmt_name = fmt.value if isinstance(fmt, ModelFormat) else str(fmt)
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise GateError(
            f"{fmt_name} parity: output shape {cand.shape} differs from {reference_name} "
            f"{ref.shape}",
            figures={"format": fmt_name, "reference_shape": list(ref.shape),
                     "candidate_shape": list(cand.shape)},
        )
    if ref.ndim == 0 or len(ref) == 0:
        raise ValueError("check_parity needs a non-empty batch [N, ...]")
    finite = bool(np.isfinite(cand).all() and np.isfinite(ref).all())
    max_abs = float(np.max(np.abs(ref - cand))) if finite else math.inf
    cos = cosine_rows(ref, cand) if finite else np.zeros(len(ref))
    mean_cos, min_cos = float(np.mean(cos)), float(np.min(cos))
    passed = finite and max_abs <= atol and min_cos >= min_cosine
    return ParityReport(
        format=fmt_name,
        reference=reference_name,
        n=int(len(ref)),
        max_abs_diff=max_abs,
        mean_cosine=mean_cos,
        min_cosine=min_cos,
        atol=float(atol),
        passed=bool(passed),
        cosine_floor=float(min_cosine),
    )


def gate(report: ParityReport) -> None:
    """Raise ``GateError`` (figures = the report) unless the report passed."""
    if report.passed:
        return
    raise GateError(f"parity gate failed: {report.summary()}", figures=report.to_dict())

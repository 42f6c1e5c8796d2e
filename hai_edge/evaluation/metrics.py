"""Embedding metrics shared by every stage that compares two sets of embeddings (numpy only).

One definition of the row-wise cosine serves the export parity gate, the INT8 fidelity gates and
the distillation fidelity report, so a figure means the same thing wherever it is printed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_rows"]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [N, ...] arrays (rows flattened), computed in float64.

    Two all-zero rows count as identical (1.0); a zero row against a non-zero one as 0.0. The
    result is clipped to [-1, 1], so rounding never reports a cosine above 1.
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"cosine_rows: shapes differ {a.shape} vs {b.shape}")
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    both_zero = (na == 0) & (nb == 0)
    one_zero = (na == 0) ^ (nb == 0)
    cos = np.where(both_zero, 1.0, np.where(one_zero, 0.0, cos))
    return np.clip(cos, -1.0, 1.0)

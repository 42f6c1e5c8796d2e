"""A head's verdict on one input, as the pipelines report it: the cough recording's
:class:`HeadScore` and the photo's :class:`DermScore` (re-exported by ``runtime.cough`` and
``runtime.derm``).

The verdict comes from the head (``Head.verdict``): POSITIVE at or above ``threshold + band``,
NEGATIVE below ``threshold - band``, BORDERLINE in between (``band`` is the head's
``borderline`` half-width; 0 gives the plain ``score >= threshold``). In the JSON, ``positive``
is true for a definite positive only, ``borderline`` marks a score too close to the threshold to
call, ``verdict`` is ``"positive"``, ``"negative"`` or ``"borderline"`` and ``label`` is the
head's label of a definite verdict, ``"borderline"`` otherwise (issue #18).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hai_edge.runtime.heads import Head, Verdict

__all__ = ["DermScore", "HeadScore", "verdict_label"]

BORDERLINE_LABEL = "borderline"


def verdict_label(head: Head, verdict: Verdict) -> str:
    """The head's label of a definite verdict; ``"borderline"`` for no verdict."""
    if verdict is Verdict.BORDERLINE:
        return BORDERLINE_LABEL
    return head.labels[1] if verdict is Verdict.POSITIVE else head.labels[0]


def _verdict_json(threshold: float, band: float, verdict: Verdict, label: str
                  ) -> dict[str, Any]:
    return {"threshold": round(threshold, 6), "band": round(band, 6), "verdict": verdict.value,
            "positive": verdict is Verdict.POSITIVE,
            "borderline": verdict is Verdict.BORDERLINE, "label": label}


class _Verdicted:
    """``positive`` / ``borderline`` read off a score's ``verdict``."""

    verdict: Verdict

    @property
    def positive(self) -> bool:
        """A definite positive (at or above ``threshold + band``)."""
        return self.verdict is Verdict.POSITIVE

    @property
    def borderline(self) -> bool:
        """Too close to the threshold to call."""
        return self.verdict is Verdict.BORDERLINE


@dataclasses.dataclass(frozen=True)
class HeadScore(_Verdicted):
    """A head's recording-level result: mean/max of the window probabilities and the verdict on
    the mean (``band``: the head's borderline half-width)."""

    name: str
    mean: float
    max: float
    count: int
    threshold: float
    verdict: Verdict
    label: str
    band: float = 0.0

    @classmethod
    def of(cls, head: Head, mean: float, max_: float, count: int) -> HeadScore:
        verdict = head.verdict(mean)
        return cls(head.name, float(mean), float(max_), int(count), float(head.threshold),
                   verdict, verdict_label(head, verdict), float(head.borderline))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": round(self.mean, 6), "max": round(self.max, 6), "count": self.count,
                **_verdict_json(self.threshold, self.band, self.verdict, self.label)}


@dataclasses.dataclass(frozen=True)
class DermScore(_Verdicted):
    """One head's result on a photo: calibrated probability of its positive label, threshold,
    band and verdict."""

    probability: float
    threshold: float
    verdict: Verdict
    label: str
    band: float = 0.0

    @classmethod
    def of(cls, head: Head, probability: float) -> DermScore:
        verdict = head.verdict(probability)
        return cls(float(probability), float(head.threshold), verdict,
                   verdict_label(head, verdict), float(head.borderline))

    def to_dict(self) -> dict[str, Any]:
        return {"probability": round(self.probability, 6),
                **_verdict_json(self.threshold, self.band, self.verdict, self.label)}

"""Heads: small classifiers on a bundle's embedding (e.g. a COVID-19 probe on cough windows).

A head is a JSON file inside the bundle (``heads/<name>.json``, listed in ``manifest["files"]``
and so covered by its sha256) plus an entry in ``manifest["heads"]`` that summarises it::

    {"name": "covid", "kind": "logistic", "file": "heads/covid.json", "input": "embedding",
     "labels": ["negative", "positive"], "threshold": 0.42,
     "calibration": {"kind": "platt", "a": 1.1, "b": -0.2},
     "training": {"data_hash": "...", "n": 812, "groups": 160, "auroc_cv": 0.71, ...},
     "notice": "research use only"}

The file holds the same fields plus the weights: ``standardize`` {mean, scale} (applied first),
``weights`` and ``bias`` (``z = ((x - mean) / scale) . w + b``, the logit), and the calibration
that turns ``z`` into a probability: ``platt`` (``sigmoid(a * z + b)``, a > 0), ``isotonic``
(piecewise-linear through points ``x`` (logits, increasing) -> ``y`` (probabilities,
non-decreasing), flat beyond the ends) or ``none`` (``sigmoid(z)``). ``threshold`` applies to the
calibrated probability; for audio it is chosen on the recording score (mean of the window
probabilities, see ``hai-edge probe train``). Manifest entry and file must agree, so neither can be
edited alone. An optional ``"ood"`` object (the file: statistics; the entry: their summary) is
an out-of-distribution gate, parsed by ``hai_edge.runtime.abstain``. Entries with
``"role": "detector"`` are event detectors, not heads (see ``hai_edge.runtime.events``). The
manifest entries are parsed by the bundle contract (``hai_edge.bundle.HeadEntry`` /
``DetectorEntry``); this module owns the head files. Numpy only.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import DetectorEntry, HeadEntry, parse_head_entry, probe_entries
from hai_edge.errors import BundleError, HaiEdgeError
from hai_edge.runtime.abstain import OOD_FIELD, OodGate, check_ood_entry

__all__ = [
    "HEAD_FORMAT",
    "Calibration",
    "CalibrationKind",
    "Head",
    "HeadKind",
    "Verdict",
    "head_entries",
    "load_head_entry",
    "load_head_file",
    "load_heads",
    "verdict_codes",
    "verdict_flips",
    "verdict_for",
]

HEAD_FORMAT = "hai-edge-head"
HEAD_FORMAT_VERSION = 1
_MAX_HEAD_BYTES = 64 * 1024 * 1024


class HeadKind(str, enum.Enum):
    LOGISTIC = "logistic"


class CalibrationKind(str, enum.Enum):
    NONE = "none"
    PLATT = "platt"
    ISOTONIC = "isotonic"


class Verdict(str, enum.Enum):
    """What a head's score means for the user: one of its labels, or no verdict."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    BORDERLINE = "borderline"


def verdict_codes(scores: Any, threshold: float, borderline: float = 0.0) -> np.ndarray:
    """+1 (positive: at or above ``threshold + borderline``), -1 (negative: below ``threshold -
    borderline``) or 0 (borderline) per score; ``borderline`` 0 is the plain ``score >=
    threshold``. The one place the rule lives: ``verdict_for``, the decision gates and verify
    (two verdicts flip when their codes' product is negative) all read it."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(s >= threshold + borderline, 1, np.where(s < threshold - borderline, -1, 0))


def verdict_flips(a: Any, b: Any, threshold: float, borderline: float = 0.0) -> np.ndarray:
    """Per row, whether scores ``a`` and ``b`` get opposite definite verdicts (one positive, the
    other negative); moving into or out of the borderline band is no flip."""
    return verdict_codes(a, threshold, borderline) * verdict_codes(b, threshold, borderline) < 0


_VERDICT_OF_CODE = {1: Verdict.POSITIVE, -1: Verdict.NEGATIVE, 0: Verdict.BORDERLINE}


def verdict_for(score: float, threshold: float, borderline: float = 0.0) -> Verdict:
    """The verdict of ``score`` at ``threshold`` with a no-verdict band of half-width
    ``borderline`` (0: the plain ``score >= threshold``)."""
    return _VERDICT_OF_CODE[int(verdict_codes(score, threshold, borderline))]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _fail(where: str, msg: str) -> BundleError:
    return BundleError(f"{where}: {msg}")


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Logit -> probability. ``x``/``y`` are the isotonic table (logits -> probabilities)."""

    kind: CalibrationKind = CalibrationKind.NONE
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.kind is CalibrationKind.PLATT:
            return _sigmoid(self.a * z + self.b)
        if self.kind is CalibrationKind.ISOTONIC:
            return np.interp(z, np.asarray(self.x), np.asarray(self.y))
        return _sigmoid(z)

    def to_dict(self) -> dict[str, Any]:
        if self.kind is CalibrationKind.PLATT:
            return {"kind": "platt", "a": self.a, "b": self.b}
        if self.kind is CalibrationKind.ISOTONIC:
            return {"kind": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"kind": "none"}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Calibration:
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise _fail(where, "calibration must be an object")
        try:
            kind = CalibrationKind(d.get("kind", "none"))
        except ValueError:
            raise _fail(where, f"unknown calibration kind {d.get('kind')!r} "
                               "(none|platt|isotonic)") from None
        if kind is CalibrationKind.PLATT:
            a, b = _finite(d.get("a"), where, "calibration.a"), _finite(d.get("b"), where,
                                                                        "calibration.b")
            if a <= 0:
                raise _fail(where, "calibration.a must be > 0 (a calibration may not invert "
                                   "scores)")
            return cls(kind, a=a, b=b)
        if kind is CalibrationKind.ISOTONIC:
            x, y = d.get("x"), d.get("y")
            if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or not x:
                raise _fail(where, "isotonic calibration needs lists x and y of the same length")
            xs = tuple(_finite(v, where, "calibration.x") for v in x)
            ys = tuple(_finite(v, where, "calibration.y") for v in y)
            if any(b <= a for a, b in zip(xs, xs[1:])):
                raise _fail(where, "isotonic calibration x must be strictly increasing")
            if any(b < a for a, b in zip(ys, ys[1:])) or not all(0.0 <= v <= 1.0 for v in ys):
                raise _fail(where, "isotonic calibration y must be non-decreasing within [0, 1]")
            return cls(kind, x=xs, y=ys)
        return cls()


def _finite(v: Any, where: str, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _fail(where, f"{name} must be a finite number")
    return float(v)


def _vector(v: Any, where: str, name: str, dim: int | None) -> np.ndarray:
    if not isinstance(v, list) or not v:
        raise _fail(where, f"{name} must be a non-empty list of numbers")
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(where, f"{name} must hold numbers only") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise _fail(where, f"{name} must be a flat list of finite numbers")
    if dim is not None and arr.size != dim:
        raise _fail(where, f"{name} has {arr.size} values, expected {dim}")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class Head:
    """A logistic head: standardise -> linear -> calibrate. ``labels`` = (negative, positive)."""

    name: str
    weights: np.ndarray  # [dim]
    bias: float
    mean: np.ndarray  # [dim]
    scale: np.ndarray  # [dim], > 0
    threshold: float = 0.5
    calibration: Calibration = Calibration()
    labels: tuple[str, str] = ("negative", "positive")
    kind: HeadKind = HeadKind.LOGISTIC
    input: str = "embedding"
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notice: str = ""
    ood: OodGate | None = None  # out-of-distribution gate (runtime.abstain), optional
    # half-width of the band around the threshold where no verdict is given: scores there are
    # "borderline", because another engine's INT8 rounding can move a score that far (issue #18)
    borderline: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.weights.size)

    def decision_function(self, embeddings: np.ndarray) -> np.ndarray:
        """Logits ``z`` for embeddings ``[n, dim]`` (or one ``[dim]`` vector -> ``[1]``)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise HaiEdgeError(f"head {self.name}: expects {self.dim}-d embeddings, got shape "
                               f"{np.asarray(embeddings).shape}")
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probability of ``labels[1]`` per row, float64 ``[n]``."""
        return self.calibration.apply(self.decision_function(embeddings))

    def verdict(self, score: float) -> Verdict:
        """POSITIVE at or above ``threshold + borderline``, NEGATIVE below ``threshold -
        borderline``, BORDERLINE between (only when ``borderline`` > 0)."""
        return verdict_for(score, self.threshold, self.borderline)

    def compact(self) -> Head:
        """The same head with the standardisation folded into the weights and the vectors
        rounded to 9 significant digits: about a fifth of the JSON, which matters where the file
        travels (the PWA caches every byte on the phone). Probabilities change by ~1e-7."""
        w = self.weights / self.scale
        bias = float(self.bias - np.dot(self.mean, w))
        w9 = np.array([float(f"{v:.9g}") for v in w])  # 9 digits: float32's precision, exact
        return dataclasses.replace(self, weights=w9, bias=bias, mean=np.zeros_like(w9),
                                   scale=np.ones_like(w9))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": HEAD_FORMAT,
            "format_version": HEAD_FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind.value,
            "input": self.input,
            "embedding_dim": self.dim,
            "labels": list(self.labels),
            "standardize": {"mean": self.mean.tolist(), "scale": self.scale.tolist()},
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
            "threshold": float(self.threshold),
            **({"borderline": float(self.borderline)} if self.borderline > 0 else {}),
            "calibration": self.calibration.to_dict(),
            "training": dict(self.training),
        }
        if self.notice:
            d["notice"] = self.notice
        if self.ood is not None:
            d[OOD_FIELD] = self.ood.to_dict()
        return d

    def entry(self, file: str) -> HeadEntry:
        """The typed ``manifest["heads"]`` summary of this head stored at ``file``."""
        d = self.to_dict()
        return HeadEntry(name=self.name, kind=d["kind"], file=file, input=self.input,
                         labels=self.labels, threshold=d["threshold"],
                         borderline=d.get("borderline"), calibration=d["calibration"],
                         training=d["training"], notice=self.notice or None)

    def manifest_entry(self, file: str) -> dict[str, Any]:
        """The summary that goes into ``manifest["heads"]`` for this head stored at ``file``."""
        entry = self.entry(file).to_dict()
        if self.ood is not None:
            entry[OOD_FIELD] = self.ood.summary()
        return entry

    def to_json(self) -> str:
        d = self.to_dict()
        if not np.any(self.mean) and np.all(self.scale == 1.0):
            del d["standardize"]  # the identity (a compact head): readers default to it
        return json.dumps(d, separators=(",", ":")) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the head file atomically."""
        from hai_edge.fileio import atomic_write

        with atomic_write(path, "w") as fh:
            fh.write(self.to_json())

    @classmethod
    def from_dict(cls, d: Any, where: str = "head") -> Head:
        if not isinstance(d, dict):
            raise _fail(where, "a head must be a JSON object")
        if d.get("format") != HEAD_FORMAT:
            raise _fail(where, f"not a hai-edge head file (format {d.get('format')!r})")
        if d.get("format_version") != HEAD_FORMAT_VERSION:
            raise _fail(where, f"unknown head format_version {d.get('format_version')!r}; this "
                               f"hai-edge reads version {HEAD_FORMAT_VERSION}")
        name = d.get("name")
        if not isinstance(name, str) or not name or any(c in name for c in "/\\\x00"):
            raise _fail(where, f"invalid head name {name!r}")
        try:
            kind = HeadKind(d.get("kind"))
        except ValueError:
            raise _fail(where, f"head kind {d.get('kind')!r} is not supported (logistic)") from None
        if d.get("input", "embedding") != "embedding":
            raise _fail(where, f"head input {d.get('input')!r} is not supported (embedding)")
        dim = d.get("embedding_dim")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise _fail(where, "embedding_dim must be a positive integer")
        std = d.get("standardize") or {}
        if not isinstance(std, dict):
            raise _fail(where, "standardize must be an object")
        weights = _vector(d.get("weights"), where, "weights", dim)
        mean = _vector(std.get("mean", [0.0] * dim), where, "standardize.mean", dim)
        scale = _vector(std.get("scale", [1.0] * dim), where, "standardize.scale", dim)
        if np.any(scale <= 0):
            raise _fail(where, "standardize.scale must be > 0")
        labels = d.get("labels", ["negative", "positive"])
        if (not isinstance(labels, list) or len(labels) != 2
                or not all(isinstance(v, str) for v in labels)):
            raise _fail(where, "labels must be two strings: [negative, positive]")
        threshold = _finite(d.get("threshold", 0.5), where, "threshold")
        if not 0.0 <= threshold <= 1.0:
            raise _fail(where, "threshold must be within [0, 1] (a probability)")
        borderline = _finite(d.get("borderline", 0.0), where, "borderline")
        if not 0.0 <= borderline < 0.5:
            raise _fail(where, "borderline must be within [0, 0.5) (a probability half-width)")
        training = d.get("training") or {}
        notice = d.get("notice") or ""
        if not isinstance(training, dict) or not isinstance(notice, str):
            raise _fail(where, "training must be an object and notice a string")
        ood = d.get(OOD_FIELD)
        return cls(name=name, weights=weights, bias=_finite(d.get("bias", 0.0), where, "bias"),
                   mean=mean, scale=scale, threshold=threshold,
                   calibration=Calibration.from_dict(d.get("calibration"), where),
                   labels=(labels[0], labels[1]), kind=kind, training=training, notice=notice,
                   ood=None if ood is None else OodGate.from_dict(ood, where, dim),
                   borderline=borderline)


def load_head_file(path: str | os.PathLike[str]) -> Head:
    """Read a head JSON file (outside a bundle, e.g. the output of ``hai-edge probe train``)."""
    p = Path(path)
    if not p.is_file():
        raise HaiEdgeError(f"{p}: no such head file")
    if p.stat().st_size > _MAX_HEAD_BYTES:
        raise _fail(str(p), "head file is larger than 64 MB")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(str(p), f"not valid JSON ({exc})") from None
    return Head.from_dict(data, str(p))


def _same(a: Any, b: Any) -> bool:
    """JSON-level equality with floats compared to 1e-9 (files and manifests are both JSON)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def head_entries(manifest: Any) -> list[HeadEntry]:
    """The scoring heads of a manifest (detector entries excluded), typed."""
    return list(probe_entries(manifest.heads))


def load_heads(bundle: Any, names: Sequence[str] | None = None, *, verify: bool = True
               ) -> list[Head]:
    """The bundle's heads (optionally only ``names``), each file checked against its sha256 and
    against its manifest entry; a head for another embedding size is refused."""
    manifest = bundle.manifest
    entries = head_entries(manifest)
    if names is not None:
        known = {h.name for h in entries}
        missing = [n for n in names if n not in known]
        if missing:
            raise BundleError(f"{bundle.root}: no head {missing[0]!r} in this bundle "
                              f"(it has: {', '.join(sorted(known)) or 'none'})")
        entries = [h for h in entries if h.name in names]
    return [load_head_entry(bundle, entry, verify=verify) for entry in entries]


def load_head_entry(bundle: Any, entry: HeadEntry | DetectorEntry | Mapping[str, Any], *,
                    verify: bool = True) -> Head:
    """The head that a manifest entry (a scoring head, or a learned detector's head) points at:
    its file is checked against its sha256, against the entry, and against the embedding size."""
    manifest = bundle.manifest
    if not isinstance(entry, (HeadEntry, DetectorEntry)):
        entry = parse_head_entry(entry)
    file = entry.file
    where = f"{bundle.root}: head {entry.name!r}"
    if file is None or file not in manifest.files:
        raise BundleError(f"{where}: its file {file!r} is not listed in the manifest's files")
    if verify:
        bundle.verify([file])
    head = load_head_file(bundle.path_of(file))
    if head.name != entry.name:
        raise BundleError(f"{where}: the file is for head {head.name!r}")
    file_dict = head.manifest_entry(file)
    for key, value in entry.file_summary().items():
        if key != "borderline" and not _same(value, file_dict[key]):
            raise BundleError(f"{where}: manifest {key} differs from the head file")
    # absent on either side = 0, so an entry can neither drop a band nor add one
    if isinstance(entry, HeadEntry) and not _same(float(entry.borderline or 0.0), head.borderline):
        raise BundleError(f"{where}: manifest borderline differs from the head file")
    check_ood_entry(entry.to_dict(), head.ood, where)
    if head.dim != manifest.embedding_dim:
        raise BundleError(f"{where}: trained on {head.dim}-d embeddings, the bundle's are "
                          f"{manifest.embedding_dim}-d")
    return head

"""Typed ``manifest["heads"]`` entries: scoring heads (probes) and the event detector.

Both live in the one ``heads`` list of the manifest (docs/bundle.md); an entry's ``role`` says
which it is: absent or ``"head"`` for a probe, ``"detector"`` for the event detector (at most one
per bundle). This module is the one parser of that list: the runtime (heads, events), the PWA
build and the CLI ask it instead of reading the dicts by hand. Entries round-trip exactly:
fields absent from the JSON stay None and are not written back, unknown keys are kept in
``extra`` and written after the known ones.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from hai_edge.bundle._checks import (
    extra_keys, fail, finite, in_order, opt, req, safe_relpath, to_enum)

__all__ = [
    "DetectorEntry",
    "DetectorKind",
    "HeadEntry",
    "HeadRole",
    "WindowAlign",
    "detector_entry_of",
    "parse_head_entry",
    "parse_heads",
    "probe_entries",
]


class HeadRole(str, enum.Enum):
    """What a ``heads`` entry is. A probe's role is usually not written (``"head"`` is implied)."""

    PROBE = "head"
    DETECTOR = "detector"

    @classmethod
    def of(cls, entry: Mapping[str, Any], where: str = "heads[]") -> HeadRole:
        """The role of a raw entry (absent -> PROBE); an unknown role is refused."""
        return to_enum(cls, entry.get("role", cls.PROBE.value), f"{where}.role")


class DetectorKind(str, enum.Enum):
    """Event detector kinds this hai-edge runs (``hai_edge.runtime.events``)."""

    ENERGY = "energy"  # the energy baseline with ``params``
    ENERGY_HEAD = "energy_head"  # energy candidates verified by a head on the embedding


class WindowAlign(str, enum.Enum):
    """Where an ``energy_head`` detector places a candidate in its verification window."""

    END = "end"


def _labels(d: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    labels = opt(d, "labels", list, where)
    if labels is None:
        return None
    if len(labels) != 2 or not all(isinstance(v, str) for v in labels):
        raise fail(f"manifest: {where}.labels must be two strings: [negative, positive]")
    return (labels[0], labels[1])


def _name(d: Mapping[str, Any], where: str, required: bool) -> str | None:
    name = req(d, "name", str, where) if required else opt(d, "name", str, where)
    if name is not None and (not name or any(c in name for c in "/\\\x00")):
        raise fail(f"manifest: {where}.name {name!r} is not a valid head name")
    return name


def _file(d: Mapping[str, Any], where: str) -> str | None:
    return safe_relpath(d["file"], f"{where}.file") if d.get("file") is not None else None


def _emit(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = list(value) if isinstance(value, tuple) else \
            dict(value) if isinstance(value, Mapping) else value


@dataclasses.dataclass(frozen=True)
class HeadEntry:
    """A scoring head: the summary of ``heads/<name>.json`` (``hai_edge.runtime.heads.Head``).

    ``kind`` stays a string here: which head kinds can be scored is the runtime's business
    (``runtime.heads.HeadKind``), the contract only carries it. ``threshold`` applies to the
    calibrated probability of ``labels[1]``; ``borderline`` (optional) is the half-width of the
    band around it where no verdict is given (engines' rounding can move a score that much).
    """

    KEYS: ClassVar[tuple[str, ...]] = ("name", "kind", "file", "input", "labels", "threshold",
                                       "borderline", "calibration", "training", "notice")
    # what must agree with the head file (runtime.heads.load_head_entry)
    FILE_SUMMARY: ClassVar[tuple[str, ...]] = ("kind", "input", "labels", "threshold",
                                               "borderline", "calibration")
    role: ClassVar[HeadRole] = HeadRole.PROBE

    name: str
    kind: str
    file: str | None = None
    input: str | None = None
    labels: tuple[str, str] | None = None
    threshold: float | None = None
    borderline: float | None = None
    calibration: Mapping[str, Any] | None = None
    training: Mapping[str, Any] | None = None
    notice: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # unknown keys, kept
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.KEYS:
            _emit(out, key, getattr(self, key))
        return in_order({**out, **{k: v for k, v in self.extra.items() if k not in out}},
                        self.key_order)

    def file_summary(self) -> dict[str, Any]:
        """The written fields that the head file must repeat exactly."""
        d = self.to_dict()
        return {k: d[k] for k in self.FILE_SUMMARY if k in d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "heads[]") -> HeadEntry:
        if HeadRole.of(d, where) is not HeadRole.PROBE:
            raise fail(f"manifest: {where}.role is {d.get('role')!r}, not a scoring head")
        threshold = finite(d, "threshold", where, 0.0, 1.0)
        borderline = finite(d, "borderline", where, 0.0, 0.5)
        if borderline is not None and borderline >= 0.5:
            raise fail(f"manifest: {where}.borderline must be below 0.5 (got {borderline!r})")
        return cls(
            name=str(_name(d, where, required=True)),
            kind=req(d, "kind", str, where),
            file=_file(d, where),
            input=opt(d, "input", str, where),
            labels=_labels(d, where),
            threshold=threshold,
            borderline=borderline,
            calibration=opt(d, "calibration", dict, where),
            training=opt(d, "training", dict, where),
            notice=opt(d, "notice", str, where),
            extra=extra_keys(d, cls.KEYS),  # incl. an explicit role "head"
            key_order=tuple(d),
        )


@dataclasses.dataclass(frozen=True)
class DetectorEntry:
    """The bundle's event detector (``hai_edge.runtime.events.detector_from_bundle``).

    ``energy`` runs the energy baseline with ``params`` (``EnergyDetectorConfig``);
    ``energy_head`` verifies each energy candidate with the head in ``file`` on a window that
    ends ``after_s`` after it (``hai_edge.runtime.events_learned``). A kind this hai-edge does
    not know is refused when the manifest is read, not run without it.
    """

    KEYS: ClassVar[tuple[str, ...]] = ("name", "role", "kind", "params", "file", "threshold",
                                       "labels", "align", "after_s")
    FILE_SUMMARY: ClassVar[tuple[str, ...]] = ("threshold", "labels")
    DEFAULT_AFTER_S: ClassVar[float] = 0.25
    role: ClassVar[HeadRole] = HeadRole.DETECTOR

    kind: DetectorKind
    name: str | None = None
    params: Mapping[str, Any] | None = None
    file: str | None = None
    threshold: float | None = None
    labels: tuple[str, str] | None = None
    align: WindowAlign | None = None
    after_s: float | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def energy_params(self) -> Mapping[str, Any]:
        """``params`` for ``EnergyDetectorConfig.from_dict`` (absent -> the defaults)."""
        return self.params or {}

    @property
    def window_after_s(self) -> float:
        return float(self.after_s) if self.after_s is not None else self.DEFAULT_AFTER_S

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.KEYS:
            value = self.role if key == "role" else getattr(self, key)
            _emit(out, key, value.value if isinstance(value, enum.Enum) else value)
        return in_order({**out, **{k: v for k, v in self.extra.items() if k not in out}},
                        self.key_order)

    def file_summary(self) -> dict[str, Any]:
        d = self.to_dict()
        return {k: d[k] for k in self.FILE_SUMMARY if k in d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "heads[]") -> DetectorEntry:
        if HeadRole.of(d, where) is not HeadRole.DETECTOR:
            raise fail(f"manifest: {where}.role is {d.get('role', 'head')!r}, not 'detector'")
        known = ", ".join(k.value for k in DetectorKind)
        if not any(d.get("kind") == k.value for k in DetectorKind):
            raise fail(f"manifest: {where}: event detector kind {d.get('kind')!r} is not "
                       f"supported by this hai-edge (knows: {known}); upgrade hai-edge")
        kind = DetectorKind(d["kind"])
        align = d.get("align")
        if align is not None and not any(align == a.value for a in WindowAlign):
            raise fail(f"manifest: {where}: align {align!r} is not supported "
                       f"({'|'.join(a.value for a in WindowAlign)})")
        entry = cls(
            kind=kind,
            name=_name(d, where, required=False),
            params=opt(d, "params", dict, where),
            file=_file(d, where),
            threshold=finite(d, "threshold", where, 0.0, 1.0),
            labels=_labels(d, where),
            align=WindowAlign(align) if align is not None else None,
            after_s=finite(d, "after_s", where, 0.0),
            extra=extra_keys(d, cls.KEYS),
            key_order=tuple(d),
        )
        if kind is DetectorKind.ENERGY_HEAD and entry.file is None:
            raise fail(f"manifest: {where} is missing required field 'file' (the head an "
                       "energy_head detector verifies with)")
        return entry


def parse_head_entry(d: Any, where: str = "heads[]") -> HeadEntry | DetectorEntry:
    """One raw ``heads`` entry -> its typed form, by role."""
    if not isinstance(d, Mapping):
        raise fail(f"manifest: {where} must be an object")
    if HeadRole.of(d, where) is HeadRole.DETECTOR:
        return DetectorEntry.from_dict(d, where)
    return HeadEntry.from_dict(d, where)


def parse_heads(raw: Iterable[Any]) -> tuple[HeadEntry | DetectorEntry, ...]:
    """The whole ``heads`` list, in order; at most one detector."""
    entries = tuple(parse_head_entry(h, f"heads[{i}]") for i, h in enumerate(raw))
    detectors = [i for i, e in enumerate(entries) if isinstance(e, DetectorEntry)]
    if len(detectors) > 1:
        raise fail(f"manifest: heads: more than one event detector declared "
                   f"({', '.join(f'heads[{i}]' for i in detectors)})")
    return entries


def probe_entries(raw: Iterable[Any]) -> tuple[HeadEntry, ...]:
    """The scoring heads of a raw ``heads`` list (the detector left out)."""
    return tuple(e for e in parse_heads(raw) if isinstance(e, HeadEntry))


def detector_entry_of(raw: Iterable[Any]) -> DetectorEntry | None:
    """The event detector a raw ``heads`` list declares, if any."""
    return next((e for e in parse_heads(raw) if isinstance(e, DetectorEntry)), None)

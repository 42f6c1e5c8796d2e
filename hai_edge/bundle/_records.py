"""Typed views of a manifest's ``provenance`` and ``fidelity`` objects (and a model's figures).

The JSON objects stay open (exporters add keys over time), so each view types the fields that
readers rely on and keeps every other key in ``extra``; ``to_dict`` gives back an equal object.
Fields absent from the JSON are None and are not written back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from hai_edge.bundle._checks import extra_keys, fail, in_order, opt

__all__ = ["Fidelity", "ModelFidelity", "Provenance", "TeacherInfo"]

_Obj = Mapping[str, Any]


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in obj.KEYS:
        value = getattr(obj, key)
        if value is None:
            continue
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value
    return in_order({**out, **{k: v for k, v in obj.extra.items() if k not in out}},
                    obj.key_order)


def _object(d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise fail(f"manifest: {where} must be an object")
    return d


@dataclasses.dataclass(frozen=True)
class TeacherInfo:
    """The teacher the student was distilled from; its licence decides the NOTICE."""

    KEYS: ClassVar[tuple[str, ...]] = ("id", "licence")

    id: str | None = None
    licence: str | None = None
    extra: _Obj = dataclasses.field(default_factory=dict)  # modality, embedding_dim, notes, ...
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def is_reference(self) -> bool:
        """One of the project's demo teachers (``reference:*``): not for clinical use."""
        return str(self.id or "").startswith("reference:")

    @property
    def is_hai_def(self) -> bool:
        """Licensed under the HAI-DEF terms, so the bundle carries their NOTICE."""
        return str(self.licence or "").upper().startswith("HAI-DEF")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "provenance.teacher") -> TeacherInfo:
        d = _object(d, where)
        return cls(id=opt(d, "id", str, where), licence=opt(d, "licence", str, where),
                   extra=extra_keys(d, cls.KEYS), key_order=tuple(d))


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a bundle came from: teacher, student, data and calibration hashes, tools, command."""

    KEYS: ClassVar[tuple[str, ...]] = ("teacher", "student", "data_hash", "calibration_hash",
                                       "calibration", "heldout", "tool_versions", "command",
                                       "run_dir", "licence_terms", "device_profile")

    teacher: TeacherInfo | None = None
    student: _Obj | None = None  # arch, params, macs, ...
    data_hash: str | None = None
    calibration_hash: str | None = None
    calibration: _Obj | None = None  # INT8 calibration set: source, n, sha256
    heldout: _Obj | None = None  # the held-out gate inputs: source, n, sha256
    tool_versions: Mapping[str, str] | None = None
    command: str | None = None
    run_dir: str | None = None
    licence_terms: str | None = None
    device_profile: str | None = None
    extra: _Obj = dataclasses.field(default_factory=dict)  # quantization, export_seconds, ...
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "provenance") -> Provenance:
        d = _object(d, where)
        teacher = opt(d, "teacher", dict, where)
        tools = opt(d, "tool_versions", dict, where)
        if tools is not None and not all(isinstance(v, str) for v in tools.values()):
            raise fail(f"manifest: {where}.tool_versions must map names to version strings")
        strs = {k: opt(d, k, str, where) for k in ("data_hash", "calibration_hash", "command",
                                                   "run_dir", "licence_terms", "device_profile")}
        return cls(
            teacher=TeacherInfo.from_dict(teacher, f"{where}.teacher") if teacher is not None
            else None,
            student=opt(d, "student", dict, where), tool_versions=tools,
            calibration=opt(d, "calibration", dict, where), heldout=opt(d, "heldout", dict, where),
            extra=extra_keys(d, cls.KEYS), key_order=tuple(d), **strs,
        )


@dataclasses.dataclass(frozen=True)
class ModelFidelity:
    """One model's figures (``models[].fidelity``): INT8 cosine vs FP32 and its gate, or the FP32
    model's ``parity`` report vs the reference."""

    KEYS: ClassVar[tuple[str, ...]] = ("mean_cosine", "p5_cosine", "min_cosine",
                                       "centred_mean_cosine", "passed", "gate", "parity")

    mean_cosine: float | None = None
    p5_cosine: float | None = None
    min_cosine: float | None = None
    centred_mean_cosine: float | None = None
    passed: bool | None = None
    gate: _Obj | None = None  # metric, threshold, inputs, passed, degraded_override
    parity: _Obj | None = None  # FP32: max_abs_diff, mean/min cosine, tolerance
    extra: _Obj = dataclasses.field(default_factory=dict)  # int8_vs_fp32, recipes_tried, ...
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "models[].fidelity") -> ModelFidelity:
        d = _object(d, where)
        figures = {k: opt(d, k, (int, float), where)
                   for k in ("mean_cosine", "p5_cosine", "min_cosine", "centred_mean_cosine")}
        return cls(passed=opt(d, "passed", bool, where), gate=opt(d, "gate", dict, where),
                   parity=opt(d, "parity", dict, where), extra=extra_keys(d, cls.KEYS),
                   key_order=tuple(d), **figures)


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """Bundle-level gate results (``fidelity``): FP32 parity, the INT8 gate, cross-format INT8
    agreement, INT8 vs teacher, head agreement, and whether gates were overridden."""

    KEYS: ClassVar[tuple[str, ...]] = ("fp32_parity_gate", "fp32_cross_engine_min_cosine",
                                       "int8_gate", "int8_cross_format", "teacher", "heads",
                                       "degraded", "overrides")

    fp32_parity_gate: _Obj | None = None
    fp32_cross_engine_min_cosine: float | None = None
    int8_gate: _Obj | None = None
    int8_cross_format: _Obj | None = None
    teacher: _Obj | None = None  # torch_fp32_mean_cosine, mean_cosine {model: figure}, ...
    heads: _Obj | None = None
    degraded: bool | None = None  # exported with --allow-degraded
    overrides: tuple[Any, ...] | None = None
    extra: _Obj = dataclasses.field(default_factory=dict)
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def is_degraded(self) -> bool:
        return bool(self.degraded)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "fidelity") -> Fidelity:
        d = _object(d, where)
        overrides = opt(d, "overrides", list, where)
        objects = {k: opt(d, k, dict, where) for k in ("fp32_parity_gate", "int8_gate",
                                                       "int8_cross_format", "teacher", "heads")}
        return cls(
            fp32_cross_engine_min_cosine=opt(d, "fp32_cross_engine_min_cosine", (int, float),
                                             where),
            degraded=opt(d, "degraded", bool, where),
            overrides=tuple(overrides) if overrides is not None else None,
            extra=extra_keys(d, cls.KEYS), key_order=tuple(d), **objects,
        )

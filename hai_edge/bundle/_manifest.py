"""The manifest types: what ``manifest.json`` holds, parsed and validated (docs/bundle.md).

A bundle is a directory::

    cough-demo/
      manifest.json        JSON only, ``schema_version``, never eval'd (docs/bundle.md)
      model_fp32.onnx      ... every file listed in manifest["files"] with its sha256 and size
      model_int8.xml/.bin
      model_int8.tflite

This module holds the manifest and its model entries; the typed ``heads`` entries are in
``_heads``, the provenance and fidelity views in ``_records``, and reading / writing bundle
directories in ``_store``. Parsing is strict about what readers rely on (a bad field is one
line naming it) and keeps what it does not model, so a manifest re-serialises unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from hai_edge.bundle._checks import fail as _fail
from hai_edge.bundle._checks import req as _req
from hai_edge.bundle._checks import safe_relpath as _safe_relpath
from hai_edge.bundle._checks import to_enum as _enum
from hai_edge.bundle._heads import DetectorEntry, HeadEntry, parse_heads
from hai_edge.bundle._records import Fidelity, ModelFidelity, Provenance
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec, spec_from_dict

__all__ = [
    "SCHEMA_VERSION",
    "FileRecord",
    "Manifest",
    "Modality",
    "ModelEntry",
    "ModelFormat",
    "Precision",
    "TensorSpec",
]

SCHEMA_VERSION = 1


class Modality(str, enum.Enum):
    AUDIO = "audio"
    IMAGE = "image"


class ModelFormat(str, enum.Enum):
    ONNX = "onnx"
    OPENVINO = "openvino"
    TFLITE = "tflite"


class Precision(str, enum.Enum):
    FP32 = "fp32"
    INT8 = "int8"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` uses None for dynamic dims (e.g. the batch)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str | None = None
    scale: float | None = None  # set when the tensor is integer (INT8 I/O): real = scale*(q - zp)
    zero_point: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        for key in ("layout", "scale", "zero_point"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> TensorSpec:
        if not isinstance(d, dict):
            raise _fail(f"manifest: {where} must be an object")
        shape = _req(d, "shape", list, where)
        if not all(s is None or (isinstance(s, int) and s >= 0) for s in shape):
            raise _fail(f"manifest: {where}.shape must hold non-negative integers or null")
        return cls(
            name=_req(d, "name", str, where),
            shape=tuple(shape),
            dtype=str(d.get("dtype", "float32")),
            layout=d.get("layout"),
            scale=d.get("scale"),
            zero_point=d.get("zero_point"),
        )


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One runnable model of the bundle: a format at a precision, in one or more files."""

    id: str
    format: ModelFormat
    precision: Precision
    files: tuple[str, ...]  # files[0] is what the engine opens (.onnx, .xml, .tflite)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fidelity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # e.g. quantization recipe

    @property
    def main_file(self) -> str:
        return self.files[0]

    def fidelity_info(self) -> ModelFidelity:
        """``fidelity`` typed (figures vs FP32 or the reference, and the gate)."""
        return ModelFidelity.from_dict(self.fidelity, f"model {self.id}.fidelity")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format.value,
            "precision": self.precision.value,
            "files": list(self.files),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "fidelity": dict(self.fidelity),
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ModelEntry:
        if not isinstance(d, dict):
            raise _fail(f"manifest: {where} must be an object")
        files = _req(d, "files", list, where)
        if not files:
            raise _fail(f"manifest: {where}.files is empty")
        inputs = _req(d, "inputs", list, where)
        outputs = _req(d, "outputs", list, where)
        if not inputs or not outputs:
            raise _fail(f"manifest: {where} needs at least one input and one output")
        return cls(
            id=_req(d, "id", str, where),
            format=_enum(ModelFormat, d.get("format"), f"{where}.format"),
            precision=_enum(Precision, d.get("precision"), f"{where}.precision"),
            files=tuple(_safe_relpath(f, f"{where}.files") for f in files),
            inputs=tuple(TensorSpec.from_dict(t, f"{where}.inputs[{i}]") for i, t in enumerate(inputs)),
            outputs=tuple(
                TensorSpec.from_dict(t, f"{where}.outputs[{i}]") for i, t in enumerate(outputs)
            ),
            fidelity=dict(d.get("fidelity") or {}),
            options=dict(d.get("options") or {}),
        )


@dataclasses.dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int


def _derived(default: Any) -> Any:
    return dataclasses.field(default=default, init=False, repr=False, compare=False)


_TOP_KEYS = ("schema_version", "name", "modality", "task", "embedding_dim", "preprocessing",
             "models", "heads", "provenance", "fidelity", "notices", "golden", "files", "created",
             "hai_edge_version")


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to turn raw media into the same embedding as the build side.

    ``heads``, ``provenance`` and ``fidelity`` hold the JSON as written (so it re-serialises
    byte for byte); read them through the typed accessors :meth:`head_entries`,
    :meth:`detector_entry`, :meth:`provenance_info` and :meth:`fidelity_info`, which are
    validated when the manifest is built. ``heads`` also accepts typed entries and stores their
    JSON. Per-model figures live in each ModelEntry. ``notices`` are shown to users (e.g.
    "demo, not for clinical use", the HAI-DEF NOTICE). ``extra`` keeps top-level keys this
    version does not know, so a newer writer's additions survive a round trip.
    """

    name: str
    modality: Modality
    preprocessing: AudioFrontendSpec | ImageFrontendSpec
    embedding_dim: int
    models: tuple[ModelEntry, ...]
    task: str = "embedding"
    heads: tuple[Mapping[str, Any], ...] = ()
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fidelity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notices: tuple[str, ...] = ()
    golden: Mapping[str, Any] | None = None
    files: Mapping[str, FileRecord] = dataclasses.field(default_factory=dict)
    created: str = ""
    hai_edge_version: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # the parsed views, filled in by __post_init__ (not part of the JSON or of equality)
    _entries: tuple[HeadEntry | DetectorEntry, ...] = _derived(())
    _provenance: Provenance = _derived(Provenance())
    _fidelity: Fidelity = _derived(Fidelity())

    def __post_init__(self) -> None:
        kind = "audio" if isinstance(self.preprocessing, AudioFrontendSpec) else "image"
        if kind != self.modality.value:
            raise _fail(f"manifest: modality {self.modality.value} but {kind} preprocessing")
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise _fail(f"manifest: duplicate model ids {ids}")
        heads = tuple(h.to_dict() if isinstance(h, (HeadEntry, DetectorEntry)) else h
                      for h in self.heads)
        object.__setattr__(self, "heads", heads)
        # validate once; the accessors hand out these parsed views
        object.__setattr__(self, "_entries", parse_heads(heads))
        object.__setattr__(self, "_provenance", Provenance.from_dict(self.provenance))
        object.__setattr__(self, "_fidelity", Fidelity.from_dict(self.fidelity))

    def head_entries(self) -> tuple[HeadEntry, ...]:
        """The scoring heads (probes), in manifest order; the detector is not among them."""
        return tuple(e for e in self._entries if isinstance(e, HeadEntry))

    def detector_entry(self) -> DetectorEntry | None:
        """The event detector the bundle declares, if any (at most one)."""
        return next((e for e in self._entries if isinstance(e, DetectorEntry)), None)

    def all_head_entries(self) -> tuple[HeadEntry | DetectorEntry, ...]:
        """Every ``heads`` entry typed, probes and detector, in manifest order."""
        return self._entries

    def provenance_info(self) -> Provenance:
        """``provenance`` typed: teacher (id, licence), student, hashes, tool versions."""
        return self._provenance

    def fidelity_info(self) -> Fidelity:
        """``fidelity`` typed: the bundle-level gate results."""
        return self._fidelity

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": self.schema_version,
            "name": self.name,
            "modality": self.modality.value,
            "task": self.task,
            "embedding_dim": self.embedding_dim,
            "preprocessing": self.preprocessing.to_dict(),
            "models": [m.to_dict() for m in self.models],
            "heads": [dict(h) for h in self.heads],
            "provenance": dict(self.provenance),
            "fidelity": dict(self.fidelity),
            "notices": list(self.notices),
            "golden": dict(self.golden) if self.golden is not None else None,
            "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())},
            "created": self.created,
            "hai_edge_version": self.hai_edge_version,
        }
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        if not isinstance(d, dict):
            raise _fail("manifest: top level must be a JSON object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise _fail(
                f"manifest: unknown schema_version {version!r}; this hai-edge reads version "
                f"{SCHEMA_VERSION} (upgrade hai-edge or re-export the bundle)"
            )
        models = _req(d, "models", list, "manifest")
        files_raw = _req(d, "files", dict, "manifest")
        files: dict[str, FileRecord] = {}
        for name, rec in files_raw.items():
            name = _safe_relpath(name, "files")
            if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
                raise _fail(f"manifest: files[{name!r}] needs a sha256")
            files[name] = FileRecord(sha256=rec["sha256"].lower(), size=int(rec.get("size", -1)))
        dim = _req(d, "embedding_dim", int, "manifest")
        if dim <= 0:
            raise _fail("manifest: embedding_dim must be positive")
        heads = d.get("heads") or []
        if not isinstance(heads, list) or not all(isinstance(h, dict) for h in heads):
            raise _fail("manifest: heads must be a list of objects")
        notices = d.get("notices") or []
        if not isinstance(notices, list) or not all(isinstance(n, str) for n in notices):
            raise _fail("manifest: notices must be a list of strings")
        for key in ("provenance", "fidelity"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise _fail(f"manifest: {key} must be an object")
        manifest = cls(
            name=_req(d, "name", str, "manifest"),
            modality=_enum(Modality, d.get("modality"), "modality"),
            preprocessing=spec_from_dict(_req(d, "preprocessing", dict, "manifest")),
            embedding_dim=dim,
            models=tuple(ModelEntry.from_dict(m, f"models[{i}]") for i, m in enumerate(models)),
            task=str(d.get("task", "embedding")),
            heads=tuple(heads),
            provenance=dict(d.get("provenance") or {}),
            fidelity=dict(d.get("fidelity") or {}),
            notices=tuple(notices),
            golden=d.get("golden"),
            files=files,
            created=str(d.get("created", "")),
            hai_edge_version=str(d.get("hai_edge_version", "")),
            extra={k: v for k, v in d.items() if k not in _TOP_KEYS},
        )
        for m in manifest.models:
            for f in m.files:
                if f not in files:
                    raise _fail(f"manifest: model {m.id} file {f!r} is not listed in files")
        for i, e in enumerate(manifest.all_head_entries()):
            if e.file is not None and e.file not in files:
                raise _fail(f"manifest: heads[{i}] ({e.name or e.role.value}): its file "
                            f"{e.file!r} is not listed in the manifest's files")
        return manifest

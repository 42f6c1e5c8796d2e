"""The Bundle: model files + ``manifest.json``, the one contract between build side and run side.

A bundle is a directory::

    cough-demo/
      manifest.json        JSON only, ``schema_version``, never eval'd (docs/bundle.md)
      model_fp32.onnx      ... every file listed in manifest["files"] with its sha256 and size
      model_int8.xml/.bin
      model_int8.tflite

Readers verify the schema and every file's sha256 before anything is loaded, so a tampered or
half-copied bundle fails loudly instead of giving silently different embeddings. Writers build the
whole bundle in a temporary sibling directory and rename it into place, so a crash never leaves a
half-written bundle where a good one was.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from hai_edge.fileio import fsync_dir, replace_dir
from hai_edge.errors import BundleError
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec, spec_from_dict

__all__ = [
    "BUILTIN_BUNDLES_DIR",
    "SCHEMA_VERSION",
    "Bundle",
    "FileRecord",
    "Manifest",
    "Modality",
    "ModelEntry",
    "ModelFormat",
    "Precision",
    "TensorSpec",
    "builtin_bundles",
    "resolve_bundle",
    "sha256_file",
    "write_bundle",
]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
BUILTIN_BUNDLES_DIR = Path(__file__).resolve().parent.parent / "bundles"


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


def _fail(msg: str) -> BundleError:
    return BundleError(msg)


def _req(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise _fail(f"manifest: {where} is missing required field '{key}'")
    value = data[key]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _as_tuple(types):
        raise _fail(f"manifest: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _enum(cls: type[enum.Enum], value: Any, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = "|".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise _fail(f"manifest: {where} is {value!r}; expected one of {allowed}") from None


def _safe_relpath(name: Any, where: str) -> str:
    """Bundle file names are relative POSIX paths that stay inside the bundle directory."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise _fail(f"manifest: {where} has an invalid file name {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("~") or p.name == MANIFEST_NAME:
        raise _fail(f"manifest: {where} file name {name!r} escapes the bundle directory")
    return str(p)


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


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to turn raw media into the same embedding as the build side.

    ``provenance`` keys: teacher {id, licence}, student {arch, params, macs}, data_hash,
    calibration_hash, tool_versions {...}, command. ``fidelity`` holds bundle-level gate results;
    per-model figures live in each ModelEntry. ``notices`` are shown to users (e.g. "demo, not for
    clinical use", the HAI-DEF NOTICE).
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

    def __post_init__(self) -> None:
        kind = "audio" if isinstance(self.preprocessing, AudioFrontendSpec) else "image"
        if kind != self.modality.value:
            raise _fail(f"manifest: modality {self.modality.value} but {kind} preprocessing")
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise _fail(f"manifest: duplicate model ids {ids}")

    def to_dict(self) -> dict[str, Any]:
        return {
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
        )
        for m in manifest.models:
            for f in m.files:
                if f not in files:
                    raise _fail(f"manifest: model {m.id} file {f!r} is not listed in files")
        return manifest


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Bundle:
    """A loaded, verified bundle directory."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self.signature: Any = None  # a signing.SignatureState once loaded with the check

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = True,
             trust: Any = "configured", check_signature: bool = True) -> Bundle:
        """Read and validate ``manifest.json``; with ``verify`` check every file's sha256.

        ``trust``: a :class:`~hai_edge.bundle.signing.TrustStore`, None (no store), or
        ``"configured"`` (the machine's: environment variable and config directory). The
        signature is checked before any file is hashed or loaded (``bundle.signature`` says what
        was found); ``check_signature=False`` is for the signing tool itself.
        """
        root = resolve_bundle(path)
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise _fail(f"{root}: not a bundle (no {MANIFEST_NAME})")
        if mpath.stat().st_size > _MAX_MANIFEST_BYTES:
            raise _fail(f"{mpath}: manifest is larger than 16 MB")
        try:
            data = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _fail(f"{mpath}: manifest is not valid JSON ({exc})") from None
        try:
            manifest = Manifest.from_dict(data)
        except BundleError as exc:
            raise _fail(f"{root}: {exc}") from None
        bundle = cls(root, manifest)
        if check_signature:
            from hai_edge.bundle import signing

            store = signing.TrustStore.configured() if trust == "configured" else trust
            builtin = root.resolve().parent == BUILTIN_BUNDLES_DIR.resolve()
            bundle.signature = signing.check_signature(root, data, builtin=builtin, trust=store)
        if verify:
            bundle.verify()
        return bundle

    def verify(self, names: Iterable[str] | None = None) -> None:
        """Check sizes and sha256 of the named files (default: all); raise on any mismatch."""
        for name in names if names is not None else self.manifest.files:
            rec = self.manifest.files.get(name)
            if rec is None:
                raise _fail(f"{self.root}: {name} is not listed in the manifest")
            path = self.root / name
            if not path.is_file():
                raise _fail(f"{self.root}: {name} is missing from the bundle")
            if rec.size >= 0 and path.stat().st_size != rec.size:
                raise _fail(
                    f"{self.root}: {name} was modified (size {path.stat().st_size} bytes, "
                    f"manifest says {rec.size}); refusing to load it"
                )
            digest = sha256_file(path)
            if digest != rec.sha256:
                raise _fail(
                    f"{self.root}: {name} was modified (sha256 {digest[:12]}..., manifest says "
                    f"{rec.sha256[:12]}...); refusing to load it"
                )

    def path_of(self, name: str) -> Path:
        return self.root / _safe_relpath(name, "path")

    def models(
        self, fmt: ModelFormat | str | None = None, precision: Precision | str | None = None
    ) -> list[ModelEntry]:
        fmt = ModelFormat(fmt) if fmt is not None else None
        precision = Precision(precision) if precision is not None else None
        return [
            m
            for m in self.manifest.models
            if (fmt is None or m.format is fmt) and (precision is None or m.precision is precision)
        ]

    def model(self, model_id: str) -> ModelEntry:
        for m in self.manifest.models:
            if m.id == model_id:
                return m
        ids = ", ".join(m.id for m in self.manifest.models)
        raise _fail(f"{self.root}: no model {model_id!r} in this bundle (it has: {ids})")

    def __repr__(self) -> str:
        return f"Bundle({self.manifest.name!r}, root={str(self.root)!r})"


def builtin_bundles() -> dict[str, Path]:
    """Bundles shipped inside the package, by name."""
    if not BUILTIN_BUNDLES_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(BUILTIN_BUNDLES_DIR.iterdir())
        if (p / MANIFEST_NAME).is_file()
    }


def resolve_bundle(path_or_name: str | os.PathLike[str]) -> Path:
    """A bundle argument is a directory path, or the name of a built-in bundle."""
    p = Path(path_or_name)
    if p.is_dir():
        return p.resolve()
    if p.name == MANIFEST_NAME and p.is_file():
        return p.parent.resolve()
    builtins = builtin_bundles()
    if str(path_or_name) in builtins:
        return builtins[str(path_or_name)]
    if p.exists():
        raise _fail(f"{p}: not a bundle directory")
    names = ", ".join(builtins) or "none installed"
    raise _fail(f"{p}: no such bundle (built-in bundles: {names})")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_bundle(
    dest: str | os.PathLike[str],
    manifest: Manifest,
    files: Mapping[str, str | os.PathLike[str] | bytes],
    *,
    overwrite: bool = False,
) -> Bundle:
    """Write ``files`` (bundle name -> source path or bytes) and the manifest, atomically.

    The manifest's ``files`` table, ``created`` and ``hai_edge_version`` are filled in here; every
    model file a ModelEntry names must be among ``files``. The bundle is assembled in a temporary
    sibling directory and renamed into place; an existing bundle is only replaced with
    ``overwrite=True`` and stays intact until the new one is complete.
    """
    from hai_edge import __version__

    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise _fail(f"{dest}: already exists (pass overwrite to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        records: dict[str, FileRecord] = {}
        for name, src in files.items():
            name = _safe_relpath(name, "write_bundle")
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                target.write_bytes(bytes(src))
            else:
                shutil.copyfile(src, target)
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
            records[name] = FileRecord(sha256_file(target), target.stat().st_size)
        final = dataclasses.replace(
            manifest,
            files=records,
            created=manifest.created or _now(),
            hai_edge_version=__version__,
        )
        Manifest.from_dict(final.to_dict())  # validate the exact JSON we write
        mtmp = tmp / MANIFEST_NAME
        with open(mtmp, "w", encoding="utf-8") as fh:
            json.dump(final.to_dict(), fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(dest.resolve(), final)

"""Bundle directories: load and verify, resolve built-in names, write atomically.

Readers verify the schema and every file's sha256 before anything is loaded, so a tampered or
half-copied bundle fails loudly instead of giving silently different embeddings. Writers build the
whole bundle in a temporary sibling directory and rename it into place, so a crash never leaves a
half-written bundle where a good one was.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hai_edge.bundle._checks import MANIFEST_NAME
from hai_edge.bundle._checks import fail as _fail
from hai_edge.bundle._checks import safe_relpath as _safe_relpath
from hai_edge.bundle._manifest import FileRecord, Manifest, ModelEntry, ModelFormat, Precision
from hai_edge.errors import BundleError
from hai_edge.fileio import fsync_dir, replace_dir

__all__ = [
    "BUILTIN_BUNDLES_DIR",
    "MANIFEST_NAME",
    "Bundle",
    "builtin_bundles",
    "resolve_bundle",
    "sha256_file",
    "write_bundle",
]

_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
BUILTIN_BUNDLES_DIR = Path(__file__).resolve().parent.parent / "bundles"


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
            # unknown keys travel on, except a signer record: the new manifest is not what
            # that key signed (a bundle is signed after it is written, bundle.signing)
            extra={k: v for k, v in manifest.extra.items() if k != "signer"},
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

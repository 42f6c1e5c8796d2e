"""The bundle contract: model files + ``manifest.json``, the one interface between build and run side.

This package sits at the bottom of hai-edge: it imports nothing above it (only the standard
library, ``hai_edge.errors`` and ``hai_edge.fileio``), and every other package reads and writes
bundles through the types it exports. Import them from here; the modules behind them are private:
``_manifest`` (Manifest, ModelEntry, TensorSpec), ``_heads`` (typed ``heads`` entries: probes and
the event detector), ``_records`` (typed provenance and fidelity), ``_store`` (load, verify,
resolve, write) and ``frontend`` (the front-end specs: what preprocessing a model expects).
"""

from __future__ import annotations

from hai_edge.bundle._checks import MANIFEST_NAME
from hai_edge.bundle._heads import (
    DetectorEntry,
    DetectorKind,
    HeadEntry,
    HeadRole,
    WindowAlign,
    detector_entry_of,
    parse_head_entry,
    parse_heads,
    probe_entries,
)
from hai_edge.bundle._manifest import (
    SCHEMA_VERSION,
    FileRecord,
    Manifest,
    Modality,
    ModelEntry,
    ModelFormat,
    Precision,
    TensorSpec,
)
from hai_edge.bundle._records import Fidelity, ModelFidelity, Provenance, TeacherInfo
from hai_edge.bundle._store import (
    BUILTIN_BUNDLES_DIR,
    Bundle,
    builtin_bundles,
    resolve_bundle,
    sha256_file,
    write_bundle,
)
from hai_edge.bundle.frontend import (
    AudioFeatures,
    AudioFrontendSpec,
    ClipNormalization,
    ImageFrontendSpec,
    ResizeMode,
    spec_from_dict,
)

__all__ = [
    "AudioFeatures",
    "AudioFrontendSpec",
    "BUILTIN_BUNDLES_DIR",
    "Bundle",
    "ClipNormalization",
    "DetectorEntry",
    "DetectorKind",
    "FileRecord",
    "Fidelity",
    "HeadEntry",
    "HeadRole",
    "ImageFrontendSpec",
    "MANIFEST_NAME",
    "Manifest",
    "Modality",
    "ModelEntry",
    "ModelFidelity",
    "ModelFormat",
    "Precision",
    "Provenance",
    "ResizeMode",
    "SCHEMA_VERSION",
    "TeacherInfo",
    "TensorSpec",
    "WindowAlign",
    "builtin_bundles",
    "detector_entry_of",
    "parse_head_entry",
    "parse_heads",
    "probe_entries",
    "resolve_bundle",
    "sha256_file",
    "write_bundle",
]

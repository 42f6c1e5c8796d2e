"""The bundle contract: model files + ``manifest.json``, the one interface between build and run side.

This package sits at the bottom of hai-edge: it imports nothing above it (no runtime, no build
side), and every other package reads and writes bundles through the types it exports. The
manifest types live in ``_manifest``; the front-end specs (what preprocessing a model expects)
in ``frontend``.
"""

from __future__ import annotations

from hai_edge.bundle._manifest import (
    BUILTIN_BUNDLES_DIR,
    SCHEMA_VERSION,
    Bundle,
    FileRecord,
    Manifest,
    Modality,
    ModelEntry,
    ModelFormat,
    Precision,
    TensorSpec,
    builtin_bundles,
    resolve_bundle,
    sha256_file,
    write_bundle,
    MANIFEST_NAME,
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
    "FileRecord",
    "ImageFrontendSpec",
    "MANIFEST_NAME",
    "Manifest",
    "Modality",
    "ModelEntry",
    "ModelFormat",
    "Precision",
    "ResizeMode",
    "SCHEMA_VERSION",
    "TensorSpec",
    "builtin_bundles",
    "resolve_bundle",
    "sha256_file",
    "spec_from_dict",
    "write_bundle",
]

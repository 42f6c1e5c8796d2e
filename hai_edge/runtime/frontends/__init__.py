"""Preprocessing front ends: raw decoded media -> model input tensors, in numpy only.

The single place preprocessing lives. Specs (``hai_edge.bundle.frontend``) say *what* to compute
and travel in the bundle manifest; ``_resample``, ``_audio`` (with ``_spectrogram``) and
``_image`` say *how*, with numpy and the standard library only, so the export side,
calibration, every runtime and the JavaScript port agree.
"""

from __future__ import annotations

from hai_edge.runtime.frontends._audio import (
    AudioWindow,
    mel_filterbank,
    pcen,
    prepare_audio,
    split_windows,
    to_mono,
    window_features,
)
from hai_edge.runtime.frontends._image import apply_exif_orientation, prepare_image, resize_antialiased, to_rgb
from hai_edge.runtime.frontends._resample import resample
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
    "AudioWindow",
    "ClipNormalization",
    "ImageFrontendSpec",
    "ResizeMode",
    "apply_exif_orientation",
    "mel_filterbank",
    "pcen",
    "prepare_audio",
    "prepare_image",
    "resample",
    "resize_antialiased",
    "spec_from_dict",
    "split_windows",
    "to_mono",
    "to_rgb",
    "window_features",
]

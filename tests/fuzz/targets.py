"""Fuzz targets: untrusted bytes in, a result or a ``HaiEdgeError`` out, nothing else.

Each target takes the raw bytes a user, an upload or another system could hand hai-edge. Any other
exception (or a hang, or a memory blow-up: the runners bound both) is a finding. Used by the
coverage-guided atheris runner (``tests/fuzz/run_atheris.py``), the bounded runs in the default
tests (``tests/test_fuzz.py``) and the regression crashers (``tests/fuzz/crashers/``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hai_edge.bundle import AudioFrontendSpec, Bundle
from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.decoders import decode_audio_bytes, load_images_bytes
from hai_edge.runtime.frontends import ImageFrontendSpec, prepare_audio, prepare_image

__all__ = ["TARGETS", "run_target"]

_AUDIO_SPEC = AudioFrontendSpec()
_IMAGE_SPEC = ImageFrontendSpec()
# the kiosk's own ceiling for an upload (apps/kiosk/config.py): larger inputs never reach a decoder
MAX_INPUT_BYTES = 1 << 20
_BUNDLE_DIR = Path(tempfile.mkdtemp(prefix="hai-fuzz-bundle-"))


def audio(data: bytes) -> None:
    """Audio decoder then the model front end, as for a cough upload."""
    decoded = decode_audio_bytes(data, "fuzz.wav")
    prepare_audio(decoded.samples, decoded.sample_rate, _AUDIO_SPEC, "fuzz.wav")


def image(data: bytes) -> None:
    """Photo decoder (by content: JPEG, PNG, WebP, ...) then the model front end."""
    for decoded in load_images_bytes(data, "fuzz.img", max_pixels=4_000_000):
        prepare_image(decoded.pixels, _IMAGE_SPEC, source="fuzz.img")


def dicom(data: bytes) -> None:
    """DICOM decoder (named .dcm, so even a broken preamble goes to the DICOM path)."""
    for decoded in load_images_bytes(data, "fuzz.dcm", max_pixels=4_000_000):
        prepare_image(decoded.pixels, _IMAGE_SPEC, source="fuzz.dcm")


def manifest(data: bytes) -> None:
    """A bundle's manifest.json as the runtimes read it (files are not present: not verified)."""
    (_BUNDLE_DIR / "manifest.json").write_bytes(data)
    (_BUNDLE_DIR / "manifest.sig").unlink(missing_ok=True)
    Bundle.load(_BUNDLE_DIR, verify=False, trust=None)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "audio": audio,
    "image": image,
    "dicom": dicom,
    "manifest": manifest,
}


def run_target(name: str, data: bytes) -> None:
    """Run one input; swallow the errors hai-edge promises, let every other one through."""
    if len(data) > MAX_INPUT_BYTES:
        return
    try:
        TARGETS[name](data)
    except HaiEdgeError:
        pass

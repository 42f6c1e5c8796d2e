"""Media decoders: files or uploaded bytes -> raw samples/pixels, every bad input an InputError.

Audio (soundfile) gives float32 ``[n_frames, channels]`` at the file's own rate; photos (Pillow)
give pixels as stored plus the EXIF orientation still to apply; DICOM (pydicom) gives one uint8
grey/RGB image per frame. Resampling, rotation, colour conversion and the "too short/too small"
checks belong to the front ends. soundfile, Pillow and pydicom are imported only when used.
``check_input_file``, ``DICOM_SUFFIXES`` and ``quiet_pydicom`` serve callers that read a file's
header themselves (the derm pipeline's stored size and DICOM pseudonym).
"""

from __future__ import annotations

from hai_edge.runtime.decoders._audio import DecodedAudio, decode_audio, decode_audio_bytes
from hai_edge.runtime.decoders._dicom import (
    DICOM_SUFFIXES,
    decode_dicom,
    decode_dicom_bytes,
    is_dicom,
    is_dicom_bytes,
    load_images,
    load_images_bytes,
    quiet_pydicom,
)
from hai_edge.runtime.decoders._files import check_input_file
from hai_edge.runtime.decoders._image import DecodedImage, decode_image, decode_image_bytes

__all__ = [
    "DICOM_SUFFIXES",
    "DecodedAudio",
    "DecodedImage",
    "check_input_file",
    "decode_audio",
    "decode_audio_bytes",
    "decode_dicom",
    "decode_dicom_bytes",
    "decode_image",
    "decode_image_bytes",
    "is_dicom",
    "is_dicom_bytes",
    "load_images",
    "load_images_bytes",
    "quiet_pydicom",
]

"""Audio decoding with soundfile (libsndfile): WAV, FLAC, OGG/Vorbis/Opus, MP3 and friends.

Returns float32 samples ``[n_frames, channels]`` at the file's own rate; mixing to mono,
resampling, windowing and the short/silent checks belong to the audio front end.

libsndfile reads a truncated WAV silently short, so RIFF/RF64 files have their chunk list walked
here first and a ``data`` chunk that declares more bytes than the file holds is an error.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
from typing import Any, BinaryIO

import numpy as np

from hai_edge.errors import InputError, MissingDependencyError
from hai_edge.runtime.decoders._files import check_input_file, open_input_file, source_name

__all__ = [
    "DecodedAudio",
    "decode_audio",
    "decode_audio_bytes",
]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
_UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers leave chunk sizes at this value


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class DecodedAudio:
    """Decoded samples: float32 ``[n_frames, channels]``, about [-1, 1], at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int
    source: str

    @property
    def n_frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.sample_rate)

    def __repr__(self) -> str:  # never dumps sample values
        return (
            f"DecodedAudio(source={self.source!r}, frames={self.n_frames}, "
            f"channels={self.channels}, sample_rate={self.sample_rate}, "
            f"duration_s={self.duration_s:.3f})"
        )


def _import_soundfile() -> Any:
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the libsndfile shared library is missing
        raise MissingDependencyError("audio decoding", "audio", "soundfile") from None
    return soundfile


def decode_audio(path: str | os.PathLike, *, source: str | None = None) -> DecodedAudio:
    """Decode an audio file; every unusable input raises :class:`InputError` naming it."""
    src = source_name(path, source)
    size = check_input_file(path, src)
    with open_input_file(path, src) as fp:
        _check_riff(fp, size, src)
    return _read(os.fspath(path), src)


def decode_audio_bytes(data: bytes, source: str) -> DecodedAudio:
    """:func:`decode_audio` for an in-memory file (e.g. a web upload); ``source`` names it."""
    src = str(source)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(src, f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise InputError(src, "empty file (0 bytes)")
    buf = io.BytesIO(data)
    _check_riff(buf, len(data), src)
    buf.seek(0)
    return _read(buf, src)


def _check_riff(fp: BinaryIO, size: int, src: str) -> None:
    """Walk a RIFF/RIFX/RF64 WAVE chunk list; raise if the data chunk is cut short."""
    fp.seek(0)
    head = fp.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        return  # not a WAV: libsndfile decides
    u32 = ">I" if head[:4] == b"RIFX" else "<I"
    rf64_data_size: int | None = None
    pos = 12
    while True:
        fp.seek(pos)
        hdr = fp.read(8)
        if len(hdr) < 8:
            raise InputError(
                src, f"truncated WAV: no data chunk in the {size} bytes the file holds"
            )
        cid = hdr[:4]
        csize = struct.unpack(u32, hdr[4:])[0]
        body = pos + 8
        if cid == b"ds64" and csize >= 16:
            ds64 = fp.read(16)
            if len(ds64) == 16:
                rf64_data_size = struct.unpack("<Q", ds64[8:16])[0]
        if cid == b"data":
            declared = csize
            if csize == _UNKNOWN_SIZE:
                if rf64_data_size is None:
                    return  # streamed WAV of unknown length: read what is there
                declared = rf64_data_size
            held = size - body
            if declared > held:
                raise InputError(
                    src,
                    f"truncated WAV: header declares {declared} bytes of audio, "
                    f"file holds {max(held, 0)}",
                )
            return
        if csize == _UNKNOWN_SIZE and cid != b"ds64":
            return  # an unsized chunk before data: leave it to libsndfile
        pos = body + csize + (csize & 1)
        if pos > size:
            raise InputError(
                src,
                f"truncated WAV: a {cid.decode('latin-1')!r} chunk declares {csize} bytes, "
                f"file ends before the data chunk",
            )


def _read(file: str | BinaryIO, src: str) -> DecodedAudio:
    sf = _import_soundfile()
    try:
        with sf.SoundFile(file) as f:
            sr = int(f.samplerate)
            if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
                raise InputError(
                    src,
                    f"sample rate {sr} Hz is outside the supported range "
                    f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
                )
            if f.channels < 1:
                raise InputError(src, "audio file declares no channels")
            samples = f.read(dtype="float32", always_2d=True)
    except InputError:
        raise
    except sf.LibsndfileError as exc:
        raise InputError(src, f"not a readable audio file ({_sndfile_reason(exc)})") from None
    except MemoryError:
        raise InputError(src, "not enough memory to decode the audio") from None
    except (RuntimeError, ValueError, TypeError, OSError, EOFError, struct.error) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(src, f"not a readable audio file ({text[:100]})") from None
    if samples.shape[0] == 0:
        raise InputError(src, "contains no audio frames (0 samples)")
    if not np.isfinite(samples).all():
        raise InputError(src, "contains NaN or infinite samples")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return DecodedAudio(samples=samples, sample_rate=sr, source=src)


def _sndfile_reason(exc: Any) -> str:
    text = str(getattr(exc, "error_string", "") or "").strip().splitlines()
    reason = text[0].rstrip(".") if text else "unknown libsndfile error"
    if reason and reason[0].isupper() and not reason[:2].isupper():
        reason = reason[0].lower() + reason[1:]
    return reason[:100]

"""Microphone capture with sounddevice (PortAudio), for live cough screening.

:class:`MicCapture` opens one input device (by index or name substring), asks for the bundle's
sample rate and falls back to the device's default rate (then resamples with the front end's
resampler, streaming, so the result equals resampling the whole recording at once). PortAudio's
callback only copies each block into a bounded queue; consumers take audio with
:meth:`MicCapture.read_available` (streaming) or :meth:`MicCapture.record` (fixed length).

* Overflows: PortAudio input overflows (the device dropped samples) and queue drops (the consumer
  fell more than ``max_buffer_s`` behind) are counted, never hidden.
* A level meter goes to stderr while recording, only when stderr is a terminal (or ``meter=True``).
* Ctrl-C ends a recording cleanly: what was captured is kept and returned.
* Recordings are health data: nothing is written unless ``save_path`` is given; then the audio
  (at the output rate, 16-bit FLAC) is written atomically when capture stops, even after an error.
* A device unplugged or a stream that dies mid-recording stops the capture, keeps (and saves)
  what was captured, and raises :class:`DeviceLostError` carrying those samples, so callers can
  process them before reporting the error (exit code 2).

sounddevice and PortAudio are optional (``pip install 'hai-edge[mic]'`` and, on Debian/Ubuntu,
``apt-get install libportaudio2``); they are imported only when capture starts.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.runtime.stream_resample import StreamResampler

__all__ = [
    "DeviceLostError",
    "InputDevice",
    "MicCapture",
    "MicError",
    "StreamResampler",
    "import_sounddevice",
    "list_input_devices",
]


class MicError(HaiEdgeError):
    """Microphone capture cannot start or continue (no device, device busy, bad settings)."""


class DeviceLostError(MicError):
    """The input stream died mid-recording. ``samples`` holds what was captured before (at
    ``sample_rate``), ``saved_to`` the FLAC it was saved to (if saving was requested), and
    ``result`` may be filled by a caller that processed the samples before re-raising."""

    def __init__(self, message: str, samples: np.ndarray, sample_rate: int,
                 saved_to: Path | None = None) -> None:
        super().__init__(message)
        self.samples = samples
        self.sample_rate = sample_rate
        self.saved_to = saved_to
        self.result: Any = None


def import_sounddevice() -> Any:
    """sounddevice, or a clear error saying which package (Python or system) is missing."""
    try:
        import sounddevice
    except ImportError:
        raise MissingDependencyError("microphone capture", "mic", "sounddevice") from None
    except OSError:  # sounddevice is installed but the PortAudio shared library is not
        raise MicError("PortAudio library not found: apt-get install libportaudio2 "
                       "(or your system's PortAudio package)") from None
    return sounddevice


@dataclasses.dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_samplerate: float

    def __str__(self) -> str:
        return (f"{self.index}: {self.name} ({self.hostapi}, {self.max_input_channels} in, "
                f"{self.default_samplerate:g} Hz)")


def _devices(sd: Any) -> list[InputDevice]:
    try:
        raw = list(sd.query_devices())
    except Exception as exc:  # PortAudioError and friends
        raise MicError(f"cannot list audio devices: {exc}") from None
    out = []
    for i, d in enumerate(raw):
        if int(d.get("max_input_channels", 0)) <= 0:
            continue
        try:
            api = str(sd.query_hostapis(int(d.get("hostapi", 0)))["name"])
        except Exception:
            api = "?"
        out.append(InputDevice(int(d.get("index", i)), str(d.get("name", f"device {i}")), api,
                               int(d["max_input_channels"]), float(d.get("default_samplerate", 0))))
    return out


def list_input_devices(sd: Any | None = None) -> list[InputDevice]:
    """Input devices PortAudio sees (empty list when there are none)."""
    return _devices(sd or import_sounddevice())


def _no_device_message() -> str:
    return ("no audio input device found (PortAudio lists none): connect a microphone, or on a "
            "headless machine start a virtual one (docs/cough.md, .ci/virtual_mic.sh)")


def _resolve_device(sd: Any, device: int | str | None) -> InputDevice:
    devices = _devices(sd)
    if not devices:
        raise MicError(_no_device_message())
    by_index = {d.index: d for d in devices}
    if device is None:
        try:
            default = int(sd.default.device[0])
        except Exception:
            default = -1
        return by_index.get(default, devices[0])
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        idx = int(device)
        if idx not in by_index:
            names = "; ".join(str(d) for d in devices)
            raise MicError(f"audio device {idx} is not an input device (inputs: {names})")
        return by_index[idx]
    want = str(device).strip().lower()
    exact = [d for d in devices if d.name.lower() == want]
    if exact:
        return exact[0]
    matches = [d for d in devices if want in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = ", ".join(repr(d.name) for d in devices)
        raise MicError(f"no input device matches {device!r} (inputs: {names})")
    names = ", ".join(f"{d.index}: {d.name!r}" for d in matches)
    raise MicError(f"{device!r} matches several input devices ({names}); give the index")


class _Meter:
    """A one-line level meter on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = 0.0
        self.drawn = False

    def update(self, rms_db: float, seconds: float, overflows: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        filled = int(max(0.0, min(1.0, (rms_db + 60.0) / 60.0)) * 30)
        bar = "#" * filled + "." * (30 - filled)
        level = f"{rms_db:6.1f}" if math.isfinite(rms_db) else "  -inf"
        self.stream.write(f"\r[{bar}] {level} dBFS {seconds:7.1f} s  overflows {overflows}  ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def save_flac(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono float samples as 16-bit FLAC, atomically (temp file + rename)."""
    from hai_edge.fileio import atomic_write
    from hai_edge.runtime.decoders._audio import _import_soundfile

    sf = _import_soundfile()
    path = Path(path)
    data = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with atomic_write(path) as fh:
        sf.write(fh, data, int(sample_rate), format="FLAC", subtype="PCM_16")
    return path


class MicCapture:
    """One input stream: ``start`` -> ``read_available`` / ``record`` -> ``stop`` (or ``with``).

    ``sample_rate`` is the rate of the audio handed out (the bundle's); ``device_rate`` what the
    device runs at. ``started_unix_s`` estimates the wall-clock time of the first sample (the
    earliest ``callback time - audio delivered so far``, so delivery jitter cannot push it late).
    ``sd`` injects a sounddevice-compatible module (tests).
    """

    def __init__(self, sample_rate: int = 16000, device: int | str | None = None, *,
                 block_s: float = 0.02, max_buffer_s: float = 30.0,
                 save_path: str | os.PathLike[str] | None = None, meter: bool | None = None,
                 meter_stream: TextIO | None = None, stall_timeout_s: float = 2.0,
                 startup_timeout_s: float = 5.0, sd: Any | None = None) -> None:
        if save_path is not None and Path(save_path).suffix.lower() != ".flac":
            raise MicError(f"{save_path}: recordings are saved as FLAC; use a .flac file name")
        self.sample_rate = int(sample_rate)
        self.device_spec = device
        self.block_s = block_s
        self.max_buffer_s = max_buffer_s
        self.save_path = Path(save_path) if save_path is not None else None
        self.stall_timeout_s = stall_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._sd = sd
        out = meter_stream or sys.stderr
        show = meter if meter is not None else bool(getattr(out, "isatty", lambda: False)())
        self._meter = _Meter(out) if show else None
        self.device: InputDevice | None = None
        self.device_rate = 0
        self.channels = 1
        self.overflows = 0  # PortAudio input overflows (samples lost by the device/driver)
        self.dropped_samples = 0  # device-rate samples dropped because the consumer lagged
        self.saved_to: Path | None = None
        self.interrupted = False
        self.started_unix_s: float | None = None
        self._lock = threading.Condition()
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._queued = 0
        self._delivered = 0
        self._last_callback = 0.0
        self._started_mono = 0.0
        self._error: str | None = None
        self._stopping = False
        self._stream: Any = None
        self._resampler: StreamResampler | None = None
        self._archive = np.zeros(0, dtype=np.float32)  # grows by doubling; [:_archived] is valid
        self._archived = 0
        self._stopped = False

    # ------------------------------------------------------------------------------ setup
    def __enter__(self) -> MicCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _negotiate(self, sd: Any, dev: InputDevice) -> tuple[int, int]:
        """(rate, channels): the wanted rate in mono if the device takes it, else its default
        rate, else stereo (downmixed here)."""
        rates = [self.sample_rate]
        if dev.default_samplerate and int(dev.default_samplerate) != self.sample_rate:
            rates.append(int(dev.default_samplerate))
        channel_options = [1] + ([2] if dev.max_input_channels >= 2 else [])
        errors = []
        for channels in channel_options:
            for rate in rates:
                try:
                    sd.check_input_settings(device=dev.index, samplerate=rate,
                                            channels=channels, dtype="float32")
                    return rate, channels
                except Exception as exc:
                    errors.append(f"{rate} Hz x{channels}: {exc}")
        raise MicError(f"input device {dev.name!r} accepts none of the tried settings "
                       f"({'; '.join(errors)[:300]})")

    def start(self) -> None:
        if self._stream is not None:
            return
        sd = self._sd = self._sd or import_sounddevice()
        dev = self.device = _resolve_device(sd, self.device_spec)
        self.device_rate, self.channels = self._negotiate(sd, dev)
        if self.device_rate != self.sample_rate:
            self._resampler = StreamResampler(self.device_rate, self.sample_rate)
        try:
            self._stream = sd.InputStream(
                device=dev.index, samplerate=self.device_rate, channels=self.channels,
                dtype="float32", blocksize=max(1, int(round(self.block_s * self.device_rate))),
                callback=self._callback, finished_callback=self._finished)
            self._started_mono = time.monotonic()
            self._stream.start()
        except Exception as exc:
            self._stream = None
            raise MicError(f"cannot open input device {dev.name!r}: {exc}") from None

    # --------------------------------------------------------------------- audio thread side
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.time()
        data = np.asarray(indata, dtype=np.float32)
        data = data.mean(axis=1) if data.ndim == 2 and data.shape[1] > 1 else data.reshape(-1)
        with self._lock:
            if status and getattr(status, "input_overflow", False):
                self.overflows += 1
            self._delivered += frames
            first = now - self._delivered / self.device_rate
            if self.started_unix_s is None or first < self.started_unix_s:
                self.started_unix_s = first
            self._queue.append(data.copy())
            self._queued += data.size
            limit = int(self.max_buffer_s * self.device_rate)
            while self._queued > limit and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued -= old.size
                self.dropped_samples += old.size
            self._last_callback = time.monotonic()
            self._lock.notify_all()

    def _finished(self) -> None:
        with self._lock:
            if not self._stopping and self._error is None:
                self._error = "the audio stream stopped unexpectedly (device unplugged?)"
            self._lock.notify_all()

    # ------------------------------------------------------------------------- consumer side
    def _check_alive(self) -> None:
        """Called with the lock held: notice a stream that stalled or went inactive."""
        if self._error is not None or self._stream is None or self._stopping:
            return
        now = time.monotonic()
        if self._last_callback:
            if now - self._last_callback > self.stall_timeout_s:
                self._error = (f"no audio from the device for {self.stall_timeout_s:g} s "
                               "(device unplugged or stream stalled)")
        elif now - self._started_mono > self.startup_timeout_s:
            self._error = f"the device delivered no audio within {self.startup_timeout_s:g} s"
        try:
            active = bool(self._stream.active)
        except Exception:
            active = False
        if self._error is None and not active and not self._queue:
            self._error = "the audio stream stopped unexpectedly (device unplugged?)"

    def read_available(self, timeout: float | None = 0.1) -> np.ndarray:
        """Audio captured since the last call (mono float32 at ``sample_rate``), waiting up to
        ``timeout`` s for some; empty when none arrived. Raises :class:`DeviceLostError` once the
        stream has failed and everything before the failure was handed out."""
        if self._stream is None:
            raise MicError("capture is not running (call start() first)")
        with self._lock:
            if not self._queue and timeout:
                self._lock.wait_for(lambda: bool(self._queue) or self._error is not None,
                                    timeout=timeout)
            self._check_alive()
            chunks = list(self._queue)
            self._queue.clear()
            self._queued = 0
            error = self._error
        raw = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        if error is not None and not chunks:
            self._fail(error)
        out = self._resampler.push(raw) if self._resampler is not None else raw
        if error is not None and self._resampler is not None:
            out = np.concatenate([out, self._resampler.flush()])
            self._resampler = None
        return self._keep(out)

    def _keep(self, out: np.ndarray) -> np.ndarray:
        if out.size:
            end = self._archived + out.size
            if end > self._archive.size:
                grown = np.zeros(max(end, 2 * self._archive.size, self.sample_rate * 10),
                                 dtype=np.float32)
                grown[: self._archived] = self._archive[: self._archived]
                self._archive = grown
            self._archive[self._archived : end] = out
            self._archived = end
            if self._meter is not None and not self._stopped:
                level = float(np.sqrt(np.mean(np.square(out[-int(0.1 * self.sample_rate):],
                                                        dtype=np.float64))))
                db = 20.0 * math.log10(level) if level > 0 else -math.inf
                self._meter.update(db, self._archived / self.sample_rate, self.overflows)
        return out

    def captured(self) -> np.ndarray:
        """Everything handed out so far (mono float32 at ``sample_rate``; a read-only view)."""
        view = self._archive[: self._archived]
        view.flags.writeable = False
        return view

    @property
    def captured_s(self) -> float:
        return self._archived / self.sample_rate

    def _fail(self, error: str) -> None:
        samples = self.captured()
        self.stop()
        name = self.device.name if self.device else "?"
        msg = f"microphone {name!r}: {error}; kept {len(samples) / self.sample_rate:.2f} s"
        if self.saved_to is not None:
            msg += f" (saved to {self.saved_to})"
        raise DeviceLostError(msg, samples, self.sample_rate, self.saved_to)

    def record(self, seconds: float) -> np.ndarray:
        """Capture ``seconds`` of audio (starting the stream if needed), then stop. Ctrl-C ends
        early and returns what was captured (``interrupted`` is then True)."""
        if seconds <= 0:
            raise MicError("recording length must be positive")
        self.start()
        want = int(round(seconds * self.sample_rate))
        try:
            while self._archived < want:
                self.read_available(timeout=0.1)
        except KeyboardInterrupt:
            self.interrupted = True
        self.stop(max_samples=want)
        return self.captured().copy()

    def stop(self, max_samples: int | None = None) -> None:
        """Stop the stream (idempotent), keep the blocks not yet read (``captured()`` then holds
        everything the device delivered, cut to ``max_samples``), and save it if ``save_path``
        was given."""
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            except Exception:
                pass  # a lost device may refuse to stop; we only need it closed
            try:
                stream.close()
            except Exception:
                pass
        if self._meter is not None:
            self._meter.close()
        with self._lock:  # blocks delivered after the last read are kept too
            chunks = list(self._queue)
            self._queue.clear()
            self._queued = 0
        if chunks:
            raw = np.concatenate(chunks)
            self._keep(self._resampler.push(raw) if self._resampler is not None else raw)
        if self._resampler is not None:
            self._keep(self._resampler.flush())
            self._resampler = None
        if max_samples is not None and self._archived > max_samples:
            self._archived = max_samples
        if self.save_path is not None and self._archived:
            self.saved_to = save_flac(self.save_path, self.captured(), self.sample_rate)

    def info(self) -> dict[str, Any]:
        """What the capture did, for reports (no audio)."""
        return {
            "device": self.device.name if self.device else None,
            "device_index": self.device.index if self.device else None,
            "device_rate": self.device_rate,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "captured_s": round(self.captured_s, 4),
            "overflows": self.overflows,
            "dropped_s": (round(self.dropped_samples / self.device_rate, 4) if self.device_rate
                          else 0.0),
            "started_unix_s": round(self.started_unix_s, 4) if self.started_unix_s else None,
            "saved_to": str(self.saved_to) if self.saved_to else None,
            "interrupted": self.interrupted,
        }

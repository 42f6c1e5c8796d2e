"""Audio shifts: what phones, phone lines, codecs, rooms and cheap microphones do to a recording.

Every function takes mono float32 samples at ``sr`` Hz and returns a float32 array of the same
length at the same rate, so the models' windows stay aligned with the clean recording. Filters and
resampling are scipy.signal (Butterworth second-order sections, polyphase resampling), codecs are
libsndfile through soundfile (MP3 = LAME/mpg123, Opus = libopus, G.711 mu-law), noise and room
impulse responses are seeded numpy generators. Nothing here learns anything from the data.
"""

from __future__ import annotations

import functools
import io
import math
import numpy as np

__all__ = [
    "PHONE_RATE",
    "add_noise",
    "band_filter",
    "clip",
    "codec_roundtrip",
    "codec_bitrate_kbps",
    "gain",
    "loop_to",
    "mulaw_roundtrip",
    "pink_noise",
    "resample_poly",
    "reverb",
    "rt60_of",
    "stochastic_rir",
    "telephone",
]

PHONE_RATE = 8000  # narrow-band telephony (ITU-T G.711 / G.712)


def resample_poly(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """scipy's polyphase resampler (Kaiser-windowed FIR), float32."""
    from scipy.signal import resample_poly as _rp

    if orig_sr == target_sr:
        return np.asarray(x, np.float32).copy()
    g = math.gcd(int(orig_sr), int(target_sr))
    return _rp(np.asarray(x, np.float64), target_sr // g, orig_sr // g).astype(np.float32)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad to ``n`` samples (resampling and codecs change lengths by a few)."""
    y = np.asarray(y, np.float32).reshape(-1)
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), np.float32)])


def band_filter(x: np.ndarray, sr: int, low_hz: float | None, high_hz: float | None,
                order: int = 4) -> np.ndarray:
    """Causal Butterworth high-pass (``low_hz``), low-pass (``high_hz``) or band-pass (both):
    -3 dB at each edge, ``6 * order`` dB per octave beyond it, as an analogue microphone or line
    filter would (causal, so no pre-ringing)."""
    from scipy.signal import butter, sosfilt

    if low_hz and high_hz:
        sos = butter(order, [low_hz, high_hz], "bandpass", fs=sr, output="sos")
    elif low_hz:
        sos = butter(order, low_hz, "highpass", fs=sr, output="sos")
    elif high_hz:
        sos = butter(order, high_hz, "lowpass", fs=sr, output="sos")
    else:
        return np.asarray(x, np.float32).copy()
    return sosfilt(sos, np.asarray(x, np.float64)).astype(np.float32)


def telephone(x: np.ndarray, sr: int, low_hz: float = 300.0, high_hz: float = 3400.0
              ) -> np.ndarray:
    """A narrow-band phone line: down to 8 kHz, the ``low_hz``-``high_hz`` voice band (order-8
    Butterworth: steep, like the G.712 channel mask), back up to ``sr``."""
    n = len(x)
    y = resample_poly(x, sr, PHONE_RATE)
    y = band_filter(y, PHONE_RATE, low_hz, high_hz, order=8)
    return _fit(resample_poly(y, PHONE_RATE, sr), n)


def mulaw_roundtrip(x: np.ndarray, sr: int) -> np.ndarray:
    """G.711 mu-law at 8 kHz (libsndfile's ULAW WAV): 8-bit logarithmic quantisation."""
    import soundfile as sf

    n = len(x)
    y = np.clip(resample_poly(x, sr, PHONE_RATE), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, y, PHONE_RATE, format="WAV", subtype="ULAW")
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32")
    return _fit(resample_poly(z, PHONE_RATE, sr), n)


_CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS"), "vorbis": ("OGG", "VORBIS")}


def _encode(x: np.ndarray, sr: int, codec: str, level: float) -> bytes:
    import soundfile as sf

    fmt, sub = _CODECS[codec]
    buf = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if codec == "mp3" else {}
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format=fmt, subtype=sub,
             compression_level=float(level), **extra)
    return buf.getvalue()


def _calibration_signal(sr: int) -> np.ndarray:
    return 0.1 * pink_noise(3 * sr, np.random.default_rng(12345))


@functools.lru_cache(maxsize=64)
def _level_for(codec: str, sr: int, kbps: float) -> float:
    """libsndfile takes a compression level in [0, 1], not a bitrate: find the level whose
    bitrate on 3 s of pink noise is closest to ``kbps`` (bitrate falls as the level rises)."""
    x = _calibration_signal(sr)
    lo, hi = 0.0, 0.99  # 1.0 is refused by LAME at some rates
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        rate = len(_encode(x, sr, codec, mid)) * 8 / (len(x) / sr) / 1000
        lo, hi = (mid, hi) if rate > kbps else (lo, mid)
    cands = [lo, hi]
    rates = [len(_encode(x, sr, codec, c)) * 8 / (len(x) / sr) / 1000 for c in cands]
    return float(cands[int(np.argmin([abs(r - kbps) for r in rates]))])


def codec_bitrate_kbps(codec: str, sr: int, kbps: float) -> float:
    """The bitrate the chosen level gives on the calibration noise (what the shift really is)."""
    x = _calibration_signal(sr)
    return len(_encode(x, sr, codec, _level_for(codec, sr, kbps))) * 8 / (len(x) / sr) / 1000


def codec_roundtrip(x: np.ndarray, sr: int, codec: str, kbps: float) -> np.ndarray:
    """Encode with ``codec`` (mp3 | opus | vorbis) near ``kbps`` and decode again (libsndfile).
    The decoder's start-up delay is removed by aligning on the cross-correlation peak."""
    import soundfile as sf

    n = len(x)
    data = _encode(x, sr, codec, _level_for(codec, sr, kbps))
    y, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if rate != sr:
        y = resample_poly(y, rate, sr)
    return _align(np.asarray(x, np.float32), y, n)


def _align(ref: np.ndarray, y: np.ndarray, n: int, max_lag: int = 4096) -> np.ndarray:
    from scipy.signal import correlate

    m = min(len(ref), len(y), 8 * max_lag)
    if m < 16 or not np.any(ref[:m]):
        return _fit(y, n)
    c = correlate(y[: m + max_lag], ref[:m], mode="valid", method="fft")
    lag = int(np.argmax(np.abs(c[: max_lag + 1]))) if len(c) else 0
    return _fit(y[lag:], n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) Gaussian noise, unit RMS: white noise shaped by 1/sqrt(f) in the frequency
    domain (the DC bin is zeroed). Room and HVAC noise is closer to pink than to white."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = np.inf
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.sqrt(np.mean(y**2)) or 1.0)).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + k * noise`` with ``k`` set so that mean(x^2) / mean((k noise)^2) is ``snr_db``
    over the whole recording (silences included, so loud coughs sit above it)."""
    x = np.asarray(x, np.float64)
    noise = _fit(noise, len(x)).astype(np.float64)
    ps, pn = float(np.mean(x**2)), float(np.mean(noise**2))
    if ps == 0.0 or pn == 0.0:
        return x.astype(np.float32)
    k = math.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    return (x + k * noise).astype(np.float32)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return (np.asarray(x, np.float64) * 10 ** (db / 20)).astype(np.float32)


def clip(x: np.ndarray, drive_db: float) -> np.ndarray:
    """Peak-normalise to full scale, amplify by ``drive_db`` and hard-clip at +-1: an input
    stage overdriven by a loud cough."""
    x = np.asarray(x, np.float64)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0.0:
        return x.astype(np.float32)
    return np.clip(x / peak * 10 ** (drive_db / 20), -1.0, 1.0).astype(np.float32)


def stochastic_rir(sr: int, rt60_s: float, rng: np.random.Generator,
                   drr_db: float = 0.0) -> np.ndarray:
    """Polack's statistical room impulse response: a direct-path impulse, then Gaussian noise
    decaying by 60 dB over ``rt60_s`` (exponential energy decay of a diffuse field), the tail's
    energy ``drr_db`` below the direct path's, a 2.5 ms pre-delay, ``1.2 * rt60_s`` long."""
    n = max(int(1.2 * rt60_s * sr), 8)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-3 * math.log(10) * t / rt60_s)
    tail[: int(0.0025 * sr) + 1] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(np.sum(tail**2)))
    tail[0] = 1.0
    return tail


def rt60_of(rir: np.ndarray, sr: int) -> float:
    """RT60 measured by Schroeder backward integration (T20: the -5 to -25 dB slope, x3)."""
    e = np.asarray(rir[1:], np.float64) ** 2
    edc = 10 * np.log10(np.maximum(np.cumsum(e[::-1])[::-1] / np.sum(e), 1e-30))
    i5, i25 = int(np.argmax(edc <= -5)), int(np.argmax(edc <= -25))
    return float(3 * (i25 - i5) / sr)


def reverb(x: np.ndarray, sr: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`stochastic_rir` (scipy fftconvolve); the output keeps the input's
    RMS, so only the room changes, not the level."""
    from scipy.signal import fftconvolve

    x64 = np.asarray(x, np.float64)
    y = fftconvolve(x64, stochastic_rir(sr, rt60_s, rng))[: len(x64)]
    rx, ry = math.sqrt(float(np.mean(x64**2))), math.sqrt(float(np.mean(y**2)))
    return (y * (rx / ry if ry > 0 else 1.0)).astype(np.float32)


def loop_to(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A noise recording repeated to ``n`` samples from a seeded random offset."""
    noise = np.asarray(noise, np.float32)
    reps = -(-(n + len(noise)) // max(len(noise), 1))
    tiled = np.tile(noise, reps)
    start = int(rng.integers(0, max(len(noise), 1)))
    return tiled[start : start + n]

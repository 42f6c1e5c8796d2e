"""Tests of hai_edge.runtime.decoders (audio): every input is built here, in tmp_path."""

from __future__ import annotations

import io

import numpy as np
import pytest

from hai_edge.runtime.decoders import (
    DecodedAudio,
    decode_audio,
    decode_audio_bytes,
)

from ._decoder_helpers import input_error as _input_error
from ._decoder_helpers import wav_bytes as _wav_bytes

sf = pytest.importorskip("soundfile")
Image = pytest.importorskip("PIL.Image")

# =============================================================================================
# audio

_INT16 = np.array([0, 1, -1, 32767, -32768, 12345, -2222, 77], dtype=np.int16)


def _signal(n: int, channels: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    cols = [0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_round_trip(tmp_path, sr, channels, subtype):
    n = 1000
    path = tmp_path / f"a_{subtype}.wav"
    if subtype == "PCM_16":
        ints = np.resize(_INT16, (n, channels)).copy()
        ints[:, -1] = ints[::-1, -1]
        sf.write(path, ints, sr, subtype=subtype)
        expected = ints.astype(np.float32) / 32768.0
        atol = 0.0
    elif subtype == "PCM_32":
        ints = np.resize(np.array([0, 1, -(2**31), 2**31 - 1, 123456789], np.int32), (n, channels))
        sf.write(path, ints, sr, subtype=subtype)
        expected = (ints.astype(np.float64) / 2**31).astype(np.float32)
        atol = 1e-7
    else:
        expected = _signal(n, channels, sr)
        sf.write(path, expected, sr, subtype=subtype)
        atol = 0.0 if subtype in ("FLOAT", "DOUBLE") else 2.0**-23
    out = decode_audio(path)
    assert isinstance(out, DecodedAudio)
    assert out.sample_rate == sr
    assert out.samples.dtype == np.float32
    assert out.samples.shape == (n, channels)
    assert out.source == str(path)
    np.testing.assert_allclose(out.samples, expected, rtol=0, atol=atol)
    assert out.duration_s == pytest.approx(n / sr)


def test_audio_multichannel_and_source_override(tmp_path):
    x = _signal(800, 4, 16000)
    path = tmp_path / "four.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    out = decode_audio(str(path), source="upload://cough-1")
    assert out.samples.shape == (800, 4)
    assert out.source == "upload://cough-1"
    np.testing.assert_array_equal(out.samples, x)
    assert "upload://cough-1" in repr(out) and "0.2" not in repr(out).split("duration")[0]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac_round_trip(tmp_path, subtype):
    ints = np.resize(_INT16, (3000, 2))
    path = tmp_path / "a.flac"
    sf.write(path, ints, 44100, subtype=subtype, format="FLAC")
    out = decode_audio(path)
    assert out.sample_rate == 44100 and out.samples.shape == (3000, 2)
    np.testing.assert_array_equal(out.samples, ints.astype(np.float32) / 32768.0)


def test_ogg_vorbis(tmp_path):
    x = _signal(16000, 1, 16000)
    path = tmp_path / "a.ogg"
    sf.write(path, x, 16000, format="OGG", subtype="VORBIS")
    out = decode_audio(path)
    assert out.sample_rate == 16000 and out.samples.shape[1] == 1
    assert abs(out.samples.shape[0] - 16000) <= 64
    m = min(len(x), out.samples.shape[0])
    assert np.corrcoef(x[:m, 0], out.samples[:m, 0])[0, 1] > 0.95


def test_mp3(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write MP3 (needs >= 1.1)")
    x = _signal(16000, 1, 16000)
    path = tmp_path / "a.mp3"
    sf.write(path, x, 16000, format="MP3")
    out = decode_audio(path)
    assert out.sample_rate == 16000 and out.samples.shape[1] == 1
    assert abs(out.samples.shape[0] - 16000) <= 2000
    # MP3 adds encoder delay: compare spectra instead of samples
    spec = np.abs(np.fft.rfft(out.samples[:8000, 0]))
    assert abs(int(np.argmax(spec)) * 16000 / 8000 - 220) <= 4
    from_bytes = decode_audio_bytes(path.read_bytes(), "web.mp3")
    assert from_bytes.samples.shape == out.samples.shape


def test_decode_audio_bytes(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, _INT16, 8000, format="WAV", subtype="PCM_16")
    out = decode_audio_bytes(buf.getvalue(), "upload.wav")
    assert out.source == "upload.wav" and out.sample_rate == 8000
    np.testing.assert_array_equal(out.samples[:, 0], _INT16.astype(np.float32) / 32768.0)
    buf = io.BytesIO()
    sf.write(buf, _INT16, 8000, format="FLAC")
    assert decode_audio_bytes(buf.getvalue(), "u.flac").samples.shape == (8, 1)
    assert "empty file (0 bytes)" in str(_input_error(decode_audio_bytes, b"", "u.wav"))



def test_audio_missing_directory_empty(tmp_path):
    missing = tmp_path / "nope.wav"
    err = _input_error(decode_audio, missing)
    assert str(err) == f"{missing}: file not found"
    err = _input_error(decode_audio, tmp_path)
    assert str(err) == f"{tmp_path}: is a directory, not a file"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    err = _input_error(decode_audio, empty)
    assert str(err) == f"{empty}: empty file (0 bytes)"
    assert err.source == str(empty) and err.problem == "empty file (0 bytes)"


def test_audio_not_audio(tmp_path):
    rnd = tmp_path / "random.wav"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    err = _input_error(decode_audio, rnd)
    assert "random.wav" in str(err)
    assert err.problem == "not a readable audio file (format not recognised)"
    png = tmp_path / "photo.wav"
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    err = _input_error(decode_audio, png)
    assert "photo.wav" in str(err)
    assert err.problem == "not a readable audio file (format not recognised)"
    err = _input_error(decode_audio_bytes, b"hello world, not audio", "t.ogg")
    assert err.problem.startswith("not a readable audio file")


def test_audio_truncated_wav(tmp_path):
    data = _wav_bytes(16000)  # 32000 bytes of audio after a 44-byte header
    assert data[36:40] == b"data"
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: 44 + 12000])
    err = _input_error(decode_audio, path)
    assert str(err) == (
        f"{path}: truncated WAV: header declares 32000 bytes of audio, file holds 12000"
    )
    err = _input_error(decode_audio_bytes, data[: 44 + 12000], "cut.wav")
    assert err.problem == "truncated WAV: header declares 32000 bytes of audio, file holds 12000"
    # cut inside the header, before the data chunk
    path.write_bytes(data[:30])
    err = _input_error(decode_audio, path)
    assert "cut.wav" in str(err) and err.problem.startswith("truncated WAV")
    # an intact file with a trailing odd byte is fine
    path.write_bytes(data + b"\0")
    assert decode_audio(path).samples.shape == (16000, 1)


def test_audio_zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 1), np.int16), 16000, subtype="PCM_16")
    err = _input_error(decode_audio, path)
    assert "zero.wav" in str(err) and err.problem == "contains no audio frames (0 samples)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_audio_non_finite(tmp_path, bad):
    x = _signal(1000, 1, 16000)
    x[500, 0] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    err = _input_error(decode_audio, path)
    assert "nan.wav" in str(err) and err.problem == "contains NaN or infinite samples"


@pytest.mark.parametrize("sr", [4000, 384000])
def test_audio_sample_rate_out_of_range(tmp_path, sr):
    path = tmp_path / f"sr{sr}.wav"
    sf.write(path, np.zeros(100, np.int16), sr, subtype="PCM_16")
    err = _input_error(decode_audio, path)
    assert f"sr{sr}.wav" in str(err)
    assert err.problem == f"sample rate {sr} Hz is outside the supported range 8000..192000 Hz"


def test_audio_accepts_rate_limits(tmp_path):
    for sr in (8000, 192000):
        path = tmp_path / f"ok{sr}.wav"
        sf.write(path, np.zeros(100, np.int16), sr, subtype="PCM_16")
        assert decode_audio(path).sample_rate == sr

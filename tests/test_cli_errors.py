"""Every bad input ends as exit code 2 and one line naming the file and the problem."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from ._onnx_models import make_onnx_bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {m: make_onnx_bundle(root / m, m) for m in ("audio", "image")}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hai_edge.cli", *args], capture_output=True,
                          text=True, timeout=120)


def _wav(path: Path, x: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    sf.write(path, x, sr, subtype=subtype)
    return path


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose header declares w x h (a decompression bomb) with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _bad_audio(kind: str, d: Path) -> tuple[Path, str]:
    if kind == "empty":
        (d / "empty.wav").write_bytes(b"")
        return d / "empty.wav", "empty"
    if kind == "truncated":
        p = _wav(d / "trunc.wav", _tone(2.0))
        p.write_bytes(p.read_bytes()[: 44 + 12000])
        return p, "truncated"
    if kind == "not-audio":
        (d / "text.wav").write_bytes(b"this is not audio at all, just some bytes\n" * 20)
        return d / "text.wav", "not a readable audio file"
    if kind == "short":
        return _wav(d / "short.wav", _tone(0.1)), "0.10 s"
    if kind == "silence":
        return _wav(d / "silence.wav", np.zeros(32000, np.float32)), "silent"
    if kind == "nan":
        x = _tone(2.0)
        x[5000:5010] = np.nan
        return _wav(d / "nan.wav", x, subtype="FLOAT"), "NaN"
    raise AssertionError(kind)


def _bad_image(kind: str, d: Path) -> tuple[Path, str]:
    from PIL import Image

    if kind == "one-pixel":
        Image.new("RGB", (1, 1), (200, 100, 50)).save(d / "one.png")
        return d / "one.png", "1x1"
    if kind == "corrupt-jpeg":
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(d / "c.jpg", quality=90)
        data = (d / "c.jpg").read_bytes()
        (d / "c.jpg").write_bytes(data[: len(data) // 2])
        return d / "c.jpg", "corrupt or truncated"
    if kind == "bomb":
        return _png_header_only(d / "bomb.png", 20000, 20000), "20000x20000"
    if kind == "dicom-no-pixels":
        from pydicom.dataset import FileMetaDataset, FileDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(d / "nopix.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.PatientName = "Doe^Jane"
        ds.Modality = "XC"
        ds.save_as(d / "nopix.dcm", enforce_file_format=True)
        return d / "nopix.dcm", "no pixel data"
    raise AssertionError(kind)


def _assert_one_line_error(proc: subprocess.CompletedProcess, name: str, problem: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert name in lines[0], lines[0]
    assert problem.lower() in lines[0].lower(), lines[0]
    assert "Doe^Jane" not in proc.stderr


@pytest.mark.parametrize("kind", ["empty", "truncated", "not-audio", "short", "silence", "nan"])
def test_bad_audio_input(kind: str, bundles, tmp_path: Path) -> None:
    path, problem = _bad_audio(kind, tmp_path)
    proc = _run("embed", str(bundles["audio"]), str(path))
    _assert_one_line_error(proc, path.name, problem)


@pytest.mark.parametrize("kind", ["one-pixel", "corrupt-jpeg", "bomb", "dicom-no-pixels"])
def test_bad_image_input(kind: str, bundles, tmp_path: Path) -> None:
    path, problem = _bad_image(kind, tmp_path)
    proc = _run("embed", str(bundles["image"]), str(path))
    _assert_one_line_error(proc, path.name, problem)


def test_modified_model_file(bundles, tmp_path: Path) -> None:
    import shutil

    b = shutil.copytree(bundles["audio"], tmp_path / "tampered")
    model = b / "model_fp32.onnx"
    data = bytearray(model.read_bytes())
    data[-20] ^= 0xFF
    model.write_bytes(bytes(data))
    wav = _wav(tmp_path / "ok.wav", _tone(2.0))
    for args in (("embed", str(b), str(wav)), ("info", str(b))):
        _assert_one_line_error(_run(*args), "model_fp32.onnx", "was modified")


def test_unknown_schema_version(bundles, tmp_path: Path) -> None:
    import shutil

    b = shutil.copytree(bundles["audio"], tmp_path / "future")
    d = json.loads((b / "manifest.json").read_text())
    d["schema_version"] = 99
    (b / "manifest.json").write_text(json.dumps(d))
    wav = _wav(tmp_path / "ok.wav", _tone(2.0))
    _assert_one_line_error(_run("embed", str(b), str(wav)), "future", "unknown schema_version 99")


def test_missing_input_file(bundles, tmp_path: Path) -> None:
    _assert_one_line_error(_run("embed", str(bundles["audio"]), str(tmp_path / "nope.wav")),
                           "nope.wav", "file not found")


def test_good_and_bad_inputs_mixed_keeps_going(bundles, tmp_path: Path) -> None:
    good = _wav(tmp_path / "good.wav", _tone(2.0))
    bad, _ = _bad_audio("empty", tmp_path)
    out = tmp_path / "o.jsonl"
    proc = _run("embed", str(bundles["audio"]), str(bad), str(good), "-o", str(out))
    assert proc.returncode == 2
    assert "empty.wav" in proc.stderr and "1 of 2 inputs failed" in proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == [str(good)]


def test_backend_not_in_bundle(bundles, tmp_path: Path) -> None:
    good = _wav(tmp_path / "good.wav", _tone(2.0))
    proc = _run("embed", str(bundles["audio"]), str(good), "--backend", "tflite")
    assert proc.returncode == 2 and "has no tflite model" in proc.stderr
    proc = _run("embed", str(bundles["audio"]), str(good), "--backend", "coreml")
    assert proc.returncode == 2 and "unknown backend 'coreml'" in proc.stderr

"""`hai-edge embed` / `info` happy paths: shapes, window times, output files, numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.cli import main
from hai_edge.runtime import Embedder
from hai_edge.runtime.frontends import prepare_audio, prepare_image

from ._onnx_models import make_onnx_bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {m: make_onnx_bundle(root / m, m) for m in ("audio", "image")}


def _reference_embedding(bundle: Path, x: np.ndarray) -> np.ndarray:
    """Independent evaluation of the tiny ONNX model: tanh(flatten(x) @ W + b)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(bundle / "model_fp32.onnx"))
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return np.tanh(x.reshape(len(x), -1).astype(np.float64) @ w["W"] + w["B"])


def _cough_like(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.01 * rng.standard_normal(int(seconds * sr))
    for start in (0.3, 1.4):
        i = int(start * sr)
        n = int(0.25 * sr)
        x[i : i + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.06 * sr))
    return x.astype(np.float32)


def test_embed_audio_json_matches_independent_computation(bundles, tmp_path: Path, capsys) -> None:
    import soundfile as sf

    x = _cough_like(2.5, 44100)
    sf.write(tmp_path / "c.wav", x, 44100)
    assert main(["embed", str(bundles["audio"]), str(tmp_path / "c.wav"), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip())
    assert rec["input"] == str(tmp_path / "c.wav")
    assert rec["backend"] == "onnxruntime" and rec["model"] == "onnx-fp32"
    assert abs(rec["duration_s"] - 2.5) < 1e-3
    b = Bundle.load(bundles["audio"])
    windows, inputs = prepare_audio(sf.read(tmp_path / "c.wav", dtype="float32")[0], 44100,
                                    b.manifest.preprocessing, "c.wav")
    assert [(w["start_s"], w["end_s"]) for w in rec["windows"]] == [
        (round(w.start_s, 4), round(w.end_s, 4)) for w in windows
    ]
    assert rec["windows"][0]["start_s"] == 0.0 and rec["windows"][0]["end_s"] == 1.0
    got = np.array([w["embedding"] for w in rec["windows"]])
    np.testing.assert_allclose(got, _reference_embedding(bundles["audio"], inputs), atol=2e-5)
    # windows differ from each other: the embedding depends on the audio
    assert np.abs(got[0] - got[1]).max() > 1e-2


def test_embed_outputs_npy_npz_jsonl_agree(bundles, tmp_path: Path) -> None:
    import soundfile as sf

    for i in range(2):
        sf.write(tmp_path / f"c{i}.flac", _cough_like(1.7 + i, 16000, seed=i), 16000)
    files = [str(tmp_path / "c0.flac"), str(tmp_path / "c1.flac")]
    for suffix in ("npy", "npz", "jsonl"):
        assert main(["embed", str(bundles["audio"]), *files, "-o", str(tmp_path / f"o.{suffix}")]) == 0
    npy = np.load(tmp_path / "o.npy")
    npz = np.load(tmp_path / "o.npz")
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    flat = np.array([w["embedding"] for r in rows for w in r["windows"]])
    assert npy.shape == npz["embeddings"].shape == flat.shape
    assert npy.shape[1] == 16
    np.testing.assert_array_equal(npy, npz["embeddings"])
    np.testing.assert_allclose(npy, flat, atol=1e-6)
    assert list(npz["input"]) == [r["input"] for r in rows for _ in r["windows"]]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_embed_directory_and_default_human_output(bundles, tmp_path: Path, capsys) -> None:
    import soundfile as sf

    (tmp_path / "d").mkdir()
    sf.write(tmp_path / "d" / "a.wav", _cough_like(2.0, 8000), 8000)
    sf.write(tmp_path / "d" / "b.ogg", _cough_like(2.0, 48000, seed=3), 48000)
    (tmp_path / "d" / "notes.txt").write_text("ignored")
    assert main(["embed", str(bundles["audio"]), str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith(str(tmp_path / "d" / "a.wav"))
    assert "window(s)" in out[0] and "16-d via onnxruntime/onnx-fp32" in out[0]


def test_embed_image_png_and_dicom_agree(bundles, tmp_path: Path, capsys) -> None:
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.stack([(xx * 1.5) % 255, (yy * 2) % 255, rng.integers(0, 60, yy.shape)], -1).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "p.png")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "p.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality = "XC"
    ds.Rows, ds.Columns = img.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = img.tobytes()
    ds.save_as(tmp_path / "p.dcm", enforce_file_format=True)
    assert main(["embed", str(bundles["image"]), str(tmp_path / "p.png"), str(tmp_path / "p.dcm"),
                 "--json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    a, b = (np.array(r["embedding"]) for r in recs)
    np.testing.assert_allclose(a, b, atol=1e-6)
    spec = Bundle.load(bundles["image"]).manifest.preprocessing
    ref = _reference_embedding(bundles["image"], prepare_image(img, spec)[None])[0]
    np.testing.assert_allclose(a, ref, atol=2e-5)


def test_embedder_api_and_wrong_modality(bundles, tmp_path: Path) -> None:
    with Embedder(bundles["image"]) as emb:
        assert emb.backend_name == "onnxruntime"
        with pytest.raises(Exception, match="not an audio bundle"):
            emb.embed_audio(np.zeros(16000, np.float32), 16000)


def test_info_prints_summary_and_json(bundles, capsys) -> None:
    assert main(["info", str(bundles["audio"])]) == 0
    out = capsys.readouterr().out
    assert "tiny-audio" in out and "sha256 verified" in out and "onnx-fp32" in out
    assert "not for clinical use" in out
    assert main(["info", str(bundles["audio"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema_version"] == 1


def test_version_and_backends(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().startswith("hai-edge 0.")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 3 and "onnxruntime" in out and "available" in out

"""The committed reference teachers: weights load, the Teacher contract holds, embeddings differ.

No development data and no training here: inputs are synthesised in the test. Skips where the
``export`` extra (torch, safetensors) is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from hai_edge.errors import HaiEdgeError  # noqa: E402
from hai_edge.teachers import Teacher, load_teacher  # noqa: E402
from hai_edge.teachers import _reference as ref  # noqa: E402
from hai_edge.runtime.frontends import window_features  # noqa: E402

MODALITIES = ("audio", "image")
MIN_PARAMS = {"audio": 2_500_000, "image": 5_000_000}


def _audio_inputs() -> list[np.ndarray]:
    """Eight different 2 s / 16 kHz windows: tones, noises, a chirp, clicks, a burst."""
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    clicks = np.zeros(32000)
    clicks[::4000] = 0.8
    burst = np.zeros(32000)
    burst[8000:12000] = rng.standard_normal(4000) * np.hanning(4000)
    rows = [
        0.3 * np.sin(2 * np.pi * 440 * t),
        0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2,
        0.1 * rng.standard_normal(32000),
        0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t),
        clicks,
        0.5 * burst,
        0.05 * np.cumsum(rng.standard_normal(32000)) / 40,
        0.2 * np.sign(np.sin(2 * np.pi * 97 * t)),
    ]
    return [np.asarray(r, dtype=np.float32) for r in rows]


def _image_inputs() -> list[np.ndarray]:
    """Six different RGB uint8 photos of assorted sizes (square, portrait, small)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:300, 0:300]
    grad = np.stack([xx * 255 // 299, yy * 255 // 299, np.full_like(xx, 128)], -1)
    disc = np.where(((yy - 150) ** 2 + (xx - 150) ** 2 < 60**2)[..., None], [90, 50, 40],
                    [220, 180, 160])
    checker = ((yy // 25 + xx // 25) % 2 * 200 + 30)[..., None].repeat(3, -1)
    rows = [grad, disc, checker, rng.integers(0, 256, (480, 640, 3)),
            np.full((64, 96, 3), (200, 120, 90)), rng.integers(100, 160, (256, 200, 3))]
    return [np.asarray(r, dtype=np.uint8) for r in rows]


def _inputs(which: str) -> list[np.ndarray]:
    return _audio_inputs() if which == "audio" else _image_inputs()


@pytest.fixture(scope="module", params=MODALITIES)
def teacher(request: pytest.FixtureRequest):
    t = ref.load_reference_teacher(request.param)
    yield t
    t.close()


@pytest.mark.parametrize("which", MODALITIES)
def test_manifest_matches_committed_weights(which: str) -> None:
    folder = ref.WEIGHTS_DIR / which
    manifest = ref.read_manifest(which)
    weights = folder / manifest["weights"]["file"]
    assert ref.sha256_file(weights) == manifest["weights"]["sha256"]
    assert weights.stat().st_size == manifest["weights"]["bytes"] <= 25 * 1024 * 1024
    assert manifest["notice"] == ref.NOTICE == "demo, not for clinical use"
    assert manifest["licence"] == ref.LICENCE
    assert manifest["id"] == f"reference:{which}"
    assert manifest["params"] >= MIN_PARAMS[which]
    assert manifest["held_out"] and manifest["embedding_geometry"]["held_out"]["n"] > 0
    data = json.dumps(manifest["data"])
    if which == "audio":
        assert "CC0-1.0" in data and "ODbL-1.0" in data and "espeak-ng" in data
    else:
        assert "CC-BY-4.0" in data and "Data in Brief 32 (2020) 106221" in data
    from safetensors.torch import load_file

    tensors = load_file(weights)
    floats = [v for v in tensors.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    n = sum(v.numel() for k, v in tensors.items() if not k.endswith("num_batches_tracked")
            and not k.endswith(("running_mean", "running_var")))
    assert n == manifest["params"]


def test_teacher_info_contract(teacher) -> None:
    info = teacher.info
    assert isinstance(teacher, Teacher)
    assert info.embedding_dim == 512
    assert info.licence == ref.LICENCE and not info.is_hai_def
    assert ref.NOTICE in info.notes
    if info.modality == "audio":
        assert info.id == "reference:audio"
        assert (info.sample_rate, info.window_samples) == (16000, 32000)
    else:
        assert info.id == "reference:image"
        assert info.image_size == 224


def test_embed_shapes_dtype_determinism(teacher) -> None:
    batch = _inputs(teacher.info.modality)
    a = teacher.embed(batch)
    assert a.shape == (len(batch), 512) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, teacher.embed(batch))
    one = teacher.embed(batch[2:3])  # a row does not depend on its batch mates
    np.testing.assert_allclose(one[0], a[2], rtol=1e-4, atol=1e-4 * np.abs(a[2]).max())


def test_embeddings_of_different_inputs_differ(teacher) -> None:
    e = teacher.embed(_inputs(teacher.info.modality)).astype(np.float64)
    c = e - e.mean(0)
    u = c / np.linalg.norm(c, axis=1, keepdims=True)
    cos = (u @ u.T)[~np.eye(len(e), dtype=bool)]
    assert cos.std() > 0.1, f"centred cosines barely spread: {cos.std():.3f}"
    assert cos.max() < 0.99
    plain = e / np.linalg.norm(e, axis=1, keepdims=True)
    assert (plain @ plain.T)[~np.eye(len(e), dtype=bool)].max() < 0.999


def test_module_and_frontend_give_the_teacher_embedding(teacher) -> None:
    which = teacher.info.modality
    module, spec = ref.reference_teacher_module(which)
    assert spec == teacher.frontend
    batch = _inputs(which)[:3]
    x = teacher.model_inputs(batch)
    if which == "audio":  # the front end is the project's window_features, nothing else
        np.testing.assert_array_equal(x, window_features(np.stack(batch), spec))
    assert x.shape == (3, *spec.input_shape())
    with torch.inference_mode():
        direct = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(direct, teacher.embed(batch), rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_clear_errors() -> None:
    audio = ref.load_reference_teacher("audio")
    with pytest.raises(HaiEdgeError, match="32000"):
        audio.embed([np.zeros(16000, dtype=np.float32)])
    with pytest.raises(HaiEdgeError, match="empty"):
        audio.embed([])
    with pytest.raises(HaiEdgeError, match="NaN"):
        audio.embed([np.full(32000, np.nan, dtype=np.float32)])
    audio.close()
    with pytest.raises(HaiEdgeError, match="closed"):
        audio.embed(_audio_inputs()[:1])
    image = ref.load_reference_teacher("image")
    with pytest.raises(HaiEdgeError, match="RGB uint8"):
        image.embed([np.zeros((64, 64), dtype=np.uint8)])
    with pytest.raises(HaiEdgeError):
        image.embed([np.zeros((8, 8, 3), dtype=np.uint8)])  # below the front end's min_side
    image.close()


def test_missing_or_modified_weights_are_errors(tmp_path: Path) -> None:
    with pytest.raises(HaiEdgeError, match="no weights"):
        ref.load_reference_teacher("audio", weights_dir=tmp_path)
    with pytest.raises(HaiEdgeError, match="expected one of"):
        ref.load_reference_teacher("video")
    copy = tmp_path / "audio"
    shutil.copytree(ref.WEIGHTS_DIR / "audio", copy)
    blob = bytearray((copy / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(HaiEdgeError, match="sha256"):
        ref.load_reference_teacher("audio", weights_dir=copy)


def test_registry_loads_reference_teachers() -> None:
    t = load_teacher("reference:image")
    assert t.info.id == "reference:image"
    t.close()


def test_importing_the_module_does_not_import_torch() -> None:
    code = ("import sys, hai_edge.teachers._reference as r; "
            "print(r.default_config('audio').widths, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.strip().endswith("False")

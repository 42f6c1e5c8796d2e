"""Teacher adapters against look-alike models with the real signatures (no downloads).

Each look-alike has the same tensor names, dtypes and shapes as the real teacher (teachers.md),
is built in a fixture, and is loaded through the adapter's real loading code; outputs are
compared with an independent computation (the TF function called directly, a torch re-derivation
of HeAR's front end, transformers' own SigLIP processor, onnxruntime, the torch module itself).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.teachers import TEACHER_PREFIXES, Teacher, load_teacher

from ._teacher_fakes import AUDIO_RATE, AUDIO_WINDOW, FakeAudioTeacher

FAKES = "tests._teacher_fakes"


def _clips(n: int, samples: int = 32000, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    return [(rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
             + rng.uniform(0.001, 0.1) * rng.standard_normal(samples)).astype(np.float32)
            for _ in range(n)]


def _photos(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), rng.uniform(0, 255))], -1)
        out.append(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))
    return out


def _check_output(out: np.ndarray, n: int, dim: int) -> None:
    assert out.dtype == np.float32 and out.shape == (n, dim)
    assert np.all(np.isfinite(out))


# -------------------------------------------------------------------------------- registry
def test_registry_prefixes_and_unknown_spec() -> None:
    assert {"hear", "hear-pytorch", "derm-foundation", "medsiglip", "onnx", "torch",
            "embeddings", "reference"} <= set(TEACHER_PREFIXES)
    with pytest.raises(HaiEdgeError, match="unknown teacher 'bogus:x'"):
        load_teacher("bogus:x")
    with pytest.raises(HaiEdgeError, match="unknown teacher"):
        load_teacher("no-prefix-at-all")


def test_reference_prefix_points_at_the_reference_module() -> None:
    import importlib.util

    from hai_edge import teachers

    assert teachers._ADAPTERS["reference"] == ("._reference", "load_reference_teacher")
    if importlib.util.find_spec("hai_edge.teachers._reference") is None:
        with pytest.raises(HaiEdgeError, match="not available in this build"):
            load_teacher("reference:audio")


def test_missing_tensorflow_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    monkeypatch.setitem(__import__("sys").modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"hai-edge\[teachers-tf\]"):
        load_teacher(f"hear:{tmp_path}")


# ------------------------------------------------------------------------ TF look-alikes
@pytest.fixture(scope="module")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("tf_teachers")
    rng = np.random.default_rng(0)

    class HearLike(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((128, 512)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 32000], tf.float32, name="x")])
        def serve(self, x):  # noqa: ANN001, ANN202
            frames = tf.reshape(x, [-1, 250, 128])
            feats = tf.math.log(tf.reduce_mean(frames * frames, axis=1) + 1e-6)
            return {"output_0": tf.tanh(tf.matmul(feats, self.w) / 10.0)}

    class DermLike(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((48, 6144)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def serve(self, inputs):  # noqa: ANN001, ANN202
            parsed = tf.io.parse_example(
                inputs, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})

            def one(png):  # noqa: ANN001, ANN202
                img = tf.ensure_shape(tf.io.decode_png(png, channels=3), [448, 448, 3])
                x = tf.cast(img, tf.float32)[None] / 255.0
                return tf.reshape(tf.nn.avg_pool2d(x, 112, 112, "VALID"), [48])

            feats = tf.map_fn(one, parsed["image/encoded"], fn_output_signature=tf.float32)
            return {"embedding": tf.tanh(tf.matmul(feats, self.w))}

    out = {}
    for name, cls in (("hear", HearLike), ("derm", DermLike)):
        module = cls()
        tf.saved_model.save(module, str(root / name), signatures={"serving_default": module.serve})
        out[name] = root / name
    return out


def test_hear_savedmodel_matches_the_tf_function(tf_models: dict[str, Path]) -> None:
    import tensorflow as tf

    teacher = load_teacher(f"hear:{tf_models['hear']}")
    assert isinstance(teacher, Teacher)
    info = teacher.info
    assert (info.modality, info.embedding_dim, info.sample_rate, info.window_samples) == \
        ("audio", 512, 16000, 32000)
    assert info.licence == "HAI-DEF" and info.is_hai_def and info.id == f"hear:{tf_models['hear']}"
    clips = _clips(3)
    out = teacher.embed(clips)
    _check_output(out, 3, 512)
    fn = tf.saved_model.load(str(tf_models["hear"])).signatures["serving_default"]
    direct = fn(x=tf.constant(np.stack(clips)))["output_0"].numpy()
    np.testing.assert_array_equal(out, direct)
    w = tf.saved_model.load(str(tf_models["hear"])).w.numpy()  # and the look-alike's own maths
    feats = np.log(np.mean(np.stack(clips).reshape(3, 250, 128).astype(np.float64) ** 2, 1) + 1e-6)
    np.testing.assert_allclose(out, np.tanh(feats @ w / 10), atol=2e-4)
    with pytest.raises(HaiEdgeError, match="exactly 32000 samples"):
        teacher.embed([np.zeros(16000, np.float32)])
    teacher.close()


def test_derm_foundation_sends_448_png_examples(tf_models: dict[str, Path]) -> None:
    import tensorflow as tf
    from PIL import Image

    teacher = load_teacher(f"derm-foundation:{tf_models['derm']}")
    info = teacher.info
    assert (info.modality, info.embedding_dim, info.image_size, info.licence) == \
        ("image", 6144, 448, "HAI-DEF")
    exact, odd = _photos([(448, 448), (300, 500)])
    out = teacher.embed([exact, odd])
    _check_output(out, 2, 6144)
    # independent: an Example built here from the same 448x448 photo, fed to the TF function
    import io

    buf = io.BytesIO()
    Image.fromarray(exact).save(buf, format="PNG")
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buf.getvalue()]))}))
    fn = tf.saved_model.load(str(tf_models["derm"])).signatures["serving_default"]
    direct = fn(inputs=tf.constant([example.SerializeToString()]))["embedding"].numpy()
    np.testing.assert_allclose(out[0], direct[0], atol=1e-6)
    # the other photo was stretched to 448x448 like Pillow's bilinear resize would
    w = tf.saved_model.load(str(tf_models["derm"])).w.numpy()
    pil = np.asarray(Image.fromarray(odd).resize((448, 448), Image.BILINEAR), np.float64) / 255
    feats = pil.reshape(4, 112, 4, 112, 3).mean(axis=(1, 3)).reshape(48)
    np.testing.assert_allclose(out[1], np.tanh(feats @ w), atol=0.02)
    teacher.close()


def test_wrong_savedmodel_signature_is_a_clear_error(tf_models: dict[str, Path]) -> None:
    with pytest.raises(HaiEdgeError, match=r"expected serving_default\(x=...\)"):
        load_teacher(f"hear:{tf_models['derm']}")
    with pytest.raises(HaiEdgeError, match="no saved_model.pb"):
        load_teacher(f"derm-foundation:{tf_models['derm'].parent}")


def test_hear_front_end_pieces_match_tensorflow() -> None:
    tf = pytest.importorskip("tensorflow")
    from hai_edge.teachers.hear import tf_bilinear_matrix
    from hai_edge.runtime.frontends import mel_filterbank

    mel_tf = tf.signal.linear_to_mel_weight_matrix(128, 201, 16000, 0.0, 8000.0).numpy()
    # TF builds the matrix in float32 (mel values ~2800 -> ~2e-4 ulp): agreement to ~2e-5
    np.testing.assert_allclose(mel_filterbank(16000, 400, 128, 0.0, 8000.0), mel_tf, atol=5e-5)
    img = np.random.default_rng(0).standard_normal((1, 200, 128, 1)).astype(np.float32)
    ref = tf.image.resize(img, (192, 128), method="bilinear", antialias=False).numpy()[0, ..., 0]
    ours = tf_bilinear_matrix(200, 192) @ img[0, ..., 0].astype(np.float64)
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    up = tf.image.resize(img[:, :50, :20], (77, 33), method="bilinear").numpy()[0, ..., 0]
    ours_up = tf_bilinear_matrix(50, 77) @ img[0, :50, :20, 0] @ tf_bilinear_matrix(20, 33).T
    np.testing.assert_allclose(ours_up, up, atol=2e-6)


# ------------------------------------------------------------------- transformers look-alikes
@pytest.fixture(scope="module")
def hf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch

    root = tmp_path_factory.mktemp("hf_teachers")
    torch.manual_seed(0)
    vit = transformers.ViTModel(transformers.ViTConfig(  # HeAR's config keys, tiny sizes
        image_size=(192, 128), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, hidden_act="gelu_fast", layer_norm_eps=1e-6, patch_size=16,
        num_channels=1, qkv_bias=True, pooler_act="linear", pooler_output_size=512),
        add_pooling_layer=True)
    vit.save_pretrained(root / "hear-vit")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**vision)).save_pretrained(
        root / "siglip-vision")
    (root / "siglip-vision" / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "do_resize": True, "do_rescale": True,
        "do_normalize": True, "size": {"height": 32, "width": 32}, "resample": 2,
        "rescale_factor": 1 / 255, "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.3, 0.25]}))
    full = transformers.SiglipModel(transformers.SiglipConfig(  # the MedSigLIP repo layout
        vision_config={**vision, "image_size": 24},
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, vocab_size=64, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0)))
    full.save_pretrained(root / "siglip-full")
    return {"hear": root / "hear-vit", "siglip": root / "siglip-vision",
            "siglip-full": root / "siglip-full"}


def _torch_hear_reference(clips: np.ndarray):  # noqa: ANN202
    """HeAR's front end re-derived in torch from the written contract (per-clip scaling)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(clips).double()
    x = x - x.min(dim=1, keepdim=True).values
    x = x / (x.max(dim=1, keepdim=True).values + 1e-8) * 2 - 1
    x = F.pad(x, (0, 199 * 160 + 400 - x.shape[1]))  # pad_end for 200 frames
    frames = x.unfold(-1, 400, 160)
    power = torch.fft.rfft(frames * torch.hann_window(400, dtype=torch.float64), n=400).abs() ** 2
    mel = lambda f: 2595.0 * torch.log10(1.0 + f / 700.0)  # noqa: E731
    bins = mel(torch.linspace(0, 8000, 201, dtype=torch.float64))[1:, None]
    edges = torch.linspace(float(mel(torch.tensor(0.0))), float(mel(torch.tensor(8000.0))), 130,
                           dtype=torch.float64)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    w = torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0)
    energy = power @ torch.cat([torch.zeros(1, 128, dtype=torch.float64), w])  # [B, 200, 128]
    smooth = [energy[:, 0]]
    for t in range(1, energy.shape[1]):
        smooth.append(0.96 * smooth[-1] + 0.04 * energy[:, t])
    m = torch.stack(smooth, dim=1)
    pcen = (energy / (1e-8 + m) ** 0.8 + 2.0) ** 0.5 - 2.0**0.5
    return F.interpolate(pcen[:, None].float(), size=(192, 128), mode="bilinear",
                         align_corners=False, antialias=False)


def test_hear_pytorch_matches_reference_front_end_and_pooler(hf_models: dict[str, Path]) -> None:
    import torch
    import transformers

    teacher = load_teacher(f"hear-pytorch:{hf_models['hear']}")
    info = teacher.info
    assert (info.modality, info.embedding_dim, info.sample_rate, info.window_samples,
            info.licence) == ("audio", 512, 16000, 32000, "HAI-DEF")
    clips = _clips(3, seed=1)
    feats = teacher.features(clips)
    ref = _torch_hear_reference(np.stack(clips))
    assert feats.shape == (3, 1, 192, 128)
    np.testing.assert_allclose(feats, ref.numpy(), rtol=1e-4, atol=1e-4)
    out = teacher.embed(clips)
    _check_output(out, 3, 512)
    model = transformers.ViTModel.from_pretrained(str(hf_models["hear"])).eval()
    with torch.inference_mode():
        direct = model(pixel_values=ref).pooler_output.numpy()
    np.testing.assert_allclose(out, direct, atol=1e-4)
    teacher.close()


def test_hear_pytorch_normalises_each_clip_on_its_own(hf_models: dict[str, Path]) -> None:
    teacher = load_teacher(f"hear-pytorch:{hf_models['hear']}")
    a, b, c = _clips(3, seed=2)
    alone = teacher.embed([a])[0]
    np.testing.assert_allclose(teacher.embed([a, b])[0], alone, atol=1e-5)
    np.testing.assert_allclose(teacher.embed([c * 0.01, a])[1], alone, atol=1e-5)
    np.testing.assert_allclose(teacher.embed([a * 0.25])[0], alone, atol=1e-4)  # gain-free
    assert not np.allclose(teacher.embed([b])[0], alone, atol=1e-3)  # and input-dependent


def test_hf_id_offline_with_empty_cache_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for spec, repo in (("hear-pytorch:google/hear-pytorch", "google/hear-pytorch"),
                       ("hear:", "google/hear"), ("medsiglip:google/medsiglip-448", None)):
        repo = repo or spec.split(":", 1)[1]
        with pytest.raises(HaiEdgeError) as err:
            load_teacher(spec)
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(f"{repo} is not in the local Hugging Face cache and the hub cannot "
                              f"be reached")
        assert f"hf download {repo}" in msg and "or pass a local path" in msg


@pytest.mark.parametrize("env", ["HF_HUB_CACHE", "HF_HOME"])
def test_hf_id_resolves_from_a_populated_cache(
    hf_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str
) -> None:
    cache = tmp_path / "cache" / ("hub" if env == "HF_HOME" else "")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--google--hear-pytorch"
    shutil.copytree(hf_models["hear"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(env, str(tmp_path / "cache") if env == "HF_HOME" else str(cache))
    teacher = load_teacher("hear-pytorch:google/hear-pytorch")
    assert teacher.info.id == "google/hear-pytorch" and commit in teacher.info.notes
    local = load_teacher(f"hear-pytorch:{hf_models['hear']}")
    clips = _clips(2, seed=3)
    np.testing.assert_array_equal(teacher.embed(clips), local.embed(clips))


def test_medsiglip_uses_the_saved_preprocessor_config(hf_models: dict[str, Path]) -> None:
    import torch
    import transformers
    from PIL import Image

    teacher = load_teacher(f"medsiglip:{hf_models['siglip']}")
    info = teacher.info
    assert (info.modality, info.embedding_dim, info.image_size, info.licence) == \
        ("image", 32, 32, "HAI-DEF")
    photos = _photos([(40, 50), (32, 32), (90, 60)])
    ours = teacher.pixel_values(photos)
    processor = transformers.SiglipImageProcessor.from_pretrained(str(hf_models["siglip"]))
    theirs = processor(images=[Image.fromarray(p) for p in photos], return_tensors="np")
    np.testing.assert_allclose(ours, theirs["pixel_values"], atol=1e-5)
    out = teacher.embed(photos)
    _check_output(out, 3, 32)
    model = transformers.SiglipVisionModel.from_pretrained(str(hf_models["siglip"])).eval()
    with torch.inference_mode():
        direct = model(pixel_values=torch.from_numpy(theirs["pixel_values"])).pooler_output
    np.testing.assert_allclose(out, direct.numpy(), atol=1e-5)


def test_medsiglip_full_checkpoint_without_preprocessor_config(hf_models: dict[str, Path]) -> None:
    import torch
    import transformers
    from PIL import Image

    teacher = load_teacher(f"medsiglip:{hf_models['siglip-full']}")
    assert teacher.info.image_size == 24 and teacher.info.embedding_dim == 32
    photo = _photos([(50, 70)])[0]
    pil = np.asarray(Image.fromarray(photo).resize((24, 24), Image.BICUBIC), np.float32)
    pixels = ((pil / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    full = transformers.SiglipModel.from_pretrained(str(hf_models["siglip-full"])).eval()
    with torch.inference_mode():
        direct = full.vision_model(pixel_values=torch.from_numpy(pixels)).pooler_output.numpy()
    np.testing.assert_allclose(teacher.embed([photo]), direct, atol=1e-5)


# ------------------------------------------------------------------------- onnx and torch
def _onnx_file(path: Path, shape: tuple[int, ...], dim: int, meta: dict[str, str]) -> Path:
    onnx = pytest.importorskip("onnx")
    from ._onnx_models import onnx_linear_model

    model = onnx.load_from_string(onnx_linear_model(shape, dim))
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_audio_and_image_teachers(tmp_path: Path) -> None:
    import onnxruntime as ort

    audio = _onnx_file(tmp_path / "a.onnx", (AUDIO_WINDOW,), 16, {"sample_rate": "8000",
                                                                  "licence": "MIT"})
    teacher = load_teacher(f"onnx:{audio}")
    assert (teacher.info.modality, teacher.info.embedding_dim, teacher.info.sample_rate,
            teacher.info.window_samples, teacher.info.licence) == ("audio", 16, 8000, 4000, "MIT")
    clips = _clips(2, samples=AUDIO_WINDOW)
    direct = ort.InferenceSession(str(audio)).run(None, {"input": np.stack(clips)})[0]
    np.testing.assert_array_equal(teacher.embed(clips), direct)

    image = _onnx_file(tmp_path / "i.onnx", (3, 32, 32), 10, {})
    teacher = load_teacher(f"onnx:{image}")
    assert (teacher.info.modality, teacher.info.embedding_dim, teacher.info.image_size,
            teacher.info.licence) == ("image", 10, 32, "unknown")
    photo = _photos([(32, 32)])[0]
    x = (photo.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    direct = ort.InferenceSession(str(image)).run(None, {"input": x})[0]
    np.testing.assert_allclose(teacher.embed([photo]), direct, atol=1e-6)
    _check_output(teacher.embed(_photos([(64, 48), (20, 90)])), 2, 10)
    with pytest.raises(HaiEdgeError, match="no such ONNX file"):
        load_teacher(f"onnx:{tmp_path / 'missing.onnx'}")


def test_torch_modules_and_teacher_factories() -> None:
    torch = pytest.importorskip("torch")
    from ._teacher_fakes import make_audio_net, make_image_net

    teacher = load_teacher(f"torch:{FAKES}:make_audio_net")
    assert (teacher.info.modality, teacher.info.embedding_dim, teacher.info.sample_rate,
            teacher.info.window_samples) == ("audio", 16, AUDIO_RATE, AUDIO_WINDOW)
    clips = _clips(3, samples=AUDIO_WINDOW)
    with torch.inference_mode():
        direct = make_audio_net()(torch.from_numpy(np.stack(clips))).numpy()
    np.testing.assert_allclose(teacher.embed(clips), direct, atol=1e-6)

    teacher = load_teacher(f"torch:{FAKES}:make_image_net")  # modality found by dummy forward
    assert (teacher.info.modality, teacher.info.embedding_dim, teacher.info.image_size,
            teacher.info.licence) == ("image", 12, 32, "Apache-2.0")
    photo = _photos([(32, 32)])[0]
    with torch.inference_mode():
        x = torch.from_numpy((photo.astype(np.float32) / 255).transpose(2, 0, 1)[None])
        direct = make_image_net()(x).numpy()
    np.testing.assert_allclose(teacher.embed([photo]), direct, atol=1e-6)

    assert isinstance(load_teacher(f"torch:{FAKES}:make_fake_audio_teacher"), FakeAudioTeacher)
    with pytest.raises(HaiEdgeError, match="cannot import"):
        load_teacher("torch:no_such_module_xyz:make")
    with pytest.raises(HaiEdgeError, match="no callable 'AUDIO_RATE'"):
        load_teacher(f"torch:{FAKES}:AUDIO_RATE")
    with pytest.raises(HaiEdgeError, match="expected torch:MODULE:CALLABLE"):
        load_teacher("torch:justamodule")


# ------------------------------------------------------------------------------ embeddings
def test_precomputed_embeddings_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, 5)).astype(np.float32)
    ids = ["a.png", "b.png", "c.png"]
    np.savez(tmp_path / "e.npz", ids=np.array(ids), embeddings=vecs, licence=np.array("HAI-DEF"))
    teacher = load_teacher(f"embeddings:{tmp_path / 'e.npz'}")
    assert (teacher.info.modality, teacher.info.embedding_dim, teacher.info.licence) == \
        ("image", 5, "HAI-DEF")
    np.testing.assert_array_equal(teacher.embed_ids(["c.png", "a.png"]), vecs[[2, 0]])
    with pytest.raises(HaiEdgeError, match="not in the embeddings file"):
        teacher.embed_ids(["zzz"])
    with pytest.raises(HaiEdgeError, match="cannot embed new media"):
        teacher.embed([np.zeros((4, 4, 3), np.uint8)])

    np.savez(tmp_path / "scin.npz", **{"dataset/images/1.png": vecs[0], "x/2.png": vecs[1]})
    (tmp_path / "scin.npz.json").write_text(json.dumps({"teacher": "google/derm-foundation",
                                                        "licence": "HAI-DEF"}))
    scin = load_teacher(f"embeddings:{tmp_path / 'scin.npz'}")
    assert scin.info.id == "google/derm-foundation" and scin.info.is_hai_def
    np.testing.assert_array_equal(scin.embed_ids(["x/2.png"]), vecs[1:2])

    with open(tmp_path / "e.csv", "w") as fh:
        fh.write("sample_id,e0,e1\nr1.wav,1.5,2\nr2.wav,-1,0.25\n")
    csv_t = load_teacher(f"embeddings:{tmp_path / 'e.csv'}")
    assert csv_t.info.modality == "audio"
    np.testing.assert_array_equal(csv_t.embed_ids(["r2.wav"]), [[-1, 0.25]])
    with pytest.raises(HaiEdgeError, match="no such embeddings file"):
        load_teacher(f"embeddings:{tmp_path / 'nope.npz'}")

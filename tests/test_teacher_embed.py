"""``embed_corpus`` / ``hai-edge teacher embed``: store contents, skipped files, resume, CLI.

Teachers are numpy fakes (tests/_teacher_fakes.py), so this file needs no torch or TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.cli import main
from hai_edge.errors import HaiEdgeError
from hai_edge.distill.augment import apply_audio_aug, apply_image_aug, aug_from_json
from hai_edge.corpus import corpus_hash, load_corpus
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.teacher_embed import embed_corpus, import_precomputed
from hai_edge.teachers import load_teacher
from hai_edge.runtime.frontends import AudioFrontendSpec, resample, split_windows, to_mono

from ._teacher_fakes import AUDIO_RATE, FakeAudioTeacher, FakeImageTeacher

FAKES = "tests._teacher_fakes"


# ------------------------------------------------------------------------------- corpora
def _write_wav(path: Path, seconds: float, sr: int = 16000, channels: int = 1, amp: float = 0.3,
               freq: float = 440.0) -> None:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    if channels == 2:
        x = np.stack([x, 0.5 * x], axis=1)
    sf.write(path, x, sr)


@pytest.fixture()
def audio_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    d.mkdir()
    _write_wav(d / "a.wav", 1.3, freq=300)
    _write_wav(d / "b.wav", 0.7, sr=44100, channels=2, freq=900)
    _write_wav(d / "c.wav", 2.0, freq=1500, amp=0.05)
    _write_wav(d / "d.wav", 0.9, sr=8000, freq=200)
    _write_wav(d / "e.wav", 1.1, freq=2500)
    _write_wav(d / "quiet.wav", 1.0, amp=0.0)  # digital silence: skipped
    _write_wav(d / "short.wav", 0.1)  # shorter than min_clip_s: skipped
    (d / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")  # skipped
    return d


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 255.0 * rng.random())], -1)
    return np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    for i, (h, w) in enumerate([(40, 60), (64, 64), (50, 35), (80, 45), (33, 90), (48, 48)]):
        Image.fromarray(_photo(h, w, i)).save(d / f"p{i}.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display upright
    Image.fromarray(_photo(40, 70, 9)).save(d / "rotated.jpg", quality=95, exif=exif)
    Image.fromarray(_photo(10, 10, 7)).save(d / "tiny.png")  # below 32 px: skipped
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")  # skipped
    return d


def _rows(store: EmbeddingStore) -> dict[str, dict]:
    data = store.load()
    return {str(sid): {k: data[k][i] for k in data} for i, sid in enumerate(data["sample_id"])}


# ---------------------------------------------------------------------------------- audio
def test_audio_store_windows_views_and_vectors(audio_dir: Path, tmp_path: Path) -> None:
    import soundfile as sf

    items = load_corpus(audio_dir, "audio")
    teacher = FakeAudioTeacher()
    store = embed_corpus(teacher, items, tmp_path / "store", views=2, batch_size=3, seed=5,
                         shard_items=2)
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["teacher"] == teacher.info.to_dict() and meta["modality"] == "audio"
    assert (meta["dim"], meta["views"], meta["seed"]) == (8, 2, 5)
    assert meta["spec"]["sample_rate"] == AUDIO_RATE and meta["spec"]["window_s"] == 0.5
    assert meta["spec"]["hop_s"] == pytest.approx(0.45)
    assert meta["corpus_hash"] == corpus_hash(items)
    skipped = {s["item_id"]: s["reason"] for s in meta["skipped"]}
    assert set(skipped) == {"quiet.wav", "short.wav", "corrupt.wav"}
    assert "silent" in skipped["quiet.wav"] and "long" in skipped["short.wav"]
    assert len(store.shard_paths()) == 3  # 5 good items, 2 per shard

    rows = _rows(store)
    spec = AudioFrontendSpec(sample_rate=AUDIO_RATE, window_s=0.5, hop_s=0.45, fmax=4000)
    expected = set()
    for name in ("a.wav", "b.wav", "c.wav", "d.wav", "e.wav"):
        x, sr = sf.read(audio_dir / name, dtype="float32", always_2d=True)
        windows = split_windows(resample(to_mono(x), sr, AUDIO_RATE), spec, name)
        for w in windows:
            clean = rows[f"{name}#w{w.index}#v0"]
            np.testing.assert_array_equal(clean["vector"], teacher.embed_one(w.samples))
            assert (clean["start_s"], clean["end_s"], clean["aug"]) == (w.start_s, w.end_s, "")
            for v in (1, 2):
                row = rows[f"{name}#w{w.index}#v{v}"]
                aug = aug_from_json(str(row["aug"]))
                replay = teacher.embed_one(apply_audio_aug(w.samples, AUDIO_RATE, aug))
                np.testing.assert_array_equal(row["vector"], replay)
                assert not np.array_equal(row["vector"], clean["vector"])
                assert row["view"] == v and row["item_id"] == name
            expected |= {f"{name}#w{w.index}#v{v}" for v in range(3)}
    assert set(rows) == expected and len(store) == len(expected)
    assert teacher.rows == len(expected)


def test_audio_resume_after_a_crash_embeds_only_the_rest(audio_dir: Path, tmp_path: Path) -> None:
    items = load_corpus(audio_dir, "audio")
    kwargs = dict(views=1, batch_size=2, seed=1, shard_items=2)
    reference = embed_corpus(FakeAudioTeacher(), items, tmp_path / "ref", **kwargs)

    crashing = FakeAudioTeacher(fail_on_call=6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed_corpus(crashing, items, tmp_path / "store", **kwargs)
    partial = EmbeddingStore(tmp_path / "store")
    done = partial.done_items()
    assert 0 < len(done) < 5 and len(partial.shard_paths()) >= 1
    assert {s["item_id"] for s in partial.meta["skipped"]} <= {"corrupt.wav", "quiet.wav",
                                                                "short.wav"}

    again = FakeAudioTeacher()
    store = embed_corpus(again, items, tmp_path / "store", **kwargs)
    ref_rows = reference.load()
    remaining = sum(1 for sid in ref_rows["item_id"] if str(sid) not in done)
    assert again.rows == remaining  # nothing already stored was embedded again
    rows = store.load()
    for key in ("sample_id", "item_id", "view", "start_s", "end_s", "aug", "vector"):
        np.testing.assert_array_equal(rows[key], ref_rows[key])
    assert store.meta["skipped"] == reference.meta["skipped"]

    nothing_left = FakeAudioTeacher()
    embed_corpus(nothing_left, items, tmp_path / "store", **kwargs)
    assert nothing_left.calls == 0
    with pytest.raises(HaiEdgeError, match="existing store was made with views=1"):
        embed_corpus(FakeAudioTeacher(), items, tmp_path / "store", **{**kwargs, "views": 2})


def test_window_longer_than_the_teacher_is_refused(audio_dir: Path, tmp_path: Path) -> None:
    items = load_corpus(audio_dir, "audio")
    with pytest.raises(HaiEdgeError, match="longer than the teacher"):
        embed_corpus(FakeAudioTeacher(), items, tmp_path / "s",
                     spec=AudioFrontendSpec(window_s=1.0))
    with pytest.raises(HaiEdgeError, match="engine 'ray' is not available"):
        embed_corpus(FakeAudioTeacher(), items, tmp_path / "s", engine="ray")


def test_shorter_windows_are_zero_padded_to_the_teacher(audio_dir: Path, tmp_path: Path) -> None:
    import soundfile as sf

    items = [it for it in load_corpus(audio_dir, "audio") if it.item_id == "a.wav"]
    teacher = FakeAudioTeacher()  # asserts it only ever sees 4000-sample windows
    spec = AudioFrontendSpec(window_s=0.25, hop_s=0.25, min_clip_s=0.04)
    store = embed_corpus(teacher, items, tmp_path / "s", spec=spec)
    rows = store.load()
    assert len(rows["sample_id"]) == 6  # 1.3 s in 0.25 s windows: 5 full + a 0.05 s tail
    assert np.allclose(rows["end_s"] - rows["start_s"], [0.25] * 5 + [0.05])
    x, sr = sf.read(audio_dir / "a.wav", dtype="float32")
    mono = resample(x, sr, AUDIO_RATE)
    second = np.zeros(4000, np.float32)
    second[:2000] = mono[2000:4000]
    np.testing.assert_array_equal(rows["vector"][1], teacher.embed_one(second))


# ---------------------------------------------------------------------------------- image
def test_image_store_views_vectors_and_skips(image_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image, ImageOps

    items = load_corpus(image_dir, "image")
    teacher = FakeImageTeacher()
    store = embed_corpus(teacher, items, tmp_path / "store", views=1, batch_size=4, seed=3,
                         progress=True)
    assert "items/s" in capsys.readouterr().err
    assert store.meta["spec"] is None and store.meta["modality"] == "image"
    assert {s["item_id"] for s in store.meta["skipped"]} == {"broken.png", "tiny.png"}
    rows = _rows(store)
    names = [f"p{i}.png" for i in range(6)] + ["rotated.jpg"]
    assert set(rows) == {f"{n}#v{v}" for n in names for v in (0, 1)}
    for name in names:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(image_dir / name)).convert("RGB"))
        clean, view = rows[f"{name}#v0"], rows[f"{name}#v1"]
        np.testing.assert_array_equal(clean["vector"], teacher.embed_one(rgb))
        replay = apply_image_aug(rgb, aug_from_json(str(view["aug"])))
        np.testing.assert_array_equal(view["vector"], teacher.embed_one(replay))
        assert np.isnan(clean["start_s"]) and view["view"] == 1
    assert rows["rotated.jpg#v0"]["vector"].shape == (6,)
    assert np.asarray(Image.open(image_dir / "rotated.jpg")).shape[:2] == (40, 70)  # sideways


def test_image_resume_counts_teacher_calls(image_dir: Path, tmp_path: Path) -> None:
    items = load_corpus(image_dir, "image")
    kwargs = dict(batch_size=2, shard_items=2)
    reference = embed_corpus(FakeImageTeacher(), items, tmp_path / "ref", **kwargs)
    with pytest.raises(RuntimeError):
        embed_corpus(FakeImageTeacher(fail_on_call=3), items, tmp_path / "store", **kwargs)
    assert len(EmbeddingStore(tmp_path / "store").done_items()) == 4  # two whole shards
    again = FakeImageTeacher()
    store = embed_corpus(again, items, tmp_path / "store", **kwargs)
    assert again.rows == 7 - 4
    for key in ("sample_id", "vector"):
        np.testing.assert_array_equal(store.load()[key], reference.load()[key])


# ------------------------------------------------------------------- precomputed embeddings
def test_import_precomputed_matches_corpus_items(image_dir: Path, tmp_path: Path) -> None:
    vecs = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.savez(tmp_path / "e.npz", ids=np.array(["p0.png", "p1.png", "p2.png", "elsewhere.png"]),
             embeddings=vecs)
    teacher = load_teacher(f"embeddings:{tmp_path / 'e.npz'}")
    items = [it for it in load_corpus(image_dir, "image") if it.item_id in ("p0.png", "p1.png",
                                                                            "p5.png")]
    store = embed_corpus(teacher, items, tmp_path / "store")
    rows = _rows(store)
    assert set(rows) == {"p0.png#v0", "p1.png#v0"}
    np.testing.assert_array_equal(rows["p1.png#v0"]["vector"], vecs[1])
    assert [s["item_id"] for s in store.meta["skipped"]] == ["p5.png"]
    everything = import_precomputed(teacher, tmp_path / "all")
    assert len(everything) == 4 and "elsewhere.png" in everything.done_items()
    with pytest.raises(HaiEdgeError, match="no augmented views"):
        embed_corpus(teacher, items, tmp_path / "x", views=1)


# -------------------------------------------------------------------------------------- CLI
def test_cli_teacher_embed_equals_the_api(audio_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-store"
    rc = main(["teacher", "embed", "--teacher", f"torch:{FAKES}:make_fake_audio_teacher",
               "--data", str(audio_dir), "-o", str(out), "--views", "1", "--seed", "4",
               "--batch-size", "5", "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "3 skipped" in err and "fake:audio" in err
    api = embed_corpus(FakeAudioTeacher(), load_corpus(audio_dir, "audio"), tmp_path / "api",
                       views=1, seed=4)
    for key in ("sample_id", "vector", "aug"):
        np.testing.assert_array_equal(EmbeddingStore(out).load()[key], api.load()[key])


def test_cli_csv_group_limit_and_window_options(audio_dir: Path, tmp_path: Path) -> None:
    csv_path = audio_dir / "list.csv"
    csv_path.write_text("path,id,patient_id\na.wav,rec-a,p1\nb.wav,rec-b,p1\ne.wav,rec-e,p2\n")
    out = tmp_path / "s"
    rc = main(["teacher", "embed", "-t", f"torch:{FAKES}:make_fake_audio_teacher", "-d",
               str(csv_path), "-o", str(out), "--group", "patient_id", "--limit", "2",
               "--window-s", "0.25", "--hop-s", "0.25", "--no-progress"])
    assert rc == 0
    store = EmbeddingStore(out)
    assert store.done_items() == {"rec-a", "rec-b"}
    assert store.meta["spec"]["window_s"] == 0.25 and store.meta["corpus_items"] == 2


def test_cli_errors_are_one_line_exit_2(audio_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["teacher", "embed", "-t", f"torch:{FAKES}:make_fake_audio_teacher", "-o",
            str(tmp_path / "s"), "--no-progress"]
    cases = [
        (["-d", str(audio_dir), "--engine", "spark"], "engine 'spark' is not available"),
        (["-d", str(tmp_path / "nope")], "no such directory or CSV file"),
        ([], "--data is required"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert main(["teacher", "embed", "-t", "bogus:x", "-d", str(audio_dir), "-o", "s"]) == 2
    assert "unknown teacher" in capsys.readouterr().err


def test_cli_imports_embeddings_without_data(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", ids=np.array(["x.png", "y.png"]),
             embeddings=np.ones((2, 3), np.float32))
    rc = main(["teacher", "embed", "-t", f"embeddings:{tmp_path / 'e.npz'}", "-o",
               str(tmp_path / "s"), "--no-progress"])
    assert rc == 0
    assert EmbeddingStore(tmp_path / "s").done_items() == {"x.png", "y.png"}

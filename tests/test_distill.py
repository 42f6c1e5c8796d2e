"""``distill`` end to end on tiny generated corpora with fixed random-conv fake teachers.

Tiny student presets are registered for the test (the real presets are covered by
test_students.py); the data pipeline, split, training loop, resume, report and ``load_run`` are
the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hai_edge.cli import main  # noqa: E402
from hai_edge.errors import HaiEdgeError  # noqa: E402
from hai_edge.distill import run as distill_mod  # noqa: E402
from hai_edge.distill import students  # noqa: E402
from hai_edge.corpus import load_corpus  # noqa: E402
from hai_edge.distill.run import DistillConfig, distill, load_run, student_inputs  # noqa: E402
from hai_edge.distill.data import load_media, row_media  # noqa: E402
from hai_edge.distill.store import EmbeddingStore  # noqa: E402
from hai_edge.distill.teacher_embed import embed_corpus  # noqa: E402
from hai_edge.runtime.frontends import AudioFrontendSpec, prepare_audio  # noqa: E402
from tests._distill_fixtures import (  # noqa: E402
    AUDIO_SPEC,
    IMAGE_SPEC,
    TINY,
    ConvTeacher,
    audio_corpus,
    image_corpus,
)

@pytest.fixture(scope="module", autouse=True)
def _tiny_presets():
    with pytest.MonkeyPatch.context() as mp:
        for name, preset in TINY.items():
            mp.setitem(students.STUDENTS, name, preset)
        yield


@pytest.fixture(autouse=True)
def _no_epoch_hook():
    distill_mod._EPOCH_HOOK.clear()
    yield
    distill_mod._EPOCH_HOOK.clear()


@pytest.fixture(scope="module")
def audio_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ConvTeacher]:
    root = tmp_path_factory.mktemp("audio")
    csv_path = audio_corpus(root / "data")
    items = load_corpus(csv_path, "audio")
    windows = [w.samples for it in items for w in prepare_audio(*_decode(it.path), AUDIO_SPEC,
                                                                 "x")[0]]
    teacher = ConvTeacher("audio", 32).centre_on(windows)
    embed_corpus(teacher, items, root / "store", views=1, seed=0)
    return csv_path, root / "store", teacher


@pytest.fixture(scope="module")
def image_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ConvTeacher]:
    from PIL import Image

    root = tmp_path_factory.mktemp("image")
    csv_path = image_corpus(root / "data")
    items = load_corpus(csv_path, "image")
    photos = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    teacher = ConvTeacher("image", 24).centre_on(photos)
    embed_corpus(teacher, items, root / "store", views=1, seed=0)
    return csv_path, root / "store", teacher


def _cfg(data: tuple, run_dir: Path, student: str = "t-audio", **kw) -> DistillConfig:
    base = dict(data=str(data[0]), student=student, run_dir=str(run_dir), targets=str(data[1]),
                epochs=3, batch_size=8, lr=1e-2, holdout=0.3, seed=0, progress=False,
                num_threads=1)
    base.update(kw)
    return DistillConfig(**base)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "student.pt", weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def audio_run(audio_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "audio"
    distill(_cfg(audio_data, run_dir, label="label", subgroups=("sex", "age")))
    return run_dir


@pytest.mark.parametrize("which", ["audio", "image"])
def test_rows_replay_exactly_what_the_teacher_saw(which: str, request) -> None:
    """Window cut + augmentation replay from the store's JSON reproduce the teacher's inputs:
    the teacher re-embeds them to the stored vectors, augmented views included."""
    csv_path, store_dir, teacher = request.getfixturevalue(f"{which}_data")
    spec = AUDIO_SPEC if which == "audio" else IMAGE_SPEC
    items = {it.item_id: it for it in load_corpus(csv_path, which)}
    rows = EmbeddingStore(store_dir).load()
    assert set(rows["view"].tolist()) == {0, 1} and any(rows["aug"])
    picks = [i for i in range(len(rows["sample_id"])) if i % 5 == 0]
    media = [row_media(load_media(items[str(rows["item_id"][i])], spec), spec,
                       float(rows["start_s"][i]), str(rows["aug"][i])) for i in picks]
    np.testing.assert_allclose(teacher.embed(media), rows["vector"][picks], rtol=0, atol=1e-5)
    # and a wrong window start is visible, so the check can fail
    if which == "audio":
        i = next(i for i in picks if rows["start_s"][i] > 0)
        shifted = row_media(load_media(items[str(rows["item_id"][i])], spec), spec, 0.0,
                            str(rows["aug"][i]))
        assert np.abs(teacher.embed([shifted])[0] - rows["vector"][i]).max() > 1e-3


def test_audio_run_writes_artifacts_and_learns(audio_run: Path, audio_data) -> None:
    meta = json.loads((audio_run / "run.json").read_text())
    for name in ("student.pt", "checkpoint.pt", "fidelity.json", "fidelity.md", "split.json"):
        assert (audio_run / name).is_file(), name
    assert meta["status"] == "finished" and meta["training"]["epochs_done"] == 3
    assert meta["teacher"]["id"] == "fake:conv-audio" and meta["teacher"]["licence"] == "test-only"
    assert meta["embedding"] == {**meta["embedding"], "teacher_dim": 32, "student_dim": 16,
                                 "exported": "teacher", "exported_dim": 32}
    # the student's window follows the teacher's (1 s), standardisation fitted on train data
    pre = meta["preprocessing"]
    assert pre["window_s"] == 1.0 and pre["feature_std"] != 1.0
    assert meta["student"]["params"] > 0 and meta["student"]["macs"] > 0
    assert len(meta["data"]["corpus_hash"]) == 64
    hist = meta["training"]["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    best = max(h["cosine"] for h in hist[1:])
    assert best > hist[0]["cosine"] + 0.02
    assert max(h["centred_cosine"] for h in hist[1:]) > hist[0]["centred_cosine"] + 0.1
    fid = json.loads((audio_run / "fidelity.json").read_text())
    assert fid["rows"]["n"] == meta["split"]["heldout_rows"]
    assert fid["rows"]["cosine_mean"] == pytest.approx(best, abs=1e-3)
    assert {r["value"] for r in fid["subgroups"]["sex"]} <= {"F", "M"}
    assert "probe" in fid  # too few held-out groups to fit: reported as skipped, not crashed
    assert "Fidelity (held-out)" in (audio_run / "fidelity.md").read_text()


def test_split_is_grouped_and_load_run_gives_the_exported_model(audio_run: Path) -> None:
    art = load_run(audio_run)
    train_groups = {it.group for it in art.train_items}
    held_groups = {it.group for it in art.heldout_items}
    assert train_groups and held_groups and not train_groups & held_groups
    store_ids = set(EmbeddingStore(art.meta["targets"]["store"]).load()["item_id"].tolist())
    assert {it.item_id for it in art.train_items + art.heldout_items} <= store_ids
    assert isinstance(art.spec, AudioFrontendSpec) and art.spec.window_s == 1.0
    assert art.teacher_info["id"] == "fake:conv-audio"
    assert not art.model.training
    x = student_inputs(art.spec, art.heldout_items)
    n_windows = sum(len(prepare_audio(*_decode(it.path), art.spec, "x")[0])
                    for it in art.heldout_items)
    assert x.shape == (n_windows, *art.spec.input_shape())
    with torch.no_grad():
        emb = art.model(torch.from_numpy(x)).numpy()
    assert emb.shape == (len(x), 32)
    # the exported model reproduces the held-out fidelity (clean windows, same front end)
    store = EmbeddingStore(art.meta["targets"]["store"]).load()
    held = {it.item_id for it in art.heldout_items}
    rows = [i for i, (iid, v) in enumerate(zip(store["item_id"], store["view"]))
            if iid in held and v == 0]
    t = store["vector"][rows]
    cos = np.sum(emb * t, 1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(t, axis=1)
    fid = json.loads((audio_run / "fidelity.json").read_text())
    assert len(rows) == len(emb)  # every window is loud enough: same windows as the teacher
    assert float(cos.mean()) == pytest.approx(fid["rows"]["cosine_mean"], abs=2e-3)
    # what the export gates on: the same held-out rows, aligned with the teacher's embeddings
    from hai_edge.distill.run import heldout_with_targets

    hx, ht = heldout_with_targets(audio_run)
    np.testing.assert_allclose(hx, x, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ht, t)


def _decode(path: Path):
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x, sr


def test_deterministic_and_resume_equals_uninterrupted(audio_data, audio_run, tmp_path) -> None:
    again = tmp_path / "again"
    distill(_cfg(audio_data, again, label="label", subgroups=("sex", "age")))
    assert _same(_weights(again), _weights(audio_run))

    # pause after epoch 1 (a clean stop), then continue with the same command
    paused = tmp_path / "paused"
    res = distill(_cfg(audio_data, paused, stop_after_epoch=1))
    assert (res.status, res.stopped, res.epochs_done) == ("paused", "stop_after_epoch", 1)
    epochs_run: list[int] = []
    distill_mod._EPOCH_HOOK["hook"] = lambda epoch, state: epochs_run.append(epoch)
    res = distill(_cfg(audio_data, paused))
    assert epochs_run == [2, 3] and res.status == "finished"
    assert _same(_weights(paused), _weights(audio_run))

    # a crash after epoch 1 (exception), then a re-run resumes at epoch 2
    crashed = tmp_path / "crashed"

    def boom(epoch: int, state) -> None:
        if epoch == 1:
            raise RuntimeError("simulated crash")

    distill_mod._EPOCH_HOOK["hook"] = boom
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill(_cfg(audio_data, crashed))
    assert not (crashed / "student.pt").exists()
    epochs_run.clear()
    distill_mod._EPOCH_HOOK["hook"] = lambda epoch, state: epochs_run.append(epoch)
    distill(_cfg(audio_data, crashed))
    assert epochs_run == [2, 3]
    assert _same(_weights(crashed), _weights(audio_run))

    # a finished run is not retrained; other settings in the same directory are refused
    epochs_run.clear()
    distill(_cfg(audio_data, crashed))
    assert epochs_run == []
    with pytest.raises(HaiEdgeError, match="different settings"):
        distill(_cfg(audio_data, crashed, lr=5e-3))


def test_image_run_and_student_output(image_data, tmp_path) -> None:
    run_dir = tmp_path / "img"
    res = distill(_cfg(image_data, run_dir, student="t-image", epochs=2,
                       export_output="student", label="diagnostic", positive=("BCC", "MEL")))
    meta = res.meta
    assert meta["embedding"]["exported"] == "student" and meta["embedding"]["exported_dim"] == 24
    assert meta["preprocessing"]["kind"] == "image" and meta["preprocessing"]["height"] == 32
    assert meta["targets"]["views"] == [0, 1]
    held = set(json.loads((run_dir / "split.json").read_text())["heldout"])
    assert meta["split"]["heldout_rows"] == len(held)  # clean view only, one per photo
    art = load_run(run_dir)
    x = student_inputs(art.spec, art.heldout_items)
    assert x.shape == (len(art.heldout_items), 3, 32, 32)
    with torch.no_grad():
        assert art.model(torch.from_numpy(x)).shape == (len(x), 24)


def test_distill_run_reads_back_what_the_run_wrote(audio_run: Path, tmp_path: Path) -> None:
    from hai_edge.distill.rundir import DistillRun

    run = DistillRun.open(audio_run)
    meta = json.loads((audio_run / "run.json").read_text())
    split = json.loads((audio_run / "split.json").read_text())
    assert dict(run.meta) == meta and run.status == "finished"
    assert run.config == DistillConfig.from_dict(meta["config"])
    assert run.config.label == "label" and run.config.subgroups == ("sex", "age")
    assert run.spec.to_dict() == meta["preprocessing"]
    assert run.teacher_info["id"] == "fake:conv-audio"
    assert run.export_output.value == meta["embedding"]["exported"]
    assert run.store_dir == Path(meta["targets"]["store"])
    train, held = run.split_items()
    assert [it.item_id for it in train] == split["train"]
    assert [it.item_id for it in held] == split["heldout"]
    art = load_run(audio_run)
    x = student_inputs(art.spec, art.heldout_items[:1])
    with torch.no_grad():
        np.testing.assert_array_equal(run.student_model()(torch.from_numpy(x)).numpy(),
                                      art.model(torch.from_numpy(x)).numpy())
    hx, ht = run.heldout_with_targets()
    assert hx.shape[0] == ht.shape[0] == meta["split"]["heldout_rows"]

    # a copy whose store is gone: no held-out targets; whose media are gone: checked on request
    copy = tmp_path / "copy"
    copy.mkdir()
    gone = {**meta, "targets": {**meta["targets"], "store": str(tmp_path / "no-store")}}
    (copy / "run.json").write_text(json.dumps(gone))
    moved = {**split, "items": {i: {**d, "path": str(tmp_path / "gone.wav")}
                                for i, d in split["items"].items()}}
    (copy / "split.json").write_text(json.dumps(moved))
    c = DistillRun.open(copy)
    assert c.store_dir is None and c.heldout_with_targets() is None
    assert len(c.split_items(check_media=False)[1]) == len(held)
    with pytest.raises(HaiEdgeError, match="media files of the run are missing"):
        c.split_items()
    assert not c.has_student
    with pytest.raises(HaiEdgeError, match="needs run.json and student.pt"):
        load_run(copy)


def test_distill_run_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    from hai_edge.distill.rundir import DistillRun

    with pytest.raises(HaiEdgeError, match="no run.json"):
        DistillRun.open(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(HaiEdgeError, match="cannot read"):
        DistillRun.open(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(HaiEdgeError, match="schema_version 99"):
        DistillRun.open(tmp_path)


def test_bad_inputs_are_clear_errors(audio_data, tmp_path) -> None:
    with pytest.raises(HaiEdgeError, match="exactly one"):
        DistillConfig(data="x", student="t-audio", run_dir=str(tmp_path))
    with pytest.raises(HaiEdgeError, match="no column"):
        distill(_cfg(audio_data, tmp_path / "r", label="nope"))
    with pytest.raises(HaiEdgeError, match="audio"):
        distill(_cfg(audio_data, tmp_path / "r2", student="t-image"))


def test_cli_distill_and_list_students(audio_data, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(students, "STUDENTS", dict(TINY))
    assert main(["distill", "--list-students"]) == 0
    out = capsys.readouterr().out
    assert "t-audio" in out and "t-image" in out and "MACs" in out
    rc = main(["distill", "--targets", str(audio_data[1]), "--data", str(audio_data[0]),
               "--student", "t-audio", "-o", str(tmp_path / "cli"), "--epochs", "1",
               "--batch-size", "8", "--holdout", "0.3", "--quiet", "--subgroups", "sex",
               "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "Fidelity (held-out)" in out and "## by sex" in out
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["training"]["epochs_done"] == 1
    assert main(["distill", "--data", str(audio_data[0])]) == 2
    assert "--teacher SPEC or --targets STORE" in capsys.readouterr().err


def test_teacher_spec_is_embedded_into_the_run_first(image_data, tmp_path, monkeypatch) -> None:
    from hai_edge import teachers

    calls: list[str] = []
    teacher = image_data[2]

    def fake_load(spec: str, *, device: str = "cpu") -> ConvTeacher:
        calls.append(spec)
        return teacher

    monkeypatch.setattr(teachers, "load_teacher", fake_load)
    run_dir = tmp_path / "with-teacher"
    cfg = _cfg(image_data, run_dir, student="t-image", epochs=1, targets=None,
               teacher="fake:conv-image", views=1)
    res = distill(cfg)
    store = EmbeddingStore(run_dir / "targets")
    assert calls == ["fake:conv-image"] and store.meta["views"] == 1
    assert res.meta["targets"]["store"] == str((run_dir / "targets").resolve())
    assert res.meta["teacher"]["id"] == "fake:conv-image"
    # the same vectors as the standalone store (same teacher, seed and views)
    a, b = store.load(), EmbeddingStore(image_data[1]).load()
    assert a["sample_id"].tolist() == b["sample_id"].tolist()
    np.testing.assert_allclose(a["vector"], b["vector"], atol=1e-5)
    shards = store.shard_paths()
    distill(cfg)  # finished: nothing re-embedded, nothing retrained
    assert store.shard_paths() == shards and calls == ["fake:conv-image"]  # not even loaded


def test_time_budget_pauses_resumably(audio_data, audio_run, tmp_path) -> None:
    run_dir = tmp_path / "budget"
    res = distill(_cfg(audio_data, run_dir, max_minutes=1e-4))  # over budget after one epoch
    assert (res.status, res.stopped, res.epochs_done) == ("paused", "time_budget", 1)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "paused" and (run_dir / "fidelity.json").is_file()
    assert "paused run" in (run_dir / "fidelity.md").read_text()
    res = distill(_cfg(audio_data, run_dir))
    assert (res.status, res.epochs_done) == ("finished", 3)
    assert _same(_weights(run_dir), _weights(audio_run))


def test_warm_start_from_a_run_or_a_shipped_student(audio_data, audio_run, image_data, tmp_path,
                                                     monkeypatch) -> None:
    from hai_edge.distill.students import pretrained

    def cos(run: Path) -> float:
        return json.loads((run / "run.json").read_text())["fidelity"]["cosine_mean"]

    # a learning rate this small barely moves the weights: the warm run starts where the init ended
    warm = distill(_cfg(audio_data, tmp_path / "warm", init=str(audio_run), epochs=1, lr=1e-9))
    cold = distill(_cfg(audio_data, tmp_path / "cold", epochs=1, lr=1e-9))
    a, b = _weights(audio_run), _weights(tmp_path / "warm")
    learned = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    for k in learned:  # BatchNorm statistics keep updating in training mode; weights do not
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    assert cos(tmp_path / "warm") > cos(tmp_path / "cold") + 0.05
    assert cos(tmp_path / "warm") > cos(audio_run) - 0.02  # (BN statistics refreshed: may gain)
    assert warm.meta["training"]["init"]["source"] == str(audio_run)
    assert cold.meta["training"]["init"] is None
    assert warm.meta["preprocessing"]["feature_mean"] == \
        json.loads((audio_run / "run.json").read_text())["preprocessing"]["feature_mean"]

    # shipped form: fp16 safetensors + JSON, verified by sha256
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    pretrained.save_pretrained(audio_run, tmp_path / "shipped" / "t-audio")
    init = pretrained.load_init("pretrained:t-audio")
    assert init.preset == "t-audio" and init.teacher_id == "fake:conv-audio"
    for k in learned:
        torch.testing.assert_close(init.state_dict[k], a[k].float(), rtol=1e-3, atol=1e-3)
    warm2 = distill(_cfg(audio_data, tmp_path / "warm2", init="pretrained:t-audio", epochs=1,
                         lr=1e-9))
    assert abs(cos(tmp_path / "warm2") - cos(tmp_path / "warm")) < 0.01
    assert warm2.meta["training"]["init"]["sha256"] == init.sha256

    # refusals: another preset, an unknown name, a modified file
    with pytest.raises(HaiEdgeError, match="is a t-audio student; this run trains t-image"):
        distill(_cfg(image_data, tmp_path / "bad", student="t-image", init=str(audio_run)))
    with pytest.raises(HaiEdgeError, match="no such pretrained student.*t-audio"):
        distill(_cfg(audio_data, tmp_path / "bad2", init="pretrained:nope"))
    f = tmp_path / "shipped" / "t-audio" / "student.safetensors"
    f.write_bytes(f.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(HaiEdgeError, match="sha256 does not match"):
        distill(_cfg(audio_data, tmp_path / "bad3", init="pretrained:t-audio"))

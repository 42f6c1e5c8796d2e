"""``--engine ray``: the Ray store equals the local one, a crashed run resumes without redoing
finished shards, the local Ray stays on loopback, and a missing Ray is a one-line error.

One local Ray for the module, started by the engine's own :func:`ray_session` (2 CPUs: one teacher
actor + one decode slot; no dashboard, no usage stats). The teacher is a tiny torch module loaded
by spec in the actors (tests/_ray_teachers.py), which logs its loads and batches to files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from hai_edge.cli import main
from hai_edge.corpus import CorpusItem, load_corpus
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.teacher_embed import embed_corpus
from hai_edge.teachers import load_teacher

ROOT = Path(__file__).resolve().parents[1]
AUDIO = "torch:tests._ray_teachers:make_logged_audio_teacher"
IMAGE = "torch:tests._ray_teachers:make_logged_image_teacher"
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # Ray's own

RUN = dict(views=1, batch_size=16, seed=7, shard_items=20)
N_SHARDS = 10  # 200 readable items / 20


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("teacher-log")


@pytest.fixture(scope="module")
def ray_cluster(teacher_dir: Path):  # noqa: ANN201 - yields the ray module
    from hai_edge.distill.teacher_embed_ray import RayOptions, ray_session

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAI_TEST_TEACHER_DIR", str(teacher_dir))  # inherited by Ray's workers
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT),
                                                               os.environ.get("PYTHONPATH")])))
        with ray_session(RayOptions(workers=1)) as ray:
            yield ray


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusItem]:
    import soundfile as sf

    d = tmp_path_factory.mktemp("audio")
    for i in range(200):  # 0.5 .. 1.4 s at 8 kHz: 1-3 windows of 0.5 s, different tones
        seconds = 0.5 + 0.3 * (i % 4)
        t = np.arange(int(seconds * 8000)) / 8000
        sf.write(d / f"r{i:03d}.wav", 0.3 * np.sin(2 * np.pi * (150 + 11 * i) * t), 8000)
    (d / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk")  # skipped by both engines
    sf.write(d / "silent.wav", np.zeros(8000), 8000)  # skipped: quiet
    items = load_corpus(d, "audio")
    assert len(items) == 202
    return items


@pytest.fixture(scope="module")
def local_store(audio_corpus: list[CorpusItem],
                tmp_path_factory: pytest.TempPathFactory) -> EmbeddingStore:
    return embed_corpus(load_teacher(AUDIO), audio_corpus, tmp_path_factory.mktemp("local") / "s",
                        **RUN)


def _calls(teacher_dir: Path) -> list[list[str]]:
    log = teacher_dir / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.is_file() else []


def _reset(teacher_dir: Path) -> None:
    (teacher_dir / "calls.log").write_text("")


def _assert_same(ray_store: EmbeddingStore, local: EmbeddingStore) -> None:
    a, b = ray_store.load(), local.load()
    for key in ("sample_id", "item_id", "view", "aug"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("start_s", "end_s"):
        np.testing.assert_array_equal(a[key], b[key])  # NaN == NaN here (images)
    np.testing.assert_allclose(a["vector"], b["vector"], rtol=1e-5, atol=1e-6)
    assert ray_store.meta["skipped"] == local.meta["skipped"]
    for key in ("teacher", "dim", "spec", "views", "seed", "corpus_hash"):
        assert ray_store.meta[key] == local.meta[key]


# --------------------------------------------------------------------------------- tests
def test_ray_store_equals_local_store(ray_cluster, audio_corpus: list[CorpusItem],  # noqa: ANN001
                                      local_store: EmbeddingStore, teacher_dir: Path,
                                      tmp_path: Path) -> None:
    from hai_edge.distill.teacher_embed_ray import RayOptions, embed_corpus_ray

    _reset(teacher_dir)
    store = embed_corpus_ray(AUDIO, audio_corpus, tmp_path / "ray", options=RayOptions(workers=1),
                             **RUN)
    _assert_same(store, local_store)
    assert store.meta["engine"] == "ray" and local_store.meta["engine"] == "local"
    assert {s["item_id"] for s in store.meta["skipped"]} == {"broken.wav", "silent.wav"}
    # the same shards, cut at the same items, with the same names
    assert [p.name for p in store.shard_paths()] == [f"{i:06d}.npz" for i in range(N_SHARDS)]
    for mine, theirs in zip(store.iter_shards(), local_store.iter_shards()):
        np.testing.assert_array_equal(mine["sample_id"], theirs["sample_id"])
    calls = _calls(teacher_dir)
    loads = [c for c in calls if c[0] == "load"]
    embeds = [c for c in calls if c[0] == "embed"]
    assert len(loads) == 2  # one probe for the TeacherInfo + the one actor: loaded once
    assert {c[1] for c in embeds} == {loads[-1][1]}  # every batch ran in the actor
    assert sum(int(c[2]) for c in embeds) == len(store) and max(int(c[2]) for c in embeds) <= 16
    assert ray_cluster.is_initialized()  # a caller's Ray is left running


def test_crashed_run_resumes_without_recomputing(
        ray_cluster, audio_corpus: list[CorpusItem],  # noqa: ANN001
        local_store: EmbeddingStore, teacher_dir: Path, tmp_path: Path) -> None:
    """The teacher dies after some shards; the re-run embeds only the items not stored."""
    from hai_edge.errors import HaiEdgeError
    from hai_edge.distill.teacher_embed_ray import RayOptions, embed_corpus_ray

    out = tmp_path / "store"
    (teacher_dir / "sleep_s").write_text("0.05")  # ~45 batches: shards land while work is left
    (teacher_dir / "fail_at").write_text(f"{out} 2")
    try:
        with pytest.raises(HaiEdgeError, match=r"RuntimeError: simulated teacher crash \(\d+ "
                                               r"shards stored; re-run the same command"):
            embed_corpus_ray(AUDIO, audio_corpus, out, options=RayOptions(workers=1), **RUN)
    finally:
        (teacher_dir / "sleep_s").unlink()
        (teacher_dir / "fail_at").unlink()
    partial = EmbeddingStore(out)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in partial.shard_paths()}
    done = partial.done_items()
    assert len(before) >= 2 and 40 <= len(done) < 200
    shards = list(partial.iter_shards())
    assert all(len(set(s["item_id"])) == 20 for s in shards[:2])  # whole shards first
    ref = local_store.load()
    for s in shards:  # only whole items were stored, each equal to the local engine's
        for item in set(s["item_id"]):
            assert (s["item_id"] == item).sum() == (ref["item_id"] == item).sum()

    _reset(teacher_dir)
    store = embed_corpus_ray(AUDIO, audio_corpus, out, options=RayOptions(workers=1), **RUN)
    _assert_same(store, local_store)
    for name, (mtime, data) in before.items():  # finished shards untouched
        path = out / "shards" / name
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data
    new = [p for p in store.shard_paths() if p.name not in before]
    new_items = {str(i) for p in new for i in np.load(p)["item_id"]}
    assert new_items and not new_items & done
    # the teacher saw exactly the rows of the items left (a straggling call of the crashed run's
    # actor, if any, comes from a pid that did not load in this run)
    calls = _calls(teacher_dir)
    pids = {c[1] for c in calls if c[0] == "load"}
    rows = sum(int(c[2]) for c in calls if c[0] == "embed" and c[1] in pids)
    assert rows == sum(1 for i in store.load()["item_id"] if str(i) not in done)


def test_cli_ray_images_equal_local(ray_cluster, tmp_path: Path,  # noqa: ANN001
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI, with photos of different sizes and augmented views (keyed by sample id,
    so the same on both engines)."""
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        h, w = 32 + 7 * i, 60 - 2 * i
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"p{i:02d}.png")
    (d / "tiny.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    base = ["teacher", "embed", "-t", IMAGE, "-d", str(d), "--views", "2", "--seed", "3",
            "--batch-size", "5", "--shard-items", "4"]
    assert main([*base, "-o", str(tmp_path / "local"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "12 items, 1 skipped" in err and "items/s" in err
    ray_store, local = EmbeddingStore(tmp_path / "ray"), EmbeddingStore(tmp_path / "local")
    _assert_same(ray_store, local)
    assert len(ray_store) == 36 and len(ray_store.shard_paths()) == 3
    views = ray_store.load()
    assert all(views["aug"][views["view"] > 0]) and not any(views["aug"][views["view"] == 0])


def test_local_ray_is_loopback_only_no_dashboard_no_usage_stats(ray_cluster) -> None:  # noqa: ANN001
    psutil = pytest.importorskip("psutil")
    nodes = ray_cluster.nodes()
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0"
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    assert len(procs) > 3  # gcs_server, raylet, workers are children of this process
    listening, commands = [], []
    for p in procs:
        try:
            listening += [c.laddr.ip for c in p.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
            commands.append(" ".join(p.cmdline()))
        except psutil.NoSuchProcess:  # an idle worker that just exited
            continue
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in listening)
    # Ray's head keeps a minimal dashboard process for its own bookkeeping: no web UI, no port
    heads = [c for c in commands if "dashboard/dashboard.py" in c]
    assert all("--minimal" in c and "--disable-frontend" in c for c in heads)
    try:
        from ray._common.usage.usage_lib import usage_stats_enabled
    except ImportError:  # private module moved in another Ray version: the env check above holds
        return
    assert not usage_stats_enabled()


def test_ray_cli_errors_are_one_line(ray_cluster, audio_corpus: list[CorpusItem],  # noqa: ANN001
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = str(audio_corpus[0].path.parent)
    base = ["teacher", "embed", "-t", AUDIO, "-d", corpus, "-o", str(tmp_path / "s"),
            "--no-progress"]
    cases = [
        (["--workers", "2", "--gpus-per-worker", "1"],
         "--workers, --gpus-per-worker: only with --engine ray"),
        (["--engine", "ray", "--workers", "2"], "use fewer --workers"),  # 2 CPUs: 1 actor max
        (["--engine", "ray", "--workers", "1", "--gpus-per-worker", "1"], "0 GPUs"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    # a teacher that fails to load on the worker: its own one-line error, through Ray
    bad = [*base, "-t", "torch:tests._no_such_module:make", "--engine", "ray", "--workers", "1"]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot import tests._no_such_module" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s").exists()  # nothing scheduled, nothing written


def test_missing_ray_is_a_one_line_install_hint(audio_corpus: list[CorpusItem], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    rc = main(["teacher", "embed", "-t", AUDIO, "-d", str(audio_corpus[0].path.parent), "-o",
               str(tmp_path / "s"), "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "pip install 'hai-edge[scale]'" in err
    assert not (tmp_path / "s").exists()

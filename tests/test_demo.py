"""`hai-edge demo` end to end on the bundled sample set, with small stand-in teachers (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("litert_torch")


def test_sample_set_is_bundled_with_attribution() -> None:
    from hai_edge.corpus import load_corpus
    from hai_edge.demo.pipeline import DEMO_DATA

    coughs = load_corpus(DEMO_DATA / "coughs" / "metadata.csv", "audio")
    lesions = load_corpus(DEMO_DATA / "lesions" / "metadata.csv", "image")
    assert len(coughs) == 32 and len(lesions) == 36
    assert {it.group for it in lesions} and all(it.group for it in coughs)
    text = (DEMO_DATA / "ATTRIBUTION.md").read_text()
    assert "CC0" in text and "CC BY 4.0" in text and "Pacheco" in text


def test_demo_runs_end_to_end(tmp_path: Path, monkeypatch) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.demo.pipeline import run_demo

    lines: list[str] = []
    results = run_demo(tmp_path, quick=True, modalities=("audio",), say=lines.append,
                       teachers={"audio": "torch:tests._demo_teachers:audio"}, epochs=2,
                       allow_degraded=True)  # 2 epochs: a barely trained student may miss gates
    text = "\n".join(lines)
    assert "hai-edge demo summary" in text and "not for clinical use" in text
    (r,) = results
    b = Bundle.load(r.bundle)  # verifies every hash
    ids = {m.id for m in b.manifest.models}
    assert ids == {f"{f}-{p}" for f in ("onnx", "openvino", "tflite") for p in ("fp32", "int8")}
    assert "demo, not for clinical use" in b.manifest.notices
    assert r.engine_cosine >= 0.98
    assert set(r.stages_s) >= {"teacher_embed", "distill", "export", "benchmark", "embed"}
    assert all(np.isfinite(v) for v in r.latency_ms.values())


def test_demo_fine_tunes_the_shipped_student_only_for_its_own_teacher(tmp_path, monkeypatch) -> None:
    from hai_edge.demo import pipeline as demo
    from hai_edge.distill.students import pretrained

    plan = demo._PLANS["image"]
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert demo._warm_start(plan, None, False) is None  # nothing shipped
    (tmp_path / plan.student).mkdir()
    (tmp_path / plan.student / "student.json").write_text("{}")
    assert demo._warm_start(plan, None, False) == f"pretrained:{plan.student}"
    assert demo._warm_start(plan, "reference:image", False) == f"pretrained:{plan.student}"
    assert demo._warm_start(plan, None, True) is None  # --from-scratch
    assert demo._warm_start(plan, "torch:tests._demo_teachers:image", False) is None


def test_demo_says_where_it_writes_and_what_it_reuses(tmp_path: Path) -> None:
    from hai_edge.demo import pipeline as demo

    lines: list[str] = []
    demo._prepare_output(tmp_path, ("audio",), fresh=False, say=lines.append)
    assert lines == [f"Demo output: {tmp_path.resolve()}"]  # nothing earlier: nothing reused
    earlier = tmp_path / "audio" / "targets"
    earlier.mkdir(parents=True)
    other = tmp_path / "mine.txt"  # not the demo's: never touched
    other.write_text("keep")
    lines.clear()
    demo._prepare_output(tmp_path, ("audio",), fresh=False, say=lines.append)
    assert "reusing earlier" in lines[-1] and earlier.exists()
    lines.clear()
    demo._prepare_output(tmp_path, ("audio",), fresh=True, say=lines.append)
    assert "removed (--fresh)" in lines[-1]
    assert not (tmp_path / "audio").exists() and other.read_text() == "keep"


def test_demo_cli_passes_its_options(monkeypatch) -> None:
    """``hai-edge demo --fresh`` (as the README says) reaches the pipeline, as do the others."""
    from hai_edge.cli import main
    from hai_edge.demo import pipeline as demo

    calls: list[tuple] = []
    monkeypatch.setattr(demo, "run_demo", lambda out, **kw: calls.append((out, kw)) or [])
    assert main(["demo", "--quick", "--fresh", "--only", "audio", "-o", "work"]) == 0
    assert main(["demo"]) == 0
    (out, kw), (_, plain) = calls
    assert out == "work" and kw["fresh"] and kw["quick"] and kw["modalities"] == ("audio",)
    assert not plain["fresh"] and not plain["quick"] and plain["modalities"] == ("audio", "image")


def test_demo_speed_figure_compares_like_with_like() -> None:
    from hai_edge.demo import pipeline as demo

    speed = demo._Speed(teacher_ms=100.0, student_ms=1.0, frontend_ms=0.5, engine="onnxruntime")
    r = demo.DemoResult("audio", Path("b"), {"distill": 1.0}, {"rows": {
        "n": 8, "cosine_mean": 0.9, "centred_cosine_mean": 0.05}}, {"onnx-int8": 0.4},
        {"onnx-int8": 0.5, "onnx-fp32": 0.3}, speed=speed, engine_cosine=1.0)
    lines: list[str] = []
    demo._summary([r], 60.0, lines.append)
    text = "\n".join(lines)
    # 100 ms teacher vs 1 ms student (front end + model): 100x, labelled with what is compared
    assert "1 thread each" in text and "side by side" in text and "own front end" in text
    assert "-> 100x" in text
    assert "has not learned its teacher" in text  # centred cosine 0.05


def test_interleaved_timing_keeps_the_ratio_under_changing_load() -> None:
    """Load that comes and goes hits both calls alike, so the ratio of the medians holds."""
    import time as _time

    from hai_edge.demo import pipeline as demo

    load = iter([0.0] * 8 + [0.004] * 10 + [0.0] * 1000)  # a busy spell in the middle

    def call(base: float) -> None:
        _time.sleep(base + next(load))

    a, b = demo._interleaved_ms(lambda: call(0.004), lambda: call(0.001), min_blocks=6,
                                min_seconds=0.0, block_s=0.01)
    assert 2.5 < a / b < 5.5  # 4 ms vs 1 ms, busy spell or not

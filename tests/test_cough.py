"""`hai-edge cough` on files: JSON schema, event windows, aggregation, fallback, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.cli import main
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.errors import InputError
from hai_edge.runtime.cough import CoughPipeline, WindowPlanner, event_window
from hai_edge.runtime.events import Event
from hai_edge.runtime.frontends import AudioFrontendSpec, split_windows, window_features
from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

from ._onnx_models import make_onnx_bundle
from .test_events import synth_coughs

SR = 16000
COUGHS = [0.6, 2.4, 2.9, 5.0]  # 2.4 and 2.9 share one 1 s window


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cough")
    plain = make_onnx_bundle(root / "plain", "audio", dim=16)
    rng = np.random.default_rng(5)
    heads = [
        Head(name="covid", weights=rng.standard_normal(16), bias=0.1, mean=np.zeros(16),
             scale=np.ones(16), threshold=0.5,
             calibration=Calibration(CalibrationKind.PLATT, a=0.8, b=0.1),
             labels=("negative", "positive"), notice="demo head, not for clinical use"),
        Head(name="tb", weights=rng.standard_normal(16), bias=-0.2, mean=np.full(16, 0.1),
             scale=np.full(16, 2.0), threshold=0.2),
    ]
    b = Bundle.load(plain)
    add_head_to_bundle(b, heads[0], str(root / "one"))
    add_head_to_bundle(Bundle.load(root / "one"), heads[1], str(root / "two"))
    return {"plain": plain, "heads": root / "two", "image": make_onnx_bundle(root / "img", "image")}


@pytest.fixture(scope="module")
def cough_wav(tmp_path_factory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("wav") / "coughs.wav"
    sf.write(path, synth_coughs(COUGHS, 6.5, noise_db=-50, seed=3), SR, subtype="FLOAT")
    return path


def test_json_schema_and_numbers(bundles, cough_wav, capsys) -> None:
    assert main(["cough", "--bundle", str(bundles["heads"]), str(cough_wav), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert set(rec) == {"input", "modality", "duration_s", "sample_rate", "bundle", "backend",
                        "model", "detector", "events", "windows", "fallback_windows", "scores",
                        "withheld", "scored_anyway", "timing_ms", "notices"}
    assert rec["withheld"] == {} and rec["scored_anyway"] is False
    assert rec["input"] == str(cough_wav) and rec["duration_s"] == 6.5
    assert rec["fallback_windows"] is False and rec["detector"] == "energy"
    # events: every planted cough, within 0.1 s
    assert [set(e) for e in rec["events"]] == [{"label", "start_s", "end_s", "confidence"}] * 4
    for truth, ev in zip(COUGHS, rec["events"]):
        assert abs(ev["start_s"] - truth) <= 0.1 and 0 <= ev["confidence"] <= 1
    # windows: one per group of events, each covering its events, 1 s long (the bundle's spec)
    windows = rec["windows"]
    assert [w["events"] for w in windows] == [[0], [1, 2], [3]]
    for w in windows:
        assert set(w) == {"start_s", "end_s", "events", "scores"}  # no embedding without --windows
        assert w["end_s"] - w["start_s"] == pytest.approx(1.0, abs=1e-3)
        for i in w["events"]:
            ev = rec["events"][i]
            assert w["start_s"] <= ev["start_s"] and ev["end_s"] <= w["end_s"]
        assert set(w["scores"]) == {"covid", "tb"}
    # recording scores: mean/max/count over the windows, positive = mean >= threshold
    for name, s in rec["scores"].items():
        probs = [w["scores"][name] for w in windows]
        assert s["count"] == 3
        assert s["mean"] == pytest.approx(np.mean(probs), abs=1e-5)
        assert s["max"] == pytest.approx(max(probs), abs=1e-6)
        assert s["positive"] == (s["mean"] >= s["threshold"])
        assert list(s) == ["mean", "max", "count", "threshold", "band", "verdict", "positive",
                           "borderline", "label"]
        assert s["band"] == 0.0 and s["borderline"] is False  # no band: the plain threshold
        assert s["verdict"] == ("positive" if s["positive"] else "negative")
    assert rec["scores"]["tb"]["threshold"] == 0.2
    assert "demo head, not for clinical use" in rec["notices"]
    stages = {"decode", "detect", "preprocess", "inference", "heads", "total"}
    assert stages <= set(rec["timing_ms"])


def test_window_scores_match_an_independent_computation(bundles, cough_wav) -> None:
    import soundfile as sf

    from hai_edge.runtime import Embedder
    from hai_edge.runtime.heads import load_heads

    with CoughPipeline(bundles["heads"]) as pipe:
        result = pipe.analyze_file(cough_wav)
    x, _ = sf.read(cough_wav, dtype="float32")
    b = Bundle.load(bundles["heads"])
    spec = b.manifest.preprocessing
    heads = {h.name: h for h in load_heads(b)}
    with Embedder(b) as emb:
        for w in result.windows:
            i = int(round(w.start_s * SR))
            vec = emb.embed_inputs(window_features(x[i : i + spec.window_samples], spec))
            for name, p in w.scores.items():
                assert p == pytest.approx(float(heads[name].predict_proba(vec)[0]), abs=1e-6)


def test_windows_flag_adds_embeddings(bundles, cough_wav, capsys) -> None:
    assert main(["cough", "-b", str(bundles["heads"]), str(cough_wav), "--json", "--windows",
                 "--head", "tb"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert set(rec["scores"]) == {"tb"}
    assert all(len(w["embedding"]) == 16 for w in rec["windows"])


def test_no_events_scored_anyway_falls_back_to_sliding_windows(bundles, tmp_path, capsys
                                                               ) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    x = (0.05 * rng.standard_normal(int(3.2 * SR))).astype(np.float32)  # steady noise
    sf.write(tmp_path / "noise.wav", x, SR)
    assert main(["cough", "-b", str(bundles["heads"]), str(tmp_path / "noise.wav"),
                 "--json", "--score-anyway"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["events"] == [] and rec["fallback_windows"] is True
    assert rec["scored_anyway"] is True and rec["withheld"] == {}
    assert rec["would_withhold"] == {"covid": "no cough detected", "tb": "no cough detected"}
    spec = Bundle.load(bundles["heads"]).manifest.preprocessing
    plain = split_windows(x, spec, "x")
    assert [(w["start_s"], w["events"]) for w in rec["windows"]] == [
        (round(w.start_s, 4), []) for w in plain]
    assert rec["scores"]["covid"]["count"] == len(plain)
    assert any("no cough events detected" in n for n in rec["notices"])
    # human output says so too
    assert main(["cough", "-b", str(bundles["heads"]), str(tmp_path / "noise.wav"),
                 "--score-anyway"]) == 0
    out = capsys.readouterr().out
    assert "plain sliding windows" in out and "[scored anyway]" in out


def test_bundle_without_heads_reports_events_only(bundles, cough_wav) -> None:
    with CoughPipeline(bundles["plain"]) as pipe:
        result = pipe.analyze_file(cough_wav)
    d = result.to_dict()
    assert d["scores"] == {} and len(d["events"]) == 4 and len(d["windows"]) == 3
    assert all(w["scores"] == {} for w in d["windows"])
    assert "inference" not in d["timing_ms"]  # nothing to score: the model is not run
    assert any("no heads" in n for n in d["notices"])


def test_planner_groups_events_that_fit_in_one_window() -> None:
    ev = [Event(0.0, 0.3, 1.0), Event(0.5, 0.8, 1.0), Event(1.5, 1.9, 1.0),
          Event(1.95, 2.05, 1.0), Event(4.0, 4.2, 1.0)]
    planner = WindowPlanner(2.0)
    groups = []
    for i, e in enumerate(ev):
        groups += planner.add(i, e)
    groups += planner.finish()
    # 1.9 - 0.0 <= 2.0 joins; 2.05 - 0.0 does not and starts a group; 4.2 - 1.95 does not either
    assert [g[0] for g in groups] == [(0, 1, 2), (3,), (4,)]
    assert [g[1] for g in groups] == pytest.approx([0.95, 2.0, 4.1])


def test_planner_close_until_only_closes_when_no_event_can_join() -> None:
    planner = WindowPlanner(2.0)
    assert planner.add(0, Event(1.0, 1.2, 1.0)) == []
    assert planner.close_until(2.9) == []  # an event ending by 3.0 could still join
    assert planner.close_until(3.01) == [((0,), pytest.approx(1.1))]
    assert planner.finish() == []


def test_event_window_is_centred_and_kept_inside_the_recording() -> None:
    spec = AudioFrontendSpec(window_s=2.0)
    x = np.arange(5 * SR, dtype=np.float32)
    start, real, w = event_window(x, 2.5, spec)
    assert (start, real) == (int(1.5 * SR), 2 * SR) and w[0] == x[start]
    assert event_window(x, 0.2, spec)[0] == 0  # shifted right at the start
    assert event_window(x, 4.9, spec)[0] == 3 * SR  # shifted left at the end
    short = np.ones(SR, dtype=np.float32)
    start, real, w = event_window(short, 0.5, spec)
    assert (start, real) == (0, SR) and w[SR:].sum() == 0  # zero-padded like split_windows


def test_quiet_event_windows_fall_back_and_silence_is_an_input_error(bundles) -> None:
    x = np.zeros(3 * SR, dtype=np.float32)
    x[SR : SR + 800] = 0.004 * np.random.default_rng(0).standard_normal(800)  # ~-48 dB burst
    with CoughPipeline(bundles["heads"]) as pipe:
        with pytest.raises(InputError, match="silent"):
            pipe.analyze(x, SR, "quiet.wav")
        with pytest.raises(InputError, match="at least 0.25 s"):
            pipe.analyze(x[:1000], SR, "short.wav")
        with pytest.raises(InputError, match="NaN"):
            pipe.analyze(np.full(SR, np.nan, np.float32), SR, "nan.wav")


def test_resampled_and_stereo_input_gives_the_same_events(bundles, cough_wav) -> None:
    import soundfile as sf

    from hai_edge.runtime.frontends import resample

    x, _ = sf.read(cough_wav, dtype="float32")
    stereo = np.stack([resample(x, SR, 44100)] * 2, axis=1)
    with CoughPipeline(bundles["heads"]) as pipe:
        a = pipe.analyze(x, SR)
        b = pipe.analyze(stereo, 44100)
    assert len(a.events) == len(b.events)
    for ea, eb in zip(a.events, b.events):
        assert abs(ea.start_s - eb.start_s) < 0.02


def test_cli_errors(bundles, cough_wav, tmp_path, capsys, monkeypatch) -> None:
    import hai_edge.bundle as bundle_mod

    monkeypatch.setattr(bundle_mod, "builtin_bundles", lambda: {})
    assert main(["cough", str(cough_wav)]) == 2
    assert "cough-demo bundle is not installed" in capsys.readouterr().err
    assert main(["cough", "-b", str(bundles["image"]), str(cough_wav)]) == 2
    assert "not an audio bundle" in capsys.readouterr().err
    assert main(["cough", "-b", str(bundles["heads"])]) == 2
    assert "--mic" in capsys.readouterr().err
    assert main(["cough", "-b", str(bundles["heads"]), str(cough_wav), "--seconds", "3"]) == 2
    assert "only applies with --mic" in capsys.readouterr().err
    assert main(["cough", "-b", str(bundles["heads"]), "--mic", "--save", "x.wav"]) == 2
    assert "FLAC" in capsys.readouterr().err
    assert main(["cough", "-b", str(bundles["heads"]), "--head", "flu", str(cough_wav)]) == 2
    assert "no head 'flu'" in capsys.readouterr().err
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    assert main(["cough", "-b", str(bundles["heads"]), str(tmp_path / "bad.wav"),
                 str(cough_wav), "--json"]) == 2  # one bad input: the good one still reported
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1 and "1 of 2 inputs failed" in err
    # positional bundle, like `embed`
    assert main(["cough", str(bundles["heads"]), str(cough_wav)]) == 0
    assert "cough event(s)" in capsys.readouterr().out


def test_cough_path_imports_no_build_side(bundles, cough_wav) -> None:
    code = ("import sys, json\nfrom hai_edge.cli import main\n"
            f"rc = main(['cough', '-b', {str(bundles['heads'])!r}, {str(cough_wav)!r}, '--json'])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnx', 'sklearn', 'tensorflow', 'nncf', 'sounddevice'))\n"
            "print(json.dumps({'rc': rc, 'bad': bad}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "bad": []}, proc.stderr

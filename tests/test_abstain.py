"""Abstention (issue #17): heads withheld with a reason when there is no cough, when a photo fails
a blocking quality check or is out of the head's distribution; ``--score-anyway`` scores
regardless and says so. CLI, Python API and the OOD gate's storage (the kiosk and the PWA have
their own tests in test_kiosk_api.py and test_pwa_app.py). No ../shared needed."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle, builtin_bundles
from hai_edge.cli import main
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.errors import BundleError
from hai_edge.heads.ood_fit import fit_ood_gate, withhold_rate
from hai_edge.runtime.abstain import NO_COUGH, OodGate
from hai_edge.runtime.heads import Head, load_head_file, load_heads

from ._onnx_models import make_onnx_bundle

Image = pytest.importorskip("PIL.Image")
sf = pytest.importorskip("soundfile")
SR = 16000


def speech_like(seconds: float = 4.0, rate: int = SR, seed: int = 0) -> np.ndarray:
    """A voiced, sustained 'vowel' (harmonics of a gliding 110-140 Hz pitch, formant-shaped,
    slow syllable-rate loudness changes) over quiet noise: voice-like, no cough transient."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 125 + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = (700, 1200, 2600)
    x = sum(sum(np.exp(-(((k * 125 - f) / 300) ** 2)) for f in formants) / k
            * np.sin(k * phase) for k in range(1, 25))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2  # syllable-rate, never silent
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.3)  # slow fades: no onset transient
    x = 0.2 * x / np.max(np.abs(x)) * env * ramp + 0.002 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def noise_jpeg(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(path, "JPEG",
                                                                               quality=92)
    return path


# ---------------------------------------------------------------------------------- cough
@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sf.write(path, speech_like(), SR, subtype="PCM_16")
    return path


@pytest.mark.skipif("cough-demo" not in builtin_bundles(), reason="no built-in cough-demo")
def test_cough_cli_speech_without_cough_is_withheld(speech_wav, capsys) -> None:
    assert main(["cough", str(speech_wav), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["events"] == [] and rec["windows"] == [] and rec["fallback_windows"] is False
    assert rec["scores"] and all(v is None for v in rec["scores"].values())
    assert rec["withheld"] == {name: NO_COUGH for name in rec["scores"]}
    assert rec["scored_anyway"] is False and "would_withhold" not in rec
    # text output: "not scored" with the reason, no verdict
    assert main(["cough", str(speech_wav)]) == 0
    out = capsys.readouterr().out
    assert f"not scored ({NO_COUGH})" in out and "->" not in out
    # --score-anyway: scores on the plain sliding windows, marked as such
    assert main(["cough", str(speech_wav), "--json", "--score-anyway"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["scored_anyway"] is True and rec["withheld"] == {}
    assert rec["would_withhold"] == {name: NO_COUGH for name in rec["scores"]}
    assert all(0 <= v["mean"] <= 1 for v in rec["scores"].values()) and rec["fallback_windows"]


def test_cough_api_withholds_every_head_and_scores_anyway(tmp_path) -> None:
    from hai_edge.runtime.cough import CoughPipeline

    plain = make_onnx_bundle(tmp_path / "plain", "audio", dim=16)
    rng = np.random.default_rng(0)
    head = Head("covid", rng.standard_normal(16), 0.0, np.zeros(16), np.ones(16))
    b = add_head_to_bundle(Bundle.load(plain), head, str(tmp_path / "b"))
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)).astype(np.float32)
    with CoughPipeline(b.root) as pipe:
        r = pipe.analyze(tone, SR, "tone")
        assert r.scores == {"covid": None} and r.withheld == {"covid": NO_COUGH}
        assert not r.events and not r.windows and not r.fallback
        assert any("no head was scored" in n for n in r.notices)
        a = pipe.analyze(tone, SR, "tone", score_anyway=True)
        assert a.scores["covid"] is not None and a.scored_anyway and a.fallback
        assert a.would_withhold == {"covid": NO_COUGH} and a.withheld == {}


# ----------------------------------------------------------------------------------- derm
@pytest.mark.skipif("derm-demo" not in builtin_bundles(), reason="no built-in derm-demo")
def test_derm_cli_noise_jpeg_is_withheld(tmp_path, capsys) -> None:
    path = noise_jpeg(tmp_path / "noise.jpg")
    assert main(["derm", str(path), "--json", "--no-embedding"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["scores"] == {"malignant": None}
    assert "does not look like the photos this head was trained on" in rec["withheld"]["malignant"]
    assert rec["ood"]["malignant"]["in_distribution"] is False
    assert rec["ood"]["malignant"]["distance"] > rec["ood"]["malignant"]["threshold"]
    assert main(["derm", str(path)]) == 0
    out = capsys.readouterr().out
    assert "malignant not scored (" in out and "-> malignant" not in out
    assert main(["derm", str(path), "--json", "--no-embedding", "--score-anyway"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["scored_anyway"] is True and rec["withheld"] == {}
    assert 0 <= rec["scores"]["malignant"]["probability"] <= 1
    assert "malignant" in rec["would_withhold"]


@pytest.mark.skipif("derm-demo" not in builtin_bundles(), reason="no built-in derm-demo")
def test_derm_demo_head_stores_its_gate_and_scores_the_demo_photos() -> None:
    from hai_edge.runtime.derm import DermPipeline

    b = Bundle.load("derm-demo")
    [entry] = [h for h in b.manifest.heads if h.get("name") == "malignant"]
    ood = entry["ood"]
    assert ood["method"] == "mahalanobis_ppca_joint" and ood["percentile"] == 99
    assert ood["false_withhold_heldout"]["n"] > 100 and ood["false_withhold_heldout"]["rate"] < 0.05
    demo = sorted((Path(__file__).resolve().parents[1] / "hai_edge/demo_data/lesions")
                  .glob("*.jpg"))
    with DermPipeline("derm-demo") as pipe:
        results = [pipe.analyze_path(p)[0] for p in demo]
    withheld = [r.input for r in results if r.withheld]
    assert len(withheld) <= 2, withheld  # in-distribution photos are scored (1 of 36 today)


def _image_bundle(tmp_path: Path, gate: OodGate | None = None) -> Path:
    plain = make_onnx_bundle(tmp_path / "plain", "image", dim=16)
    rng = np.random.default_rng(2)
    head = Head("lesion", rng.standard_normal(16), 0.0, np.zeros(16), np.ones(16), ood=gate)
    return add_head_to_bundle(Bundle.load(plain), head, str(tmp_path / "b")).root


def _photo(path: Path, level: float) -> Path:
    rng = np.random.default_rng(0)
    base = np.stack([180 + rng.integers(0, 40, (240, 320)), 120 + rng.integers(0, 30, (240, 320)),
                     100 + rng.integers(0, 30, (240, 320))], -1) * level
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(path, "PNG")
    return path


def test_derm_blocking_quality_check_withholds(tmp_path) -> None:
    from hai_edge.runtime.derm import DermPipeline

    with DermPipeline(str(_image_bundle(tmp_path))) as pipe:
        ok = pipe.analyze_path(_photo(tmp_path / "ok.png", 1.0))[0]
        dark = pipe.analyze_path(_photo(tmp_path / "dark.png", 0.1))[0]
        anyway = pipe.analyze_path(tmp_path / "dark.png", score_anyway=True)[0]
    assert ok.scores["lesion"] is not None and ok.withheld == {} and ok.ood == {}
    assert dark.scores == {"lesion": None}
    assert dark.withheld == {"lesion": "the photo is too dark to score"}
    assert anyway.scores["lesion"] is not None and anyway.scored_anyway
    assert anyway.would_withhold == dark.withheld
    d = dark.to_dict(embedding=False)
    assert d["scores"] == {"lesion": None} and d["withheld"] == dark.withheld


# ------------------------------------------------------------------------------- the gate
def test_gate_threshold_and_false_withhold_rate_on_held_out_groups() -> None:
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((64, 8))
    cov = basis @ basis.T + 0.5 * np.eye(64)
    chol = np.linalg.cholesky(cov)
    x = rng.standard_normal((1200, 64)) @ chol.T + 3.0
    groups = [f"p{i // 2}" for i in range(1200)]
    gate = fit_ood_gate(x[:800], groups[:800], components=8, percentile=99.0)
    held = withhold_rate(gate, x[800:])
    assert held["n"] == 400 and held["rate"] <= 0.04  # ~1 % by construction
    far = withhold_rate(gate, rng.standard_normal((50, 64)) * 6.0)
    assert far["rate"] == 1.0  # another distribution: every one withheld
    assert [f.value for f in gate.features] == ["log_embedding_distance", "log_embedding_norm"]


def test_gate_round_trips_through_a_bundle_and_the_manifest_must_agree(tmp_path) -> None:
    rng = np.random.default_rng(1)
    gate = fit_ood_gate(rng.standard_normal((60, 16)), [str(i) for i in range(60)],
                        components=4, info={"false_withhold_heldout": {"n": 9, "rate": 0.0}})
    root = _image_bundle(tmp_path, gate)
    b = Bundle.load(root)
    [head] = load_heads(b)
    assert head.ood is not None and head.ood.threshold == pytest.approx(gate.threshold)
    x = rng.standard_normal((5, 16))
    assert np.allclose(head.ood.distance(x), gate.distance(x), rtol=1e-6)
    entry = b.manifest.heads[0]["ood"]
    assert "mean" not in entry and entry["false_withhold_heldout"]["rate"] == 0.0
    assert load_head_file(b.path_of("heads/lesion.json")).ood is not None
    # a manifest whose ood summary disagrees with the head file is refused
    m = json.loads((root / "manifest.json").read_text())
    m["heads"][0]["ood"]["threshold"] = 1e9
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="ood"):
        load_heads(Bundle.load(root, verify=False))
    # a broken gate in a head file is a one-line BundleError
    bad = dataclasses.replace(head, ood=None).to_dict()
    stats = gate.to_dict()
    bad["ood"] = {**stats, "embedding_stats": {**stats["embedding_stats"],
                                               "variances": [-1.0] * 4}}
    with pytest.raises(BundleError, match="variances"):
        Head.from_dict(bad, "x")


def test_compact_head_keeps_its_gate() -> None:
    rng = np.random.default_rng(3)
    gate = fit_ood_gate(rng.standard_normal((40, 16)), [str(i) for i in range(40)], components=3)
    head = Head("h", rng.standard_normal(16), 0.0, np.zeros(16), np.ones(16), ood=gate)
    again = Head.from_dict(json.load(io.StringIO(head.compact().to_json())), "x")
    assert again.ood is not None and again.ood.threshold == pytest.approx(gate.threshold)

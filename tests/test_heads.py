"""Heads: file format, hand-computed predictions, bundle integration, and `hai-edge probe`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.cli import main
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.errors import BundleError, HaiEdgeError, MissingDependencyError
from hai_edge.runtime.heads import (
    Calibration,
    CalibrationKind,
    Head,
    load_head_file,
    load_heads,
)

from ._csv_files import write_csv
from ._onnx_models import make_onnx_bundle

SR = 16000


def _head(dim: int = 4, cal: Calibration | None = None, name: str = "covid") -> Head:
    rng = np.random.default_rng(0)
    return Head(name=name, weights=rng.standard_normal(dim), bias=0.3,
                mean=rng.standard_normal(dim), scale=rng.uniform(0.5, 2.0, dim), threshold=0.4,
                calibration=cal or Calibration(CalibrationKind.PLATT, a=1.7, b=-0.4),
                labels=("neg", "pos"), training={"n": 3}, notice="research only")


def _sig(v: float) -> float:
    return 1.0 / (1.0 + np.exp(-v))


@pytest.mark.parametrize("cal", [
    Calibration(),
    Calibration(CalibrationKind.PLATT, a=1.7, b=-0.4),
    Calibration(CalibrationKind.ISOTONIC, x=(-1.0, 0.0, 2.0), y=(0.1, 0.2, 0.9)),
])
def test_predict_matches_a_hand_computation_and_survives_a_file_round_trip(cal, tmp_path) -> None:
    head = _head(cal=cal)
    x = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [-3.0, 0.2, 0.1, 4.0]])
    probs = []
    for row in x:
        z = sum((row[i] - head.mean[i]) / head.scale[i] * head.weights[i] for i in range(4))
        z += head.bias
        if cal.kind is CalibrationKind.PLATT:
            probs.append(_sig(1.7 * z - 0.4))
        elif cal.kind is CalibrationKind.ISOTONIC:  # linear between the table points, flat outside
            if z <= -1.0:
                probs.append(0.1)
            elif z >= 2.0:
                probs.append(0.9)
            elif z <= 0.0:
                probs.append(0.1 + (z + 1.0) * 0.1)
            else:
                probs.append(0.2 + z / 2.0 * 0.7)
        else:
            probs.append(_sig(z))
    np.testing.assert_allclose(head.predict_proba(x), probs, rtol=1e-12)
    head.save(tmp_path / "h.json")
    again = load_head_file(tmp_path / "h.json")
    np.testing.assert_allclose(again.predict_proba(x), probs, rtol=1e-12)
    assert again.labels == ("neg", "pos") and again.notice == "research only"
    assert again.predict_proba(x[0]).shape == (1,)


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(format="other"), "not a hai-edge head"),
    (lambda d: d.update(format_version=2), "format_version"),
    (lambda d: d.update(weights=[1.0, 2.0]), "weights has 2 values"),
    (lambda d: d.update(threshold=1.5), "threshold"),
    (lambda d: d["standardize"].update(scale=[1, 0, 1, 1]), "scale must be > 0"),
    (lambda d: d.update(calibration={"kind": "platt", "a": -1.0, "b": 0.0}), "a must be > 0"),
    (lambda d: d.update(calibration={"kind": "isotonic", "x": [0, 1], "y": [0.9, 0.1]}),
     "non-decreasing"),
    (lambda d: d.update(kind="mlp"), "not supported"),
    (lambda d: d.update(weights=[1.0, float("nan"), 0, 0]), "finite"),
])
def test_invalid_head_files_are_refused(edit, match: str, tmp_path: Path) -> None:
    d = _head().to_dict()
    edit(d)
    (tmp_path / "h.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=match):
        load_head_file(tmp_path / "h.json")


def test_wrong_embedding_size_is_a_clear_error() -> None:
    with pytest.raises(HaiEdgeError, match="expects 4-d"):
        _head().predict_proba(np.zeros((2, 5)))


# ------------------------------------------------------------------------- heads in bundles
@pytest.fixture()
def tiny_bundle(tmp_path: Path) -> Bundle:
    return Bundle.load(make_onnx_bundle(tmp_path / "b", "audio", dim=16))


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_add_to_bundle_makes_a_new_verified_bundle_and_leaves_the_original(tiny_bundle,
                                                                           tmp_path) -> None:
    before = _tree_digest(tiny_bundle.root)
    head = _head(dim=16)
    new = add_head_to_bundle(tiny_bundle, head, str(tmp_path / "b2"))
    assert _tree_digest(tiny_bundle.root) == before
    reloaded = Bundle.load(tmp_path / "b2")  # verifies every sha256
    assert "heads/covid.json" in reloaded.manifest.files
    [entry] = reloaded.manifest.heads
    assert entry["file"] == "heads/covid.json" and entry["threshold"] == 0.4
    [loaded] = load_heads(reloaded)
    x = np.random.default_rng(1).standard_normal((5, 16))
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x))
    assert new.manifest.models == tiny_bundle.manifest.models
    # replacing the head of the same name keeps a single entry
    add_head_to_bundle(reloaded, _head(dim=16, cal=Calibration()), str(tmp_path / "b2"),
                       overwrite=True)
    assert len(Bundle.load(tmp_path / "b2").manifest.heads) == 1
    with pytest.raises(BundleError, match="already exists"):
        add_head_to_bundle(tiny_bundle, head, str(tmp_path / "b2"))


def test_tampered_or_inconsistent_heads_are_refused(tiny_bundle, tmp_path) -> None:
    add_head_to_bundle(tiny_bundle, _head(dim=16), str(tmp_path / "b2"))
    b2 = tmp_path / "b2"
    d = json.loads((b2 / "heads/covid.json").read_text())
    d["threshold"] = 0.9
    (b2 / "heads/covid.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="heads/covid.json was modified"):
        load_heads(Bundle.load(b2, verify=False))
    # a manifest entry that disagrees with its (hash-verified) file
    add_head_to_bundle(tiny_bundle, _head(dim=16), str(tmp_path / "b3"))
    m = json.loads((tmp_path / "b3/manifest.json").read_text())
    m["heads"][0]["threshold"] = 0.9
    (tmp_path / "b3/manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="threshold differs"):
        load_heads(Bundle.load(tmp_path / "b3"))
    with pytest.raises(BundleError, match="no head 'flu'"):
        load_heads(Bundle.load(tmp_path / "b2", verify=False), ["flu"])
    # a head trained on other embeddings
    add_head_to_bundle(tiny_bundle, _head(dim=4), str(tmp_path / "b4"))
    with pytest.raises(BundleError, match="4-d embeddings"):
        load_heads(Bundle.load(tmp_path / "b4"))


# -------------------------------------------------------------------------- probe train/eval
def _recording(label: int, rng: np.random.Generator) -> np.ndarray:
    """Two cough-like bursts; positives are low-pass (dull), negatives white (sharp)."""
    x = 0.003 * rng.standard_normal(int(2.6 * SR))
    n = int(0.3 * SR)
    for start in (0.5, 1.7):
        burst = rng.standard_normal(n)
        if label:
            burst = np.convolve(burst, np.ones(8) / 8 * 2.5, "same")
        i = int(start * SR)
        x[i : i + n] += 0.3 * burst * np.exp(-np.arange(n) / (0.06 * SR))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def probe_data(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("sklearn", reason="hai-edge probe needs the probe extra (scikit-learn)")
    import soundfile as sf

    root = tmp_path_factory.mktemp("probe")
    bundle = make_onnx_bundle(root / "bundle", "audio", dim=16)
    rng = np.random.default_rng(7)
    rows = []
    (root / "wav").mkdir()
    for i in range(32):
        label = i % 2
        name = f"wav/r{i:02d}.wav"
        sf.write(root / name, _recording(label, rng), SR)
        rows.append({"path": name, "covid": "pos" if label else "neg", "patient": f"p{i // 4}",
                     "sex": "F" if i % 3 else "M"})
    write_csv(root / "labels.csv", rows)
    before = _tree_digest(bundle)
    rc = main(["probe", "train", "--bundle", str(bundle), "--data", str(root / "labels.csv"),
               "--label", "covid", "--positive", "pos", "--group", "patient",
               "-o", str(root / "covid.json"), "--add-to-bundle", str(root / "with-head"),
               "--notice", "research only"])
    assert rc == 0
    return {"root": root, "bundle": bundle, "csv": root / "labels.csv", "digest": before,
            "head": root / "covid.json", "with_head": root / "with-head"}


def test_probe_train_separates_a_separable_problem(probe_data) -> None:
    head = load_head_file(probe_data["head"])
    tr = head.training
    assert tr["auroc_cv"] > 0.9 and tr["n"] == 32 and tr["n_positive"] == 16
    assert tr["groups"] == 8 and tr["folds"] == 5 and tr["n_windows"] >= 32
    assert len(tr["data_hash"]) == 64 and tr["threshold_rule"] == "youden"
    assert head.calibration.kind is CalibrationKind.PLATT and head.calibration.a > 0
    assert 0.0 < head.threshold < 1.0 and head.notice == "research only"


def test_probe_calibration_is_monotone_and_keeps_the_ranking(probe_data) -> None:
    from hai_edge.heads.probe_train import embed_corpus_rows

    head = load_head_file(probe_data["head"])
    z = np.linspace(-30.0, 30.0, 601)
    p = head.calibration.apply(z)
    assert np.all(np.diff(p) >= 0) and p[0] < 0.5 < p[-1]
    rows = embed_corpus_rows(str(probe_data["bundle"]), str(probe_data["csv"]), "covid",
                             ("pos",), group="patient")
    probs = head.predict_proba(rows.x)
    assert np.all((probs > 0) & (probs < 1))
    logits = head.decision_function(rows.x)
    assert np.array_equal(np.argsort(probs, kind="stable"), np.argsort(logits, kind="stable"))


def test_platt_on_separable_scores_is_not_a_step() -> None:
    from hai_edge.heads.probe_train import fit_platt

    z = np.r_[np.linspace(-5, -1, 50), np.linspace(1, 5, 50)]
    y = np.r_[np.zeros(50), np.ones(50)]
    a, b = fit_platt(z, y)
    p = 1 / (1 + np.exp(-(a * z + b)))
    # Platt's soft targets: 51/52 and 1/52, so the fit stays finite and unsaturated
    assert 0 < a < 20 and abs(b) < 1e-6
    assert 0.9 < p.max() < 0.9999 and 1e-4 < p.min() < 0.1
    z2 = np.random.default_rng(0).standard_normal(400)
    y2 = (z2 + np.random.default_rng(1).standard_normal(400)) > 0  # true slope ~1.7 in logits
    a2, _ = fit_platt(z2, y2)
    assert 1.0 < a2 < 2.6


def test_grouped_folds_never_leak_a_group(probe_data) -> None:
    from hai_edge.heads.probe_train import embed_corpus_rows, window_folds

    rows = embed_corpus_rows(str(probe_data["bundle"]), str(probe_data["csv"]), "covid",
                             ("pos",), group="patient")
    folds = window_folds(rows, 5, seed=0)
    seen_test = np.zeros(len(rows.x), int)
    for tr, te in folds:
        g_tr, g_te = set(rows.groups[rows.rec[tr]]), set(rows.groups[rows.rec[te]])
        assert not g_tr & g_te
        assert not set(rows.rec[tr]) & set(rows.rec[te])  # no recording split across windows
        seen_test[te] += 1
    assert np.all(seen_test == 1)  # every window is out-of-fold exactly once
    # without --group each recording is its own group
    rows2 = embed_corpus_rows(str(probe_data["bundle"]), str(probe_data["csv"]), "covid",
                              ("pos",))
    assert len(set(rows2.groups)) == 32


def test_probe_added_head_scores_with_cough(probe_data, tmp_path, capsys) -> None:
    b = Bundle.load(probe_data["with_head"])
    assert [h["name"] for h in b.manifest.heads] == ["covid"]
    assert _tree_digest(probe_data["bundle"]) == probe_data["digest"]  # original untouched
    assert "heads/covid.json" not in Bundle.load(probe_data["bundle"]).manifest.files
    import soundfile as sf

    rng = np.random.default_rng(99)
    sf.write(tmp_path / "pos.wav", _recording(1, rng), SR)
    sf.write(tmp_path / "neg.wav", _recording(0, rng), SR)
    assert main(["cough", "--bundle", str(probe_data["with_head"]), str(tmp_path / "pos.wav"),
                 str(tmp_path / "neg.wav"), "--json"]) == 0
    pos, neg = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert pos["scores"]["covid"]["positive"] is True
    assert neg["scores"]["covid"]["positive"] is False
    assert "research only" in pos["notices"]


def test_probe_eval_reports_grouped_ci_and_subgroups(probe_data, capsys) -> None:
    args = ["probe", "eval", "--bundle", str(probe_data["with_head"]), "--head", "covid",
            "--data", str(probe_data["csv"]), "--label", "covid", "--positive", "pos",
            "--group", "patient", "--subgroups", "sex", "--bootstrap", "200"]
    assert main(args + ["--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    o = rep["overall"]
    assert o["n"] == 32 and o["groups"] == 8 and o["auroc"] > 0.9
    assert o["ci95"][0] <= o["auroc"] <= o["ci95"][1]
    assert 0 <= o["sensitivity"] <= 1 and 0 <= o["specificity"] <= 1
    assert sorted(r["value"] for r in rep["subgroups"]) == ["F", "M"]
    assert sum(r["n"] for r in rep["subgroups"]) == 32
    # human table, and a head given as a file
    assert main(args[:5] + [str(probe_data["head"])] + args[6:]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "sex=F" in out and "95% CI" in out


def test_metrics_against_sklearn_and_by_hand() -> None:
    pytest.importorskip("sklearn")
    from sklearn.metrics import roc_auc_score

    from hai_edge.heads.probe_train import auroc, bootstrap_auroc_ci, pick_threshold, sens_spec

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.standard_normal(300) + y, 1)  # with ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    y2 = np.array([0, 0, 1, 1, 0, 1])
    s2 = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    # s >= 0.35 -> sens 3/3, spec 2/3 (J 0.667); s >= 0.8 -> sens 2/3, spec 1 (J 0.667): tie
    # keeps the higher threshold
    assert pick_threshold(y2, s2) == 0.8
    assert pick_threshold(y2, s2, sensitivity=1.0) == 0.35
    assert sens_spec(y2, s2, 0.35) == (1.0, pytest.approx(2 / 3))
    lo, hi = bootstrap_auroc_ci(y, s, [str(i // 3) for i in range(300)], 300, seed=1)
    assert lo < auroc(y, s) < hi and hi - lo < 0.3


def test_probe_needs_scikit_learn(monkeypatch) -> None:
    import sys

    from hai_edge.heads import probe_train

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r"hai-edge\[probe\]"):
        probe_train._require_sklearn()


def test_probe_cli_errors_are_one_line(probe_data, tmp_path, capsys) -> None:
    base = ["probe", "train", "--bundle", str(probe_data["bundle"]), "--data",
            str(probe_data["csv"]), "-o", str(tmp_path / "h.json")]
    assert main(base + ["--label", "nope"]) == 2
    assert "no label column 'nope'" in capsys.readouterr().err
    assert main(base + ["--label", "sex"]) == 2  # F/M: which one is positive?
    assert "--positive" in capsys.readouterr().err
    assert main(base + ["--label", "covid", "--positive", "pos", "--add-to-bundle",
                        str(probe_data["bundle"])]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "h.json").exists()


def test_compact_head_is_equivalent_smaller_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(4)
    head = Head(name="h", weights=rng.standard_normal(64), bias=0.2,
                mean=rng.standard_normal(64), scale=rng.uniform(0.5, 2.0, 64),
                calibration=Calibration(CalibrationKind.PLATT, a=0.7, b=-0.1))
    small = head.compact()
    x = rng.standard_normal((50, 64)) * 2
    np.testing.assert_allclose(small.predict_proba(x), head.predict_proba(x), atol=1e-7)
    assert not np.any(small.mean) and np.all(small.scale == 1)
    assert len(small.to_json()) < 0.4 * len(head.to_json())
    assert "standardize" not in json.loads(small.to_json())
    small.save(tmp_path / "h.json")
    back = load_head_file(tmp_path / "h.json")
    assert np.array_equal(back.weights, small.weights) and back.bias == small.bias
    np.testing.assert_array_equal(back.predict_proba(x), small.predict_proba(x))

"""Issue #18: decisions that do not depend on the engine. A head that amplifies INT8 noise fails
the decision gate with its figures and the robust recipe passes; verify checks head scores on the
golden inputs; the decision figures (sensitivity at fixed specificity, ECE) are right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.errors import GateError
from hai_edge.evaluation.decisions import (
    DecisionThresholds,
    auroc,
    compare_decisions,
    decision_failures,
    ece,
    sensitivity_at_specificity,
)

pytest.importorskip("sklearn")


def _engine_rows(seed: int = 0, n: int = 240, noise: float = 0.004):  # noqa: ANN202
    """Three 'engines' = the same embeddings + independent isotropic noise (INT8 rounding).

    Dimensions 0-3 carry a real, wide signal; dimensions 4-23 have a tiny spread (sd 0.004) and
    a weak label shift: standardisation blows them up, so a standard probe leans on them and its
    scores move with the noise; a probe on the raw scale does not."""
    from hai_edge.heads.engine_rows import EngineRows
    from hai_edge.heads.probe_train import EmbeddedRows

    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    base = rng.normal(0, 1.0, (n, 32))
    base[:, :4] += 0.8 * y[:, None]
    base[:, 4:24] = rng.normal(0, 0.004, (n, 20)) + 0.003 * y[:, None]
    rows = {}
    for k, name in enumerate(("onnxruntime", "openvino", "tflite")):
        x = base + np.random.default_rng(100 + k).normal(0, noise, base.shape)
        rows[name] = EmbeddedRows(x, np.arange(n), y, np.array([f"g{i // 2}" for i in range(n)]),
                                  [f"r{i}" for i in range(n)], [{} for _ in range(n)], [],
                                  "hash", {"label": {"column": "y"}})
    return EngineRows(rows)


def test_noise_amplifying_head_fails_the_gate_and_the_robust_recipe_passes() -> None:
    from hai_edge.heads.decisions import gate_head_decisions
    from hai_edge.heads.robust import ROBUST, STANDARD, train_engine_head

    train, held = _engine_rows(0), _engine_rows(1)
    weak = train_engine_head(train, "h", STANDARD)
    with pytest.raises(GateError) as err:
        gate_head_decisions(weak, held, n_boot=50)
    msg = str(err.value)
    assert "max |score diff|" in msg and "> 0.02" in msg and "openvino" in msg
    figs = err.value.figures
    assert figs["passed"] is False and figs["summary"]["max_abs_diff"] > 0.02
    # the override keeps it, and says so
    kept, record = gate_head_decisions(weak, held, n_boot=50, allow_degraded=True)
    assert record["override"] == "allow_degraded"
    assert kept.training["decision_gate"]["passed"] is False

    robust = train_engine_head(train, "h", ROBUST)
    head, record = gate_head_decisions(robust, held, n_boot=50)
    assert record["passed"] and record["summary"]["max_abs_diff"] <= 0.02
    assert record["summary"]["flips"] == 0
    assert head.training["head_recipe"]["name"] == "robust"
    assert head.training["oof_engine_diff_q"]["value"] <= ROBUST.max_score_diff
    assert head.borderline == 0.01 and head.training["subspace_dim"] in ROBUST.noise_subspace
    # and it still separates the classes
    assert record["summary"]["auroc_reference"] > 0.8


def test_sensitivity_at_specificity_and_ece() -> None:
    y = np.array([0] * 10 + [1] * 10)
    s = np.concatenate([np.linspace(0.0, 0.9, 10), np.linspace(0.05, 0.95, 10)])
    # 90 % specificity: the 9 lowest negatives (<= 0.8) fall below the threshold, so it lies
    # just above 0.8: positives 0.85 and 0.95 are found
    assert sensitivity_at_specificity(y, s, 0.9) == pytest.approx(0.2)
    assert sensitivity_at_specificity(y, s, 0.5) == pytest.approx(0.6)  # t just above 0.4
    assert auroc(y, s) == pytest.approx(0.55)
    err, table = ece(np.array([0, 1, 1, 1]), np.array([0.05, 0.95, 0.95, 0.95]), bins=10)
    assert err == pytest.approx(0.05) and sum(r["n"] for r in table) == 4
    err2, _ = ece(np.array([0, 0, 0, 0]), np.array([0.95] * 4), bins=10)
    assert err2 == pytest.approx(0.95)


def test_compare_decisions_counts_flips_and_checks_limits() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    ref = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, 200), 0, 1)
    same = compare_decisions(ref, ref + 0.001, 0.5, y=y, groups=np.arange(200) // 4, n_boot=50)
    assert same["delta_auroc"] == pytest.approx(0.0, abs=1e-4)
    assert decision_failures(same, DecisionThresholds()) == [] or same["flips"] > 0
    moved = ref.copy()
    moved[:20] = 1.0 - moved[:20]
    figs = compare_decisions(ref, moved, 0.5, y=y, n_boot=50)
    bad = decision_failures(figs, DecisionThresholds())
    assert figs["flips"] > 0 and any("flip" in b for b in bad)
    assert any("max |score diff|" in b for b in bad)
    assert figs["delta_auroc_ci95"][0] is not None
    unlabelled = compare_decisions(ref, ref, 0.5)
    assert unlabelled["labelled"] is False and decision_failures(unlabelled,
                                                                 DecisionThresholds()) == []


@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def test_verify_checks_head_scores_on_golden_inputs(wave_bundle: Path, tmp_path: Path) -> None:
    from hai_edge.bundle import Bundle, write_bundle
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.heads.decisions import add_golden_head_scores
    from hai_edge.runtime.heads import Head
    from hai_edge.runtime.verify import verify_bundle

    b = Bundle.load(wave_bundle)
    dim = b.manifest.embedding_dim
    rng = np.random.default_rng(0)
    head = Head("h", weights=rng.normal(0, 0.05, dim), bias=0.0, mean=np.zeros(dim),
                scale=np.ones(dim), threshold=0.5)
    old = add_head_to_bundle(b, head, str(tmp_path / "old"))
    rep = verify_bundle(old)
    assert rep.passed and "head checks skipped" in rep.heads_note  # old golden: still verifies
    assert "head checks skipped" in rep.table()
    new = add_golden_head_scores(old, str(tmp_path / "new"))
    doc = json.loads((new.root / "golden.json").read_text())
    assert set(doc["heads"]["h"]["scores"]) == {m.id for m in new.manifest.models}
    rep = verify_bundle(new)
    assert rep.passed and not rep.heads_note
    ran = [m for m in rep.models if m.status != "skipped"]
    assert ran and all(m.head_max_diff is not None and m.head_max_diff <= 1e-5 for m in ran)

    doc["heads"]["h"]["scores"]["onnx-int8"] = [
        v + 0.05 for v in doc["heads"]["h"]["scores"]["onnx-int8"]]
    files = {n: new.root / n for n in new.manifest.files if n != "golden.json"}
    files["golden.json"] = json.dumps(doc).encode()
    moved = write_bundle(tmp_path / "moved", new.manifest, files)
    rep = verify_bundle(moved)
    assert not rep.passed
    bad = [m for m in rep.models if m.status == "failed"]
    assert [m.model for m in bad] == ["onnx-int8"]
    assert "head h: score moved by 0.05" in bad[0].note
    with pytest.raises(GateError, match="head h: score moved"):
        rep.raise_for_failure()


def test_export_head_decision_gate_refuses_and_records_the_override() -> None:
    """The bundle-level gate on INT8 vs FP32 outputs through a run's inline heads, and the
    ladder's accept callback built from it."""
    from hai_edge.export.bundle_gates import decision_accept, gate_heads
    from hai_edge.quantize.gates import GateThresholds, head_agreement

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (200, 16))
    int8 = ref + rng.normal(0, 0.5, ref.shape)
    loud = {"name": "loud", "kind": "logistic", "weights": [1.0] * 16, "bias": 0.0,
            "threshold": 0.5}
    quiet = {**loud, "name": "quiet", "weights": [0.01] * 16, "threshold": 0.9}
    accept = decision_accept([loud, quiet], ref)
    why = accept(int8)
    assert "head loud: max |score diff|" in why and "flip" in why and "quiet" not in why
    assert decision_accept([quiet], ref)(int8) == "" and decision_accept([], ref) is None
    figs = {"onnx-int8": [{**h, "n": len(ref)} for h in head_agreement([loud, quiet], ref, int8)]}
    with pytest.raises(GateError, match="head decision gate failed.*onnx-int8: head loud"):
        gate_heads(figs, GateThresholds(), [], allow=False)
    overrides: list = []
    gate_heads(figs, GateThresholds(), overrides, allow=True)
    assert overrides == [{"override": "allow_degraded", "gate": "head_decisions",
                          "model": "onnx-int8", "failures": [why]}]


def test_robust_recipe_on_engines_that_agree_exactly_falls_back_to_the_full_space() -> None:
    """No engine difference to avoid (two identical engines): no subspace, no crash."""
    from hai_edge.heads.engine_rows import EngineRows
    from hai_edge.heads.robust import ROBUST, train_engine_head

    rows = _engine_rows(0)
    same = EngineRows({"onnxruntime": rows.first, "openvino": rows.first})
    head = train_engine_head(same, "h", ROBUST)
    assert "subspace_dim" not in head.training and head.training["oof_engine_max_abs_diff"] == 0

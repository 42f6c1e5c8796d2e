"""Fidelity metrics and the probe recipe against independent recomputation on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from hai_edge.errors import HaiEdgeError
from hai_edge.distill.fidelity import (
    build_report,
    cosine_rows,
    fidelity_metrics,
    knn_overlap,
    render_markdown,
    subgroup_value,
)
from hai_edge.evaluation.probes import LabelSpec, binary_labels, grouped_folds, probe_auroc

pytest.importorskip("sklearn")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def test_cosines_and_centred_cosines_by_hand() -> None:
    rng = np.random.default_rng(0)
    t = rng.standard_normal((20, 6)) + 3.0  # a shared offset inflates plain cosine
    s = t + 0.8 * rng.standard_normal((20, 6))
    mean = rng.standard_normal(6) + 3.0
    m = fidelity_metrics(s, t, mean, k=3)
    cos = [_cos(s[i], t[i]) for i in range(20)]
    ctr = [_cos(s[i] - mean, t[i] - mean) for i in range(20)]
    assert m["n"] == 20
    assert m["cosine_mean"] == pytest.approx(np.mean(cos), abs=1e-12)
    assert m["cosine_p5"] == pytest.approx(np.percentile(cos, 5), abs=1e-12)
    assert m["centred_cosine_mean"] == pytest.approx(np.mean(ctr), abs=1e-12)
    assert m["centred_cosine_p5"] == pytest.approx(np.percentile(ctr, 5), abs=1e-12)
    assert m["centred_cosine_mean"] < m["cosine_mean"]
    # zero rows: both zero -> 1, one zero -> 0
    z = np.zeros((2, 3))
    o = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    assert cosine_rows(z, o).tolist() == [1.0, 0.0]


def test_cosine_rows_is_the_one_shared_metric() -> None:
    """Distillation fidelity, export parity and the INT8 gates use one cosine
    (hai_edge.evaluation.metrics): flattened rows, never above 1 from rounding."""
    from hai_edge.evaluation.metrics import cosine_rows as shared
    from hai_edge.export.parity import cosine_rows as parity
    from hai_edge.quantize.gates import cosine_rows as gates

    assert cosine_rows is shared and parity is shared and gates is shared
    x = np.random.default_rng(0).standard_normal((200, 7))
    na = np.linalg.norm(x, axis=1)
    assert (np.einsum("ij,ij->i", x, x) / (na * na) > 1.0).any()  # what rounding does unclipped
    assert (cosine_rows(x, x) <= 1.0).all() and np.allclose(cosine_rows(x, x), 1.0)
    cube = np.arange(12.0).reshape(2, 2, 3)
    assert np.allclose(cosine_rows(cube, -cube), [-1.0, -1.0], atol=1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        cosine_rows(np.ones((2, 3)), np.ones((2, 4)))


def test_knn_overlap_identical_rotated_and_random() -> None:
    rng = np.random.default_rng(1)
    t = rng.standard_normal((200, 16))
    q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    assert knn_overlap(t, t, 5) == 1.0
    assert knn_overlap(t @ q * 3.0, t, 5) == pytest.approx(1.0)  # cosine geometry preserved
    r = knn_overlap(rng.standard_normal((200, 16)), t, 5)
    assert r < 0.1  # chance level is k / (n - 1) = 0.025
    # brute-force recomputation on a small set
    a, b = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))

    def nn(x: np.ndarray, i: int) -> set[int]:
        sims = [(-_cos(x[i], x[j]), j) for j in range(len(x)) if j != i]
        return {j for _, j in sorted(sims)[:3]}

    want = np.mean([len(nn(a, i) & nn(b, i)) / 3 for i in range(12)])
    assert knn_overlap(a, b, 3) == pytest.approx(want)


def _grouped_problem(n_groups: int, per: int, separable: bool, seed: int):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per)
    y = np.repeat(rng.permutation(np.arange(n_groups) % 2), per)  # a label per group
    x = rng.standard_normal((len(y), 8))
    if separable:
        x[:, 0] += 4.0 * (2 * y - 1)
    else:
        y = rng.integers(0, 2, len(y))
    return x, y, groups


def test_grouped_folds_never_leak_a_group() -> None:
    x, y, groups = _grouped_problem(30, 3, True, 0)
    folds = grouped_folds(y, groups, 5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))  # test folds partition the rows
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert set(y[te].tolist()) == {0, 1}


def test_probe_separable_and_random() -> None:
    x, y, groups = _grouped_problem(30, 3, True, 1)
    res = probe_auroc(x, y, groups, seed=0)
    assert res.auroc > 0.95
    assert res.folds == 5 and len(res.chosen_c) == 5
    assert not np.isnan(res.scores).any()
    aucs = [probe_auroc(*_grouped_problem(30, 3, False, s)[:3], seed=0).auroc for s in (2, 3, 4)]
    assert abs(float(np.mean(aucs)) - 0.5) < 0.12


def test_binary_labels_positive_values_filters_and_counts() -> None:
    metas = [{"dx": "BCC", "src": "a"}, {"dx": "NEV", "src": "a"}, {"dx": "MEL", "src": "b"},
             {"dx": "", "src": "a"}, {"dx": "SEK", "src": "a"}]
    y, keep, info = binary_labels(metas, LabelSpec("dx", ("BCC", "SCC", "MEL")))
    assert y.tolist() == [1, 0, 1, -1, 0] and keep.sum() == 4
    assert info["n_unlabelled"] == 1 and info["positive_values_not_seen"] == ["SCC"]
    y, keep, info = binary_labels(metas, LabelSpec("dx", ("BCC", "MEL"), (("src", "a"),)))
    assert y.tolist() == [1, 0, -1, -1, 0]
    assert info["n_filtered_out"] == 1 and info["n_unlabelled"] == 1 and info["n"] == 3
    y, _, _ = binary_labels([{"c": "1"}, {"c": "0"}, {"c": "True"}], LabelSpec("c"))
    assert y.tolist() == [1, 0, 1]
    with pytest.raises(HaiEdgeError, match="--positive"):
        binary_labels(metas, LabelSpec("dx"))


def test_subgroup_values_band_ages() -> None:
    assert subgroup_value({"age": "29"}, "age") == "0-29"
    assert subgroup_value({"age": "60.0"}, "age") == "60-74"
    assert subgroup_value({"age": "81"}, "age") == "75+"
    assert subgroup_value({"age": ""}, "age") == "unknown"
    assert subgroup_value({"sex": "F"}, "sex") == "F"


def test_build_report_items_probe_and_subgroups() -> None:
    rng = np.random.default_rng(5)
    n_items = 60
    ids = [f"i{k}" for k in range(n_items)]
    y = rng.permutation(np.arange(n_items) % 2)
    metas = {iid: {"lab": str(int(lab)), "sex": "MF"[k % 2], "age": str(20 + k)}
             for k, (iid, lab) in enumerate(zip(ids, y))}
    metas[ids[0]]["lab"] = ""  # unlabelled: excluded from the probe, counted
    teacher_items = rng.standard_normal((n_items, 8))
    teacher_items[:, 0] += 3.0 * (2 * y - 1)
    # two rows (windows) per item; the student is the teacher plus noise
    row_items = [iid for iid in ids for _ in range(2)]
    t_rows = np.repeat(teacher_items, 2, axis=0) + 0.1 * rng.standard_normal((2 * n_items, 8))
    s_rows = t_rows + 0.3 * rng.standard_normal(t_rows.shape)
    groups = {iid: f"g{k // 2}" for k, iid in enumerate(ids)}
    rep = build_report(s_rows, t_rows, row_items, metas, groups, t_rows.mean(0),
                       label=LabelSpec("lab"), subgroups=("sex", "age"), seed=0, probe_repeats=2)
    assert rep["rows"]["n"] == 120 and rep["items"]["n"] == n_items
    assert rep["rows"]["cosine_mean"] == pytest.approx(cosine_rows(s_rows, t_rows).mean(),
                                                       abs=1e-4)
    probe = rep["probe"]
    assert probe["counts"]["n"] == n_items - 1 and probe["counts"]["n_unlabelled"] == 1
    assert probe["teacher"]["auroc"] > 0.9 and probe["student"]["auroc"] > 0.8
    assert probe["repeats"] == 2 and len(probe["teacher"]["aurocs"]) == 2
    assert probe["teacher"]["auroc"] == pytest.approx(np.mean(probe["teacher"]["aurocs"]), abs=1e-4)
    assert sum(r["n"] for r in rep["subgroups"]["sex"]) == 120
    assert sum(r["n"] for r in probe["subgroups"]["age"]) == n_items - 1
    md = render_markdown(rep)
    assert "linear probe: lab" in md and "| teacher |" in md and "## by age" in md

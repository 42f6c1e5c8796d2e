"""Statistics of the report: per-row agreement, grouped bootstrap CIs, label-efficiency draws.

Everything is seeded (``numpy.random.default_rng(seed)``) and documented in docs/report.md so that
a reader can recompute any number. The probe itself is the project's official recipe
(:func:`hai_edge.evaluation.probes.probe_auroc`); nothing here refits it differently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.distill.fidelity import cosine_rows, topk_neighbours
from hai_edge.evaluation.probes import grouped_folds, probe_auroc

__all__ = [
    "LabelDraw",
    "auroc",
    "auroc_fast",
    "centred_cosine",
    "curve_summary",
    "draw_training_labels",
    "eval_split",
    "grouped_bootstrap",
    "item_means",
    "knn_rows",
    "label_efficiency",
    "oof_probe",
    "summary",
]


def summary(values: np.ndarray) -> dict[str, float | int]:
    """n, mean, median, p5, min, max of a distribution (float64)."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "p5": float(np.percentile(v, 5)), "min": float(v.min()), "max": float(v.max())}


def knn_rows(a: np.ndarray, b: np.ndarray, k: int = 5) -> np.ndarray:
    """Per row: |N_k^a(i) ∩ N_k^b(i)| / k (cosine neighbours within the set). Its mean is
    :func:`hai_edge.distill.fidelity.knn_overlap`; per row it can be averaged per subgroup."""
    n = len(a)
    k = min(k, n - 1)
    if k < 1:
        return np.full(n, np.nan)
    na, nb = topk_neighbours(a, k), topk_neighbours(b, k)
    return np.array([len(set(na[i]) & set(nb[i])) / k for i in range(n)], dtype=np.float64)


def item_means(row_items: Sequence[str], x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(item ids in first-seen order, per-item mean of their rows): audio windows -> recording."""
    order = list(dict.fromkeys(row_items))
    index = {iid: i for i, iid in enumerate(order)}
    inv = np.array([index[i] for i in row_items])
    out = np.zeros((len(order), x.shape[1]))
    np.add.at(out, inv, np.asarray(x, dtype=np.float64))
    return order, out / np.bincount(inv, minlength=len(order))[:, None]


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    """scikit-learn's AUROC; None unless both classes are present (NaN scores dropped)."""
    from sklearn.metrics import roc_auc_score

    y, s = np.asarray(y), np.asarray(s, dtype=np.float64)
    ok = ~np.isnan(s)
    if len(set(y[ok].tolist())) < 2:
        return None
    return float(roc_auc_score(y[ok], s[ok]))


def auroc_fast(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC with mid-ranks for ties (= roc_auc_score), for bootstrap loops."""
    from scipy.stats import rankdata

    pos = y == 1
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def grouped_bootstrap(y: np.ndarray, scores: Mapping[str, np.ndarray], groups: Sequence[str],
                      *, n_boot: int, seed: int, reference: str | None = None,
                      mask: np.ndarray | None = None) -> dict[str, Any]:
    """AUROC with a grouped (cluster) bootstrap 95% CI for every scorer, on the same draws.

    Draw: the G groups of the (masked) items are resampled with replacement G times (``rng =
    default_rng(seed)``, ``rng.integers(0, G, G)``) and all items of each drawn group enter;
    draws lacking a class are skipped (counted). CI = 2.5th and 97.5th percentiles. With
    ``reference``, the paired difference ``scorer - reference`` gets its own CI per draw."""
    y = np.asarray(y)
    sel = np.ones(len(y), bool) if mask is None else np.asarray(mask, bool)
    names = list(scores)
    for n in names:
        sel &= ~np.isnan(np.asarray(scores[n], dtype=np.float64))
    idx_all = np.flatnonzero(sel)
    g = np.asarray([str(v) for v in groups])[idx_all]
    uniq, inv = np.unique(g, return_inverse=True)
    members = [idx_all[inv == i] for i in range(len(uniq))]
    out: dict[str, Any] = {"n": int(len(idx_all)), "n_positive": int(y[idx_all].sum()),
                           "groups": int(len(uniq)), "n_boot": int(n_boot), "seed": int(seed)}
    point = {n: auroc(y[idx_all], np.asarray(scores[n])[idx_all]) for n in names}
    if any(v is None for v in point.values()):
        out["skipped"] = "needs both classes"
        return out
    rng = np.random.default_rng(seed)
    draws = {n: [] for n in names}
    skipped = 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[i] for i in pick])
        yy = y[idx]
        if yy.min() == yy.max():
            skipped += 1
            continue
        for n in names:
            draws[n].append(auroc_fast(yy, np.asarray(scores[n], dtype=np.float64)[idx]))
    out["draws_skipped"] = skipped
    per: dict[str, Any] = {}
    for n in names:
        d = np.asarray(draws[n])
        lo, hi = (np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan))
        per[n] = {"auroc": point[n], "ci_low": float(lo), "ci_high": float(hi)}
        if reference is not None and n != reference and len(d):
            diff = d - np.asarray(draws[reference])
            dlo, dhi = np.percentile(diff, [2.5, 97.5])
            per[n]["delta_vs_" + reference] = point[n] - point[reference]
            per[n]["delta_ci_low"], per[n]["delta_ci_high"] = float(dlo), float(dhi)
    out["scorers"] = per
    return out


def oof_probe(x: np.ndarray, y: np.ndarray, groups: Sequence[str],
              folds: list[tuple[np.ndarray, np.ndarray]], seed: int) -> Any:
    """The official probe's out-of-fold scores on fixed folds (a ``ProbeResult``)."""
    return probe_auroc(x, y, groups, folds=folds, seed=seed)


# ------------------------------------------------------------------------------ label efficiency
def eval_split(y: np.ndarray, groups: Sequence[str], seed: int, n_splits: int = 3
               ) -> tuple[np.ndarray, np.ndarray]:
    """(pool, eval) item indices: the eval part is fold 0 of a stratified grouped K-fold
    (``grouped_folds``), so no group is on both sides; the rest is the pool labels come from."""
    tr, te = grouped_folds(y, groups, n_splits, seed)[0]
    return np.sort(tr), np.sort(te)


def draw_training_labels(y: np.ndarray, groups: Sequence[str], pool: np.ndarray, n: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``n`` pool items, stratified (the pool's class ratio; at least 2 per class) and spread
    over groups: within each class items are shuffled and distinct groups come first, so 8 labels
    are 8 patients whenever the pool has them."""
    y = np.asarray(y)
    g = np.asarray([str(v) for v in groups])
    pos, neg = pool[y[pool] == 1], pool[y[pool] == 0]
    k_pos = int(round(n * len(pos) / len(pool)))
    k_pos = min(max(k_pos, 2), len(pos), n - 2)
    k_neg = min(n - k_pos, len(neg))
    picked = []
    for members, k in ((pos, k_pos), (neg, k_neg)):
        perm = members[rng.permutation(len(members))]
        seen: dict[str, int] = {}
        rank = np.empty(len(perm), dtype=np.int64)
        for i, item in enumerate(perm):
            rank[i] = seen.get(g[item], 0)
            seen[g[item]] = rank[i] + 1
        picked.append(perm[np.argsort(rank, kind="stable")[:k]])
    return np.sort(np.concatenate(picked))


@dataclasses.dataclass(frozen=True)
class LabelDraw:
    n_labels: int
    draw: int
    train: np.ndarray  # item indices
    aurocs: dict[str, float | None]  # scorer -> AUROC on the eval part
    chosen_c: dict[str, float]
    eval_scores: dict[str, np.ndarray]  # scorer -> probabilities on the eval items


def label_efficiency(xs: Mapping[str, np.ndarray], y: np.ndarray, groups: Sequence[str],
                     sizes: Sequence[int | str], repeats: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, list[int], list[LabelDraw]]:
    """Probe AUROC on a fixed grouped eval part versus the number of training labels.

    ``sizes``: ints and/or ``"all"`` (the whole pool, one draw). Sizes the pool cannot supply are
    dropped. Every scorer gets the same draws (paired); the probe is the official recipe (C by an
    inner grouped CV on the drawn labels)."""
    y = np.asarray(y)
    pool, ev = eval_split(y, groups, seed)
    rng = np.random.default_rng(seed)
    ns: list[int] = []
    for s in sizes:
        n = len(pool) if s == "all" else int(s)
        if 4 <= n <= len(pool) and n not in ns:
            ns.append(n)
    ns.sort()
    draws: list[LabelDraw] = []
    for n in ns:
        for r in range(1 if n == len(pool) else repeats):
            train = pool if n == len(pool) else draw_training_labels(y, groups, pool, n, rng)
            folds = [(train, ev)]
            aucs: dict[str, float | None] = {}
            cs: dict[str, float] = {}
            scores: dict[str, np.ndarray] = {}
            for name, x in xs.items():
                res = probe_auroc(x, y, groups, folds=folds, seed=seed + r)
                aucs[name] = auroc(y[ev], res.scores[ev])
                cs[name] = float(res.chosen_c[0]) if res.chosen_c else float("nan")
                scores[name] = res.scores[ev]
            draws.append(LabelDraw(n, r, train, aucs, cs, scores))
    return pool, ev, ns, draws


def curve_summary(draws: Sequence[LabelDraw], name: str, n: int,
                  mask: np.ndarray | None = None, y_eval: np.ndarray | None = None
                  ) -> dict[str, Any]:
    """Mean, sd and 2.5/97.5 percentiles of AUROC over the draws of size ``n``; with ``mask``
    (over eval items) the AUROC is recomputed on that subgroup of the eval part."""
    vals = []
    for d in draws:
        if d.n_labels != n:
            continue
        if mask is None:
            v = d.aurocs.get(name)
        else:
            v = auroc(y_eval[mask], d.eval_scores[name][mask])
        if v is not None:
            vals.append(v)
    if not vals:
        return {"n_labels": n, "draws": 0}
    a = np.asarray(vals)
    return {"n_labels": n, "draws": int(len(a)), "mean": float(a.mean()), "sd": float(a.std()),
            "p2_5": float(np.percentile(a, 2.5)), "p97_5": float(np.percentile(a, 97.5))}


def centred_cosine(a: np.ndarray, b: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return cosine_rows(a - centre, b - centre)

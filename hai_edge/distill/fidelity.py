"""Fidelity of a student to its teacher on held-out data: the figures that gate an export.

- cosine student vs teacher per row (mean, p5);
- centred cosine: both minus the teacher's TRAIN mean (plain cosine is inflated by the direction
  every embedding shares; a student that outputs the mean scores high on it and ~0 here);
- kNN agreement: mean overlap of each row's top-k cosine neighbours within the held-out set,
  teacher space vs student space (1.0 identical geometry; ~k/(n-1) for unrelated spaces);
- linear-probe AUROC (``probe``) on teacher vs student embeddings, per item (audio windows are
  averaged per recording), on the same grouped folds;
- all of the above per subgroup (``--subgroups sex,age,fitspatrick``) with counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.evaluation.metrics import cosine_rows
from hai_edge.evaluation.probes import LabelSpec, binary_labels, grouped_folds, probe_auroc

__all__ = [
    "build_report",
    "cosine_rows",
    "fidelity_metrics",
    "knn_overlap",
    "render_markdown",
    "subgroup_value",
    "topk_neighbours",
    "NOT_LEARNED_CENTRED",
    "not_learned_warning",
]

AGE_BANDS = ((0, 30), (30, 45), (45, 60), (60, 75), (75, 200))
# Held-out centred cosine below which a student has not learned its teacher (0 = chance): its
# embeddings only share the teacher's mean direction. INT8 cannot fix that, nor is it to blame.
NOT_LEARNED_CENTRED = 0.2


def not_learned_warning(report: Mapping[str, Any]) -> str | None:
    """A plain sentence when the held-out report says the student did not learn, else None."""
    rows = report.get("rows") or {}
    ctr = rows.get("centred_cosine_mean")
    if not isinstance(ctr, (int, float)) or ctr >= NOT_LEARNED_CENTRED:
        return None
    return (f"the student has not learned its teacher: held-out centred cosine {ctr:.3f} "
            f"(< {NOT_LEARNED_CENTRED}; 0 is chance). Train longer, on more data, or start from "
            "a pretrained student (--init); exporting it will fail the INT8 gates for this "
            "reason, not because of INT8")


def topk_neighbours(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices [n, k] of each row's k most cosine-similar other rows (ties: lower index)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    xn = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    out = np.empty((len(x), k), dtype=np.int64)
    for i in range(0, len(x), chunk):
        sim = xn[i:i + chunk] @ xn.T
        sim[np.arange(len(sim)), np.arange(i, i + len(sim))] = -np.inf  # not yourself
        out[i:i + chunk] = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return out


def knn_overlap(student: np.ndarray, teacher: np.ndarray, k: int = 5) -> float:
    """Mean |N_k^student(i) ∩ N_k^teacher(i)| / k over rows (neighbours within the set)."""
    n = len(teacher)
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    a, b = topk_neighbours(student, k), topk_neighbours(teacher, k)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(n)]))


def fidelity_metrics(student: np.ndarray, teacher: np.ndarray, train_mean: np.ndarray,
                     k: int = 5) -> dict[str, float]:
    """Cosine / centred-cosine summary and kNN agreement for row-aligned embeddings."""
    cos = cosine_rows(student, teacher)
    ctr = cosine_rows(student - train_mean, teacher - train_mean)
    return {
        "n": int(len(cos)),
        "cosine_mean": float(cos.mean()),
        "cosine_p5": float(np.percentile(cos, 5)),
        "centred_cosine_mean": float(ctr.mean()),
        "centred_cosine_p5": float(np.percentile(ctr, 5)),
        f"knn{k}_overlap": knn_overlap(student, teacher, k),
    }


def subgroup_value(meta: Mapping[str, str], column: str) -> str:
    """The subgroup a row falls in for ``column``; ages are banded, blanks are 'unknown'."""
    raw = (meta.get(column) or "").strip()
    if not raw:
        return "unknown"
    if "age" in column.lower():
        try:
            age = float(raw)
        except ValueError:
            return raw
        if math.isfinite(age):
            for lo, hi in AGE_BANDS:
                if lo <= age < hi:
                    return f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+"
    return raw


def _round(d: Any) -> Any:
    if isinstance(d, float):
        return round(d, 4) if math.isfinite(d) else None
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_round(v) for v in d]
    return d


def _subgroup_aurocs(y: np.ndarray, scores: np.ndarray, sel: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    ok = sel & ~np.isnan(scores)
    return float(roc_auc_score(y[ok], scores[ok])) if len(set(y[ok].tolist())) == 2 else None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _probe_section(s_items: np.ndarray, t_items: np.ndarray, metas: Sequence[Mapping[str, str]],
                   groups: Sequence[str], label: LabelSpec, seed: int,
                   subgroups: Sequence[str], repeats: int) -> dict[str, Any]:
    """Teacher and student probes on the same folds, repeated over ``repeats`` fold seeds
    (``seed``, ``seed + 1``, ...): AUROCs are the mean over repeats (sd alongside), which takes
    most of the fold-assignment noise out of the comparison on a small held-out set."""
    y_all, keep, info = binary_labels(metas, label)
    out: dict[str, Any] = {"counts": info}
    y = y_all[keep]
    g = [groups[i] for i in np.flatnonzero(keep)]
    runs = []
    for r in range(max(1, repeats)):
        try:
            folds = grouped_folds(y, g, 5, seed + r)
        except Exception as exc:  # too few groups/classes on the held-out side
            out["skipped"] = str(exc)
            return out
        runs.append((probe_auroc(t_items[keep], y, g, folds=folds, seed=seed + r),
                     probe_auroc(s_items[keep], y, g, folds=folds, seed=seed + r)))
    for who, k in (("teacher", 0), ("student", 1)):
        aucs = [run[k].auroc for run in runs]
        out[who] = {**runs[0][k].to_dict(), "auroc": float(np.mean(aucs)),
                    "auroc_sd": float(np.std(aucs)), "aurocs": aucs}
    deltas = [s.auroc - t.auroc for t, s in runs]
    out.update({"repeats": len(runs), "auroc_delta": float(np.mean(deltas)),
                "auroc_delta_sd": float(np.std(deltas))})
    kept_metas = [metas[i] for i in np.flatnonzero(keep)]
    per: dict[str, list[dict[str, Any]]] = {}
    for col in subgroups:
        rows = []
        values = np.array([subgroup_value(m, col) for m in kept_metas])
        for v in sorted(set(values.tolist())):
            sel = values == v
            ys = y[sel]
            row: dict[str, Any] = {"value": v, "n": int(sel.sum()), "n_positive": int(ys.sum())}
            if 0 < ys.sum() < len(ys):
                row["teacher_auroc"] = _mean([_subgroup_aurocs(y, t.scores, sel) for t, _ in runs])
                row["student_auroc"] = _mean([_subgroup_aurocs(y, s.scores, sel) for _, s in runs])
            rows.append(row)
        per[col] = rows
    if per:
        out["subgroups"] = per
    return out


def build_report(
    student_rows: np.ndarray,
    teacher_rows: np.ndarray,
    row_items: Sequence[str],
    metas: Mapping[str, Mapping[str, str]],
    item_groups: Mapping[str, str],
    train_mean: np.ndarray,
    *,
    label: LabelSpec | None = None,
    subgroups: Sequence[str] = (),
    seed: int = 0,
    k: int = 5,
    probe_repeats: int = 1,
) -> dict[str, Any]:
    """The fidelity report (a JSON-able dict) for held-out rows (clean view, row-aligned).

    ``row_items`` names each row's item; ``metas``/``item_groups`` are keyed by item id.
    """
    student_rows = np.asarray(student_rows, dtype=np.float64)
    teacher_rows = np.asarray(teacher_rows, dtype=np.float64)
    train_mean = np.asarray(train_mean, dtype=np.float64)
    report: dict[str, Any] = {"rows": fidelity_metrics(student_rows, teacher_rows, train_mean, k)}
    cos = cosine_rows(student_rows, teacher_rows)
    ctr = cosine_rows(student_rows - train_mean, teacher_rows - train_mean)
    per: dict[str, list[dict[str, Any]]] = {}
    for col in subgroups:
        values = np.array([subgroup_value(metas[i], col) for i in row_items])
        per[col] = [{"value": v, "n": int((values == v).sum()),
                     "cosine_mean": float(cos[values == v].mean()),
                     "centred_cosine_mean": float(ctr[values == v].mean())}
                    for v in sorted(set(values.tolist()))]
    if per:
        report["subgroups"] = per
    # per item: mean over an item's rows (audio windows)
    order = list(dict.fromkeys(row_items))
    index = {iid: i for i, iid in enumerate(order)}
    inv = np.array([index[i] for i in row_items])
    counts = np.bincount(inv, minlength=len(order))[:, None]
    s_items = np.zeros((len(order), student_rows.shape[1]))
    t_items = np.zeros_like(s_items)
    np.add.at(s_items, inv, student_rows)
    np.add.at(t_items, inv, teacher_rows)
    s_items /= counts
    t_items /= counts
    report["items"] = {"n": len(order),
                       "cosine_mean": float(cosine_rows(s_items, t_items).mean())}
    if label is not None:
        report["probe"] = _probe_section(
            s_items, t_items, [metas[i] for i in order],
            [item_groups.get(i) or f"item:{i}" for i in order], label, seed, subgroups,
            probe_repeats)
    return _round(report)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_markdown(report: Mapping[str, Any], title: str = "Fidelity (held-out)") -> str:
    """Human-readable report (also printed by ``hai-edge distill``)."""
    r = report["rows"]
    knn = next(k for k in r if k.startswith("knn"))
    lines = [f"# {title}", "",
             "| rows | cosine mean | cosine p5 | centred mean | centred p5 | "
             f"{knn.replace('_', ' ')} |",
             "|---:|---:|---:|---:|---:|---:|",
             f"| {r['n']} | {_fmt(r['cosine_mean'])} | {_fmt(r['cosine_p5'])} | "
             f"{_fmt(r['centred_cosine_mean'])} | {_fmt(r['centred_cosine_p5'])} | "
             f"{_fmt(r[knn])} |", ""]
    for col, rows in (report.get("subgroups") or {}).items():
        lines += [f"## by {col}", "", "| value | n | cosine mean | centred mean |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {x['value']} | {x['n']} | {_fmt(x['cosine_mean'])} | "
                  f"{_fmt(x['centred_cosine_mean'])} |" for x in rows]
        lines.append("")
    probe = report.get("probe")
    if probe:
        c = probe["counts"]
        lab = c["label"]
        desc = lab["column"] + (f" in {{{','.join(lab['positive'])}}}" if lab["positive"] else "")
        if lab["filters"]:
            desc += f" where {' and '.join(lab['filters'])}"
        lines += [f"## linear probe: {desc}", "",
                  f"{c['n']} items ({c['n_positive']} positive); excluded: "
                  f"{c['n_unlabelled']} without a label, {c['n_filtered_out']} by the filter.", ""]
        if "skipped" in probe:
            lines += [f"probe skipped: {probe['skipped']}", ""]
        else:
            reps = probe.get("repeats", 1)
            lines += [f"AUROC: mean over {reps} repetition(s) of grouped 5-fold CV (fold seeds "
                      f"differ per repetition; teacher and student share folds).", "",
                      "| embeddings | AUROC | sd | folds | C per fold (first repetition) |",
                      "|---|---:|---:|---:|---|"]
            for who in ("teacher", "student"):
                p = probe[who]
                lines.append(f"| {who} | {_fmt(p['auroc'])} | {_fmt(p.get('auroc_sd'))} | "
                             f"{p['folds']} | {', '.join(f'{x:g}' for x in p['chosen_C'])} |")
            lines += ["", f"student - teacher AUROC: {_fmt(probe['auroc_delta'])} "
                      f"(sd over repetitions {_fmt(probe.get('auroc_delta_sd'))})", ""]
            for col, rows in (probe.get("subgroups") or {}).items():
                lines += [f"### probe by {col}", "",
                          "| value | n | positive | teacher AUROC | student AUROC |",
                          "|---|---:|---:|---:|---:|"]
                lines += [f"| {x['value']} | {x['n']} | {x['n_positive']} | "
                          f"{_fmt(x.get('teacher_auroc'))} | {_fmt(x.get('student_auroc'))} |"
                          for x in rows]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"

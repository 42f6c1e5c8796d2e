"""The report's numbers: one JSON-able dict assembled from :class:`Collected`.

The HTML page and the CLI summary are rendered from this dict only, so every figure a reader
sees is in ``report.json`` too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import ModelEntry, Provenance
from hai_edge.distill.fidelity import cosine_rows, subgroup_value
from hai_edge.evaluation.probes import LabelSpec, binary_labels, grouped_folds
from hai_edge.report import _stats
from hai_edge.report._collect import STUDENT, TEACHER, Collected, tool_versions

__all__ = ["REPORT_SCHEMA", "ReportOptions", "build_report_data"]

REPORT_SCHEMA = "hai-edge/report/1"
NOT_CLINICAL = "not for clinical use"


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """What to compute. ``label`` None: the run's own ``--label`` settings (if any)."""

    label: LabelSpec | None = None
    subgroups: tuple[str, ...] | None = None  # None: the run's --subgroups
    label_sizes: tuple[int | str, ...] = (8, 16, 32, 64, 128, "all")
    repeats: int = 10
    bootstrap: int = 1000
    seed: int = 0
    folds: int = 5
    knn_k: int = 5
    title: str | None = None


def _r(v: Any, nd: int = 6) -> Any:
    """Round floats for JSON (non-finite -> None), recursively."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return round(v, nd) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.ndarray):
        return _r(v.tolist(), nd)
    if isinstance(v, Mapping):
        return {str(k): _r(x, nd) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_r(x, nd) for x in v]
    return v


# ------------------------------------------------------------------------------ provenance
def _provenance(c: Collected) -> dict[str, Any]:
    meta = c.run_meta
    m = c.bundle.manifest if c.bundle is not None else None
    bprov = m.provenance_info() if m is not None else Provenance()
    bstudent = dict(bprov.student or {})
    teacher = dict(meta.get("teacher") or (bprov.teacher.to_dict() if bprov.teacher else {}))
    st = dict(meta.get("student") or {})
    emb = dict(meta.get("embedding") or {})
    tr = dict(meta.get("training") or {})
    student = {k: v for k, v in {
        "preset": st.get("name") or bstudent.get("name"),
        "params": st.get("exported_params") or bstudent.get("params"),
        "macs": st.get("exported_macs") or bstudent.get("macs"),
        "student_dim": emb.get("student_dim"), "exported": emb.get("exported"),
        "exported_dim": emb.get("exported_dim") or (m.embedding_dim if m else None),
        "epochs_done": tr.get("epochs_done"), "best_epoch": tr.get("best_epoch"),
        "stopped": tr.get("stopped"), "status": meta.get("status"),
    }.items() if v is not None}
    data = dict(meta.get("data") or {})
    prov: dict[str, Any] = {
        "teacher": teacher,
        "student": student,
        "data": {k: v for k, v in {
            "corpus": data.get("path"), "corpus_hash": data.get("corpus_hash")
            or bprov.data_hash, "corpus_items": data.get("corpus_items"),
            "items_with_targets": data.get("items_with_targets"),
            "group_col": data.get("group_col"),
            "split": meta.get("split"), "labels": c.label_source or None}.items()
            if v is not None},
        "run_dir": str(c.run_dir) if c.run_dir else None,
    }
    notices: list[str] = []
    if m is not None:
        notice_file = c.bundle.root / "NOTICE"
        prov["bundle"] = {
            "name": m.name, "root": str(c.bundle.root), "created": m.created,
            "hai_edge_version": m.hai_edge_version, "modality": m.modality.value,
            "embedding_dim": m.embedding_dim, "models": [e.id for e in m.models],
            "command": bprov.command, "calibration": bprov.calibration,
            "heldout": bprov.heldout, "device_profile": bprov.device_profile,
            "degraded": m.fidelity_info().is_degraded,
        }
        prov["licences"] = {"teacher": teacher.get("licence"),
                            "licence_terms": bprov.licence_terms,
                            "notice_file": notice_file.read_text(encoding="utf-8")
                            if "NOTICE" in m.files and notice_file.is_file() else None}
        notices += list(m.notices)
    else:
        prov["licences"] = {"teacher": teacher.get("licence")}
    for text in (teacher.get("notice"), teacher.get("notes")):
        if text and NOT_CLINICAL in str(text).lower() and not any(
                NOT_CLINICAL in n.lower() for n in notices):
            notices.append(f"teacher {teacher.get('id', '?')}: {text}")
    prov["notices"] = notices
    prov["not_for_clinical_use"] = any(NOT_CLINICAL in n.lower() for n in notices)
    prov["tool_versions"] = {"run": meta.get("versions") or {},
                             "bundle": dict(bprov.tool_versions or {}),
                             "report": tool_versions()}
    return prov


# ------------------------------------------------------------------------------ fidelity
def _comparisons(c: Collected) -> list[tuple[str, str, str, np.ndarray | None, str]]:
    """(id, candidate, reference, centre, centre description) pairs to compare."""
    out = []
    dims_ok = {n for n, x in c.embeddings.items()
               if x.shape[1] == c.embeddings[TEACHER].shape[1]}
    int8 = [e.name for e in c.embedders if e.name not in (TEACHER, STUDENT)]
    if STUDENT in dims_ok:
        out.append((f"{STUDENT}|{TEACHER}", STUDENT, TEACHER, c.teacher_train_mean,
                    "teacher train mean"))
    for n in int8:
        if n in dims_ok:
            out.append((f"{n}|{TEACHER}", n, TEACHER, c.teacher_train_mean, "teacher train mean"))
    fp32_mean = c.embeddings[STUDENT].mean(axis=0)
    for n in int8:
        out.append((f"{n}|{STUDENT}", n, STUDENT, fp32_mean, "student FP32 held-out mean"))
    return out


def _fidelity(c: Collected, k: int) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    per_row: dict[str, dict[str, np.ndarray]] = {}
    comps = []
    for cid, cand, ref, centre, centre_note in _comparisons(c):
        a, b = c.embeddings[cand], c.embeddings[ref]
        cos = cosine_rows(a, b)
        ctr = cosine_rows(a - centre, b - centre)
        knn = _stats.knn_rows(a, b, k)
        per_row[cid] = {"cosine": cos, "centred_cosine": ctr, "knn": knn}
        comps.append({"id": cid, "candidate": cand, "reference": ref, "centre": centre_note,
                      "cosine": _stats.summary(cos), "centred_cosine": _stats.summary(ctr),
                      f"knn{k}": float(np.nanmean(knn)),
                      "values": {"cosine": cos, "centred_cosine": ctr}})
    out: dict[str, Any] = {"rows": len(c.row_items), "items": len(set(c.row_items)),
                           "knn_k": k, "comparisons": comps}
    if c.bundle is not None:
        out["manifest"] = {
            e.id: _model_figures(e) | {"recipe": e.options.get("recipe"),
                                       "inputs": (e.fidelity_info().gate or {}).get("inputs")}
            for e in c.bundle.manifest.models if e.precision.value == "int8"}
        fid = c.bundle.manifest.fidelity_info()
        vs_teacher = (fid.teacher or {}).get("mean_cosine") or {}
        for mid, row in out["manifest"].items():
            row["teacher_mean_cosine"] = vs_teacher.get(mid)
        cross = fid.int8_cross_format
        if cross:
            out["manifest_cross_format"] = {"min_pair_mean_cosine": cross.get(
                "min_pair_mean_cosine"), "threshold": cross.get("threshold"),
                "passed": cross.get("passed")}
    return out, per_row


# ------------------------------------------------------------------------------ probe
def _probe(c: Collected, spec: LabelSpec, opts: ReportOptions, say: Callable[[str], None]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    order, _ = _stats.item_means(c.row_items, c.embeddings[TEACHER])
    metas = [c.item_meta[i] for i in order]
    y_all, keep, info = binary_labels(metas, spec)
    idx = np.flatnonzero(keep)
    items = [order[i] for i in idx]
    y = y_all[idx]
    groups = [c.item_group[i] for i in items]
    xs = {n: _stats.item_means(c.row_items, x)[1][idx] for n, x in c.embeddings.items()}
    out: dict[str, Any] = {"label": info, "items": items, "y": y, "groups": groups}
    work: dict[str, Any] = {"items": items, "y": y, "groups": groups, "xs": xs}
    try:
        folds = grouped_folds(y, groups, opts.folds, opts.seed)
    except Exception as exc:  # noqa: BLE001 - too few groups/classes: reported, not fatal
        out["skipped"] = str(exc)
        return out, work
    fold_of = np.full(len(y), -1)
    for f, (_, te) in enumerate(folds):
        fold_of[te] = f
    say(f"probe: {len(y)} held-out items ({int(y.sum())} positive), {len(folds)} grouped folds, "
        f"{len(xs)} embedder(s)")
    scores, chosen = {}, {}
    for n, x in xs.items():
        res = _stats.oof_probe(x, y, groups, folds, opts.seed)
        scores[n], chosen[n] = res.scores, list(res.chosen_c)
    boot = _stats.grouped_bootstrap(y, scores, groups, n_boot=opts.bootstrap, seed=opts.seed,
                                    reference=TEACHER)
    for n, row in (boot.get("scorers") or {}).items():
        row["chosen_C"] = chosen[n]
    heads = _heads(c, spec, idx, y, groups, opts)
    if heads:
        out["heads"] = heads
        from hai_edge.report._decisions import head_decisions

        cols = tuple(opts.subgroups or (c.run_meta.get("config") or {}).get("subgroups") or ())
        out["head_decisions"] = head_decisions(
            c.bundle, c.embeddings, c.row_items, items, y, groups, [c.item_meta[i] for i in items],
            cols, n_boot=opts.bootstrap, seed=opts.seed)
    out.update({"folds": len(folds), "fold_seed": opts.seed, "fold_of_item": fold_of,
                "n": int(len(y)), "n_positive": int(y.sum()), "groups_n": len(set(groups)),
                "bootstrap": {k: v for k, v in boot.items() if k != "scorers"},
                "scorers": boot.get("scorers") or {}, "oof_scores": scores})
    work.update({"scores": scores, "folds": folds})
    return out, work


def _same_label(trained: Mapping[str, Any], spec: LabelSpec) -> bool:
    return (trained.get("column") == spec.column
            and set(trained.get("positive") or ()) == set(spec.positive)
            and set(trained.get("filters") or ()) == {f"{c}={v}" for c, v in spec.filters})


def _heads(c: Collected, spec: LabelSpec, idx: np.ndarray, y: np.ndarray,
           groups: Sequence[str], opts: ReportOptions) -> list[dict[str, Any]]:
    """The bundle's shipped classifiers scored on the held-out items, per embedder: no refit,
    the head exactly as deployed (item score = mean of its rows' probabilities, as the head's
    threshold is defined). Heads trained for another label are listed, not scored."""
    if c.bundle is None or not c.bundle.manifest.heads:
        return []
    from hai_edge.runtime.heads import load_heads

    out = []
    for head in load_heads(c.bundle):
        trained = dict((head.training or {}).get("label") or {})
        entry: dict[str, Any] = {"name": head.name, "labels": list(head.labels),
                                 "threshold": head.threshold, "notice": head.notice,
                                 "trained_on": {k: (head.training or {}).get(k) for k in
                                                ("n", "n_positive", "groups", "auroc_cv")},
                                 "label": trained}
        if not _same_label(trained, spec):
            entry["skipped"] = "trained for another label than the report's"
            out.append(entry)
            continue
        scores, figs = {}, {}
        for name, x in c.embeddings.items():
            if x.shape[1] != head.dim:
                continue
            p_items = _stats.item_means(c.row_items, head.predict_proba(x)[:, None])[1][:, 0]
            scores[name] = p_items[idx]
            pred = scores[name] >= head.threshold
            figs[name] = {"sensitivity": float(pred[y == 1].mean()) if (y == 1).any() else None,
                          "specificity": float((~pred[y == 0]).mean()) if (y == 0).any()
                          else None}
        boot = _stats.grouped_bootstrap(y, scores, groups, n_boot=opts.bootstrap,
                                        seed=opts.seed,
                                        reference=TEACHER if TEACHER in scores else None)
        entry["scorers"] = {n: {**(boot.get("scorers") or {}).get(n, {}), **figs[n]}
                            for n in scores}
        out.append(entry)
    return out


def _label_eff(work: Mapping[str, Any], opts: ReportOptions, say: Callable[[str], None]
               ) -> tuple[dict[str, Any], Any]:
    y, groups, xs = work["y"], work["groups"], work["xs"]
    try:
        pool, ev, ns, draws = _stats.label_efficiency(
            xs, y, groups, opts.label_sizes, opts.repeats, opts.seed)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": str(exc)}, None
    requested = [str(s) for s in opts.label_sizes]
    say(f"label efficiency: sizes {ns}, {opts.repeats} draw(s) each, eval {len(ev)} items")
    out = {
        "pool": {"n": int(len(pool)), "n_positive": int(y[pool].sum()),
                 "groups": len({groups[i] for i in pool})},
        "eval": {"n": int(len(ev)), "n_positive": int(y[ev].sum()),
                 "groups": len({groups[i] for i in ev}), "items": ev},
        "requested_sizes": requested, "sizes": ns, "repeats": opts.repeats,
        "curves": {n: [_stats.curve_summary(draws, n, k) for k in ns] for n in xs},
        "draws": [{"n_labels": d.n_labels, "draw": d.draw, "train": d.train, "auroc": d.aurocs,
                   "C": d.chosen_c} for d in draws],
    }
    if not ns:
        out["skipped"] = f"the pool ({len(pool)} items) cannot supply any requested size"
    return out, (ev, ns, draws)


# ------------------------------------------------------------------------------ subgroups
def _subgroups(c: Collected, cols: Sequence[str], per_row: Mapping[str, Any],
               probe_work: Mapping[str, Any] | None, le_work: Any, opts: ReportOptions
               ) -> dict[str, Any]:
    out: dict[str, Any] = {"columns": {}}
    worst_all: dict[str, Any] | None = None
    lowest_all: dict[str, Any] | None = None
    scorers = [e.name for e in c.embedders if e.name != TEACHER]
    for col in cols:
        row_vals = np.array([subgroup_value(c.item_meta[i], col) for i in c.row_items])
        if probe_work is not None:
            item_vals = np.array([subgroup_value(c.item_meta[i], col)
                                  for i in probe_work["items"]])
        rows = []
        for v in sorted(set(row_vals.tolist())):
            sel = row_vals == v
            entry: dict[str, Any] = {"value": v, "rows": int(sel.sum()),
                                     "items": len({c.row_items[i] for i in np.flatnonzero(sel)})}
            for metric in ("cosine", "centred_cosine", "knn"):
                entry[metric] = {cid: float(np.nanmean(d[metric][sel]))
                                 for cid, d in per_row.items()}
            if probe_work is not None and "scores" in probe_work:
                msk = item_vals == v
                y = probe_work["y"]
                entry["n_labelled"] = int(msk.sum())
                entry["n_positive"] = int(y[msk].sum())
                boot = _stats.grouped_bootstrap(y, probe_work["scores"], probe_work["groups"],
                                                n_boot=opts.bootstrap, seed=opts.seed,
                                                reference=TEACHER, mask=msk)
                if "scorers" in boot:
                    entry["auroc"] = {n: {k: s[k] for k in ("auroc", "ci_low", "ci_high")}
                                      for n, s in boot["scorers"].items()}
                    entry["drop"] = {n: boot["scorers"][TEACHER]["auroc"] -
                                     boot["scorers"][n]["auroc"] for n in scorers}
                if le_work is not None:
                    ev, ns, draws = le_work
                    emask = item_vals[ev] == v
                    y_ev = y[ev]
                    entry["eval_n"], entry["eval_positive"] = int(emask.sum()), int(
                        y_ev[emask].sum())
                    if 0 < y_ev[emask].sum() < emask.sum():
                        entry["label_efficiency"] = {
                            n: [_stats.curve_summary(draws, n, k, emask, y_ev).get("mean")
                                for k in ns] for n in probe_work["xs"]}
            rows.append(entry)
        worst = max((dict(column=col, value=e["value"], scorer=n, drop=d,
                          teacher=e["auroc"][TEACHER]["auroc"], other=e["auroc"][n]["auroc"],
                          n=e["n_labelled"], n_positive=e["n_positive"])
                     for e in rows if "drop" in e for n, d in e["drop"].items()),
                    key=lambda w: w["drop"], default=None)
        cid = f"{STUDENT}|{TEACHER}"
        lowest = min((dict(column=col, value=e["value"], centred_cosine=e["centred_cosine"][cid],
                           rows=e["rows"]) for e in rows if cid in e["centred_cosine"]),
                     key=lambda w: w["centred_cosine"], default=None)
        out["columns"][col] = {"values": rows, "largest_drop": worst,
                               "lowest_centred_cosine": lowest}
        if worst and (worst_all is None or worst["drop"] > worst_all["drop"]):
            worst_all = worst
        if lowest and (lowest_all is None or lowest["centred_cosine"] <
                       lowest_all["centred_cosine"]):
            lowest_all = lowest
    out["largest_drop"], out["lowest_centred_cosine"] = worst_all, lowest_all
    return out


# ------------------------------------------------------------------------------ speed
def _speed(c: Collected, benches: Sequence[Mapping[str, Any]],
           replica: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.bundle is not None:
        m = c.bundle.manifest
        out["sizes"] = [{"model": e.id, "format": e.format.value, "precision": e.precision.value,
                         "size_mb": sum(m.files[f].size for f in e.files) / 1e6}
                        for e in m.models]
    keep = ("model", "engine", "format", "precision", "size_mb", "threads", "p50_ms", "p95_ms",
            "load_ms", "peak_rss_mb", "projected_p95_ms", "budget_ms", "latency_ok",
            "memory_ok", "status", "error")
    out["benchmarks"] = []
    for b in benches:
        prof = b.get("profile") or None
        out["benchmarks"].append({
            "file": Path(str(b.get("file"))).name, "bundle": b.get("bundle"), "host": b.get("host"),
            "profile": {k: prof.get(k) for k in ("id", "title", "latency_budget_ms",
                                                 "memory_budget_mb", "host_slowdown", "threads")}
            if prof else None,
            "results": [{k: r.get(k) for k in keep} for r in b.get("results") or []]})
    rep = [r for r in replica if r.get("modality") in (None, c.modality)]
    out["teacher_replica"] = [{k: r.get(k) for k in (
        "modality", "teacher", "teacher_params", "teacher_ms", "student", "student_engine",
        "student_params", "student_size_mb", "student_ms", "student_bundle", "frontend_ms",
        "ratio_model", "ratio_with_frontend")} for r in rep]
    return out


# ------------------------------------------------------------------------------ assemble
def build_report_data(c: Collected, opts: ReportOptions, *,
                      benches: Sequence[Mapping[str, Any]] = (),
                      replica: Sequence[Mapping[str, Any]] = (), command: str = "",
                      say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Every number of the report (rounded, strict-JSON-able)."""
    from hai_edge import __version__

    cfg = dict(c.run_meta.get("config") or {})
    spec = opts.label
    if spec is None and cfg.get("label"):
        spec = LabelSpec(cfg["label"], tuple(cfg.get("positive") or ()),
                         tuple(tuple(str(f).split("=", 1)) for f in cfg.get("label_filter") or ()))
    cols = tuple(opts.subgroups if opts.subgroups is not None else cfg.get("subgroups") or ())
    name = (c.bundle.manifest.name if c.bundle is not None else
            Path(str(c.run_dir)).name if c.run_dir else "report")
    rep: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "title": opts.title or f"Evaluation report: {name}",
        "generator": {"tool": f"hai-edge {__version__}", "command": command,
                      "options": {"seed": opts.seed, "folds": opts.folds,
                                  "bootstrap": opts.bootstrap, "repeats": opts.repeats,
                                  "label_sizes": [str(s) for s in opts.label_sizes],
                                  "knn_k": opts.knn_k}},
        "modality": c.modality,
        "embedders": [e.to_dict() for e in c.embedders],
        "notes": list(c.notes),
        "provenance": _provenance(c),
    }
    probe_work = le_work = None
    per_row: dict[str, Any] = {}
    if c.embeddings:
        say("fidelity: cosine, centred cosine and kNN agreement per held-out row")
        rep["fidelity"], per_row = _fidelity(c, opts.knn_k)
        if spec is None:
            rep["notes"].append("no label: probe, label-efficiency and subgroup AUROCs need "
                                "--label COL (and --positive V,..)")
        else:
            rep["probe"], probe_work = _probe(c, spec, opts, say)
            if "skipped" not in rep["probe"]:
                rep["label_efficiency"], le_work = _label_eff(probe_work, opts, say)
            else:
                probe_work = None
        if cols:
            missing = [col for col in cols if not any(col in m for m in c.item_meta.values())]
            if missing:
                rep["notes"].append(f"subgroup column(s) {', '.join(missing)} not in the items' "
                                    "metadata: shown as 'unknown'")
            rep["subgroups"] = _subgroups(c, cols, per_row, probe_work, le_work, opts)
    elif c.bundle is not None:
        rep["fidelity"] = {"manifest": _fidelity_manifest_only(c)}
    rep["speed"] = _speed(c, benches, replica)
    return _r(rep)


def _model_figures(e: ModelEntry) -> dict[str, Any]:
    f = e.fidelity_info()
    return {"mean_cosine": f.mean_cosine, "p5_cosine": f.p5_cosine, "min_cosine": f.min_cosine,
            "centred_mean_cosine": f.centred_mean_cosine, "passed": f.passed}


def _fidelity_manifest_only(c: Collected) -> dict[str, Any]:
    return {e.id: _model_figures(e)
            for e in c.bundle.manifest.models if e.precision.value == "int8"}

"""The report's figures as inline SVG, drawn from the report dict only (so they match the JSON).

matplotlib's object-oriented API with the SVG canvas: no pyplot, no global backend switch, no
side effect at import (matplotlib itself is imported inside :func:`render_all`). Output is
deterministic: fixed ``svg.hashsalt``, no date/creator metadata, text as paths (no fonts needed
by the viewer). Colours: the Okabe-Ito colour-blind-safe palette, plus distinct markers/lines.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.errors import MissingDependencyError

__all__ = ["OKABE_ITO", "render_all", "scorer_style"]

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "purple": "#CC79A7"}
_STYLE = {
    "teacher": (OKABE_ITO["black"], "o", "-"),
    "student-fp32": (OKABE_ITO["orange"], "s", "--"),
    "onnx-int8": (OKABE_ITO["sky"], "^", "-."),
    "openvino-int8": (OKABE_ITO["green"], "D", ":"),
    "tflite-int8": (OKABE_ITO["purple"], "v", (0, (5, 1, 1, 1))),
}
HIGHLIGHT = OKABE_ITO["vermillion"]
_RC = {"svg.hashsalt": "hai-edge-report", "svg.fonttype": "path", "font.family": "DejaVu Sans",
       "font.size": 8.5, "axes.titlesize": 9.5, "axes.labelsize": 8.5, "legend.fontsize": 7.5,
       "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
       "grid.color": "#dddddd", "grid.linewidth": 0.6, "path.simplify": False}


def scorer_style(name: str) -> tuple[str, str, Any]:
    """(colour, marker, linestyle) of an embedder, stable across figures."""
    return _STYLE.get(name, (OKABE_ITO["blue"], "P", "-"))


def _labels(rep: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["label"] for e in rep.get("embedders", [])}


class _Canvas:
    """Figure factory + deterministic SVG serialisation (XML prolog and DOCTYPE stripped)."""

    def __init__(self) -> None:
        try:
            import matplotlib
            from matplotlib.backends.backend_svg import FigureCanvasSVG
            from matplotlib.figure import Figure
        except ImportError:
            raise MissingDependencyError("hai-edge report", "report", "matplotlib") from None
        self._mpl, self._figure, self._canvas = matplotlib, Figure, FigureCanvasSVG

    def figure(self, w: float, h: float) -> Any:
        fig = self._figure(figsize=(w, h), dpi=100, layout="constrained")
        self._canvas(fig)
        return fig

    def svg(self, fig: Any, alt: str) -> str:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None,
                                                 "Format": None, "Type": None})
        text = buf.getvalue()
        text = text[text.index("<svg"):]
        text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
        # an accessible name for screen readers; CSS caps the width at the page's
        alt = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        return text.replace("<svg ", f'<svg role="img" aria-label="{alt}" ', 1)


def _title(ax: Any, text: str) -> None:
    ax.set_title(text, loc="left", wrap=True)


def _hist_panel(ax: Any, series: Sequence[tuple[str, np.ndarray]], labels: Mapping[str, str],
                xlabel: str, log_gap: bool = False) -> None:
    vals = [v for _, v in series if len(v)]
    if not vals:
        return
    allv = np.concatenate(vals)
    if log_gap:  # 1 - cosine on a log axis: INT8 vs FP32 differences are 1e-6 .. 1e-2
        gaps = np.clip(1.0 - allv, 1e-7, None)
        bins = np.logspace(math.floor(np.log10(gaps.min())), math.ceil(np.log10(gaps.max())), 30)
        ax.set_xscale("log")
    else:
        lo, hi = float(allv.min()), float(allv.max())
        bins = np.linspace(lo - 1e-9, hi + 1e-9, 30)
    for name, v in series:
        colour, _, ls = scorer_style(name)
        data = np.clip(1.0 - v, 1e-7, None) if log_gap else v
        ax.hist(data, bins=bins, histtype="step", color=colour, linestyle=ls, linewidth=1.5,
                label=f"{labels.get(name, name)} (mean {np.mean(v):.4f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out rows (count)")
    ax.legend(loc="upper left" if not log_gap else "upper right", frameon=False)


def _fidelity_figs(cv: _Canvas, rep: Mapping[str, Any]) -> dict[str, str]:
    fid = rep.get("fidelity") or {}
    comps = fid.get("comparisons") or []
    labels = _labels(rep)
    out = {}
    vs_t = [c for c in comps if c["reference"] == "teacher"]
    n = fid.get("rows", 0)
    if vs_t:
        fig = cv.figure(9.2, 3.2)
        a1, a2 = fig.subplots(1, 2)
        _hist_panel(a1, [(c["candidate"], np.asarray(c["values"]["cosine"], float))
                         for c in vs_t], labels, "cosine to the teacher (unitless, 1 = same)")
        _title(a1, f"Cosine to the teacher, per held-out row (n={n} rows)")
        _hist_panel(a2, [(c["candidate"], np.asarray(c["values"]["centred_cosine"], float))
                         for c in vs_t], labels,
                    "centred cosine (minus the teacher's train mean; unitless)")
        _title(a2, f"Centred cosine to the teacher (n={n} rows)")
        out["fidelity_teacher"] = cv.svg(fig, "histograms of student and INT8 cosine to teacher")
    vs_fp = [c for c in comps if c["reference"] == "student-fp32"]
    if vs_fp:
        fig = cv.figure(9.2, 3.0)
        a1, a2 = fig.subplots(1, 2)
        _hist_panel(a1, [(c["candidate"], np.asarray(c["values"]["cosine"], float))
                         for c in vs_fp], labels, "1 - cosine to student FP32 (unitless, log)",
                    log_gap=True)
        _title(a1, f"INT8 vs FP32: 1 - cosine per held-out row (n={n} rows)")
        _hist_panel(a2, [(c["candidate"], np.asarray(c["values"]["centred_cosine"], float))
                         for c in vs_fp], labels,
                    "1 - centred cosine (minus the FP32 held-out mean; log)", log_gap=True)
        _title(a2, f"INT8 vs FP32: 1 - centred cosine (n={n} rows)")
        out["fidelity_int8"] = cv.svg(fig, "histograms of INT8 versus FP32 cosine gaps")
    if comps:
        k = fid.get("knn_k", 5)
        fig = cv.figure(6.0, 0.5 + 0.32 * len(comps))
        ax = fig.subplots()
        names = [f"{labels.get(c['candidate'], c['candidate'])} vs "
                 f"{labels.get(c['reference'], c['reference'])}" for c in comps]
        vals = [c.get(f"knn{k}") or 0.0 for c in comps]
        ypos = np.arange(len(comps))[::-1]
        ax.barh(ypos, vals, color=[scorer_style(c["candidate"])[0] for c in comps],
                edgecolor="black", linewidth=0.5)
        for yy, v in zip(ypos, vals):
            ax.text(min(v + 0.01, 0.93), yy, f"{v:.3f}", va="center", fontsize=7.5)
        chance = k / max(1, n - 1)
        ax.axvline(chance, color=HIGHLIGHT, linestyle="--", linewidth=1)
        ax.text(chance, ypos.max() + 0.45, f" chance {chance:.3f}", color=HIGHLIGHT, fontsize=7)
        ax.set_yticks(ypos, names)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"mean overlap of the {k} nearest neighbours (fraction, 1 = identical)")
        _title(ax, f"kNN-{k} agreement within the held-out set (n={n} rows)")
        out["knn"] = cv.svg(fig, "bar chart of kNN agreement")
    return out


def _ci_panel(ax: Any, rows: Sequence[tuple[str, str, Mapping[str, Any]]], xlabel: str) -> None:
    """Dot + 95% CI per (scorer, label, figures) row, top to bottom."""
    ypos = np.arange(len(rows))[::-1]
    for yy, (name, _lab, f) in zip(ypos, rows):
        colour, marker, _ = scorer_style(name)
        if f.get("auroc") is None:
            continue
        lo, hi = f.get("ci_low"), f.get("ci_high")
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [yy, yy], color=colour, linewidth=2)
        ax.plot([f["auroc"]], [yy], marker=marker, color=colour, markersize=7,
                markeredgecolor="black", markeredgewidth=0.5)
        ax.text(1.005, yy, f"{f['auroc']:.3f} [{lo:.3f}, {hi:.3f}]", va="center", fontsize=7.5,
                transform=ax.get_yaxis_transform())
    ax.set_yticks(ypos, [lab for _, lab, _ in rows])
    ax.axvline(0.5, color="#888888", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)


def _probe_fig(cv: _Canvas, rep: Mapping[str, Any], key: str = "probe", w: float = 7.4
               ) -> dict[str, str]:
    p = rep.get("probe") or {}
    if not p.get("scorers"):
        return {}
    labels = _labels(rep)
    rows = [(n, labels.get(n, n), f) for n, f in p["scorers"].items()]
    fig = cv.figure(w, 0.9 + 0.34 * len(rows) + (0.6 if w < 7 else 0.0))
    ax = fig.subplots()
    _ci_panel(ax, rows, "AUROC (unitless; 0.5 = chance) with 95% grouped-bootstrap CI")
    lo = min((f["ci_low"] for _, _, f in rows if f.get("ci_low") is not None), default=0.5)
    ax.set_xlim(max(0.0, min(0.5, lo) - 0.05), 1.0)
    _title(ax, f"Probe AUROC, grouped {p['folds']}-fold CV, same folds for all "
               f"(n={p['n']} items, {p['n_positive']} positive, {p['groups_n']} groups)"
           if w >= 7 else f"Probe AUROC with 95% CI (n={p['n']} items, {p['n_positive']} "
                          "positive)")
    return {key: cv.svg(fig, "probe AUROC with confidence intervals")}


def _curve_ax(ax: Any, curves: Mapping[str, Sequence[Any]], sizes: Sequence[int],
              labels: Mapping[str, str], band: bool = True) -> None:
    for name, pts in curves.items():
        colour, marker, ls = scorer_style(name)
        xs = [s for s, pt in zip(sizes, pts) if _mean_of(pt) is not None]
        ys = [_mean_of(pt) for pt in pts if _mean_of(pt) is not None]
        if not xs:
            continue
        # bands for teacher and FP32 student only: five overlapping bands read as one smear
        if band and isinstance(pts[0], Mapping) and name in ("teacher", "student-fp32"):
            lo = [pt["p2_5"] for pt in pts if pt.get("mean") is not None]
            hi = [pt["p97_5"] for pt in pts if pt.get("mean") is not None]
            ax.fill_between(xs, lo, hi, color=colour, alpha=0.10, linewidth=0)
        ax.plot(xs, ys, color=colour, marker=marker, linestyle=ls, markersize=4.5,
                linewidth=1.4, label=labels.get(name, name))
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes), [str(s) for s in sizes])
    ax.minorticks_off()
    ax.axhline(0.5, color="#888888", linestyle=":", linewidth=1)


def _mean_of(pt: Any) -> float | None:
    return pt.get("mean") if isinstance(pt, Mapping) else pt


def _label_eff_fig(cv: _Canvas, rep: Mapping[str, Any], key: str = "label_efficiency",
                   w: float = 7.4, h: float = 3.8) -> dict[str, str]:
    le = rep.get("label_efficiency") or {}
    if not le.get("sizes"):
        return {}
    fig = cv.figure(w, h)
    ax = fig.subplots()
    _curve_ax(ax, le["curves"], le["sizes"], _labels(rep))
    ax.set_xlabel("training labels (items drawn from the pool; log scale; last = all)")
    ax.set_ylabel("AUROC on the fixed eval fold (unitless)")
    ax.legend(loc="lower right", frameon=False)
    ev = le["eval"]
    _title(ax, f"Label efficiency: AUROC vs training labels (eval n={ev['n']} items, "
               f"{ev['n_positive']} positive; {le['repeats']} draws/size; bands: teacher and "
               "student, 95% of draws)")
    return {key: cv.svg(fig, "label efficiency curves")}


def _summary_figs(cv: _Canvas, rep: Mapping[str, Any]) -> dict[str, str]:
    """Compact copies of the two key figures for the first screen."""
    n = len((rep.get("probe") or {}).get("scorers") or {})
    return {**_probe_fig(cv, rep, "summary_probe", 5.6),
            **_label_eff_fig(cv, rep, "summary_label_efficiency", 5.6, 1.5 + 0.34 * n + 0.6)}


def _subgroup_figs(cv: _Canvas, rep: Mapping[str, Any]) -> dict[str, str]:
    sg = rep.get("subgroups") or {}
    labels = _labels(rep)
    out = {}
    for col, block in (sg.get("columns") or {}).items():
        vals = block["values"]
        worst = block.get("largest_drop") or {}
        with_auc = [v for v in vals if v.get("auroc")]
        fig = cv.figure(9.2, 0.9 + max(2.2, 0.30 * max(len(vals), 1) * (1 + 0 * len(with_auc))))
        a1, a2 = fig.subplots(1, 2, width_ratios=(1.25, 1))
        if with_auc:
            names = list(with_auc[0]["auroc"])
            step = 0.8 / max(1, len(names))
            for j, v in enumerate(with_auc):
                base = len(with_auc) - 1 - j
                for i, n in enumerate(names):
                    f = v["auroc"][n]
                    yy = base + 0.4 - (i + 0.5) * step
                    colour, marker, _ = scorer_style(n)
                    if f.get("ci_low") is not None:
                        a1.plot([f["ci_low"], f["ci_high"]], [yy, yy], color=colour, lw=1.6)
                    a1.plot([f["auroc"]], [yy], marker=marker, color=colour, ms=5,
                            mec="black", mew=0.4, label=labels.get(n, n) if j == 0 else None)
                if worst.get("value") == v["value"]:
                    a1.axhspan(base - 0.45, base + 0.45, color=HIGHLIGHT, alpha=0.12, lw=0)
            a1.set_yticks(range(len(with_auc))[::-1],
                          [f"{v['value']} (n={v['n_labelled']}, {v['n_positive']}+)"
                           for v in with_auc])
            a1.axvline(0.5, color="#888888", linestyle=":", linewidth=1)
            a1.set_xlim(0, 1.02)
            a1.legend(loc="lower left", frameon=False, fontsize=6.5)
        else:
            a1.text(0.5, 0.5, "no value with both classes", ha="center", transform=a1.transAxes)
        a1.set_xlabel("probe AUROC (unitless) with 95% grouped-bootstrap CI")
        n_items = sum(v.get("n_labelled", 0) for v in vals)
        _title(a1, f"Probe AUROC by {col} (n={n_items} labelled items)")
        cid = "student-fp32|teacher"
        ypos = np.arange(len(vals))[::-1]
        cc = [v["centred_cosine"].get(cid) for v in vals]
        low = block.get("lowest_centred_cosine") or {}
        colours = [HIGHLIGHT if v["value"] == low.get("value") else OKABE_ITO["orange"]
                   for v in vals]
        a2.barh(ypos, [x or 0.0 for x in cc], color=colours, edgecolor="black", linewidth=0.5)
        for yy, x in zip(ypos, cc):
            if x is not None:
                a2.text(x, yy, f" {x:.3f}", va="center", fontsize=7)
        a2.set_yticks(ypos, [f"{v['value']} ({v['rows']} rows)" for v in vals])
        finite = [x for x in cc if x is not None]
        a2.set_xlim(max(0.0, min(finite, default=0) - 0.1), 1.08)
        a2.set_xlabel("student vs teacher centred cosine, mean (unitless)")
        _title(a2, f"Centred cosine by {col} (n={sum(v['rows'] for v in vals)} rows)")
        out[f"subgroup_{col}"] = cv.svg(fig, f"subgroup figures by {col}")
        curves = [v for v in vals if v.get("label_efficiency")]
        le = rep.get("label_efficiency") or {}
        if curves and le.get("sizes"):
            ncol = min(3, len(curves))
            nrow = math.ceil(len(curves) / ncol)
            fig = cv.figure(9.2, 0.6 + 2.3 * nrow)
            axes = np.atleast_1d(fig.subplots(nrow, ncol, sharey=True, squeeze=False)).ravel()
            for ax, v in zip(axes, curves):
                _curve_ax(ax, v["label_efficiency"], le["sizes"], labels, band=False)
                ax.set_title(f"{col} = {v['value']} (eval n={v['eval_n']}, "
                             f"{v['eval_positive']}+)", fontsize=8)
                ax.set_xlabel("training labels (log scale)", fontsize=7.5)
            for ax in axes[len(curves):]:
                ax.set_visible(False)
            axes[0].set_ylabel("AUROC (unitless)")
            axes[0].legend(loc="lower right", frameon=False, fontsize=6.5)
            fig.suptitle(f"Label efficiency by {col}: mean AUROC over draws, on the eval "
                         f"fold's {col} subgroup", fontsize=9.5, x=0.01, ha="left")
            out[f"subgroup_le_{col}"] = cv.svg(fig, f"label efficiency by {col}")
    return out


def _speed_figs(cv: _Canvas, rep: Mapping[str, Any]) -> dict[str, str]:
    sp = rep.get("speed") or {}
    out = {}
    sizes = sp.get("sizes") or []
    if sizes:
        fig = cv.figure(6.0, 0.7 + 0.28 * len(sizes))
        ax = fig.subplots()
        ypos = np.arange(len(sizes))[::-1]
        ax.barh(ypos, [s["size_mb"] for s in sizes],
                color=[OKABE_ITO["sky"] if s["precision"] == "int8" else OKABE_ITO["orange"]
                       for s in sizes], edgecolor="black", linewidth=0.5)
        for yy, s in zip(ypos, sizes):
            ax.text(s["size_mb"], yy, f" {s['size_mb']:.2f}", va="center", fontsize=7)
        ax.set_yticks(ypos, [s["model"] for s in sizes])
        ax.set_xlabel("model files (MB)")
        _title(ax, f"Size per model (n={len(sizes)} models; blue INT8, orange FP32)")
        out["sizes"] = cv.svg(fig, "model sizes")
    for i, b in enumerate(sp.get("benchmarks") or []):
        res = [r for r in b["results"] if r.get("p95_ms")]
        if not res:
            continue
        prof = b.get("profile")
        proj = prof is not None and all(r.get("projected_p95_ms") is not None for r in res)
        fig = cv.figure(6.6, 0.9 + 0.3 * len(res))
        ax = fig.subplots()
        ypos = np.arange(len(res))[::-1]
        vals = [r["projected_p95_ms"] if proj else min(r["p95_ms"]) for r in res]
        colours = [OKABE_ITO["sky"] if r.get("status") != "FAIL" else HIGHLIGHT for r in res]
        ax.barh(ypos, vals, color=colours, edgecolor="black", linewidth=0.5)
        for yy, v in zip(ypos, vals):
            ax.text(v, yy, f" {v:.2f}", va="center", fontsize=7)
        budget = res[0].get("budget_ms")
        if budget:
            ax.axvline(budget, color=HIGHLIGHT, linestyle="--", linewidth=1.2)
            ax.text(budget, ypos.max() + 0.5, f" budget {budget:g} ms", color=HIGHLIGHT,
                    fontsize=7)
        ax.set_yticks(ypos, [f"{r['model']} ({r['engine']})" for r in res])
        what = (f"projected p95 on {prof['id']} (measured best p95 x {prof['host_slowdown']:g})"
                if proj else "measured p95, best thread count")
        ax.set_xlabel(f"latency per {'window' if rep.get('modality') == 'audio' else 'photo'} "
                      f"(ms): {what}")
        _title(ax, f"Latency per model, {b.get('host') or 'this host'} "
                   f"(n={len(res)} models)")
        out[f"bench_{i}"] = cv.svg(fig, "latency per model against the budget")
    return out


_FIGS: tuple[Callable[[_Canvas, Mapping[str, Any]], dict[str, str]], ...] = (
    _summary_figs, _fidelity_figs, _probe_fig, _label_eff_fig, _subgroup_figs, _speed_figs)


def render_all(rep: Mapping[str, Any]) -> dict[str, str]:
    """Figure key -> inline SVG text, for every figure the report's data supports."""
    cv = _Canvas()
    out: dict[str, str] = {}
    from hai_edge.report._robustness import robustness_figs  # it draws with scorer_style

    with cv._mpl.rc_context(_RC):
        for make in (*_FIGS, robustness_figs):
            out.update(make(cv, rep))
    return out

"""One self-contained HTML page from the report dict: inline CSS, inline SVG, no script, no
external asset of any kind (a Content-Security-Policy of ``default-src 'none'`` makes the browser
refuse any fetch the page might attempt)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hai_edge.report._format import ci_text as _ci
from hai_edge.report._format import embedder_labels as _labels
from hai_edge.report._format import esc as _e
from hai_edge.report._format import num as _f
from hai_edge.report._decisions import head_decisions_html
from hai_edge.report._robustness import robustness_html
from hai_edge.report._headline import headline

__all__ = ["SECTIONS", "headline", "render_html"]

SECTIONS = (("summary", "Summary"), ("provenance", "Provenance"), ("fidelity", "Fidelity"),
            ("probe", "Downstream probe"), ("decisions", "Head decisions"),
            ("label-efficiency", "Label efficiency"),
            ("subgroups", "Subgroups"), ("robustness", "Robustness under shifts"),
            ("speed", "Speed and size"), ("method", "Method"))

_CSS = """
:root{--fg:#1a1a1a;--muted:#555;--line:#d0d0d0;--hl:#D55E00;--bg:#fff;--soft:#f5f5f2}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1240px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:18px;margin:30px 0 8px;padding-top:8px;
border-top:2px solid var(--fg)}h3{font-size:15px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0 0 10px}
.warn{border:2px solid var(--hl);background:#fff4ec;padding:8px 12px;margin:10px 0;
font-weight:600}.note{color:var(--muted);font-size:13px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 4px;font-size:13px}
nav a{color:#0072B2}
.row{display:flex;flex-wrap:wrap;gap:8px 18px}.row figure{flex:1 1 480px;margin:4px 0}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(245px,1fr));gap:8px;
margin:10px 0}.kpi{border:1px solid var(--line);border-radius:6px;padding:8px 10px;
background:var(--soft)}.kpi b{display:block;font-size:12px;color:var(--muted);
font-weight:600}.kpi span{font-size:15.5px;font-weight:650}.kpi i{display:block;
font-size:12px;color:var(--muted);font-style:normal}
div.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px}
td small{color:var(--muted)}
th,td{border-bottom:1px solid var(--line);padding:3px 9px;text-align:left;
vertical-align:top}th{background:var(--soft)}td.n{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
tr.worst td{background:#fde3d3;font-weight:600}
figure{margin:8px 0 14px}figure svg{max-width:100%;height:auto}
figcaption{font-size:12.5px;color:var(--muted)}
pre{white-space:pre-wrap;background:var(--soft);padding:8px;font-size:12px;
border:1px solid var(--line)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:4px 0 10px}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-all}
@media print{nav{display:none}h2{break-before:auto}}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], num: Sequence[bool] = (),
           classes: Sequence[str] | None = None) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        tds = "".join(f'<td class="n">{c}</td>' if i < len(num) and num[i] else f"<td>{c}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    return (f'<div class="scroll"><table><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _kv(d: Mapping[str, Any]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in d.items()
                    if v not in (None, "", {}, []))
    return f'<dl class="kv">{items}</dl>'


def _fig(figs: Mapping[str, str], key: str, caption: str = "") -> str:
    if key not in figs:
        return ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f"<figure>{figs[key]}{cap}</figure>"


# ------------------------------------------------------------------------------ sections
def _summary(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    kpis = "".join(f'<div class="kpi"><b>{_e(h["label"])}</b><span>{_e(h["value"])}</span>'
                   f'<i>{_e(h["detail"])}</i></div>' for h in rep.get("headline") or [])
    notes = "".join(f"<li>{_e(n)}</li>" for n in rep.get("notes") or [])
    row = _fig(figs, "summary_probe") + _fig(figs, "summary_label_efficiency")
    return (f'<section id="summary"><div class="kpis">{kpis}</div>'
            + (f'<div class="row">{row}</div>' if row else "")
            + (f'<ul class="note">{notes}</ul>' if notes else "") + "</section>")


def _provenance(rep: Mapping[str, Any]) -> str:
    p = rep.get("provenance") or {}
    parts = ['<section id="provenance"><h2>Provenance</h2>']
    parts.append("<h3>Teacher</h3>" + _kv(p.get("teacher") or {}))
    parts.append("<h3>Student</h3>" + _kv(p.get("student") or {}))
    data = dict(p.get("data") or {})
    split = data.pop("split", None) or {}
    labels = data.pop("labels", None) or {}
    parts.append("<h3>Data</h3>" + _kv(data) + _kv({f"split {k}": v for k, v in split.items()})
                 + _kv({f"labels {k}": v for k, v in labels.items()}))
    b = p.get("bundle")
    if b:
        cal, held = b.get("calibration") or {}, b.get("heldout") or {}
        parts.append("<h3>Bundle</h3>" + _kv({
            "name": b.get("name"), "root": b.get("root"), "created": b.get("created"),
            "written by": f"hai-edge {b.get('hai_edge_version')}", "models": ", ".join(
                b.get("models") or []), "export command": b.get("command"),
            "calibration": f"{cal.get('source')} sha256 {cal.get('sha256')}" if cal else None,
            "held-out gate inputs": f"{held.get('source')} sha256 {held.get('sha256')}"
            if held else None, "device profile": b.get("device_profile"),
            "degraded (gates overridden)": "YES" if b.get("degraded") else "no"}))
    lic = p.get("licences") or {}
    parts.append("<h3>Licences and notices</h3>" + _kv({"teacher licence": lic.get("teacher"),
                                                        "licence terms": lic.get("licence_terms")}))
    if p.get("notices"):
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in p["notices"]) + "</ul>")
    if lic.get("notice_file"):
        parts.append(f"<details><summary>NOTICE (bundle)</summary><pre>"
                     f"{_e(lic['notice_file'])}</pre></details>")
    tv = p.get("tool_versions") or {}
    rows = [(_e(who), _e(d), _e(v)) for who in ("run", "bundle", "report")
            for d, v in sorted((tv.get(who) or {}).items())]
    if rows:
        parts.append("<h3>Tool versions</h3>" + _table(("recorded by", "package", "version"),
                                                        rows))
    parts.append("</section>")
    return "".join(parts)


def _fidelity(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    f = rep.get("fidelity") or {}
    labels = _labels(rep)
    parts = ['<section id="fidelity"><h2>Fidelity</h2>']
    comps = f.get("comparisons") or []
    if comps:
        k = f.get("knn_k", 5)
        parts.append(f'<p class="sub">Held-out rows: {f["rows"]} ({f["items"]} items), never '
                     "trained on. Centred cosine subtracts a fixed centre from both sides "
                     "(a shared direction cannot inflate it).</p>")
        rows = [(f"{_e(labels.get(c['candidate'], c['candidate']))} vs "
                 f"{_e(labels.get(c['reference'], c['reference']))}", c["cosine"]["n"],
                 _f(c["cosine"]["mean"], 4), _f(c["cosine"]["median"], 4),
                 _f(c["cosine"]["p5"], 4), _f(c["cosine"]["min"], 4),
                 _f(c["centred_cosine"]["mean"], 4), _f(c["centred_cosine"]["p5"], 4),
                 _f(c.get(f"knn{k}"), 3), _e(c["centre"])) for c in comps]
        parts.append(_table(("comparison", "rows", "cos mean", "cos median", "cos p5",
                             "cos min", "centred mean", "centred p5", f"kNN-{k}", "centre"),
                            rows, (False,) + (True,) * 8))
        parts.append(_fig(figs, "fidelity_teacher", "Distribution of the per-row cosine of each "
                                                    "student model to the teacher."))
        parts.append(_fig(figs, "fidelity_int8", "How far each INT8 model is from the FP32 "
                                                 "student on the same inputs (smaller is "
                                                 "better; log scale)."))
        parts.append(_fig(figs, "knn", "Fraction of each row's nearest neighbours that the two "
                                       "embeddings share; the dashed line is chance."))
    man = f.get("manifest") or {}
    if man:
        parts.append("<h3>INT8 gate figures recorded in the bundle manifest</h3>")
        parts.append(_table(("model", "mean cos", "p5 cos", "min cos", "centred mean",
                             "mean cos vs teacher", "passed", "recipe", "inputs"),
                            [(_e(mid), _f(v.get("mean_cosine"), 5), _f(v.get("p5_cosine"), 5),
                              _f(v.get("min_cosine"), 5), _f(v.get("centred_mean_cosine"), 4),
                              _f(v.get("teacher_mean_cosine"), 4), _f(v.get("passed")),
                              _e(v.get("recipe")), _e(v.get("inputs")))
                             for mid, v in man.items()], (False, True, True, True, True, True)))
    cross = f.get("manifest_cross_format")
    if cross:
        parts.append(f'<p class="note">INT8 cross-format agreement (manifest): worst pair mean '
                     f'cosine {_f(cross.get("min_pair_mean_cosine"), 5)} (gate ≥ '
                     f'{_f(cross.get("threshold"))}, passed: {_f(cross.get("passed"))}).</p>')
    if not comps and not man:
        parts.append('<p class="note">No fidelity figures (see the notes above).</p>')
    parts.append("</section>")
    return "".join(parts)


def _probe(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    p = rep.get("probe") or {}
    labels = _labels(rep)
    parts = ['<section id="probe"><h2>Downstream probe</h2>']
    if not p:
        parts.append('<p class="note">No label given (--label COL --positive V,..).</p>')
    elif p.get("skipped"):
        parts.append(f'<p class="note">Probe skipped: {_e(p["skipped"])}</p>')
    else:
        lab = p["label"]["label"]
        desc = lab["column"] + (f" ∈ {{{', '.join(lab['positive'])}}}" if lab["positive"] else "")
        if lab["filters"]:
            desc += f" where {' and '.join(lab['filters'])}"
        c = p["label"]
        bs = p["bootstrap"]
        parts.append(f'<p class="sub">Positive class: {_e(desc)}. {p["n"]} held-out items '
                     f'({p["n_positive"]} positive, {p["groups_n"]} groups); excluded: '
                     f'{c["n_unlabelled"]} without a label, {c["n_filtered_out"]} by the filter. '
                     f'Grouped stratified {p["folds"]}-fold CV (fold seed {p["fold_seed"]}), the '
                     f'same folds for every embedder; 95% CI from {bs["n_boot"]} grouped bootstrap '
                     f'draws ({bs["draws_skipped"]} skipped).</p>')
        sc = p["scorers"]
        rows = [(_e(labels.get(n, n)), _ci(f), _ci(f, "delta_vs_teacher", "delta_ci_low",
                                                   "delta_ci_high") if n != "teacher" else "–",
                 _e(", ".join(f"{x:g}" for x in f.get("chosen_C") or [])))
                for n, f in sc.items()]
        parts.append(_table(("embeddings", "AUROC [95% CI]", "Δ vs teacher [95% CI]",
                             "C per fold"), rows, (False, True, True)))
        parts.append(_fig(figs, "probe", "Point: out-of-fold AUROC; bar: 95% grouped-bootstrap "
                                         "confidence interval."))
        for h in p.get("heads") or []:
            t = h.get("trained_on") or {}
            parts.append(f"<h3>Shipped head “{_e(h['name'])}” (bundle classifier, no refit)</h3>"
                         f'<p class="sub">Trained on {_e(t.get("n"))} items of the training '
                         f'split (CV AUROC there {_f(t.get("auroc_cv"))}); threshold '
                         f'{_f(h.get("threshold"))} on the item score. {_e(h.get("notice"))}</p>')
            if h.get("skipped"):
                parts.append(f'<p class="note">Not scored: {_e(h["skipped"])}.</p>')
                continue
            parts.append(_table(("embeddings", "AUROC [95% CI]", "Δ vs teacher [95% CI]",
                                 "sensitivity", "specificity"),
                                [(_e(labels.get(n, n)), _ci(f),
                                  _ci(f, "delta_vs_teacher", "delta_ci_low", "delta_ci_high")
                                  if n != "teacher" else "–", _f(f.get("sensitivity")),
                                  _f(f.get("specificity"))) for n, f in h["scorers"].items()],
                                (False, True, True, True, True)))
    parts.append("</section>")
    return "".join(parts)


def _label_eff(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    le = rep.get("label_efficiency") or {}
    labels = _labels(rep)
    parts = ['<section id="label-efficiency"><h2>Label efficiency</h2>']
    if not le or not le.get("sizes"):
        why = le.get("skipped") if le else "needs a probe label"
        parts.append(f'<p class="note">Not computed: {_e(why)}.</p>')
    else:
        ev, pool = le["eval"], le["pool"]
        dropped = [s for s in le["requested_sizes"] if s != "all" and int(s) not in le["sizes"]]
        parts.append(f'<p class="sub">Fixed grouped eval fold: {ev["n"]} items ({ev["n_positive"]}'
                     f' positive, {ev["groups"]} groups). Training labels are drawn from the other '
                     f'{pool["n"]} items ({pool["n_positive"]} positive): stratified, distinct '
                     f'groups first, {le["repeats"]} draws per size (one for all), the same draws '
                     f'for every embedder.'
                     + (f' Sizes larger than the pool were dropped: {_e(", ".join(dropped))}.'
                        if dropped else "") + "</p>")
        parts.append(_fig(figs, "label_efficiency", "Lines: mean AUROC over draws; bands (teacher "
                                                    "and student FP32): 2.5th to 97.5th "
                                                    "percentile of the draws."))
        names = list(le["curves"])
        rows = []
        for i, n in enumerate(le["sizes"]):
            cells: list[Any] = [n, le["curves"][names[0]][i].get("draws")]
            for name in names:
                pt = le["curves"][name][i]
                cells.append("–" if pt.get("mean") is None else
                             f"{pt['mean']:.3f} ± {pt['sd']:.3f}<br><small>[{pt['p2_5']:.3f}, "
                             f"{pt['p97_5']:.3f}]</small>")
            rows.append(cells)
        parts.append(_table(["labels", "draws"] + [f"{labels.get(n, n)} mean ± sd [2.5, 97.5]"
                                                   for n in names], rows,
                            (True,) * (2 + len(names))))
    parts.append("</section>")
    return "".join(parts)


def _subgroups(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    sg = rep.get("subgroups") or {}
    labels = _labels(rep)
    parts = ['<section id="subgroups"><h2>Subgroups</h2>']
    if not sg:
        parts.append('<p class="note">No subgroup columns (--subgroups COLS).</p>')
        parts.append("</section>")
        return "".join(parts)
    w = sg.get("largest_drop")
    if w:
        who = _e(labels.get(w["scorer"], w["scorer"]))
        parts.append(f'<p class="warn">Largest teacher-to-{who}'
                     f' AUROC drop: {_e(w["column"])} = {_e(w["value"])}, {w["drop"]:+.3f} '
                     f'(teacher {w["teacher"]:.3f}, {w["other"]:.3f}; n={w["n"]}, '
                     f'{w["n_positive"]} positive).</p>')
    parts.append('<p class="note">Ages are banded (0-29, 30-44, 45-59, 60-74, 75+); blanks are '
                 '"unknown". Subgroup AUROCs use the out-of-fold scores of the main probe, with a '
                 'grouped bootstrap inside the subgroup; small subgroups give wide intervals.</p>')
    for col, block in (sg.get("columns") or {}).items():
        vals = block["values"]
        parts.append(f"<h3>By {_e(col)}</h3>")
        names = next((list(v["auroc"]) for v in vals if v.get("auroc")), [])
        cids = list(vals[0]["centred_cosine"]) if vals else []
        st = "student-fp32|teacher"
        int8 = [c for c in cids if c.endswith("|student-fp32")]
        worst = (block.get("largest_drop") or {}).get("value")
        rows, classes = [], []
        for v in vals:
            drops = v.get("drop") or {}
            big = max(drops, key=lambda n: drops[n]) if drops else None
            cells: list[Any] = [_e(v["value"]), v["rows"], v.get("n_labelled", "–"),
                                v.get("n_positive", "–"), _f(v["centred_cosine"].get(st), 4)]
            if int8:
                cells.append(_f(min(v["centred_cosine"][c] for c in int8), 4))
            # CIs for teacher and FP32 student; INT8 points only (their CIs are in the JSON/plot)
            cells += [("–" if not v.get("auroc") else _ci(v["auroc"][n])
                       if n in ("teacher", "student-fp32") else _f(v["auroc"][n]["auroc"]))
                      for n in names]
            cells.append(f"{drops[big]:+.3f} ({_e(labels.get(big, big))})" if big else "–")
            rows.append(cells)
            classes.append("worst" if v["value"] == worst else "")
        head = ["value", "rows", "labelled", "positive", "centred cos student vs teacher"]
        if int8:
            head.append("centred cos INT8 vs FP32 (worst format)")
        head += [f"AUROC {labels.get(n, n)}" + (" [95% CI]" if n in ("teacher", "student-fp32")
                                                 else "") for n in names]
        head.append("largest drop from teacher")
        parts.append(_table(head, rows, (False,) + (True,) * (len(head) - 1), classes))
        parts.append(_fig(figs, f"subgroup_{col}", f"Left: AUROC per {col} with 95% CI (the "
                                                   "largest drop shaded). Right: student vs "
                                                   "teacher centred cosine (lowest in "
                                                   "vermillion)."))
        parts.append(_fig(figs, f"subgroup_le_{col}", "Label-efficiency curves restricted to "
                                                      "each subgroup of the eval fold (values "
                                                      "with both classes there)."))
    parts.append("</section>")
    return "".join(parts)


def _speed(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    sp = rep.get("speed") or {}
    parts = ['<section id="speed"><h2>Speed and size</h2>']
    if sp.get("sizes"):
        parts.append(_table(("model", "format", "precision", "size (MB)"),
                            [(_e(s["model"]), _e(s["format"]), _e(s["precision"]),
                              _f(s["size_mb"], 3)) for s in sp["sizes"]],
                            (False, False, False, True)))
        parts.append(_fig(figs, "sizes"))
    for i, b in enumerate(sp.get("benchmarks") or []):
        prof = b.get("profile")
        title = f"Benchmark {_e(b['file'])}: bundle {_e(b.get('bundle'))} on {_e(b.get('host'))}"
        parts.append(f"<h3>{title}</h3>")
        if prof:
            parts.append(f'<p class="sub">Profile {_e(prof["id"])}: {_e(prof.get("title"))}; '
                         f'memory budget {_f(prof.get("memory_budget_mb"), 0)} MB; projected = '
                         f'best p95 × {prof.get("host_slowdown")} (an estimate).</p>')
        rows = []
        for r in b["results"]:
            lat = "; ".join(f"{t}T {a:.2f}/{p:.2f}" for t, a, p in
                            zip(r.get("threads") or [], r.get("p50_ms") or [],
                                r.get("p95_ms") or []))
            rows.append((_e(r["model"]), _e(r.get("engine")), _f(r.get("size_mb"), 2),
                         lat or "–", _f(r.get("peak_rss_mb"), 0),
                         _f(r.get("projected_p95_ms"), 2),
                         _f(r.get("budget_ms"), 0), _e(r.get("status")) + (
                             f" ({_e(r['error'])})" if r.get("error") else "")))
        parts.append(_table(("model", "engine", "MB", "p50/p95 ms by threads", "peak RSS MB",
                             "projected p95 ms", "budget ms", "status"), rows,
                            (False, False, True, True, True, True, True)))
        parts.append(_fig(figs, f"bench_{i}"))
    rep_rows = sp.get("teacher_replica") or []
    if rep_rows:
        parts.append("<h3>Teacher replica vs INT8 student (benchmarks/teacher_vs_student.py)</h3>")
        parts.append(_table(("teacher", "teacher ms", "student", "student ms", "front end ms",
                             "ratio (model)", "ratio (with front end)"),
                            [(_e(r["teacher"]), _f(r.get("teacher_ms"), 1),
                              _e(f"{r.get('student')} ({r.get('student_engine')})"),
                              _f(r.get("student_ms"), 3), _f(r.get("frontend_ms"), 2),
                              _f(r.get("ratio_model"), 0), _f(r.get("ratio_with_frontend"), 0))
                             for r in rep_rows], (False, True, False, True, True, True, True)))
    if not (sp.get("sizes") or sp.get("benchmarks") or rep_rows):
        parts.append('<p class="note">No bundle or benchmark results given '
                     '(--bundle, --benchmark bench.json from `hai-edge benchmark --json`).</p>')
    elif not sp.get("benchmarks"):
        parts.append('<p class="note">Latency: pass --benchmark FILE (from `hai-edge benchmark '
                     'BUNDLE --device PROFILE --json`).</p>')
    parts.append("</section>")
    return "".join(parts)


def _method(rep: Mapping[str, Any]) -> str:
    g = rep.get("generator") or {}
    o = g.get("options") or {}
    return ('<section id="method"><h2>Method</h2><p class="note">Embeddings are compared on the '
            "run's held-out rows (grouped split: no patient/subject on both sides). The probe "
            "is the official recipe: standardise, class-balanced logistic regression, C from "
            "logspace(-5, 5, 11) by an inner grouped CV. Confidence intervals resample groups "
            "(patients/subjects), not items. Label-efficiency draws keep the eval fold fixed. "
            f"Seed {o.get('seed')}, {o.get('bootstrap')} bootstrap draws, {o.get('repeats')} "
            "label draws per size. See docs/report.md for how to read each figure and the "
            "limitations.</p>"
            f'<p class="note">Generated by {_e(g.get("tool"))}: <code>{_e(g.get("command"))}'
            "</code></p></section>")


def render_html(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    """The complete page (a str; the caller writes it atomically)."""
    prov = rep.get("provenance") or {}
    warn = ""
    if prov.get("not_for_clinical_use"):
        texts = [n for n in prov.get("notices") or [] if "clinical" in n.lower()]
        warn = ('<p class="warn">⚠ ' + _e("; ".join(t[:1].upper() + t[1:] for t in texts))
                + "</p>")
    b = prov.get("bundle") or {}
    t = prov.get("teacher") or {}
    s = prov.get("student") or {}
    sub = (f"Teacher {_e(t.get('id', '?'))} → student {_e(s.get('preset', '?'))}"
           + (f" · bundle {_e(b.get('name'))}" if b else "")
           + f" · {_e(rep.get('modality'))}")
    sections = "".join((
        _summary(rep, figs), _provenance(rep), _fidelity(rep, figs), _probe(rep, figs),
        head_decisions_html(rep), _label_eff(rep, figs), _subgroups(rep, figs),
        robustness_html(rep, figs), _speed(rep, figs), _method(rep)))
    # links only to the sections this report has (head decisions and robustness are optional)
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name in SECTIONS
                  if f'<section id="{sid}">' in sections)
    body = (f"<header><h1>{_e(rep.get('title'))}</h1><p class=\"sub\">{sub}</p>{warn}"
            f"<nav>{nav}</nav></header>" + sections)
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(rep.get('title'))}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")

"""The report's "Head decisions" section (issue #18): for each shipped head, per embedder
(FP32 student, each INT8 model on its engine; the teacher has another embedding, so a student head
cannot score it), on the held-out items: score agreement with the FP32 student (max |difference|,
verdict flips), AUROC and ΔAUROC, sensitivity at 90 % and 95 % specificity, each with a grouped
bootstrap CI, and calibration (ECE + a reliability diagram as inline SVG); per subgroup with
counts. Numbers come from ``hai_edge.evaluation.decisions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.evaluation.decisions import (
    auroc,
    compare_decisions,
    ece,
    sensitivity_at_specificity,
    verdict_flips,
)
from hai_edge.report._collect import STUDENT, TEACHER
from hai_edge.report._format import esc as _e

__all__ = ["SPECIFICITIES", "head_decisions", "head_decisions_html"]

SPECIFICITIES = (0.90, 0.95)


def _ci(stat: Any, y: np.ndarray, s: np.ndarray, members: list[np.ndarray], n_boot: int,
        seed: int) -> list[float | None]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        v = stat(y[idx], s[idx])
        if np.isfinite(v):
            vals.append(v)
    if len(vals) < 10:
        return [None, None]
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


def _figures(y: np.ndarray, s: np.ndarray, groups: Sequence[str], n_boot: int,
             seed: int) -> dict[str, Any]:
    g = np.asarray([str(v) for v in groups])
    _, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(inv.max() + 1)] if len(g) else []
    out: dict[str, Any] = {"n": int(len(y)), "n_positive": int(np.sum(y)),
                           "auroc": round(auroc(y, s), 4),
                           "auroc_ci95": _ci(auroc, y, s, members, n_boot, seed)}
    for sp in SPECIFICITIES:
        stat = lambda yy, ss, sp=sp: sensitivity_at_specificity(yy, ss, sp)  # noqa: E731
        out[f"sens_at_spec{int(sp * 100)}"] = round(stat(y, s), 4)
        out[f"sens_at_spec{int(sp * 100)}_ci95"] = _ci(stat, y, s, members, n_boot, seed + 1)
    out["ece"], out["reliability"] = ece(y, s)
    return out


def head_decisions(bundle: Any, embeddings: Mapping[str, np.ndarray], row_items: Sequence[str],
                   items: Sequence[str], y: np.ndarray, groups: Sequence[str],
                   metas: Sequence[Mapping[str, str]], subgroups: Sequence[str], *,
                   n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """One entry per head with a file: per embedder figures, agreement with the FP32 student,
    and per subgroup (column=value, with counts)."""
    if bundle is None or not bundle.manifest.heads:
        return []
    from hai_edge.runtime.heads import head_entries, load_head_entry

    y = np.asarray(y).astype(int)
    pos = {item: k for k, item in enumerate(items)}
    out = []
    for entry in head_entries(bundle.manifest):
        if not entry.file:
            continue
        head = load_head_entry(bundle, entry)
        scores = {}
        for name, x in embeddings.items():
            if x.shape[1] != head.dim:
                continue
            p = head.predict_proba(x)
            acc, cnt = np.zeros(len(items)), np.zeros(len(items))
            for item, v in zip(row_items, p):
                if item in pos:
                    acc[pos[item]] += v
                    cnt[pos[item]] += 1
            scores[name] = acc / np.maximum(cnt, 1)
        ref = STUDENT if STUDENT in scores else next(iter(scores), None)
        row: dict[str, Any] = {"name": head.name, "threshold": head.threshold, "reference": ref,
                               "embedders": {}, "subgroups": []}
        if TEACHER in embeddings and TEACHER not in scores:
            row["teacher"] = "not scored: the head is for the student's embedding"
        for name, s in scores.items():
            figs = _figures(y, s, groups, n_boot, seed)
            if ref is not None and name != ref:
                agree = compare_decisions(scores[ref], s, head.threshold, y=y, groups=groups,
                                          n_boot=n_boot, seed=seed, borderline=head.borderline)
                figs.update({k: agree[k] for k in ("max_abs_diff", "flips", "delta_auroc",
                                                   "delta_auroc_ci95")})
            row["embedders"][name] = figs
        for col in subgroups:
            values = [str(m.get(col, "") or "(empty)") for m in metas]
            for v in sorted(set(values)):
                mask = np.array([x == v for x in values])
                sub: dict[str, Any] = {"column": col, "value": v, "n": int(mask.sum()),
                                       "n_positive": int(y[mask].sum()), "embedders": {}}
                for name, s in scores.items():
                    d = {"auroc": round(auroc(y[mask], s[mask]), 4),
                         **{f"sens_at_spec{int(sp * 100)}": round(
                             sensitivity_at_specificity(y[mask], s[mask], sp), 4)
                            for sp in SPECIFICITIES}}
                    if ref is not None and name != ref:
                        d["max_abs_diff"] = round(float(np.max(np.abs(s[mask] - scores[ref][mask]),
                                                               initial=0.0)), 4)
                        d["flips"] = int(np.sum(verdict_flips(s[mask], scores[ref][mask],
                                                              head.threshold, head.borderline)))
                    sub["embedders"][name] = d
                row["subgroups"].append(sub)
        out.append(row)
    return out


def _n(v: Any, nd: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else (
        f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _ci_s(ci: Any) -> str:
    return "" if not ci or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _reliability_svg(table: Sequence[Mapping[str, Any]], w: int = 160) -> str:
    """Reliability diagram: mean score (x) vs positive rate (y) per bin, the diagonal dashed."""
    pts = " ".join(f"{r['mean_score'] * w:.1f},{(1 - r['positive_rate']) * w:.1f}" for r in table)
    dots = "".join(f'<circle cx="{r["mean_score"] * w:.1f}" cy="{(1 - r["positive_rate"]) * w:.1f}"'
                   f' r="{min(6, 1.5 + r["n"] ** 0.5 / 3):.1f}" fill="#0072B2"/>' for r in table)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{w}" '
            f'viewBox="-2 -2 {w + 4} {w + 4}" role="img" aria-label="reliability diagram">'
            f'<rect x="0" y="0" width="{w}" height="{w}" fill="none" stroke="#d0d0d0"/>'
            f'<line x1="0" y1="{w}" x2="{w}" y2="0" stroke="#999" stroke-dasharray="4 3"/>'
            f'<polyline points="{pts}" fill="none" stroke="#0072B2"/>{dots}</svg>')


def head_decisions_html(rep: Mapping[str, Any]) -> str:
    """The section's HTML ("" when the report has no head decisions)."""
    heads = ((rep.get("probe") or {}).get("head_decisions")) or []
    if not heads:
        return ""
    parts = ['<section id="decisions"><h2>Head decisions</h2><p class="note">Each shipped head '
             "on the held-out items, per embedder. Agreement is with the FP32 student: a head "
             "should give the same verdict on every engine. Sensitivity at 90 % / 95 % "
             "specificity and AUROC with grouped bootstrap 95 % CIs; ECE over 10 bins.</p>"]
    for h in heads:
        parts.append(f"<h3>{_e(h['name'])} (threshold {h['threshold']:.3f}, reference "
                     f"{_e(h.get('reference') or '–')})</h3>")
        rows = []
        for name, f in h["embedders"].items():
            rows.append(
                f"<tr><td>{_e(name)}</td><td class=n>{f['n']} ({f['n_positive']} pos)</td>"
                f"<td class=n>{_n(f.get('max_abs_diff'), 4)}</td><td class=n>"
                f"{_n(f.get('flips'))}</td><td class=n>{_n(f['auroc'])}{_ci_s(f['auroc_ci95'])}"
                f"</td><td class=n>{_n(f.get('delta_auroc'), 4)}</td><td class=n>"
                f"{_n(f['sens_at_spec90'])}{_ci_s(f['sens_at_spec90_ci95'])}</td><td class=n>"
                f"{_n(f['sens_at_spec95'])}{_ci_s(f['sens_at_spec95_ci95'])}</td>"
                f"<td class=n>{_n(f['ece'], 4)}</td><td>{_reliability_svg(f['reliability'])}"
                "</td></tr>")
        parts.append("<table><thead><tr><th>embedder</th><th>n</th><th>max |Δscore|</th>"
                     "<th>verdict flips</th><th>AUROC [CI]</th><th>ΔAUROC</th>"
                     "<th>sens @ 90 % spec [CI]</th><th>sens @ 95 % spec [CI]</th><th>ECE</th>"
                     "<th>reliability</th></tr></thead><tbody>" + "".join(rows)
                     + "</tbody></table>")
        if h.get("teacher"):
            parts.append(f'<p class="note">teacher: {_e(h["teacher"])}</p>')
        if h["subgroups"]:
            sub_rows = "".join(
                f"<tr><td>{_e(s['column'])}={_e(s['value'])}</td><td class=n>{s['n']} "
                f"({s['n_positive']} pos)</td><td>{_e(name)}</td><td class=n>{_n(d['auroc'])}"
                f"</td><td class=n>{_n(d['sens_at_spec90'])}</td><td class=n>"
                f"{_n(d['sens_at_spec95'])}</td><td class=n>{_n(d.get('max_abs_diff'), 4)}</td>"
                f"<td class=n>{_n(d.get('flips'))}</td></tr>"
                for s in h["subgroups"] for name, d in s["embedders"].items())
            parts.append("<table><thead><tr><th>subgroup</th><th>n</th><th>embedder</th>"
                         "<th>AUROC</th><th>sens @ 90 %</th><th>sens @ 95 %</th>"
                         "<th>max |Δscore|</th><th>flips</th></tr></thead><tbody>" + sub_rows
                         + "</tbody></table>")
    parts.append("</section>")
    return "".join(parts)

"""The report's first-screen key figures (``headline``), also printed by the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hai_edge.report._format import ci_text as _ci
from hai_edge.report._format import embedder_labels as _labels
from hai_edge.report._format import num as _f

__all__ = ["headline"]


def headline(rep: Mapping[str, Any]) -> list[dict[str, str]]:
    """The first-screen key figures (also printed by the CLI): label, value, detail."""
    out: list[dict[str, str]] = []
    labels = _labels(rep)
    comps = {c["id"]: c for c in (rep.get("fidelity") or {}).get("comparisons") or []}
    st = comps.get("student-fp32|teacher")
    if st:
        k = rep["fidelity"].get("knn_k", 5)
        out.append({"label": "Student FP32 vs teacher (held-out)",
                    "value": f"cos {st['cosine']['mean']:.4f} · centred "
                             f"{st['centred_cosine']['mean']:.4f}",
                    "detail": f"n={st['cosine']['n']} rows; p5 {st['cosine']['p5']:.4f}; "
                              f"kNN-{k} {st.get(f'knn{k}', 0):.3f}"})
    int8 = [c for c in comps.values() if c["reference"] == "student-fp32"]
    if int8:
        worst = min(int8, key=lambda c: c["centred_cosine"]["mean"])
        out.append({"label": "INT8 vs FP32 (worst format)",
                    "value": f"{labels.get(worst['candidate'], worst['candidate'])}: cos "
                             f"{worst['cosine']['mean']:.5f}",
                    "detail": f"centred {worst['centred_cosine']['mean']:.4f}; "
                              f"{len(int8)} INT8 format(s)"})
    p = rep.get("probe") or {}
    sc = p.get("scorers") or {}
    if sc:
        t, s = sc.get("teacher", {}), sc.get("student-fp32", {})
        out.append({"label": f"Probe AUROC ({p['n']} items, {p['n_positive']}+)",
                    "value": f"teacher {_f(t.get('auroc'))} · student {_f(s.get('auroc'))}",
                    "detail": "Δ student−teacher " + _ci(s, "delta_vs_teacher", "delta_ci_low",
                                                        "delta_ci_high") + " (95% CI)"})
        others = [n for n in sc if n not in ("teacher", "student-fp32")]
        if others:
            lo = min(others, key=lambda n: sc[n]["auroc"])
            out.append({"label": "Probe AUROC, INT8 (lowest format)",
                        "value": f"{labels.get(lo, lo)} {_ci(sc[lo])}",
                        "detail": "Δ vs teacher " + _ci(sc[lo], "delta_vs_teacher",
                                                       "delta_ci_low", "delta_ci_high")})
    for h in p.get("heads") or []:
        hs = {n: f for n, f in (h.get("scorers") or {}).items()
              if f.get("auroc") is not None and n != "teacher"}  # the head runs on the student
        if not hs:
            continue
        lo = min(hs, key=lambda n: hs[n]["auroc"])
        out.append({"label": f"Shipped head “{h['name']}” (held-out, lowest model)",
                    "value": f"{labels.get(lo, lo)} {_ci(hs[lo])}",
                    "detail": f"sensitivity {_f(hs[lo].get('sensitivity'))}, specificity "
                              f"{_f(hs[lo].get('specificity'))} at {_f(h.get('threshold'))}"})
    le = rep.get("label_efficiency") or {}
    if le.get("sizes"):
        n0 = le["sizes"][0]
        cur = le["curves"]
        t0 = cur.get("teacher", [{}])[0].get("mean")
        s0 = cur.get("student-fp32", [{}])[0].get("mean")
        out.append({"label": f"Label efficiency at {n0} labels",
                    "value": f"teacher {_f(t0)} · student {_f(s0)}",
                    "detail": f"mean AUROC of {le['repeats']} draws; eval n={le['eval']['n']}"})
    sg = rep.get("subgroups") or {}
    w = sg.get("largest_drop")
    if w:
        out.append({"label": "Largest subgroup AUROC drop",
                    "value": f"{w['column']} = {w['value']}: {w['drop']:+.3f}",
                    "detail": f"teacher {w['teacher']:.3f} → "
                              f"{labels.get(w['scorer'], w['scorer'])}"
                              f" {w['other']:.3f} (n={w['n']}, {w['n_positive']}+)"})
    low = sg.get("lowest_centred_cosine")
    if low:
        out.append({"label": "Lowest subgroup centred cosine",
                    "value": f"{low['column']} = {low['value']}: {low['centred_cosine']:.4f}",
                    "detail": f"student FP32 vs teacher, n={low['rows']} rows"})
    sp = rep.get("speed") or {}
    for b in sp.get("benchmarks") or []:
        res = [r for r in b["results"] if r.get("projected_p95_ms") is not None]
        if res and b.get("profile"):
            best = min(res, key=lambda r: r["projected_p95_ms"])
            out.append({"label": f"Fastest on {b['profile']['id']}",
                        "value": f"{best['model']}: {best['projected_p95_ms']:.2f} ms p95",
                        "detail": f"budget {best['budget_ms']:g} ms, {best['size_mb']:.2f} MB, "
                                  f"{best['status']} (projected)"})
    for r in sp.get("teacher_replica") or []:
        if r.get("ratio_model"):
            out.append({"label": "Teacher replica / INT8 student",
                        "value": f"{r['ratio_model']:.0f}× faster (model only)",
                        "detail": f"{r['teacher_ms']:.0f} ms vs {r['student_ms']:.3f} ms, "
                                  f"1 thread; with front end {r['ratio_with_frontend']:.0f}×"})
    return out

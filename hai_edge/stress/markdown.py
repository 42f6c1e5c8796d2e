"""stress.json -> Markdown tables (what docs/robustness.md shows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_markdown"]


def _f(ci: Mapping[str, Any] | None, signed: bool = False) -> str:
    if not ci or ci.get("value") is None:
        return "-"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = ci.get("ci_low"), ci.get("ci_high")
    band = f" [{fmt.format(lo)}, {fmt.format(hi)}]" if lo is not None and hi is not None else ""
    return fmt.format(ci["value"]) + band


def _labels(rep: Mapping[str, Any]) -> dict[tuple[str, int], str]:
    return {(s["name"], lv["severity"]): lv["label"] for s in rep["shifts"] for lv in s["levels"]}


def render_markdown(rep: Mapping[str, Any]) -> str:
    """One table per head: reference AUROC, each student's AUROC and its excess AUROC drop over
    the reference with the verdict; then student-teacher fidelity per condition."""
    res = rep["results"]
    ref = res.get("reference")
    labels = _labels(rep)
    students = [s["name"] for s in rep["scorers"] if s["name"] != ref]
    lines = [f"### {rep['target']['name']}", ""]
    d = rep["data"]
    lines.append(f"{d['n']} items ({d.get('n_positive', 0)} positive, {d['groups']} groups) "
                 f"from `{d['source']}`; seed {rep['seed']}; {res['bootstrap']['n_boot']} "
                 f"grouped bootstrap draws; reference: {ref or 'none'}.")
    lines.append("")
    for head, sec in res["heads"].items():
        lines.append(f"**Head `{head}`** (threshold {sec['threshold']}; clean AUROC "
                     + ", ".join(f"{n} {_f(v['auroc'])}" for n, v in sec["clean"].items())
                     + ")")
        lines.append("")
        cols = ["shift", "severity", f"{ref} AUROC"] if ref else ["shift", "severity"]
        for s in students:
            cols += [f"{s} AUROC", f"{s} excess drop"] if ref else [f"{s} AUROC"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in sec["shifts"]:
            sc = row["scorers"]
            cells = [row["shift"], labels.get((row["shift"], row["severity"]), "")]
            if ref:
                cells.append(_f(sc[ref]["auroc"]))
            for s in students:
                cells.append(_f(sc[s]["auroc"]))
                if ref:
                    v = sc[s].get("verdict", "")
                    mark = " **loses more**" if v == "loses more" else \
                        " (loses less)" if v == "loses less" else ""
                    cells.append(_f(sc[s].get("excess_auroc_drop"), signed=True) + mark)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    fid = [r for r in res["fidelity"] if r["scorers"]]
    if fid:
        key = "centred_cosine_vs_teacher" if any(
            "centred_cosine_vs_teacher" in v for r in fid for v in r["scorers"].values()) \
            else "cosine_vs_fp32"
        names = [n for n in students if any(n in r["scorers"] for r in fid)]
        lines.append(f"**Fidelity** ({key.replace('_', ' ')}, mean over items)")
        lines.append("")
        lines += ["| shift | severity | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for r in fid:
            cells = [r["shift"], labels.get((r["shift"], r["severity"]), "")]
            cells += [_f(r["scorers"].get(n, {}).get(key)) for n in names]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)

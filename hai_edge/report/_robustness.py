"""The report's "Robustness under shifts" section, from ``hai-edge stress`` output (``--stress``).

``hai-edge stress`` measures each head's AUROC and the students' fidelity to their teacher on
seeded, realistic shifts of the same items (issue #21); this section shows those numbers next to
the rest of the evaluation: per target and head, a table of AUROC per shift and severity (with
each student's excess drop over the reference and the verdict the stress suite gave it), and one
figure per shift, metric against severity, every embedder side by side. The stress JSON is read
as data (never executed) and kept in the report JSON as it was measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError
from hai_edge.report._format import ci_text
from hai_edge.report._format import esc as _e

__all__ = ["load_stress", "robustness_figs", "robustness_html"]

_KEYS = ("target", "shifts", "scorers", "results")


def load_stress(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Each ``hai-edge stress -o stress.json`` document, checked for the fields the section
    reads; anything else is a one-line error naming the file."""
    out = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HaiEdgeError(f"{p}: cannot read stress JSON ({exc})") from None
        res = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(res, dict) or any(k not in doc for k in _KEYS) \
                or not isinstance(res.get("heads"), dict):
            raise HaiEdgeError(f"{p}: not `hai-edge stress` output (needs "
                               f"{', '.join(_KEYS)} and results.heads)")
        out.append({k: doc[k] for k in ("target", "data", "seed", "shifts", "scorers", "results")
                    if k in doc})
    return out


def _levels(doc: Mapping[str, Any]) -> dict[tuple[str, int], str]:
    return {(s["name"], lv["severity"]): lv["label"] for s in doc["shifts"] for lv in s["levels"]}


def _ci(ci: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``0.912 [0.850, 0.960]``; ``signed`` puts ``+`` before a non-negative value (a drop)."""
    text = ci_text(ci or {}, "value")
    return _e("+" + text if signed and ci and (ci.get("value") or 0) >= 0 else text)


def _series(points: Sequence[tuple[int, Mapping[str, Any] | None]]
            ) -> tuple[list[int], list[float], list[list[float]]]:
    xs, ys, err = [], [], [[], []]
    for sev, ci in points:
        if not ci or ci.get("value") is None:
            continue
        v = ci["value"]
        xs.append(sev)
        ys.append(v)
        err[0].append(max(0.0, v - (ci["ci_low"] if ci.get("ci_low") is not None else v)))
        err[1].append(max(0.0, (ci["ci_high"] if ci.get("ci_high") is not None else v) - v))
    return xs, ys, err


def _panel(ax: Any, names: Sequence[str], points: Mapping[str, list], title: str) -> None:
    from hai_edge.report._plots import scorer_style

    for k, name in enumerate(names):
        xs, ys, err = _series(points.get(name, []))
        if xs:
            colour, marker, line = scorer_style(name)
            ax.errorbar([x + 0.05 * (k - len(names) / 2) for x in xs], ys, yerr=err,
                        color=colour, marker=marker, linestyle=line, capsize=2.5, label=name)
    ax.set_title(title, loc="left")


def robustness_figs(cv: Any, rep: Mapping[str, Any]) -> dict[str, str]:
    """One SVG per target and shift: each head's AUROC, then the students' centred cosine to the
    teacher, against severity (0 = clean), with the bootstrap CIs as bars."""
    out: dict[str, str] = {}
    for i, doc in enumerate(rep.get("robustness") or []):
        names = [s["name"] for s in doc["scorers"]]
        res = doc["results"]
        fid = res.get("fidelity") or []
        clean_fid = next((r["scorers"] for r in fid if r["shift"] == "clean"), {})
        for shift in doc["shifts"]:
            heads = list(res["heads"].items())
            fig = cv.figure(3.1 * (len(heads) + 1), 2.6)
            axes = fig.subplots(1, len(heads) + 1, squeeze=False)[0]
            for ax, (head, sec) in zip(axes, heads):
                rows = [r for r in sec["shifts"] if r["shift"] == shift["name"]]
                pts = {n: [(0, sec["clean"].get(n, {}).get("auroc"))]
                       + [(r["severity"], r["scorers"].get(n, {}).get("auroc")) for r in rows]
                       for n in names}
                _panel(ax, names, pts, f"{head}: AUROC")
            rows = [r for r in fid if r["shift"] == shift["name"]]
            key = "centred_cosine_vs_teacher"
            pts = {n: [(0, clean_fid.get(n, {}).get(key))]
                   + [(r["severity"], r["scorers"].get(n, {}).get(key)) for r in rows]
                   for n in names}
            _panel(axes[-1], names, pts, "centred cosine to teacher")
            labels = ["clean"] + [lv["label"] for lv in shift["levels"]]
            for ax in axes:
                ax.set_xticks(range(len(labels)), labels, rotation=20)
            axes[0].legend()
            alt = f"{doc['target'].get('name', 'target')}, {shift['name']}: metric vs severity"
            out[f"robustness-{i}-{shift['name']}"] = cv.svg(fig, alt)
    return out


def _head_table(doc: Mapping[str, Any], head: str, sec: Mapping[str, Any]) -> str:
    res = doc["results"]
    ref = res.get("reference")
    students = [s["name"] for s in doc["scorers"] if s["name"] != ref]
    levels = _levels(doc)
    cols = ["shift", "severity"] + ([f"{ref} AUROC"] if ref else [])
    for s in students:
        cols += [f"{s} AUROC"] + ([f"{s} excess drop"] if ref else [])
    rows = []
    for row in sec["shifts"]:
        sc = row["scorers"]
        cells = [_e(row["shift"]), _e(levels.get((row["shift"], row["severity"]), ""))]
        if ref:
            cells.append(_ci(sc.get(ref, {}).get("auroc")))
        for s in students:
            cells.append(_ci(sc.get(s, {}).get("auroc")))
            if ref:
                verdict = sc.get(s, {}).get("verdict", "")
                mark = " <strong>loses more</strong>" if verdict == "loses more" else (
                    " (loses less)" if verdict == "loses less" else "")
                cells.append(_ci(sc.get(s, {}).get("excess_auroc_drop"), signed=True) + mark)
        rows.append(cells)
    th = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    clean = ", ".join(f"{_e(n)} {_ci(v.get('auroc'))}" for n, v in sec["clean"].items())
    return (f"<h4>Head {_e(head)} (threshold {_e(sec.get('threshold'))}; clean AUROC {clean})"
            f'</h4><div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}'
            "</tbody></table></div>")


def robustness_html(rep: Mapping[str, Any], figs: Mapping[str, str]) -> str:
    """The section's HTML ("" when the report was made without ``--stress``)."""
    docs = rep.get("robustness") or []
    if not docs:
        return ""
    parts = ['<section id="robustness"><h2>Robustness under shifts</h2><p class="note">From '
             "<code>hai-edge stress</code>: the same items, shifted as a phone line, a noisy "
             "room or a compressed photo would shift them, at rising severity. \"Excess drop\" is "
             "how much more AUROC a student loses than the reference at that severity (grouped "
             "bootstrap 95 % CI); \"loses more\" marks a CI wholly above zero.</p>"]
    for i, doc in enumerate(docs):
        d = doc.get("data") or {}
        res = doc["results"]
        parts.append(f"<h3>{_e(doc['target'].get('name', 'target'))}</h3><p class=\"note\">"
                     f"{_e(d.get('n', '?'))} items ({_e(d.get('n_positive', 0))} positive, "
                     f"{_e(d.get('groups', '?'))} groups) from {_e(d.get('source', '?'))}; seed "
                     f"{_e(doc.get('seed'))}; {_e((res.get('bootstrap') or {}).get('n_boot', '?'))}"
                     f" bootstrap draws; reference {_e(res.get('reference') or 'none')}.</p>")
        for head, sec in res["heads"].items():
            parts.append(_head_table(doc, head, sec))
        for shift in doc["shifts"]:
            key = f"robustness-{i}-{shift['name']}"
            if key in figs:
                parts.append(f"<figure>{figs[key]}<figcaption>{_e(shift['name'])}: "
                             f"{_e(shift.get('description', ''))}</figcaption></figure>")
    parts.append("</section>")
    return "".join(parts)

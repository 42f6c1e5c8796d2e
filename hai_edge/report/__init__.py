"""``hai-edge report``: one self-contained HTML page (+ JSON) on whether a distilled, INT8
student keeps its teacher's promise: fidelity, downstream probe AUROC with grouped-bootstrap CIs,
label efficiency, subgroups, robustness under shifts (from ``hai-edge stress``), speed and size.

Modules: ``_collect`` (run, bundle, held-out embeddings), ``_stats`` (statistics), ``_build``
(the numbers, as one JSON-able dict), ``_plots`` (inline SVG), ``_headline`` (the key figures),
``_html`` (the page). Nothing heavy is imported with the package: matplotlib, scikit-learn and
torch load when a report is made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hai_edge.fileio import atomic_write
from hai_edge.report._build import REPORT_SCHEMA, ReportOptions

__all__ = ["REPORT_SCHEMA", "ReportOptions", "make_report", "render", "write_report"]


def make_report(target: str | None = None, *, run: str | None = None, bundle: str | None = None,
                options: ReportOptions = ReportOptions(), labels_csv: str | None = None,
                id_col: str | None = None, group_col: str | None = None,
                benchmarks: Sequence[str] = (), threads: int | None = 1, command: str = "",
                say: Callable[[str], None] = lambda _m: None,
                stress: Sequence[str] = ()) -> dict[str, Any]:
    """Collect and compute every number of the report (the dict written as report.json).
    ``stress``: ``hai-edge stress`` JSON files, shown as the "Robustness under shifts" section."""
    from hai_edge.report._build import build_report_data
    from hai_edge.report._collect import collect, load_benchmarks, resolve_sources
    from hai_edge.report._headline import headline

    from hai_edge.report._robustness import load_stress

    benches, replica = load_benchmarks(benchmarks)
    robustness = load_stress(stress)  # before the slow part: a bad file fails at once
    run_dir, b = resolve_sources(target, run, bundle)
    data = collect(run_dir, b, label_path=labels_csv, id_col=id_col, group_col=group_col,
                   threads=threads, say=say)
    _check_columns(data, options)
    rep = build_report_data(data, options, benches=benches, replica=replica, command=command,
                            say=say)
    if robustness:
        rep["robustness"] = robustness
    rep["headline"] = headline(rep)
    return rep


def _check_columns(data: Any, options: ReportOptions) -> None:
    """Fail before the slow statistics when a named label/subgroup column exists nowhere."""
    from hai_edge.errors import HaiEdgeError

    if not data.item_meta or options.label is None:
        return
    cols = set().union(*(m.keys() for m in data.item_meta.values()))
    wanted = [options.label.column, *(c for c, _ in options.label.filters)]
    missing = [c for c in wanted if c not in cols]
    if missing:
        raise HaiEdgeError(f"no column(s) {', '.join(missing)} in the items' metadata or "
                           f"labels CSV (has: {', '.join(sorted(cols))})")


def render(rep: dict[str, Any]) -> str:
    """The HTML page of a report dict (deterministic: same dict, same bytes)."""
    from hai_edge.report._html import render_html
    from hai_edge.report._plots import render_all

    return render_html(rep, render_all(rep))


def write_report(rep: dict[str, Any], html_path: str | Path,
                 json_path: str | Path | None = None) -> tuple[Path, Path]:
    """Render, then write report.json and report.html, each atomically (temp + rename). The page
    is rendered before anything is written, so a failure leaves no half-written file."""
    html_path = Path(html_path)
    json_path = Path(json_path) if json_path else html_path.with_suffix(".json")
    page = render(rep)
    text = json.dumps(rep, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    mode = _default_mode()
    for path, data in ((json_path, text), (html_path, page)):
        with atomic_write(path, "wb") as fh:
            fh.write(data.encode("utf-8"))
            os.fchmod(fh.fileno(), mode)  # a report is for sharing: not the temp file's 0600
    return html_path, json_path


def _default_mode() -> int:
    """0o666 minus the umask (read from /proc where possible: os.umask briefly changes it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask

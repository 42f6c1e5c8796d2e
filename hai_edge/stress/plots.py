"""One PNG per shift: each head's AUROC and the students' centred cosine to the teacher against
severity (0 = clean), teacher / FP32 / INT8 side by side, with the bootstrap CIs as bars.
matplotlib (``report`` extra), Agg backend, imported here only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]


def _series(rows: list[Mapping[str, Any]], clean: Mapping[str, Any], name: str, key: str
            ) -> tuple[list[int], list[float], list[list[float]]]:
    xs, ys, err = [], [], [[], []]
    for sev, ent in [(0, clean.get(name, {}))] + [(r["severity"], r["scorers"].get(name, {}))
                                                   for r in rows]:
        ci = ent.get(key)
        if not ci or ci.get("value") is None:
            continue
        xs.append(sev)
        ys.append(ci["value"])
        err[0].append(max(0.0, ci["value"] - (ci["ci_low"] if ci["ci_low"] is not None else ci["value"])))
        err[1].append(max(0.0, (ci["ci_high"] if ci["ci_high"] is not None else ci["value"]) - ci["value"]))
    return xs, ys, err


def write_plots(rep: Mapping[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hai_edge.fileio import atomic_write

    res = rep["results"]
    names = [s["name"] for s in rep["scorers"]]
    written = []
    for shift in rep["shifts"]:
        heads = [(h, sec) for h, sec in res["heads"].items()]
        panels = len(heads) + 1
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
        for ax, (head, sec) in zip(axes[0], heads):
            rows = [r for r in sec["shifts"] if r["shift"] == shift["name"]]
            for k, name in enumerate(names):
                xs, ys, err = _series(rows, sec["clean"], name, "auroc")
                ax.errorbar([x + 0.06 * (k - len(names) / 2) for x in xs], ys, yerr=err,
                            marker="o", capsize=3, label=name, color=f"C{k}")
            ax.set_title(f"{head}: AUROC", fontsize=10)
        ax = axes[0][-1]
        fid = {r["severity"]: r for r in res["fidelity"] if r["shift"] in ("clean", shift["name"])}
        clean = fid.get(0, {}).get("scorers", {})
        rows = [fid[k] for k in sorted(fid) if k]
        for k, name in enumerate(names):
            xs, ys, err = _series(rows, clean, name, "centred_cosine_vs_teacher")
            if xs:
                ax.errorbar([x + 0.06 * (k - len(names) / 2) for x in xs], ys, yerr=err,
                            marker="s", capsize=3, label=name, color=f"C{k}")
        ax.set_title("centred cosine to teacher", fontsize=10)
        labels = ["clean"] + [lv["label"] for lv in shift["levels"]]
        for a in axes[0]:
            a.set_xticks(range(len(labels)), labels, fontsize=7, rotation=20)
            a.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{rep['target']['name']}: {shift['name']}", fontsize=11)
        fig.tight_layout()
        path = out_dir / f"{rep['target']['name']}-{shift['name']}.png"
        with atomic_write(path) as fh:
            fig.savefig(fh, format="png", dpi=80)
        plt.close(fig)
        written.append(path)
    return written

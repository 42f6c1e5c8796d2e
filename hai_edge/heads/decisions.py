"""The decision gate of a head across engines (``probe train``) and the per-head expected scores
of a bundle's golden vectors (``hai-edge verify``).

On held-out rows embedded by every engine, each engine's recording scores are compared with the
reference's (the FP32 student when the bundle has one, else the first engine) by
``hai_edge.evaluation.decisions``: max |score difference|, verdict flips, ΔAUROC and sensitivity
at the head's operating specificity with grouped bootstrap CIs. A failure raises ``GateError``
with the figures unless ``--allow-degraded``, which is recorded in the head's ``training``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from hai_edge.errors import GateError
from hai_edge.evaluation.decisions import (
    DecisionThresholds,
    compare_decisions,
    decision_failures,
)
from hai_edge.heads.engine_rows import EngineRows
from hai_edge.heads.robust import engine_scores, score_agreement

__all__ = ["GOLDEN_HEAD_TOLERANCE", "add_golden_head_scores", "decision_figures",
           "gate_head_decisions"]

GOLDEN_HEAD_TOLERANCE = 0.02  # the decision gate's score limit


def decision_figures(head: Any, rows: EngineRows, *, reference: str | None = None,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per engine vs ``reference``: ``compare_decisions`` figures; plus the all-engine
    agreement and a one-row ``summary`` (worst engine)."""
    scores = engine_scores(head, rows)
    ref_name = reference if reference in scores else rows.engines[0]
    first = rows.first
    spec = head.training.get("specificity_cv")
    band = float(getattr(head, "borderline", 0.0))
    per = {e: compare_decisions(scores[ref_name], s, head.threshold, y=first.y,
                                groups=first.groups, specificity=spec, n_boot=n_boot, seed=seed,
                                borderline=band)
           for e, s in scores.items() if e != ref_name}
    agree = score_agreement(scores, head.threshold, band)
    worst = lambda k: max((abs(f[k]) for f in per.values()), default=0.0)  # noqa: E731
    summary = {"reference": ref_name, "n": len(first.y), "engines": rows.engines,
               "auroc_reference": per[next(iter(per))]["auroc_reference"] if per else None,
               "max_abs_diff": agree["max_abs_diff"], "flips": agree["flips"],
               "borderline": band, "borderline_changes": agree["borderline_changes"],
               "max_delta_auroc": worst("delta_auroc"),
               "max_delta_sensitivity": worst("delta_sensitivity")}
    return {"summary": summary, "per_engine": per, "agreement": agree}


def gate_head_decisions(head: Any, rows: EngineRows, *, th: DecisionThresholds =
                        DecisionThresholds(), reference: str | None = None,
                        allow_degraded: bool = False, n_boot: int = 1000,
                        say: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """(head with the figures in ``training["decision_gate"]``, figures); ``GateError`` naming
    every failing engine and figure unless ``allow_degraded`` (then recorded as an override)."""
    figs = decision_figures(head, rows, reference=reference, n_boot=n_boot)
    bad = {e: decision_failures(f, th) for e, f in figs["per_engine"].items()}
    bad = {e: v for e, v in bad.items() if v}
    if figs["agreement"]["flips"] > th.max_flips and not bad:
        bad["all engines"] = [f"{figs['agreement']['flips']} verdict flip(s) between engines"]
    record = {"thresholds": th.to_dict(), "passed": not bad, **figs}
    if bad:
        msg = (f"head {head.name}: decision gate failed on {figs['summary']['n']} held-out rows "
               f"vs {figs['summary']['reference']}: "
               + "; ".join(f"{e}: {', '.join(v)}" for e, v in bad.items()))
        if not allow_degraded:
            raise GateError(msg + " (pass --allow-degraded to keep it anyway)", figures=record)
        record["override"] = "allow_degraded"
        if say:
            say(msg + " -- kept because of --allow-degraded")
    training = {**head.training, "decision_gate": json.loads(json.dumps(record))}
    return dataclasses.replace(head, training=training), record


def add_golden_head_scores(bundle: Any, dest: str, *, overwrite: bool = False,
                           tolerance: float = GOLDEN_HEAD_TOLERANCE) -> Any:
    """A NEW bundle whose golden.json also holds every head's expected score of every golden
    item per model (computed from the outputs recorded for that model), for ``hai-edge verify``.
    """
    from hai_edge.bundle import write_bundle
    from hai_edge.runtime.heads import head_entries, load_head_entry
    from hai_edge.runtime.verify import GOLDEN_NAME, decode_array, load_golden

    doc = load_golden(bundle)
    heads = [load_head_entry(bundle, e) for e in head_entries(bundle.manifest) if e.file]
    section: dict[str, Any] = {}
    for h in heads:
        per_model = {}
        for mid, exp in (doc.get("models") or {}).items():
            out = decode_array(exp["outputs"], f"golden {mid}").reshape(
                -1, bundle.manifest.embedding_dim)
            per_model[mid] = [round(float(v), 6) for v in h.predict_proba(out)]
        section[h.name] = {"threshold": h.threshold, "tolerance": tolerance,
                           "scores": per_model}
    doc = {**doc, "heads": section}
    files: dict[str, Any] = {n: bundle.root / n for n in bundle.manifest.files}
    files[GOLDEN_NAME] = (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")
    manifest = dataclasses.replace(bundle.manifest, files={}, created="")
    bundle.verify()
    return write_bundle(dest, manifest, files, overwrite=overwrite)


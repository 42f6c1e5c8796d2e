"""``hai-edge probe train|eval``: a calibrated linear head on a bundle's embeddings.

Light on purpose (the parser imports it): scikit-learn and the pipelines load inside the
library functions (``hai_edge.heads.bundle_heads``) the commands call.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _csv_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def register(subparsers: Any) -> None:
    from hai_edge.cli._common import add_engine_args

    p = subparsers.add_parser("probe", help="train or evaluate a calibrated linear head on a "
                              "bundle's embeddings")
    psub = p.add_subparsers(dest="probe_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    def data_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--bundle", "-b", required=True, help="bundle whose embeddings to use")
        q.add_argument("--data", "-d", required=True, metavar="CSV",
                       help="CSV: a path column (path/file/filename; relative to the CSV) and "
                            "label/group columns")
        q.add_argument("--label", required=True, metavar="COL", help="label column")
        q.add_argument("--positive", metavar="VALUES", help="comma-separated label values that "
                       "are positive (default: 1/true/yes)")
        q.add_argument("--group", metavar="COL", help="subject/patient column: CV folds and "
                       "bootstrap resample whole groups (default: patient_id, subject_id, ... "
                       "if present, else each recording is its own group)")
        q.add_argument("--file-column", metavar="COL", help="column with the file paths")
        add_engine_args(q)
        q.add_argument("--seed", type=int, default=0, help="seed for folds and bootstrap (0)")

    t = psub.add_parser("train", help="fit a head (grouped CV, Platt calibration, threshold)")
    data_args(t)
    t.add_argument("-o", "--output", required=True, metavar="HEAD.json", help="head file to write")
    t.add_argument("--name", help="head name (default: the label column)")
    t.add_argument("--labels", metavar="NEG,POS", help="names of the two outcomes "
                   "(default: negative,positive)")
    t.add_argument("--sensitivity", type=float, help="threshold for this sensitivity instead "
                   "of Youden's J")
    t.add_argument("--notice", default="", help="notice shown with every score of this head")
    t.add_argument("--add-to-bundle", metavar="OUT_DIR", help="also write a new bundle = BUNDLE "
                   "+ this head (the original is never modified)")
    t.add_argument("--overwrite", action="store_true", help="allow --add-to-bundle to replace "
                   "an existing directory (atomically)")
    t.add_argument("--heldout", metavar="CSV", help="held-out rows (same columns as --data) for "
                   "the decision gate across engines (default: the training rows)")
    t.add_argument("--recipe", default="auto", help="head recipe: auto (standard, then robust "
                   "if the decision gate fails), standard, pooled, shrunk, pooled-shrunk, robust")
    t.add_argument("--allow-degraded", action="store_true", help="keep a head that fails the "
                   "decision gate (recorded in the head's training section)")
    t.set_defaults(func=_cmd_train)

    e = psub.add_parser("eval", help="AUROC with a grouped bootstrap CI, sensitivity/specificity, "
                        "per subgroup")
    data_args(e)
    e.add_argument("--head", required=True, metavar="NAME|FILE",
                   help="the head to evaluate: a head of the bundle or a head file")
    e.add_argument("--subgroups", metavar="COLS", help="comma-separated columns to break down by")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (1000)")
    e.add_argument("--json", action="store_true", help="print the report as one JSON object")
    e.set_defaults(func=_cmd_eval)


def _data(args: argparse.Namespace) -> Any:
    from hai_edge.heads.bundle_heads import ProbeData

    return ProbeData(bundle=args.bundle, data=args.data, label=args.label,
                     positive=_csv_list(args.positive), group=args.group,
                     file_column=args.file_column, backend=args.backend,
                     precision=args.precision, threads=args.threads, seed=args.seed)


def _cmd_train(args: argparse.Namespace) -> int:
    from hai_edge.heads.bundle_heads import train_probe

    done = train_probe(_data(args), args.output, name=args.name,
                       labels=_csv_list(args.labels) or ("negative", "positive"),
                       sensitivity=args.sensitivity, notice=args.notice,
                       add_to_bundle=args.add_to_bundle, overwrite=args.overwrite,
                       recipe=args.recipe, heldout=args.heldout,
                       allow_degraded=args.allow_degraded)
    head, tr = done.head, done.head.training
    print(f"wrote head {head.name!r} to {done.head_file}: {tr['n']} recordings "
          f"({tr['n_positive']} positive, {tr['groups']} groups, {tr['n_windows']} windows), "
          f"grouped {tr['folds']}-fold CV AUROC {tr['auroc_cv']:.3f} (C={tr['C']:.0e}), "
          f"threshold {head.threshold:.3f} (sens {tr['sensitivity_cv']:.2f}, "
          f"spec {tr['specificity_cv']:.2f})")
    gate = tr.get("decision_gate")
    if gate:
        s = gate["summary"]
        print(f"decision gate ({gate['rows']}, {len(s['engines'])} engines vs {s['reference']}): "
              f"recipe {gate['rung']}, max |score diff| {s['max_abs_diff']:.4f}, "
              f"{s['flips']} flip(s), max |ΔAUROC| {s['max_delta_auroc']:.4f}"
              + (" -- DEGRADED (--allow-degraded)" if gate.get("override") else ""))
    if done.bundle is not None:
        print(f"wrote bundle {done.bundle.root} with head {head.name!r}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from hai_edge.heads.bundle_heads import evaluate_probe

    head, report = evaluate_probe(_data(args), args.head, subgroups=_csv_list(args.subgroups),
                                  bootstrap=args.bootstrap)
    if args.json:
        print(json.dumps(report))
        return 0
    o = report["overall"]
    print(f"head {head.name} (threshold {head.threshold:.3f}) on {o['n']} recordings "
          f"({o['n_positive']} positive, {o['groups']} groups)")
    print(f"{'':<24} {'n':>6} {'pos':>6} {'AUROC':>7} {'95% CI (grouped)':>17} {'sens':>7} "
          f"{'spec':>7}")
    print(f"{'overall':<24} {_row(o)}")
    for r in report["subgroups"]:
        print(f"{(r['column'] + '=' + r['value'])[:24]:<24} {_row(r)}")
    if report["n_failed"]:
        print(f"({report['n_failed']} file(s) could not be embedded and were left out)")
    return 0


def _row(r: dict) -> str:
    ci = r["ci95"]
    ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else "[n/a]"
    au = f"{r['auroc']:.3f}" if r["auroc"] is not None else "n/a"
    se = f"{r['sensitivity']:.3f}" if r["sensitivity"] is not None else "n/a"
    sp = f"{r['specificity']:.3f}" if r["specificity"] is not None else "n/a"
    return f"{r['n']:>6} {r['n_positive']:>6} {au:>7} {ci_s:>17} {se:>7} {sp:>7}"

"""``hai-edge distill``: train a small student on a teacher's embeddings and report fidelity.

Light on purpose (``hai_edge.cli`` imports it to build the parser): torch, scikit-learn and the
training code load inside the command function.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def _csv_list(text: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def _filter(text: str) -> tuple[str, str]:
    col, sep, value = text.partition("=")
    if not sep or not col.strip():
        raise argparse.ArgumentTypeError(f"expected COL=VALUE, got {text!r}")
    return col.strip(), value.strip()


def register(subparsers: Any) -> None:
    d = subparsers.add_parser(
        "distill", help="distil a teacher into a small student and report held-out fidelity",
        description="Train a small student (see --list-students) to reproduce a teacher's "
                    "embeddings, with a grouped held-out split, early stopping and resumable "
                    "checkpoints (re-running the same command continues). Writes run.json, "
                    "student.pt, fidelity.json and fidelity.md into RUN_DIR.")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--teacher", "-t", metavar="SPEC",
                     help="teacher spec (see `hai-edge teacher embed -h`); embedded first into "
                          "RUN_DIR/targets")
    src.add_argument("--targets", metavar="STORE", help="an embedding store from `teacher embed`")
    d.add_argument("--data", "-d", metavar="DIR_OR_CSV", help="the corpus (folder or CSV)")
    d.add_argument("--student", "-s", metavar="PRESET", help="student preset (--list-students)")
    d.add_argument("-o", "--output", metavar="RUN_DIR", help="run directory")
    d.add_argument("--list-students", action="store_true",
                   help="list student presets with parameters and MACs, then exit")
    d.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    d.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    d.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (3e-3)")
    d.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (1e-4)")
    d.add_argument("--loss-weights", metavar="COS,MSE,REL", default="1,1,1",
                   help="weights of the cosine, MSE and relational loss terms (1,1,1)")
    d.add_argument("--seed", type=int, default=0, help="seed for split, init and batches (0)")
    d.add_argument("--holdout", type=float, default=0.2, help="held-out fraction by group (0.2)")
    d.add_argument("--group", metavar="COL", help="CSV column with subject/patient/group ids")
    d.add_argument("--id-col", metavar="COL", help="CSV column with item ids (default: the "
                   "corpus loader's choice); must give the ids the store was built with")
    d.add_argument("--path-col", metavar="COL", help="CSV column with file paths")
    d.add_argument("--label", metavar="COL", help="report: probe label column")
    d.add_argument("--positive", metavar="VALUES", help="report: label values that are positive "
                   "(comma-separated, e.g. BCC,SCC,MEL)")
    d.add_argument("--label-filter", metavar="COL=VALUE", type=_filter, action="append",
                   default=[], help="report: probe only rows with COL == VALUE (repeatable)")
    d.add_argument("--subgroups", metavar="COLS", help="report: per-subgroup rows for these "
                   "columns (comma-separated; columns named like 'age' are banded)")
    d.add_argument("--probe-repeats", type=int, default=5,
                   help="report: repetitions of the grouped 5-fold probe CV, averaged (5)")
    d.add_argument("--patience", type=int, default=8,
                   help="stop after this many epochs without a better held-out cosine (8)")
    d.add_argument("--max-minutes", type=float,
                   help="wall-clock budget; stops after the last epoch that fits (resumable)")
    d.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    d.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="training device (cpu)")
    d.add_argument("--views", type=int, default=4, help="with --teacher: augmented views per "
                   "item besides the clean one (4)")
    d.add_argument("--teacher-batch-size", type=int, default=16, help="with --teacher (16)")
    d.add_argument("--student-aug", default="none", choices=("none", "mask", "flip"),
                   help="extra augmentation of cached student inputs (none)")
    d.add_argument("--export-output", default="teacher", choices=("teacher", "student"),
                   help="embedding the bundle exports: the projection into the teacher's space "
                        "(default; teacher probes keep working) or the student's own")
    d.add_argument("--init", metavar="RUN_DIR|pretrained:PRESET",
                   help="warm start from another run's student, or a shipped pretrained one "
                        "(same preset and teacher; keeps its normalisation)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    d.set_defaults(func=_cmd_distill)


def _print_students() -> int:
    from hai_edge.distill.students import student_table

    rows = student_table()
    print(f"{'preset':<10} {'modality':<8} {'input':<14} {'dim':>4} {'params':>10} "
          f"{'MACs':>12}  description")
    for r in rows:
        shape = "x".join(str(v) for v in r["input"])
        print(f"{r['name']:<10} {r['modality']:<8} {shape:<14} {r['dim']:>4} "
              f"{r['params'] / 1e6:>9.3f}M {r['macs'] / 1e6:>10.1f}M  {r['description']}")
    print("params/MACs: exported model (student + projection to a 512-d teacher, folded); "
          "MACs per 2 s window (audio) or photo (image)")
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    if args.list_students:
        return _print_students()
    missing = [flag for flag, v in (("--data", args.data), ("--student", args.student),
                                    ("-o RUN_DIR", args.output)) if not v]
    if not (args.teacher or args.targets):
        missing.insert(0, "--teacher SPEC or --targets STORE")
    if missing:
        raise HaiEdgeError(f"distill needs {', '.join(missing)}")
    try:
        weights = [float(v) for v in args.loss_weights.split(",")]
    except ValueError:
        weights = []
    if len(weights) != 3:
        raise HaiEdgeError("--loss-weights needs three numbers: COS,MSE,REL")
    if args.positive and not args.label:
        raise HaiEdgeError("--positive needs --label")

    # Before torch loads: idle OpenMP threads sleep instead of spinning. On a shared machine
    # spinning threads made small CPU training steps 10-100x slower (docs/distillation.md);
    # an explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from hai_edge.distill.run import DistillConfig, LossWeights, distill

    cfg = DistillConfig(
        data=args.data, student=args.student, run_dir=args.output, targets=args.targets,
        teacher=args.teacher, views=args.views, teacher_batch_size=args.teacher_batch_size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, loss=LossWeights(*weights), seed=args.seed,
        holdout=args.holdout, group_col=args.group, id_col=args.id_col,
        path_col=args.path_col, label=args.label,
        positive=_csv_list(args.positive), label_filter=tuple(args.label_filter),
        subgroups=_csv_list(args.subgroups), probe_repeats=args.probe_repeats,
        patience=args.patience,
        max_minutes=args.max_minutes, num_threads=args.threads, device=args.device,
        student_aug=args.student_aug, export_output=args.export_output, init=args.init,
        progress=not args.quiet,
    )
    result = distill(cfg)
    print((result.run_dir / "fidelity.md").read_text(encoding="utf-8"))
    from hai_edge.distill.fidelity import not_learned_warning

    warning = not_learned_warning(result.fidelity or {})
    if warning:
        print(f"hai-edge: WARNING: {warning}", file=sys.stderr)
    print(f"{result.status}: {result.stopped} after {result.epochs_done} epochs "
          f"(best epoch {result.best_epoch}); report: {result.run_dir / 'fidelity.md'}",
          file=sys.stdout)
    return 0

"""``hai-edge report RUN_DIR|BUNDLE -o report.html``: the evaluation report (HTML + JSON).

Light at import: the report package (numpy, scikit-learn, matplotlib, torch) loads inside the
command function.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def _say(msg: str) -> None:
    print(f"hai-edge: {msg}", file=sys.stderr, flush=True)


def _sizes(text: str) -> tuple[int | str, ...]:
    out: list[int | str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.lower() == "all":
            out.append("all")
            continue
        try:
            n = int(part)
        except ValueError:
            raise HaiEdgeError(f"--label-sizes: {part!r} is neither a number nor 'all'") from None
        if n < 4:
            raise HaiEdgeError("--label-sizes: each size must be >= 4 (2 labels per class)")
        out.append(n)
    if not out:
        raise HaiEdgeError("--label-sizes: give at least one size")
    return tuple(out)


def _cmd_report(args: argparse.Namespace) -> int:
    from hai_edge.evaluation.probes import LabelSpec
    from hai_edge.report import ReportOptions, make_report, write_report

    if not args.output.lower().endswith((".html", ".htm")):
        raise HaiEdgeError(f"{args.output}: the report must be an .html file")
    for name, value, low in (("--repeats", args.repeats, 1), ("--bootstrap", args.bootstrap, 100),
                             ("--folds", args.folds, 2), ("--threads", args.threads, 1)):
        if value < low:
            raise HaiEdgeError(f"{name} must be >= {low}")
    label = None
    if args.label:
        filters = []
        for f in args.label_filter or []:
            col, sep, val = f.partition("=")
            if not sep or not col:
                raise HaiEdgeError(f"--label-filter {f!r}: expected COL=VALUE")
            filters.append((col, val))
        label = LabelSpec(args.label, tuple(v.strip() for v in (args.positive or "").split(",")
                                            if v.strip()), tuple(filters))
    elif args.positive or args.label_filter:
        raise HaiEdgeError("--positive/--label-filter need --label COL")
    subgroups = (tuple(c.strip() for c in args.subgroups.split(",") if c.strip())
                 if args.subgroups is not None else None)
    opts = ReportOptions(label=label, subgroups=subgroups, label_sizes=_sizes(args.label_sizes),
                         repeats=args.repeats, bootstrap=args.bootstrap, seed=args.seed,
                         folds=args.folds, title=args.title)
    command = "hai-edge report " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "report" else "hai-edge report"
    say = (lambda _m: None) if args.quiet else _say
    rep = make_report(args.source, run=args.run, bundle=args.bundle, options=opts,
                      labels_csv=args.data, id_col=args.id_col, group_col=args.group,
                      benchmarks=args.benchmark or (), threads=args.threads, command=command,
                      say=say, stress=args.stress or ())
    html_path, json_path = write_report(rep, args.output, args.json)
    print(f"wrote {html_path} and {json_path}")
    for h in rep.get("headline") or []:
        print(f"  {h['label']}: {h['value']} ({h['detail']})")
    for n in rep.get("notes") or []:
        print(f"  note: {n}")
    return 0


def register(subparsers: Any) -> None:
    r = subparsers.add_parser(
        "report", help="one self-contained HTML evaluation report (+ JSON): fidelity, probe "
                       "AUROC with CIs, label efficiency, subgroups, robustness, speed",
        usage="hai-edge report RUN_DIR|BUNDLE [--run RUN_DIR] [--bundle BUNDLE] "
              "[--data labels.csv --label COL --positive V,..] [--benchmark bench.json] "
              "[--stress stress.json] -o report.html")
    r.add_argument("source", nargs="?", metavar="RUN_DIR|BUNDLE",
                   help="a `hai-edge distill` run directory or a bundle (directory or built-in "
                        "name); a bundle finds its run through provenance.run_dir")
    r.add_argument("--run", help="the distillation run (teacher targets, torch student)")
    r.add_argument("--bundle", "-b", help="the exported bundle (INT8 models, sizes)")
    r.add_argument("-o", "--output", required=True, help="report.html to write")
    r.add_argument("--json", help="where to write the numbers (default: next to the HTML)")
    r.add_argument("--data", metavar="CSV", help="labels CSV joined on item id (default: the "
                                                 "run's corpus metadata)")
    r.add_argument("--id-col", help="id column of --data (default: the column matching the "
                                    "run's item ids)")
    r.add_argument("--label", help="probe label column (default: the run's --label)")
    r.add_argument("--positive", help="comma-separated positive values, e.g. BCC,SCC,MEL")
    r.add_argument("--label-filter", action="append", metavar="COL=VALUE",
                   help="restrict probed items (repeatable), e.g. source=call-center")
    r.add_argument("--group", metavar="COL", help="group column for folds and bootstrap "
                                                  "(default: the run's groups)")
    r.add_argument("--subgroups", metavar="COLS", help="comma-separated subgroup columns "
                                                       "(default: the run's --subgroups)")
    r.add_argument("--benchmark", action="append", metavar="JSON",
                   help="`hai-edge benchmark --json` output or benchmarks/teacher_vs_student.py "
                        "JSON (repeatable)")
    r.add_argument("--stress", action="append", metavar="JSON",
                   help="`hai-edge stress -o stress.json` output: adds the robustness section "
                        "(repeatable, e.g. one per bundle)")
    r.add_argument("--label-sizes", default="8,16,32,64,128,all",
                   help="training-label counts of the label-efficiency curve (default "
                        "%(default)s)")
    r.add_argument("--repeats", type=int, default=10,
                   help="label draws per size (default %(default)s)")
    r.add_argument("--bootstrap", type=int, default=1000,
                   help="grouped bootstrap draws for the 95%% CIs (default %(default)s)")
    r.add_argument("--folds", type=int, default=5, help="probe CV folds (default 5)")
    r.add_argument("--seed", type=int, default=0, help="folds, bootstrap and draws (default 0)")
    r.add_argument("--threads", type=int, default=1, help="torch/engine threads (default 1)")
    r.add_argument("--title", help="page title")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    r.set_defaults(func=_cmd_report)

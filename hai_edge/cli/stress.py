"""``hai-edge stress RUN_DIR|BUNDLE --data CSV -o stress.json``: the shift suite (issue #21).

Light at import: hai_edge.stress (scipy, the engines, torch for the teacher) loads inside the
command function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _severities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in _csv(text))
    except ValueError:
        raise HaiEdgeError(f"--severities: {text!r} is not a list of numbers 1-3") from None


def _cmd_stress(args: argparse.Namespace) -> int:
    from hai_edge.evaluation.probes import LabelSpec
    from hai_edge.fileio import atomic_write
    from hai_edge.stress import StressOptions, render_markdown, run_stress

    label = None
    if args.label:
        filters = []
        for f in args.filter or ():
            col, sep, val = f.partition("=")
            if not sep or not col:
                raise HaiEdgeError(f"--filter {f!r}: expected COLUMN=VALUE")
            filters.append((col, val))
        label = LabelSpec(args.label, _csv(args.positive), tuple(filters))
    elif args.positive or args.filter:
        raise HaiEdgeError("--positive and --filter need --label")
    if args.max_items is not None and args.max_items < 4:
        raise HaiEdgeError("--max-items must be at least 4")
    opts = StressOptions(
        data=args.data, shifts=_csv(args.shifts), severities=_severities(args.severities),
        seed=args.seed, max_items=args.max_items or None,
        max_seconds=args.max_seconds or None, label=label, models=_csv(args.models),
        teacher=None if args.teacher == "none" else args.teacher, noise_dir=args.noise_dir,
        n_boot=args.bootstrap, threads=args.threads, progress=not args.quiet)
    rep: dict[str, Any] = run_stress(args.target, opts)
    out = Path(args.output)
    with atomic_write(out, "w") as fh:
        json.dump(rep, fh, indent=1)
    print(f"hai-edge: wrote {out} ({rep['seconds']:.0f} s)", file=sys.stderr)
    if args.markdown:
        with atomic_write(Path(args.markdown), "w") as fh:
            fh.write(render_markdown(rep) + "\n")
    if args.plots:
        from hai_edge.stress.plots import write_plots

        for p in write_plots(rep, Path(args.plots)):
            print(f"hai-edge: wrote {p}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "stress", help="measure teacher, FP32 and INT8 students under realistic recording shifts",
        description="Apply seeded, documented shifts (audio: telephone, g711, mp3, opus, noise, "
                    "noise-real, reverb, gain, clipping, highpass, lowpass; photos: jpeg, "
                    "downscale, defocus, motion, warm-light, cool-light, underexposure, "
                    "overexposure, rotation, crop) and measure fidelity and each head's AUROC / "
                    "sensitivity / score drift per shift and severity, with grouped bootstrap "
                    "CIs (docs/robustness.md).")
    p.add_argument("target", metavar="RUN_DIR|BUNDLE",
                   help="a bundle directory or built-in name, or a distillation run directory")
    p.add_argument("--data", default="../shared/data",
                   help="data CSV, media folder, or the shared data root (default: %(default)s)")
    p.add_argument("--shifts", help="comma-separated shift names (default: all of the modality)")
    p.add_argument("--severities", default="1,2,3", help="severities 1-3 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of shifts, sampling and bootstrap")
    p.add_argument("--max-items", type=int, default=160,
                   help="at most this many items, whole groups (0: all; default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=8.0,
                   help="audio: use the first seconds of each recording (0: all; default: "
                        "%(default)s)")
    p.add_argument("--label", help="label column (default: the dataset's or the head's)")
    p.add_argument("--positive", help="comma-separated positive values of --label")
    p.add_argument("--filter", action="append", metavar="COLUMN=VALUE",
                   help="keep only rows where COLUMN equals VALUE (repeatable)")
    p.add_argument("--models", help="comma-separated bundle model ids (default: all runnable)")
    p.add_argument("--teacher", default="auto",
                   help="teacher spec, 'auto' (the bundle's provenance) or 'none'")
    p.add_argument("--noise-dir", help="real noise recordings for noise-real "
                                       "(default: DATA/donateacry/audio)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws (default: 1000)")
    p.add_argument("--threads", type=int, default=1, help="engine threads (default: 1)")
    p.add_argument("--markdown", help="also write the tables as Markdown to this file")
    p.add_argument("--plots", help="also write one PNG per shift (metric vs severity) here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("-o", "--output", default="stress.json", help="default: %(default)s")
    p.set_defaults(func=_cmd_stress)

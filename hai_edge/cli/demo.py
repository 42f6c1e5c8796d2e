"""`hai-edge demo` command registration (light: the pipeline is imported when it runs)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from hai_edge.demo.pipeline import run_demo

    modalities = ("audio", "image") if args.only is None else (args.only,)
    teachers = {k: v for k, v in (("audio", args.teacher_audio), ("image", args.teacher_image)) if v}
    run_demo(args.output, quick=args.quick, modalities=modalities, teachers=teachers,
             allow_degraded=args.allow_degraded, from_scratch=args.from_scratch,
             fresh=args.fresh)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline offline on the bundled samples (demo, not for clinical use)",
        description="reference teacher -> distillation -> INT8 export to ONNX/OpenVINO/TFLite with "
                    "gates -> benchmark -> embeddings on every engine. Needs hai-edge[demo] "
                    "(hai-edge[export] adds the TFLite format). Earlier results in the work "
                    "directory are reused when their inputs are unchanged.",
    )
    p.add_argument("-o", "--output", default="hai-edge-demo", help="work directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer epochs and benchmark runs (smoke test)")
    p.add_argument("--fresh", action="store_true",
                   help="remove this demo's earlier results first and redo everything (only its "
                        "own folders in the work directory)")
    p.add_argument("--only", choices=("audio", "image"), help="run one modality")
    p.add_argument("--allow-degraded", action="store_true",
                   help="keep INT8 models that miss a fidelity gate (recorded in the manifest)")
    p.add_argument("--from-scratch", action="store_true",
                   help="distil from random weights instead of fine-tuning the shipped student "
                        "(the sample set is tiny: such a student is weak and its INT8 models miss "
                        "the centred-cosine gate unless --allow-degraded)")
    p.add_argument("--teacher-audio", metavar="SPEC", help="audio teacher instead of reference:audio")
    p.add_argument("--teacher-image", metavar="SPEC", help="image teacher instead of reference:image")
    p.set_defaults(func=_cmd_demo)

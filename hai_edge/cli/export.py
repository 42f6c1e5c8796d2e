"""``hai-edge export SOURCE -o BUNDLE`` (``hai-edge verify`` is in ``hai_edge.cli.verify``).

SOURCE is one of:

* a distillation run directory (has ``run.json``; written by ``hai-edge distill``): the student,
  its front-end spec, the teacher's id/licence, calibration inputs from the run's training items
  and held-out inputs from its held-out items (never used for calibration);
* a ``torch.export`` program (``.pt2``) with the front-end spec next to it (``NAME.spec.json``
  or ``--spec FILE``);
* a ``.pt``/``.pth`` checkpoint holding a dict ``{"model": nn.Module or state_dict, "arch":
  student preset (needed for a state_dict), "spec": front-end dict (default: the preset's),
  "teacher": {"id", "licence"} (optional), "name": str (optional)}``. A pickled module runs code
  from the file when loaded, so it needs ``--trust-checkpoint``; a state_dict does not.

Without ``--calib`` a checkpoint is calibrated and gated on synthetic media through the real front
end (recorded as such in the manifest: figures are then only indicative). With ``--calib``
(a media directory or a CSV) the items are split by group: one part calibrates, the other gates.
Module import is light: torch and the converters load inside the command functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import GateError, HaiEdgeError

__all__ = ["register"]

_PRESET_CHANGES: dict[str, dict[str, Any]] = {
    "x86_u8s8": {"activation_type": "uint8", "reduce_range": False},
    "x86_u8s8_reduce_range": {"activation_type": "uint8", "reduce_range": True},
    "arm_s8s8": {"activation_type": "int8", "reduce_range": False},
    "wasm_u8s8": {"activation_type": "uint8", "reduce_range": False},
}


def _say(msg: str) -> None:
    print(f"hai-edge: {msg}", file=sys.stderr, flush=True)


def _command_line(args: argparse.Namespace) -> str:
    """The export command as given (options that differ from their defaults)."""
    parts = ["hai-edge export", str(args.source), "-o", str(args.output)]
    defaults = {"precision": "both", "max_cosine_drop": 0.01, "min_cross_cosine": 0.98}
    for key in ("formats", "precision", "calib", "device", "max_cosine_drop", "min_cross_cosine",
                "min_centred_cosine", "name", "spec", "frontend_scope"):
        value = getattr(args, key)
        if value is not None and value != defaults.get(key):
            parts += [f"--{key.replace('_', '-')}", str(value)]
    for key in ("allow_degraded", "overwrite", "trust_checkpoint", "quantize_frontend"):
        if getattr(args, key):
            parts.append(f"--{key.replace('_', '-')}")
    return " ".join(parts)


def _not_learned(source: Path) -> str | None:
    """When a run's own held-out report says the student never learned, say so before INT8."""
    if not (source / "run.json").is_file():
        return None
    from hai_edge.distill.fidelity import not_learned_warning
    from hai_edge.distill.rundir import DistillRun

    try:
        report = DistillRun.open(source).fidelity_report()
    except HaiEdgeError:
        return None
    return not_learned_warning(report) if report else None


def _installed_formats(formats: Any) -> tuple[str, ...]:
    """Default formats: every one whose exporter is installed (the others are named once)."""
    ready = tuple(name for name, fmt in formats.items() if fmt.is_available())
    for name, fmt in formats.items():
        if name not in ready:
            _say(f"skipping {name}: its exporter is not installed (pip install "
                 f"'hai-edge[{fmt.extra}]')")
    return ready or tuple(formats)  # none at all: the first export says what to install


def _cmd_export(args: argparse.Namespace) -> int:
    from hai_edge.quantize.config import QuantConfig
    from hai_edge.quantize.gates import GateThresholds
    from hai_edge.export.bundle_builder import BuildOptions
    from hai_edge.export.source import ExportSource

    source = Path(args.source)
    if not source.exists():
        raise HaiEdgeError(f"{source}: no such run directory or checkpoint")
    if not 0 <= args.max_cosine_drop < 1:
        raise HaiEdgeError("--max-cosine-drop must be in [0, 1)")
    if args.golden_items < 1:
        raise HaiEdgeError("--golden-items must be >= 1")
    profile = None
    if args.device:
        from hai_edge.devices.profiles import load_profile

        profile = load_profile(args.device)
    from hai_edge.export.formats import FORMATS

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip()) \
        if args.formats else (profile.formats() if profile else _installed_formats(FORMATS))

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise HaiEdgeError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    src = ExportSource.from_path(source, spec=args.spec, trust_checkpoint=args.trust_checkpoint,
                                 progress=None if args.quiet else _say)
    if args.calib:
        src = src.with_calibration(args.calib, _say)
    qchanges: dict[str, Any] = dict(_PRESET_CHANGES[profile.quant_preset]) if profile else {}
    if args.frontend_scope:
        qchanges["frontend_scope"] = args.frontend_scope
    if args.quantize_frontend:
        _say("DEBUG --quantize-frontend: the float front end is forced into INT8")
        qchanges["quantize_frontend"] = True
    options = BuildOptions(
        formats=formats, precision=args.precision, quant=QuantConfig(**qchanges),
        thresholds=GateThresholds(min_mean_cosine=1.0 - args.max_cosine_drop,
                                  min_cross_cosine=args.min_cross_cosine,
                                  min_centred_cosine=(None if args.min_centred_cosine < -0.999
                                                      else args.min_centred_cosine)),
        allow_degraded=args.allow_degraded, device=profile.id if profile else None,
        golden_items=args.golden_items)
    try:
        bundle = src.build(args.output, options=options, name=args.name,
                           provenance={"command": _command_line(args)}, overwrite=args.overwrite,
                           progress=None if args.quiet else _say)
    except GateError as exc:
        why = _not_learned(source)
        if why is None:
            raise
        raise GateError(f"{why}. {exc}", figures=exc.figures) from None
    m = bundle.manifest
    print(f"wrote bundle {bundle.root} ({m.modality.value}, {m.embedding_dim}-d, "
          f"{len(m.models)} model(s))")
    for e in m.models:
        size = sum(m.files[f].size for f in e.files) / 1e6
        f = e.fidelity
        fig = (f"INT8 vs FP32 mean cos {f['mean_cosine']:.4f} p5 {f['p5_cosine']:.4f} "
               f"centred {f['centred_mean_cosine']:.4f} ({e.options.get('recipe')})"
               if "mean_cosine" in f else
               f"parity max|diff| {f['parity']['max_abs_diff']:.2e}")
        print(f"  {e.id:<14} {size:7.2f} MB  {fig}")
    cross = m.fidelity.get("int8_cross_format")
    if cross:
        print(f"  INT8 cross-format agreement: worst pair mean cos "
              f"{cross['min_pair_mean_cosine']:.4f} (>= {cross['threshold']})")
    if m.fidelity.get("degraded"):
        print("  DEGRADED: some gates failed and were overridden (--allow-degraded)")
    return 0


def register(subparsers: Any) -> None:
    e = subparsers.add_parser(
        "export", help="export a student to ONNX/OpenVINO/TFLite, FP32 + gated INT8, as a bundle",
        usage="hai-edge export RUN_DIR|CHECKPOINT -o BUNDLE [options]")
    e.add_argument("source", metavar="RUN_DIR|CHECKPOINT",
                   help="a `hai-edge distill` run directory, a .pt2 torch.export program or a "
                        ".pt checkpoint (see the module docs)")
    e.add_argument("-o", "--output", required=True, help="bundle directory to write")
    e.add_argument("--formats", help="comma-separated: onnx,openvino,tflite (default: every "
                                     "format whose exporter is installed, or the --device "
                                     "profile's)")
    e.add_argument("--precision", choices=("int8", "fp32", "both"), default="both",
                   help="which models to export (default: both)")
    e.add_argument("--calib", metavar="DIR_OR_CSV",
                   help="media for calibration and the held-out gate (split by group)")
    e.add_argument("--device", help="device profile id: default formats + quantization preset")
    e.add_argument("--max-cosine-drop", type=float, default=0.01,
                   help="INT8 gate: mean cosine vs FP32 >= 1 - X on held-out inputs (0.01)")
    e.add_argument("--min-cross-cosine", type=float, default=0.98,
                   help="INT8 cross-format agreement gate (mean cosine, default 0.98)")
    e.add_argument("--min-centred-cosine", type=float, default=0.90,
                   help="gate INT8 vs FP32 also on the centred mean cosine (default %(default)s; "
                        "exposes INT8 noise hidden by a shared offset; -1 disables)")
    e.add_argument("--allow-degraded", action="store_true",
                   help="keep models that fail a gate (recorded as an override in the manifest)")
    e.add_argument("--golden-items", type=int, default=3, metavar="N",
                   help="golden inputs in golden.json (default 3; 1 keeps a bundle for the "
                        "browser app small)")
    e.add_argument("--name", help="bundle name (default: from the source)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    e.add_argument("--spec", help="front-end spec JSON for a checkpoint without one")
    e.add_argument("--frontend-scope", help="module path of an in-graph float front end "
                                            "(default: a submodule named 'frontend')")
    e.add_argument("--trust-checkpoint", action="store_true",
                   help="allow unpickling a whole nn.Module from a .pt file (runs its code)")
    e.add_argument("--quantize-frontend", action="store_true",
                   help="DEBUG: force the float front end into INT8 (the gate must fail)")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    e.set_defaults(func=_cmd_export)

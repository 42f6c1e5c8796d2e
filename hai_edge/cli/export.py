"""``hai-edge export SOURCE -o BUNDLE`` and ``hai-edge verify BUNDLE``.

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
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import BundleError, GateError, HaiEdgeError

__all__ = ["register"]

_PRESET_CHANGES: dict[str, dict[str, Any]] = {
    "x86_u8s8": {"activation_type": "uint8", "reduce_range": False},
    "x86_u8s8_reduce_range": {"activation_type": "uint8", "reduce_range": True},
    "arm_s8s8": {"activation_type": "int8", "reduce_range": False},
    "wasm_u8s8": {"activation_type": "uint8", "reduce_range": False},
}
_MAX_CALIB_ROWS = 256
_MAX_HELDOUT_ROWS = 256


@dataclasses.dataclass
class _Source:
    model: Any
    spec: Any
    name: str
    teacher: Any = None
    calibration: Any = None
    heldout: Any = None
    teacher_targets: Any = None
    heads: tuple = ()
    provenance: dict = dataclasses.field(default_factory=dict)
    heldout_paths: frozenset = frozenset()  # a run's held-out media: never used to calibrate


def _say(msg: str) -> None:
    print(f"hai-edge: {msg}", file=sys.stderr, flush=True)


def _spec_from(obj: Any, where: str) -> Any:
    from hai_edge.bundle.frontend import spec_from_dict

    if isinstance(obj, (str, Path)):
        try:
            obj = json.loads(Path(obj).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HaiEdgeError(f"{where}: cannot read the front-end spec ({exc})") from None
    if hasattr(obj, "input_shape"):
        return obj
    return spec_from_dict(obj)


def _evenly(x: Any, n: int) -> Any:
    import numpy as np

    if len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


def _load_run(path: Path, say: Any = _say) -> _Source:
    try:
        from hai_edge.distill.run import load_run
    except ImportError:
        raise HaiEdgeError(f"{path}: run directories need hai-edge's distill module, which is not "
                           "part of this build") from None
    try:
        from hai_edge.distill.run import student_inputs
    except ImportError:
        from hai_edge.distill.data import student_inputs
    run = load_run(path)
    say(f"computing calibration inputs from {len(run.train_items)} training item(s)")
    cal = _evenly(student_inputs(run.spec, run.train_items), _MAX_CALIB_ROWS)
    from hai_edge.distill.run import heldout_with_targets

    said = heldout_with_targets(path)
    targets = None
    if said is not None:  # the rows the run's report scored, with the teacher's embeddings
        held_all, targets_all = said
        say(f"held-out inputs: {len(held_all)} clean rows of {len(run.heldout_items)} held-out "
            "item(s), with their teacher embeddings")
        held, targets = _evenly(held_all, _MAX_HELDOUT_ROWS), _evenly(targets_all,
                                                                      _MAX_HELDOUT_ROWS)
    else:
        say(f"computing held-out inputs from {len(run.heldout_items)} held-out item(s) (the "
            "run's embedding store is gone: no INT8-vs-teacher figures)")
        held = _evenly(student_inputs(run.spec, run.heldout_items), _MAX_HELDOUT_ROWS)
    meta = dict(run.meta or {})
    prov = {k: meta[k] for k in ("data_hash", "student", "command") if k in meta}
    corpus = (meta.get("data") or {}).get("corpus_hash") if isinstance(meta.get("data"), dict) else None
    if corpus and "data_hash" not in prov:
        prov["data_hash"] = corpus
    prov["run_dir"] = str(path)
    return _Source(model=run.model, spec=run.spec, name=str(meta.get("name") or path.name),
                   teacher=run.teacher_info, calibration=cal, heldout=held,
                   teacher_targets=targets,
                   heads=tuple(getattr(run, "heads", None) or ()), provenance=prov,
                   heldout_paths=frozenset(str(Path(i.path).resolve()) for i in run.heldout_items))


def _model_from_state(state: dict, arch: str) -> Any:
    from hai_edge.distill.students import get_preset
    from hai_edge.distill.students._nets import EmbeddingModel

    net = get_preset(arch).build()
    if any(k.startswith("embed.") for k in state):
        net.load_state_dict(state)
        return net.eval()
    model = EmbeddingModel(net, None)
    if "out.weight" in state:
        import torch

        w = state["out.weight"]
        model.out = torch.nn.Linear(w.shape[1], w.shape[0])
    model.load_state_dict(state)
    return model.eval()


def _load_checkpoint(path: Path, args: argparse.Namespace) -> _Source:
    import torch

    sidecar = path.with_name(path.name.split(".")[0] + ".spec.json")
    spec_arg = args.spec or (sidecar if sidecar.is_file() else None)
    if path.suffix == ".pt2":
        model = torch.export.load(str(path)).module()
        if spec_arg is None:
            raise HaiEdgeError(f"{path}: needs its front-end spec ({sidecar.name} or --spec)")
        return _Source(model=model, spec=_spec_from(spec_arg, str(path)), name=path.stem)
    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled module (or not a torch file)
        if not args.trust_checkpoint:
            raise HaiEdgeError(
                f"{path}: holds pickled Python objects (e.g. a whole nn.Module); loading it runs "
                f"code from the file: pass --trust-checkpoint if you trust it") from None
        try:
            ck = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception:
            raise HaiEdgeError(f"{path}: not a torch checkpoint ({type(exc).__name__})") from None
    if isinstance(ck, torch.nn.Module):
        ck = {"model": ck}
    if not isinstance(ck, dict) or "model" not in ck:
        raise HaiEdgeError(f"{path}: expected a dict with 'model' (module or state_dict), "
                           "'spec' and, for a state_dict, 'arch'")
    model, arch = ck["model"], ck.get("arch")
    if not isinstance(model, torch.nn.Module):
        if not isinstance(model, dict) or not arch:
            raise HaiEdgeError(f"{path}: a state_dict needs 'arch' (a student preset name)")
        model = _model_from_state(model, str(arch))
    spec = spec_arg or ck.get("spec")
    if spec is None and arch:
        from hai_edge.distill.students import get_preset

        spec = get_preset(str(arch)).frontend
    if spec is None:
        raise HaiEdgeError(f"{path}: no front-end spec ('spec' in the checkpoint, "
                           f"{sidecar.name} or --spec)")
    prov = {"checkpoint": str(path), **({"student": {"arch": arch}} if arch else {})}
    return _Source(model=model.eval(), spec=_spec_from(spec, str(path)),
                   name=str(ck.get("name") or path.stem), teacher=ck.get("teacher"),
                   provenance=prov)


def _calib_from_corpus(src: _Source, data: str) -> None:
    """--calib DIR_OR_CSV. For a run, it replaces the calibration set only (minus any of the run's
    held-out media) and the run's held-out items still gate; for a checkpoint, the items are
    split by group: one part calibrates, the other gates."""
    from hai_edge.corpus import load_corpus, split_by_group

    try:
        from hai_edge.distill.run import student_inputs
    except ImportError:
        from hai_edge.distill.data import student_inputs
    modality = "audio" if hasattr(src.spec, "sample_rate") else "image"
    items = [i for i in load_corpus(data, modality)
             if str(Path(i.path).resolve()) not in src.heldout_paths]
    if src.heldout is not None:
        if not items:
            raise HaiEdgeError(f"{data}: no items left once the run's held-out items are removed")
        _say(f"calibration: {len(items)} item(s) from {data}")
        src.calibration = _evenly(student_inputs(src.spec, items), _MAX_CALIB_ROWS)
    else:
        if len(items) < 2:
            raise HaiEdgeError(f"{data}: need at least 2 items to calibrate and gate on")
        train, held = split_by_group(items, holdout=0.25, seed=0)
        if not held or not train:
            cut = max(1, len(items) * 3 // 4)
            train, held = items[:cut], items[cut:]
        _say(f"calibration: {len(train)} item(s), held-out gate: {len(held)} item(s) from {data}")
        src.calibration = _evenly(student_inputs(src.spec, train), _MAX_CALIB_ROWS)
        src.heldout = _evenly(student_inputs(src.spec, held), _MAX_HELDOUT_ROWS)
    if len(src.calibration) == 0 or len(src.heldout) == 0:
        raise HaiEdgeError(f"{data}: no usable items (all unreadable or silent)")
    src.provenance["calibration_data"] = str(data)


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


def _cmd_export(args: argparse.Namespace) -> int:
    from hai_edge.quantize.config import QuantConfig
    from hai_edge.quantize.gates import GateThresholds
    from hai_edge.export.bundle_builder import BuildOptions, build_bundle

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
    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip()) \
        if args.formats else (profile.formats() if profile else ("onnx", "openvino", "tflite"))
    from hai_edge.export.formats import FORMATS

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise HaiEdgeError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    if source.is_dir():
        if not (source / "run.json").is_file():
            raise HaiEdgeError(f"{source}: not a distillation run directory (no run.json)")
        src = _load_run(source, (lambda _m: None) if args.quiet else _say)
    else:
        src = _load_checkpoint(source, args)
    if args.calib:
        _calib_from_corpus(src, args.calib)
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
    prov = dict(src.provenance)
    prov["command"] = _command_line(args)
    bundle = build_bundle(
        src.model, src.spec, args.output, name=args.name or src.name, options=options,
        calibration=src.calibration, heldout=src.heldout, teacher=src.teacher,
        teacher_targets=src.teacher_targets, heads=src.heads, provenance=prov,
        overwrite=args.overwrite,
        progress=None if args.quiet else _say)
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


def _device_exclusions(device: str | None, backend: str | None) -> dict[str, str]:
    """Engines the ``--device`` profile excludes (engine -> one line); forcing one is an error."""
    if not device:
        return {}
    from hai_edge.devices.profiles import load_profile

    profile = load_profile(device)
    if backend:
        profile.require_engine(backend)
    return {e: line for e in profile.excluded_engines if (line := profile.exclusion(e))}


def _cmd_verify(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.verify import verify_bundle

    bundle = Bundle.load(args.bundle, verify=True)
    report = verify_bundle(bundle, args.backend, threads=args.threads,
                           exclude=_device_exclusions(args.device, args.backend))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    ran = [m for m in report.models if m.status != "skipped"]
    if not ran:
        raise BundleError(f"{bundle.root}: no model could be run (no engine installed for "
                          f"{', '.join(sorted({m.model for m in report.models}))})")
    if not report.passed:
        bad = [m for m in report.models if m.status == "failed"]
        what = "; ".join(
            f"{m.model} on {m.engine}: " + (m.note or f"max|diff| {m.max_abs_diff:.3g} (tol "
                                           f"{m.tol_max_abs:.3g}), min cos {m.min_cosine:.5f}")
            for m in bad) or "front-end self-test failed"
        raise GateError(f"golden vectors failed: {what}", figures=report.to_dict())
    return 0


def register(subparsers: Any) -> None:
    e = subparsers.add_parser(
        "export", help="export a student to ONNX/OpenVINO/TFLite, FP32 + gated INT8, as a bundle",
        usage="hai-edge export RUN_DIR|CHECKPOINT -o BUNDLE [options]")
    e.add_argument("source", metavar="RUN_DIR|CHECKPOINT",
                   help="a `hai-edge distill` run directory, a .pt2 torch.export program or a "
                        ".pt checkpoint (see the module docs)")
    e.add_argument("-o", "--output", required=True, help="bundle directory to write")
    e.add_argument("--formats", help="comma-separated: onnx,openvino,tflite (default: all, or "
                                     "the --device profile's)")
    e.add_argument("--precision", choices=("int8", "fp32", "both"), default="both")
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

    v = subparsers.add_parser("verify", help="run a bundle's golden vectors on every installed engine")
    v.add_argument("bundle", help="bundle directory or built-in name")
    v.add_argument("--backend", "-e", help="only this engine (onnxruntime | openvino | tflite)")
    v.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    v.add_argument("--device", "-d", help="device profile id or .json: skip (or, with -e, refuse) "
                                          "the engines it excludes")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_cmd_verify)

"""``hai-edge cough`` (files or microphone) and ``hai-edge probe train|eval``.

Light on purpose (``hai_edge.cli`` imports it to build the parser): the pipeline, sounddevice and
scikit-learn load inside the command functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    c = subparsers.add_parser(
        "cough", help="detect coughs in recordings or live from a microphone and score them",
        usage="hai-edge cough FILE... | --mic [--seconds N] [options]",
        description="Find cough events, embed a window around each and score it with the "
                    "bundle's heads; the recording score is the mean over windows. Not a "
                    "diagnosis: see the bundle's notices.")
    c.add_argument("inputs", nargs="*", metavar="FILE", help="audio files or directories")
    c.add_argument("--mic", action="store_true", help="record from a microphone instead")
    c.add_argument("--seconds", type=float, help="with --mic: record this long (default: until "
                   "Ctrl-C)")
    c.add_argument("--device", help="with --mic: input device index or name substring")
    c.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    c.add_argument("--save", metavar="FILE.flac", help="with --mic: also save the recording "
                   "(off by default: recordings are health data)")
    c.add_argument("--bundle", "-b", help="audio bundle (default: the built-in cough-demo)")
    c.add_argument("--backend", "-e", help="onnxruntime | openvino | tflite")
    c.add_argument("--precision", choices=("int8", "fp32"))
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--head", action="append", metavar="NAME", help="score only this head "
                   "(repeatable; default: all heads of the bundle)")
    c.add_argument("--json", action="store_true", help="print one JSON object per input")
    c.add_argument("--windows", action="store_true", help="include each window's embedding in "
                   "the JSON output")
    c.add_argument("--score-anyway", action="store_true", help="score the heads even when no "
                   "cough is detected (plain sliding windows; the result says scored_anyway)")
    c.add_argument("--meter", choices=("auto", "on", "off"), default="auto",
                   help="level meter on stderr while recording (auto: when stderr is a terminal)")
    c.set_defaults(func=_cmd_cough)

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
        q.add_argument("--backend", "-e")
        q.add_argument("--precision", choices=("int8", "fp32"))
        q.add_argument("--threads", type=int, default=None)
        q.add_argument("--seed", type=int, default=0)

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
    t.set_defaults(func=_cmd_probe_train)

    e = psub.add_parser("eval", help="AUROC with a grouped bootstrap CI, sensitivity/specificity, "
                        "per subgroup")
    data_args(e)
    e.add_argument("--head", required=True, metavar="NAME|FILE", help="a head of the bundle or "
                   "a head file")
    e.add_argument("--subgroups", metavar="COLS", help="comma-separated columns to break down by")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (1000)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_probe_eval)


# ------------------------------------------------------------------------------------ cough
def _pick_bundle(args: argparse.Namespace) -> str:
    from hai_edge.bundle import builtin_bundles

    if args.bundle:
        return args.bundle
    if args.inputs and (Path(args.inputs[0]) / "manifest.json").is_file():
        return args.inputs.pop(0)
    if "cough-demo" in builtin_bundles():
        return "cough-demo"
    raise HaiEdgeError("no bundle given and the built-in cough-demo bundle is not installed; "
                       "pass --bundle DIR")


def _cmd_cough(args: argparse.Namespace) -> int:
    if args.list_devices:
        from hai_edge.runtime.mic import list_input_devices

        devices = list_input_devices()
        if not devices:
            raise HaiEdgeError("no audio input device found (PortAudio lists none)")
        for d in devices:
            print(d)
        return 0
    if args.mic and args.inputs:
        raise HaiEdgeError("give audio files or --mic, not both")
    if not args.mic:
        if not args.inputs:
            raise HaiEdgeError("give audio FILEs to analyse, or --mic to record")
        for flag in ("seconds", "device", "save"):
            if getattr(args, flag) is not None:
                raise HaiEdgeError(f"--{flag} only applies with --mic")
    if args.seconds is not None and args.seconds <= 0:
        raise HaiEdgeError("--seconds must be positive")
    if args.save and Path(args.save).suffix.lower() != ".flac":
        raise HaiEdgeError(f"{args.save}: recordings are saved as FLAC; use a .flac file name")

    from hai_edge.runtime.cough import CoughPipeline

    bundle = _pick_bundle(args)
    with CoughPipeline(bundle, args.backend, precision=args.precision, threads=args.threads,
                       heads=args.head, keep_embeddings=args.windows) as pipe:
        if args.mic:
            return _cough_mic(args, pipe)
        from hai_edge.cli import _err, _expand_inputs

        files = _expand_inputs(args.inputs, "audio")
        if not files:
            raise HaiEdgeError("no input files found")
        failures = 0
        for path in files:
            try:
                result = pipe.analyze_file(path, score_anyway=args.score_anyway)
            except HaiEdgeError as exc:
                failures += 1
                _err(str(exc))
                continue
            _emit(result, args)
        if failures and len(files) > 1:
            _err(f"{failures} of {len(files)} inputs failed")
    return 2 if failures else 0


def _cough_mic(args: argparse.Namespace, pipe: Any) -> int:
    from hai_edge.runtime.mic import DeviceLostError, MicCapture

    meter = {"auto": None, "on": True, "off": False}[args.meter]
    cap = MicCapture(pipe.spec.sample_rate, args.device, save_path=args.save, meter=meter)
    cap.start()
    how = f"{args.seconds:g} s" if args.seconds else "until Ctrl-C"
    rate = f"{cap.device_rate} Hz" + (f" -> {cap.sample_rate} Hz" if cap.device_rate !=
                                       cap.sample_rate else "")
    print(f"hai-edge: recording {how} from {cap.device.name!r} ({rate})", file=sys.stderr,
          flush=True)

    def on_window(w: Any) -> None:
        if not args.json:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in w.scores.items())
            print(f"  cough window {w.start_s:.2f}-{w.end_s:.2f} s" +
                  (f": {scores}" if scores else ""), file=sys.stderr, flush=True)

    try:
        result = pipe.run_live(cap, args.seconds, on_window=on_window,
                               score_anyway=args.score_anyway)
    except DeviceLostError as exc:
        if exc.result is not None:
            _emit(exc.result, args)
        raise
    _emit(result, args)
    if cap.saved_to:
        print(f"hai-edge: saved the recording to {cap.saved_to}", file=sys.stderr)
    return 0


def _emit(result: Any, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(result.to_dict(embeddings=args.windows)), flush=True)
        return
    n = len(result.events)
    at = ", ".join(f"{e.start_s:.2f}" for e in result.events[:8]) + (" ..." if n > 8 else "")
    print(f"{result.input}: {result.duration_s:.1f} s, {n} cough event(s)"
          + (f" at {at} s" if n else "") + f"; {len(result.windows)} window(s) scored"
          + (" (no events: plain sliding windows)" if result.fallback else ""))
    for name, s in result.scores.items():
        if s is None:
            print(f"  {name}: not scored ({result.withheld.get(name, 'withheld')})")
            continue
        print(f"  {s.name}: {s.mean:.3f} (mean of {s.count} window(s), max {s.max:.3f}), "
              f"threshold {s.threshold:.3f} -> {s.label}"
              + (" [scored anyway]" if name in result.would_withhold else ""))
    for notice in result.notices:
        print(f"  notice: {notice}")


# ------------------------------------------------------------------------------------ probe
def _csv_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _rows(args: argparse.Namespace) -> Any:
    from hai_edge.heads.probe_train import _require_sklearn, embed_corpus_rows

    _require_sklearn()
    return embed_corpus_rows(args.bundle, args.data, args.label, _csv_list(args.positive),
                             args.group, args.file_column, args.backend, args.precision,
                             args.threads, progress=sys.stderr.isatty())


def _cmd_probe_train(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.heads.probe_train import train_head

    if args.sensitivity is not None and not 0 < args.sensitivity <= 1:
        raise HaiEdgeError("--sensitivity must be in (0, 1]")
    labels = _csv_list(args.labels) or ("negative", "positive")
    if len(labels) != 2:
        raise HaiEdgeError("--labels needs exactly two names: NEG,POS")
    name = args.name or args.label
    if not name or any(ch in name for ch in "/\\\x00") or name.startswith("."):
        raise HaiEdgeError(f"invalid head name {name!r}")
    out = Path(args.output)
    if out.suffix.lower() != ".json":
        raise HaiEdgeError(f"{out}: the head file must end in .json")
    if args.add_to_bundle and Path(args.add_to_bundle).exists() and not args.overwrite:
        raise HaiEdgeError(f"{args.add_to_bundle}: already exists (pass --overwrite to replace)")
    bundle = Bundle.load(args.bundle)
    rows = _rows(argparse.Namespace(**{**vars(args), "bundle": bundle}))
    for msg in rows.failed[:5]:
        print(f"hai-edge: skipped: {msg}", file=sys.stderr)
    extra = {"bundle": bundle.manifest.name, "embedding_dim": bundle.manifest.embedding_dim,
             "file_column": args.file_column, "group_column": args.group}
    head = train_head(rows, name, labels=(labels[0], labels[1]), sensitivity=args.sensitivity,
                      seed=args.seed, notice=args.notice, extra_training=extra)
    head.save(out)
    tr = head.training
    print(f"wrote head {name!r} to {out}: {tr['n']} recordings ({tr['n_positive']} positive, "
          f"{tr['groups']} groups, {tr['n_windows']} windows), grouped {tr['folds']}-fold CV "
          f"AUROC {tr['auroc_cv']:.3f} (C={tr['C']:.0e}), threshold {head.threshold:.3f} "
          f"(sens {tr['sensitivity_cv']:.2f}, spec {tr['specificity_cv']:.2f})")
    if args.add_to_bundle:
        new = add_head_to_bundle(bundle, head, args.add_to_bundle, overwrite=args.overwrite)
        print(f"wrote bundle {new.root} with head {name!r}")
    return 0


def add_head_to_bundle(bundle: Any, head: Any, dest: str, *, overwrite: bool = False,
                       entry: dict[str, Any] | None = None) -> Any:
    """A NEW bundle = ``bundle`` + ``head`` (replacing a head of the same name), written
    atomically by ``write_bundle``; the source bundle is only read. ``entry`` replaces the
    head's own manifest entry, e.g. a learned detector's (``role: detector``, which also
    replaces any detector the bundle had: a bundle has at most one)."""
    from hai_edge.bundle import write_bundle

    file = f"heads/{head.name}.json"
    new_entry = entry if entry is not None else head.manifest_entry(file)
    if new_entry.get("file") != file:
        raise HaiEdgeError(f"head entry must point at {file}")
    is_detector = new_entry.get("role") == "detector"
    files: dict[str, Any] = {n: bundle.root / n for n in bundle.manifest.files}
    files[file] = head.to_json().encode("utf-8")

    def replaced(h: Any) -> bool:
        return h.get("name") == head.name or (is_detector and h.get("role") == "detector")

    heads = [h for h in bundle.manifest.heads if not replaced(h)]
    for old in (h for h in bundle.manifest.heads if replaced(h)):
        old_file = old.get("file")
        if old_file and old_file != file and old_file in files:
            del files[old_file]
    heads.append(new_entry)
    manifest = dataclasses.replace(bundle.manifest, heads=tuple(heads), files={}, created="")
    bundle.verify()  # never copy a bundle that was modified since it was loaded
    return write_bundle(dest, manifest, files, overwrite=overwrite)


def _cmd_probe_eval(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.heads.probe_train import evaluate_head
    from hai_edge.runtime.heads import load_head_file, load_heads

    bundle = Bundle.load(args.bundle)
    if args.head.lower().endswith(".json") or Path(args.head).is_file():
        head = load_head_file(args.head)
        if head.dim != bundle.manifest.embedding_dim:
            raise HaiEdgeError(f"{args.head}: a head for {head.dim}-d embeddings; the bundle's "
                               f"are {bundle.manifest.embedding_dim}-d")
    else:
        head = load_heads(bundle, [args.head])[0]
    if args.bootstrap < 0:
        raise HaiEdgeError("--bootstrap must be >= 0")
    rows = _rows(argparse.Namespace(**{**vars(args), "bundle": bundle}))
    for msg in rows.failed[:5]:
        print(f"hai-edge: skipped: {msg}", file=sys.stderr)
    report = evaluate_head(head, rows, _csv_list(args.subgroups), args.bootstrap, args.seed)
    if args.json:
        print(json.dumps(report))
        return 0
    o = report["overall"]
    print(f"head {head.name} (threshold {head.threshold:.3f}) on {o['n']} recordings "
          f"({o['n_positive']} positive, {o['groups']} groups)")

    def fmt(r: dict) -> str:
        ci = r["ci95"]
        ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else "[n/a]"
        au = f"{r['auroc']:.3f}" if r["auroc"] is not None else "n/a"
        se = f"{r['sensitivity']:.3f}" if r["sensitivity"] is not None else "n/a"
        sp = f"{r['specificity']:.3f}" if r["specificity"] is not None else "n/a"
        return f"{r['n']:>6} {r['n_positive']:>6} {au:>7} {ci_s:>17} {se:>7} {sp:>7}"

    print(f"{'':<24} {'n':>6} {'pos':>6} {'AUROC':>7} {'95% CI (grouped)':>17} {'sens':>7} "
          f"{'spec':>7}")
    print(f"{'overall':<24} {fmt(o)}")
    for r in report["subgroups"]:
        print(f"{(r['column'] + '=' + r['value'])[:24]:<24} {fmt(r)}")
    if report["n_failed"]:
        print(f"({report['n_failed']} file(s) could not be embedded and were left out)")
    return 0

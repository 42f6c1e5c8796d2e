"""``hai-edge cough [BUNDLE] FILE...`` (files or microphone): cough events and head scores.

Light on purpose (the parser imports it): the pipeline and sounddevice load inside the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hai_edge.cli._common import (
    AUDIO_SUFFIXES,
    add_engine_args,
    add_heads_arg,
    err,
    expand_inputs,
    heads_from,
    report_failures,
    split_bundle_and_inputs,
    verdict_text,
    with_modality,
)
from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    c = subparsers.add_parser(
        "cough", help="detect coughs in recordings or live from a microphone and score them",
        usage="hai-edge cough [BUNDLE] FILE... | [BUNDLE] --mic [--seconds N] [options]",
        description="Find cough events, embed a window around each and score it with the "
                    "bundle's heads; the recording score is the mean over windows. Not a "
                    "diagnosis: see the bundle's notices.")
    c.add_argument("inputs", nargs="*", metavar="[BUNDLE] FILE", help="a bundle (directory or "
                   "built-in name; default: the built-in cough-demo), then audio files or "
                   "directories")
    c.add_argument("--mic", action="store_true", help="record from a microphone instead")
    c.add_argument("--seconds", type=float, help="with --mic: record this long (default: until "
                   "Ctrl-C)")
    c.add_argument("--device", help="with --mic: input device index or name substring")
    c.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    c.add_argument("--save", metavar="FILE.flac", help="with --mic: also save the recording "
                   "(off by default: recordings are health data)")
    c.add_argument("--bundle", "-b", help="audio bundle (default: the built-in cough-demo)")
    add_engine_args(c)
    add_heads_arg(c)
    c.add_argument("--json", action="store_true", help="print one JSON object per input")
    c.add_argument("--windows", action="store_true", help="include each window's embedding in "
                   "the JSON output")
    c.add_argument("--score-anyway", action="store_true", help="score the heads even when no "
                   "cough is detected (plain sliding windows; the result says scored_anyway)")
    c.add_argument("--meter", choices=("auto", "on", "off"), default="auto",
                   help="level meter on stderr while recording (auto: when stderr is a terminal)")
    c.set_defaults(func=_cmd_cough)


# ------------------------------------------------------------------------------------ cough
def _pick_bundle(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(bundle, inputs) by the shared "[BUNDLE] FILE..." rule; default: the built-in cough-demo."""
    from hai_edge.bundle import builtin_bundles

    named = split_bundle_and_inputs(args.bundle, args.inputs, inputs_required=not args.mic)
    if named.bundle:
        return named.bundle, list(named.inputs)
    if "cough-demo" in builtin_bundles():
        return "cough-demo", list(named.inputs)
    raise HaiEdgeError("no bundle given and the built-in cough-demo bundle is not installed; "
                       "pass --bundle DIR")


def _cmd_cough(args: argparse.Namespace) -> int:
    if args.list_devices:
        from hai_edge.runtime.mic import list_input_devices

        devices = list_input_devices()
        for d in devices:
            print(d)
        if not devices:  # an answer, not an error: the list is empty
            print("no audio input devices (connect a microphone; PortAudio lists none)",
                  file=sys.stderr)
        return 0
    bundle, inputs = _pick_bundle(args)
    if args.mic and inputs:
        raise HaiEdgeError("give audio files or --mic, not both")
    if not args.mic:
        if not inputs:
            raise HaiEdgeError("give audio FILEs to analyse, or --mic to record")
        for flag in ("seconds", "device", "save"):
            if getattr(args, flag) is not None:
                raise HaiEdgeError(f"--{flag} only applies with --mic")
    if args.seconds is not None and args.seconds <= 0:
        raise HaiEdgeError("--seconds must be positive")
    if args.save and Path(args.save).suffix.lower() != ".flac":
        raise HaiEdgeError(f"{args.save}: recordings are saved as FLAC; use a .flac file name")

    from hai_edge.runtime.cough import CoughPipeline

    with CoughPipeline(bundle, args.backend, precision=args.precision, threads=args.threads,
                       heads=heads_from(args.heads), keep_embeddings=args.windows) as pipe:
        if args.mic:
            return _cough_mic(args, pipe)
        files = expand_inputs(inputs, AUDIO_SUFFIXES)
        if not files:
            raise HaiEdgeError("no input files found")
        failures = 0
        notices: list[str] = []  # text output: each notice once, after the results
        for path in files:
            try:
                result = pipe.analyze_path(path, score_anyway=args.score_anyway)
            except HaiEdgeError as exc:
                failures += 1
                err(str(exc))
                continue
            _emit(result, args, notices)
        for notice in notices:
            print(f"notice: {notice}")
    return report_failures(failures, len(files))


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


def _emit(result: Any, args: argparse.Namespace, notices: list[str] | None = None) -> None:
    """One result: a JSON line, or text lines; text notices go to ``notices`` (printed once by
    the caller) or, without that list, right below the result."""
    if args.json:
        print(json.dumps(with_modality(result.to_dict(embeddings=args.windows), "audio")),
              flush=True)
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
              f"threshold {s.threshold:.3f} -> {verdict_text(s)}"
              + (" [scored anyway]" if name in result.would_withhold else ""))
    if notices is None:
        for notice in result.notices:
            print(f"  notice: {notice}")
    else:
        notices += [n for n in result.notices if n not in notices]

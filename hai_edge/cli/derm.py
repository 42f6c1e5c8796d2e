"""``hai-edge derm``: quality checks, embeddings and head scores for skin photos and DICOM.

Light on purpose (the parser imports it): the pipeline loads inside the command function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hai_edge.cli._common import (
    add_engine_args,
    add_heads_arg,
    err,
    expand_inputs,
    heads_from,
    report_failures,
    split_bundle_and_inputs,
    verdict_text,
    with_modality,
    write_jsonl,
)
from hai_edge.errors import HaiEdgeError

__all__ = ["register"]

_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".dcm",
             ".dicom", ".heic", ".heif", ".hif"}
_MAX_KEY_FILE = 4096
# short label and number format of each check's score on the human line
_SHORT = {"blur": ("blur", "{:.2f}"), "exposure_over": ("luma", "{:.0f}"),
          "exposure_under": ("luma", "{:.0f}"), "too_small": ("side", "{:.0f}"),
          "aspect_ratio": ("aspect", "{:.2f}"), "not_skin": ("skin", "{:.2f}")}


def register(subparsers: Any) -> None:
    d = subparsers.add_parser(
        "derm", help="check, embed and score skin photos and DICOM images",
        usage="hai-edge derm [BUNDLE] INPUT... | DIR [options]",
        description="Quality checks (blur, exposure, size, aspect ratio, skin), the bundle's "
                    "embedding and its heads' calibrated scores for each photo (JPEG, PNG, "
                    "WebP, HEIC with hai-edge[heic]) or DICOM image (one result per frame). "
                    "Not a diagnosis: see the bundle's notices. DICOM header values never "
                    "appear in the output; --pseudonym-key-file adds a keyed hash of the "
                    "PatientID.")
    d.add_argument("inputs", nargs="+", metavar="[BUNDLE] INPUT", help="a bundle (directory or "
                   "built-in name; default: the built-in derm-demo), then photos, DICOM files "
                   "or directories (searched recursively)")
    d.add_argument("--bundle", "-b", help="image bundle (default: the built-in derm-demo)")
    add_engine_args(d)
    add_heads_arg(d)
    d.add_argument("--json", action="store_true", help="print one JSON object per image")
    d.add_argument("--no-embedding", action="store_true", help="leave the embedding out of "
                   "the JSON output")
    d.add_argument("--score-anyway", action="store_true", help="score the heads even when the "
                   "photo fails a blocking quality check or is out of distribution (the "
                   "result says scored_anyway)")
    d.add_argument("--pseudonym-key-file", metavar="FILE", help="secret key (>= 16 bytes; one "
                   "trailing newline ignored) for DICOM pseudonyms: HMAC-SHA256 of PatientID")
    d.add_argument("-o", "--output", metavar="OUT.jsonl", help="also write the JSON objects "
                   "to this file (atomically)")
    d.set_defaults(func=_cmd_derm)


def _read_key(path: str) -> bytes:
    """The key file's bytes without one trailing newline. Messages never show its content."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise HaiEdgeError(f"{path}: the pseudonym key file is not a regular file")
        if size > _MAX_KEY_FILE:
            raise HaiEdgeError(f"{path}: the pseudonym key file is larger than "
                               f"{_MAX_KEY_FILE} bytes; is it the right file?")
        key = p.read_bytes()
    except FileNotFoundError:
        raise HaiEdgeError(f"{path}: pseudonym key file not found") from None
    except OSError as exc:
        raise HaiEdgeError(f"{path}: cannot read the pseudonym key file "
                           f"({exc.strerror or type(exc).__name__})") from None
    for end in (b"\r\n", b"\n"):
        if key.endswith(end):
            key = key[: -len(end)]
            break
    from hai_edge.runtime.derm import MIN_KEY_BYTES

    if len(key) < MIN_KEY_BYTES:
        raise HaiEdgeError(f"{path}: the pseudonym key must be at least {MIN_KEY_BYTES} bytes "
                           f"(this file has {len(key)}); e.g. head -c 32 /dev/urandom > {path}")
    return key


def _is_dicom_file(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _expand(inputs: Sequence[str]) -> list[Path]:
    """Files as given; directories expand (recursively, sorted) to photos and DICOM files:
    known suffixes, or no suffix with the DICOM marker (PACS exports often have none).
    Hidden files (``.name``, e.g. macOS ``._IMG.jpg``) are skipped."""
    return expand_inputs(inputs, _SUFFIXES, skip_hidden=True,
                         keep=lambda f: not f.suffix and _is_dicom_file(f))


def _cmd_derm(args: argparse.Namespace) -> int:
    from hai_edge.runtime.derm import DermPipeline

    if args.output and Path(args.output).suffix.lower() != ".jsonl":
        raise HaiEdgeError(f"{args.output}: the output file must end in .jsonl")
    if args.threads is not None and args.threads < 1:
        raise HaiEdgeError("--threads must be >= 1")
    key = _read_key(args.pseudonym_key_file) if args.pseudonym_key_file else None
    named = split_bundle_and_inputs(args.bundle, args.inputs)
    files = _expand(named.inputs)
    if not files:
        raise HaiEdgeError("no photos or DICOM files found in "
                           + ", ".join(named.inputs))
    records: list[dict] = []
    notices: list[str] = []
    failures = 0
    # no bundle named: the pipeline uses the built-in derm-demo (or says it is missing)
    with DermPipeline(named.bundle, args.backend, precision=args.precision, threads=args.threads,
                      heads=heads_from(args.heads), pseudonym_key=key) as pipe:
        for path in files:
            try:
                results = pipe.analyze_file(path, score_anyway=args.score_anyway)
            except HaiEdgeError as exc:
                failures += 1
                err(str(exc))
                continue
            for r in results:
                d = with_modality(r.to_dict(embedding=not args.no_embedding), "image")
                records.append(d)
                notices += [n for n in r.notices if n not in notices]
                if args.json:
                    print(json.dumps(d), flush=True)
                elif not args.output:
                    print(_human(r), flush=True)
    if args.output and records:
        write_jsonl(args.output, records)
        print(f"hai-edge: wrote {len(records)} result(s) to {args.output}", file=sys.stderr)
    if not args.json and not args.output:
        for n in notices:
            print(f"notice: {n}")
    return report_failures(failures, len(files))


def _human(r: Any) -> str:
    """One line: size, quality verdict with every score, head verdicts, pseudonym, time."""
    frame = f" frame {r.frame}" if r.frame is not None else ""
    warns = [c.name.value for c in r.quality.checks if not c.passed]
    verdict = "quality ok" if not warns else "quality WARN " + ",".join(warns)
    shown = []
    for c in r.quality.checks:
        label, fmt = _SHORT[c.name.value]
        bad = not c.passed
        if c.name.value == "exposure_under":  # both exposure checks score the mean luma
            continue
        if c.name.value == "exposure_over":
            bad = bad or not r.quality.check("exposure_under").passed
        shown.append(f"{label} {fmt.format(c.score)}" + ("!" if bad else ""))
    checks = " ".join(shown)
    scores = "; ".join(
        f"{k} not scored ({r.withheld.get(k, 'withheld')})" if s is None else
        f"{k} {s.probability:.3f} (threshold {s.threshold:.3f}) -> {verdict_text(s)}"
        + (" [scored anyway]" if k in r.would_withhold else "")
        for k, s in r.scores.items())
    parts = [f"{r.input}{frame}: {r.width}x{r.height}", f"{verdict} [{checks}]"]
    if scores:
        parts.append(scores)
    if r.pseudonym:
        parts.append(f"pseudonym {r.pseudonym}")
    parts.append(f"{r.timing_ms['total']:.0f} ms")
    return "; ".join(parts)

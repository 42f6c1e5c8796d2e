"""``hai-edge embed [BUNDLE] INPUT...``: embeddings of recordings or photos with a bundle.

Light on purpose (the parser imports it): numpy and the runtime load inside the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hai_edge.cli._common import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    add_engine_args,
    err,
    expand_inputs,
    report_failures,
    split_bundle_and_inputs,
    write_jsonl,
)
from hai_edge.errors import HaiEdgeError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    e = subparsers.add_parser("embed", help="embed audio recordings or photos with a bundle",
                              usage="hai-edge embed [BUNDLE] INPUT... [options]")
    e.add_argument("items", nargs="+", metavar="[BUNDLE] INPUT",
                   help="a bundle (directory or built-in name), then media files or directories; "
                        "without a bundle the built-in demo bundle for the media type is used")
    e.add_argument("--bundle", "-b", help="bundle, when not given as the first argument")
    add_engine_args(e)
    e.add_argument("--json", action="store_true", help="print one JSON object per input")
    e.add_argument("-o", "--output", help="write embeddings to OUT.npy, OUT.npz or OUT.jsonl")
    e.set_defaults(func=_cmd_embed)


def _default_bundle(inputs: Sequence[str]) -> str:
    """The built-in bundle for the first input's media type (audio -> cough-demo, else derm)."""
    from hai_edge.bundle import builtin_bundles

    first = Path(inputs[0])
    if first.is_dir() and not any(first.iterdir()):
        raise HaiEdgeError(f"{first}: empty directory (neither a bundle nor media files)")
    builtins = builtin_bundles()
    if not builtins:
        raise HaiEdgeError(
            f"{inputs[0]}: not a bundle, and no built-in bundle is installed to use by default")
    want = "cough-demo" if first.suffix.lower() in AUDIO_SUFFIXES else "derm-demo"
    return want if want in builtins else next(iter(builtins))


def _record(embedder: Any, path: Path) -> list[dict[str, Any]]:
    """One record per recording (its windows) or per image frame."""
    if embedder.modality.value == "audio":
        emb = embedder.embed_audio_file(path)
        return [{
            "input": str(path), "modality": "audio", "duration_s": round(emb.duration_s, 4),
            "windows": [{"start_s": round(float(s), 4), "end_s": round(float(e), 4), "embedding": v}
                        for s, e, v in zip(emb.starts_s, emb.ends_s, emb.vectors)],
            "timing_ms": {k: round(v, 3) for k, v in emb.timing_ms.items()},
        }]
    return [{"input": str(path), "modality": "image", "frame": img.frame, "embedding": img.vector,
             "timing_ms": {k: round(v, 3) for k, v in img.timing_ms.items()}}
            for img in embedder.embed_image_file(path)]


def _cmd_embed(args: argparse.Namespace) -> int:
    from hai_edge.runtime import Embedder

    named = split_bundle_and_inputs(args.bundle, args.items)
    inputs = list(named.inputs)
    bundle = named.bundle or _default_bundle(inputs)
    embedder = Embedder(bundle, args.backend, precision=args.precision, threads=args.threads)
    modality = embedder.modality.value
    files = expand_inputs(inputs, AUDIO_SUFFIXES if modality == "audio" else IMAGE_SUFFIXES)
    if not files:
        raise HaiEdgeError("no input files found")
    records: list[dict] = []
    failures = 0
    with embedder:
        for path in files:
            try:
                new = _record(embedder, path)
            except HaiEdgeError as exc:
                failures += 1
                err(str(exc))
                continue
            records += new
            if new and args.json:
                print(json.dumps(_jsonable(new[-1], embedder)), flush=True)
            elif new and not args.output:
                _print_human(new[-1], embedder)
    if args.output and records:
        _write_output(Path(args.output), records, embedder)
    return report_failures(failures, len(files))


def _vectors(rec: dict) -> list:
    if rec["modality"] == "audio":
        return [w["embedding"] for w in rec["windows"]]
    return [rec["embedding"]]


def _jsonable(rec: dict, embedder: Any) -> dict:
    out = dict(rec)
    out["backend"] = embedder.backend_name
    out["model"] = embedder.entry.id
    if rec["modality"] == "audio":
        out["windows"] = [dict(w, embedding=[round(float(x), 6) for x in w["embedding"]])
                          for w in rec["windows"]]
    else:
        out["embedding"] = [round(float(x), 6) for x in rec["embedding"]]
    return out


def _print_human(rec: dict, embedder: Any) -> None:
    import numpy as np

    vecs = np.asarray(_vectors(rec))
    total = sum(rec["timing_ms"].values())
    where = f"{embedder.backend_name}/{embedder.entry.id}"
    if rec["modality"] == "audio":
        spans = ", ".join(f"{w['start_s']:.2f}-{w['end_s']:.2f}s" for w in rec["windows"][:4])
        more = " ..." if len(rec["windows"]) > 4 else ""
        print(f"{rec['input']}: {len(vecs)} window(s) [{spans}{more}] x {vecs.shape[1]}-d "
              f"via {where} in {total:.1f} ms")
    else:
        frame = f" frame {rec['frame']}" if rec["frame"] is not None else ""
        print(f"{rec['input']}{frame}: {vecs.shape[1]}-d via {where} in {total:.1f} ms "
              f"(|v| = {float(np.linalg.norm(vecs[0])):.3f})")


def _write_output(path: Path, records: list[dict], embedder: Any) -> None:
    """OUT.npy (the matrix), OUT.npz (matrix + input/start/end/frame) or OUT.jsonl."""
    import numpy as np

    from hai_edge.fileio import atomic_write

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".jsonl"):
        raise HaiEdgeError(f"{path}: output must end in .npy, .npz or .jsonl")
    rows, inputs, starts, ends, frames = [], [], [], [], []
    for rec in records:
        if rec["modality"] == "audio":
            for w in rec["windows"]:
                rows.append(w["embedding"]); inputs.append(rec["input"])
                starts.append(w["start_s"]); ends.append(w["end_s"]); frames.append(-1)
        else:
            rows.append(rec["embedding"]); inputs.append(rec["input"])
            starts.append(np.nan); ends.append(np.nan)
            frames.append(-1 if rec["frame"] is None else rec["frame"])
    matrix = np.asarray(rows, dtype=np.float32)
    if suffix == ".npy":
        with atomic_write(path) as fh:
            np.save(fh, matrix)
    elif suffix == ".npz":
        with atomic_write(path) as fh:
            np.savez(fh, embeddings=matrix, input=np.asarray(inputs), start_s=np.asarray(starts),
                     end_s=np.asarray(ends), frame=np.asarray(frames))
    else:
        write_jsonl(path, (_jsonable(rec, embedder) for rec in records))
    print(f"wrote {len(matrix)} embedding(s) of {matrix.shape[1]}-d to {path}", file=sys.stderr)

"""``hai-edge`` command line. Heavy imports happen inside commands, never at module import.

Every error a user can cause ends as one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hai_edge import __version__
from hai_edge.errors import HaiEdgeError

__all__ = ["main"]

_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".dcm"}


def _err(msg: str) -> None:
    print(f"hai-edge: error: {msg}", file=sys.stderr)


def _expand_inputs(inputs: Sequence[str], modality: str) -> list[Path]:
    """Files as given; directories expand to their media files of the bundle's modality, sorted."""
    suffixes = _AUDIO_SUFFIXES if modality == "audio" else _IMAGE_SUFFIXES
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes))
        else:
            out.append(p)
    return out


# ----------------------------------------------------------------------------------- embed
def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from hai_edge.runtime import Embedder

    bundle_arg, inputs = _split_bundle_and_inputs(args)
    embedder = Embedder(bundle_arg, args.backend, precision=args.precision, threads=args.threads)
    modality = embedder.modality.value
    files = _expand_inputs(inputs, modality)
    if not files:
        raise HaiEdgeError("no input files found")
    records: list[dict] = []
    failures = 0
    with embedder:
        for path in files:
            try:
                if modality == "audio":
                    emb = embedder.embed_audio_file(path)
                    rec = {
                        "input": str(path),
                        "modality": "audio",
                        "duration_s": round(emb.duration_s, 4),
                        "windows": [
                            {"start_s": round(float(s), 4), "end_s": round(float(e), 4), "embedding": v}
                            for s, e, v in zip(emb.starts_s, emb.ends_s, emb.vectors)
                        ],
                        "timing_ms": {k: round(v, 3) for k, v in emb.timing_ms.items()},
                    }
                    records.append(rec)
                else:
                    for img in embedder.embed_image_file(path):
                        records.append({
                            "input": str(path),
                            "modality": "image",
                            "frame": img.frame,
                            "embedding": img.vector,
                            "timing_ms": {k: round(v, 3) for k, v in img.timing_ms.items()},
                        })
            except HaiEdgeError as exc:
                failures += 1
                _err(str(exc))
                continue
            if args.json:
                print(json.dumps(_jsonable(records[-1], embedder)), flush=True)
            elif not args.output:
                _print_human(records[-1], embedder)
    if args.output and records:
        _write_output(Path(args.output), records, embedder)
    if failures:
        if len(files) > 1:
            _err(f"{failures} of {len(files)} inputs failed")
        return 2
    return 0


def _vectors(rec: dict) -> list:
    if rec["modality"] == "audio":
        return [w["embedding"] for w in rec["windows"]]
    return [rec["embedding"]]


def _jsonable(rec: dict, embedder) -> dict:  # noqa: ANN001
    out = dict(rec)
    out["backend"] = embedder.backend_name
    out["model"] = embedder.entry.id
    if rec["modality"] == "audio":
        out["windows"] = [dict(w, embedding=[round(float(x), 6) for x in w["embedding"]])
                          for w in rec["windows"]]
    else:
        out["embedding"] = [round(float(x), 6) for x in rec["embedding"]]
    return out


def _print_human(rec: dict, embedder) -> None:  # noqa: ANN001
    import numpy as np

    vecs = np.asarray(_vectors(rec))
    t = rec["timing_ms"]
    total = sum(t.values())
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


def _write_output(path: Path, records: list[dict], embedder) -> None:  # noqa: ANN001
    import numpy as np

    from hai_edge.fileio import atomic_write

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
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic_write(path) as fh:
            np.save(fh, matrix)
    elif suffix == ".npz":
        with atomic_write(path) as fh:
            np.savez(fh, embeddings=matrix, input=np.asarray(inputs), start_s=np.asarray(starts),
                     end_s=np.asarray(ends), frame=np.asarray(frames))
    elif suffix == ".jsonl":
        with atomic_write(path, "w") as fh:
            for rec in records:
                fh.write(json.dumps(_jsonable(rec, embedder)) + "\n")
    else:
        raise HaiEdgeError(f"{path}: output must end in .npy, .npz or .jsonl")
    print(f"wrote {len(matrix)} embedding(s) of {matrix.shape[1]}-d to {path}", file=sys.stderr)


def _split_bundle_and_inputs(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``embed BUNDLE INPUT...``; the BUNDLE may be left out when a built-in one fits."""
    from hai_edge.bundle import builtin_bundles

    items = list(args.items)
    if args.bundle:
        return args.bundle, items
    first = Path(items[0])
    if (first / "manifest.json").is_file() or items[0] in builtin_bundles():
        if len(items) == 1:
            raise HaiEdgeError(f"{items[0]}: no INPUT files given after the bundle")
        return items[0], items[1:]
    if first.is_dir() and not any(first.iterdir()):
        raise HaiEdgeError(f"{first}: empty directory (neither a bundle nor media files)")
    return _default_bundle(items), items


def _default_bundle(inputs: Sequence[str]) -> str:
    from hai_edge.bundle import builtin_bundles

    builtins = builtin_bundles()
    if not builtins:
        raise HaiEdgeError(
            f"{inputs[0]}: not a bundle, and no built-in bundle is installed to use by default"
        )
    # pick by the first input's suffix: audio files -> an audio bundle, else image
    first = Path(inputs[0]).suffix.lower() if inputs else ""
    want = "cough-demo" if first in _AUDIO_SUFFIXES else "derm-demo"
    if want in builtins:
        return want
    return next(iter(builtins))


# ------------------------------------------------------------------------------------ info
def _cmd_info(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.backends import BACKENDS

    bundle = Bundle.load(args.bundle, verify=True)
    m = bundle.manifest
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return 0
    total = sum(r.size for r in m.files.values())
    print(f"bundle      {m.name}  ({bundle.root})")
    print(f"schema      v{m.schema_version}, written by hai-edge {m.hai_edge_version or '?'} "
          f"at {m.created or '?'}")
    print(f"modality    {m.modality.value}, task {m.task}, embedding {m.embedding_dim}-d")
    pre = m.preprocessing.to_dict()
    keys = ("sample_rate", "window_s", "hop_s", "features", "n_mels") if m.modality.value == "audio" \
        else ("height", "width", "resize", "layout")
    print("preprocess  " + ", ".join(f"{k}={pre[k]}" for k in keys))
    prov = m.provenance
    teacher = prov.get("teacher") or {}
    if teacher:
        print(f"teacher     {teacher.get('id', '?')} (licence {teacher.get('licence', '?')})")
    student = prov.get("student") or {}
    if student:
        print(f"student     {student.get('arch', '?')}, {student.get('params', '?')} params")
    print(f"files       {len(m.files)} file(s), {total / 1e6:.2f} MB, sha256 verified")
    print("models:")
    for e in m.models:
        size = sum(m.files[f].size for f in e.files)
        engine = next((b.name for b in BACKENDS.values() if b.format is e.format), "?")
        avail = "" if BACKENDS[engine].is_available() else f"  (needs hai-edge[{BACKENDS[engine].extra}])"
        fid = e.fidelity
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in fid.items() if k in ("max_abs_diff", "mean_cosine", "min_cosine",
                                                             "p5_cosine", "passed"))
        shape = "x".join("N" if s is None else str(s) for s in e.inputs[0].shape)
        print(f"  {e.id:<16} {e.format.value:<9} {e.precision.value:<5} {size / 1e6:7.2f} MB  "
              f"in {e.inputs[0].name}[{shape}]  {figures}{avail}")
    for h in m.heads:
        print(f"head        {h.get('name', '?')} ({h.get('kind', '?')})")
    for n in m.notices:
        print(f"notice      {n}")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from hai_edge.runtime.backends import BACKENDS

    for info in BACKENDS.values():
        miss = info.missing()
        state = "available" if not miss else f"missing {miss[0]}: pip install 'hai-edge[{info.extra}]'"
        print(f"{info.name:<12} {info.format.value:<9} {info.title:<58} {state}")
    return 0


# ------------------------------------------------------------------------------------ main
# Each module defines ``register(subparsers)``; ordered as they appear in --help.
_COMMAND_MODULES = (
    ".teacher",  # hai-edge teacher embed
    ".distill",  # hai-edge distill
    ".export",  # hai-edge export / verify
    ".devices",  # hai-edge devices / benchmark
    ".cough",  # hai-edge cough / probe train|eval
    ".derm",  # hai-edge derm
    ".demo",  # hai-edge demo
    ".samples",  # hai-edge samples
    ".report",  # hai-edge report
    ".stress",  # hai-edge stress
    ".kiosk",  # hai-edge kiosk / kiosk adduser
    ".pwa",  # hai-edge pwa build / serve
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hai-edge",
        description="Run, distil, quantize and export health foundation encoders offline.",
    )
    p.add_argument("--version", action="version", version=f"hai-edge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("embed", help="embed audio recordings or photos with a bundle",
                       usage="hai-edge embed [BUNDLE] INPUT... [options]")
    e.add_argument("items", nargs="+", metavar="[BUNDLE] INPUT",
                   help="a bundle (directory or built-in name), then media files or directories; "
                        "without a bundle the built-in demo bundle for the media type is used")
    e.add_argument("--bundle", "-b", help="bundle, when not given as the first argument")
    e.add_argument("--backend", "-e", help="onnxruntime | openvino | tflite (default: first installed)")
    e.add_argument("--precision", choices=("int8", "fp32"), help="default: int8 when the bundle has it")
    e.add_argument("--threads", type=int, default=None, help="engine threads (default: engine's)")
    e.add_argument("--json", action="store_true", help="print one JSON object per input")
    e.add_argument("-o", "--output", help="write embeddings to OUT.npy, OUT.npz or OUT.jsonl")
    e.set_defaults(func=_cmd_embed)

    i = sub.add_parser("info", help="show a bundle's manifest summary and verify its files")
    i.add_argument("bundle", help="bundle directory or built-in name")
    i.add_argument("--json", action="store_true", help="print the whole manifest")
    i.set_defaults(func=_cmd_info)

    b = sub.add_parser("backends", help="list inference engines and whether they are installed")
    b.set_defaults(func=_cmd_backends)

    # Commands defined next to their code. These modules are light: heavy imports (torch, ...)
    # happen inside the command functions they register.
    import importlib

    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name, package=__name__)
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HaiEdgeError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not a user error: keep it to one line unless debugging
        if os.environ.get("HAI_EDGE_DEBUG"):
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (set HAI_EDGE_DEBUG=1 for a traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())

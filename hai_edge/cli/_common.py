"""Pieces every ``hai-edge`` command shares: the "[BUNDLE] INPUT..." rule, input expansion, the
engine and head options, output writers and the mapping of exceptions to exit codes.

Light on purpose (the parser imports it): numpy and the runtime load inside the functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "BundleAndInputs",
    "add_engine_args",
    "add_heads_arg",
    "err",
    "expand_inputs",
    "heads_from",
    "report_failures",
    "run_command",
    "split_bundle_and_inputs",
    "verdict_text",
    "with_modality",
    "write_jsonl",
]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                            ".dcm"})


def err(msg: str) -> None:
    """One error line on stderr, the way every command reports a user error."""
    print(f"hai-edge: error: {msg}", file=sys.stderr)


# ------------------------------------------------------------------------ [BUNDLE] INPUT...
@dataclasses.dataclass(frozen=True)
class BundleAndInputs:
    """What the positional arguments named: a bundle (None: the command's default) and inputs."""

    bundle: str | None
    inputs: tuple[str, ...]


def _names_a_bundle(item: str) -> bool:
    """A bundle directory, or a built-in bundle's name that is not also a path here (an
    existing file or directory of that name is an input, as ``resolve_bundle`` would load it)."""
    from hai_edge.bundle import builtin_bundles

    p = Path(item)
    return (p / "manifest.json").is_file() or (item in builtin_bundles() and not p.exists())


def split_bundle_and_inputs(bundle_option: str | None, items: Sequence[str], *,
                            inputs_required: bool = True) -> BundleAndInputs:
    """The one "[BUNDLE] INPUT..." rule of ``embed``, ``cough`` and ``derm``: ``--bundle`` wins;
    else the first item is the bundle when it names one (a bundle directory or a built-in name),
    and then at least one INPUT must follow it (unless ``inputs_required`` is false, e.g.
    ``cough BUNDLE --mic``)."""
    items = tuple(items)
    if bundle_option:
        return BundleAndInputs(bundle_option, items)
    if items and _names_a_bundle(items[0]):
        if len(items) == 1 and inputs_required:
            raise HaiEdgeError(f"{items[0]}: no INPUT files given after the bundle")
        return BundleAndInputs(items[0], items[1:])
    return BundleAndInputs(None, items)


def expand_inputs(inputs: Iterable[str], suffixes: Iterable[str], *,
                  keep: Callable[[Path], bool] | None = None,
                  skip_hidden: bool = False) -> list[Path]:
    """Files as given; directories expand (recursively, sorted) to the files with one of
    ``suffixes`` (or for which ``keep`` says yes); ``skip_hidden`` leaves out ``.name`` files."""
    wanted = {s.lower() for s in suffixes}
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        for f in sorted(p.rglob("*")):
            if (skip_hidden and f.name.startswith(".")) or not f.is_file():
                continue
            if f.suffix.lower() in wanted or (keep is not None and keep(f)):
                out.append(f)
    return out


# ------------------------------------------------------------------------------ options
def add_engine_args(p: argparse.ArgumentParser, *, threads_help: str = "engine threads "
                    "(default: the engine's)") -> None:
    """``--backend/-e``, ``--precision`` and ``--threads``: the same words on every command."""
    p.add_argument("--backend", "-e", help="onnxruntime | openvino | tflite (default: the first "
                   "installed one the bundle has a model for)")
    p.add_argument("--precision", choices=("int8", "fp32"), help="model precision (default: "
                   "int8 when the bundle has it)")
    p.add_argument("--threads", type=int, default=None, help=threads_help)


def add_heads_arg(p: argparse.ArgumentParser) -> None:
    """``--heads NAMES`` (comma-separated, repeatable; ``--head`` is the same option)."""
    p.add_argument("--heads", "--head", dest="heads", action="append", metavar="NAMES",
                   help="comma-separated heads to apply (repeatable; default: all of the "
                        "bundle's; '' for none)")


def heads_from(values: Sequence[str] | None) -> list[str] | None:
    """The ``--heads`` values as names: None = all heads, [] = none."""
    if values is None:
        return None
    return [h.strip() for v in values for h in v.split(",") if h.strip()]


# ------------------------------------------------------------------------------ output
def with_modality(record: Mapping[str, Any], modality: str) -> dict[str, Any]:
    """The record with ``modality`` right after ``input``: the same key in embed, cough, derm."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key != "modality":
            out[key] = value
        if key == "input":
            out["modality"] = modality
    out.setdefault("modality", modality)
    return out


def verdict_text(score: Any) -> str:
    """A head's verdict on the human line: its label, or for a score within the head's
    borderline band the plain words that no verdict is given."""
    if getattr(score, "borderline", False):
        return (f"borderline (too close to the threshold {score.threshold:.3f} to call: within "
                f"+/-{score.band:.3f}, where engines can disagree)")
    return str(score.label)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """One JSON object per line, written atomically; returns how many."""
    from hai_edge.fileio import atomic_write

    n = 0
    with atomic_write(path, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
            n += 1
    return n


def report_failures(failures: int, total: int) -> int:
    """The exit code of a command over many inputs: 2 when any failed (said once if several)."""
    if failures and total > 1:
        err(f"{failures} of {total} inputs failed")
    return 2 if failures else 0


# ------------------------------------------------------------------------------ errors
def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command: a user error is one line and its exit code (2), a bug one line and 1."""
    try:
        return int(func(args) or 0)
    except HaiEdgeError as exc:
        err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not a user error: keep it to one line unless debugging
        if os.environ.get("HAI_EDGE_DEBUG"):
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (set HAI_EDGE_DEBUG=1 for a traceback)")
        return 1

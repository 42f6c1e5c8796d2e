"""``hai-edge info BUNDLE`` (manifest summary, files verified) and ``hai-edge backends``.

Light on purpose (the parser imports it): the bundle and engine registry load inside the commands.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    i = subparsers.add_parser("info", help="show a bundle's manifest summary and verify its files")
    i.add_argument("bundle", help="bundle directory or built-in name")
    i.add_argument("--json", action="store_true", help="print the whole manifest")
    i.set_defaults(func=_cmd_info)

    b = subparsers.add_parser("backends",
                              help="list inference engines and whether they are installed")
    b.set_defaults(func=_cmd_backends)


def _cmd_info(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle

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
        print("student     " + _student_line(student))
    print(f"files       {len(m.files)} file(s), {total / 1e6:.2f} MB, sha256 verified")
    print(f"signature   {bundle.signature.describe() if bundle.signature else 'not checked'}")
    print("models:")
    for line in _model_lines(m):
        print(line)
    for h in m.heads:
        print(f"head        {h.get('name', '?')} ({h.get('kind', '?')})")
    for n in m.notices:
        print(f"notice      {n}")
    return 0


def _student_line(student: dict[str, Any]) -> str:
    """Name and size as exported (the model in the files), with the backbone alone beside it."""
    name = student.get("name") or student.get("arch", "?")
    exported, backbone = student.get("exported_params"), student.get("params")
    if isinstance(exported, int):
        extra = f" ({backbone:,} in the backbone, the rest projects to the teacher's size)" \
            if isinstance(backbone, int) and backbone != exported else ""
        return f"{name}, {exported:,} parameters as exported{extra}"
    return f"{name}, {backbone:,} parameters" if isinstance(backbone, int) else str(name)


def _model_lines(m: Any) -> list[str]:
    from hai_edge.runtime.backends import BACKENDS

    lines = []
    for e in m.models:
        size = sum(m.files[f].size for f in e.files)
        engine = next((b.name for b in BACKENDS.values() if b.format is e.format), "?")
        avail = "" if BACKENDS[engine].is_available() else f"  (needs hai-edge[{BACKENDS[engine].extra}])"
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in e.fidelity.items() if k in ("max_abs_diff", "mean_cosine",
                                                                    "min_cosine", "p5_cosine",
                                                                    "passed"))
        shape = "x".join("N" if s is None else str(s) for s in e.inputs[0].shape)
        lines.append(f"  {e.id:<16} {e.format.value:<9} {e.precision.value:<5} {size / 1e6:7.2f} MB  "
                     f"in {e.inputs[0].name}[{shape}]  {figures}{avail}")
    return lines


def _cmd_backends(args: argparse.Namespace) -> int:
    from hai_edge.runtime.backends import BACKENDS

    for info in BACKENDS.values():
        miss = info.missing()
        state = "available" if not miss else f"missing {miss[0]}: pip install 'hai-edge[{info.extra}]'"
        print(f"{info.name:<12} {info.format.value:<9} {info.title:<58} {state}")
    return 0

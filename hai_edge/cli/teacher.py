"""``hai-edge teacher embed``: run a teacher over a corpus into an embedding store.

Light on purpose (``hai_edge.cli`` imports it to build the parser): teachers, TensorFlow, torch
and the store load inside the command function.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["register"]

_SPECS = ("hear:PATH|HF_ID, hear-pytorch:PATH|HF_ID, derm-foundation:PATH|HF_ID, "
          "medsiglip:PATH|HF_ID, onnx:FILE, torch:MODULE:CALLABLE, embeddings:FILE.npz|csv, "
          "reference:audio|image")


def register(subparsers: Any) -> None:
    t = subparsers.add_parser("teacher",
                              help="teacher encoders: embed a corpus once for distillation")
    tsub = t.add_subparsers(dest="teacher_command", metavar="SUBCOMMAND")
    t.set_defaults(func=lambda args: (t.print_help(), 2)[1])

    e = tsub.add_parser(
        "embed", help="embed a corpus (clean + augmented views) into a resumable embedding store",
        description="Embed every item of a corpus with a teacher into STORE (resumable: "
                    "re-running skips items already stored).")
    e.add_argument("--teacher", "-t", required=True, metavar="SPEC", help=_SPECS)
    e.add_argument("--data", "-d", metavar="DIR_OR_CSV",
                   help="media folder or CSV (path column, optional id/group/label columns); "
                        "optional for embeddings: (then every id in the file is imported)")
    e.add_argument("-o", "--output", required=True, metavar="STORE", help="store directory")
    e.add_argument("--views", type=int, default=0, help="augmented views per item besides the "
                   "clean one (default 0)")
    e.add_argument("--batch-size", type=int, default=16, help="teacher batch size (default 16)")
    e.add_argument("--window-s", type=float, help="audio window (default: the teacher's input)")
    e.add_argument("--hop-s", type=float, help="audio hop (default: 0.9 x window)")
    e.add_argument("--min-clip-s", type=float, default=0.5, help="shortest usable audio (0.5 s)")
    e.add_argument("--skip-quiet-db", type=float, default=-50.0,
                   help="skip audio windows quieter than this dBFS (default -50)")
    e.add_argument("--group", metavar="COL", help="CSV column with subject/patient ids")
    e.add_argument("--path-col", metavar="COL", help="CSV column with file paths (default: path, "
                   "file, filename or img_id)")
    e.add_argument("--id-col", metavar="COL", default=None,
                   help="CSV column with item ids (default: id, file_id, sample_id or img_id)")
    e.add_argument("--limit", type=int, help="embed only the first N items (by id)")
    e.add_argument("--seed", type=int, default=0, help="augmentation seed (default 0)")
    e.add_argument("--shard-items", type=int, default=32, help="items per store shard (32)")
    e.add_argument("--device", default="cpu", help="torch device for torch teachers (cpu)")
    e.add_argument("--engine", default="local", metavar="local|ray",
                   help="local (default; one process) or ray (decode in Ray tasks, the teacher in "
                        "a pool of Ray actors; pip install 'hai-edge[scale]'; see docs/scale.md)")
    r = e.add_argument_group("Ray engine (--engine ray)")
    r.add_argument("--address", metavar="ray://HOST:PORT|auto",
                   help="join an existing Ray cluster (default: start a local one, loopback only)")
    r.add_argument("--workers", type=int, metavar="N",
                   help="teacher actors (default: what the cluster fits; locally CPUs - 1)")
    r.add_argument("--gpus-per-worker", type=float, metavar="G",
                   help="GPUs per teacher actor (default 0; > 0 runs torch teachers on cuda)")
    r.add_argument("--cpus-per-worker", type=float, metavar="C",
                   help="CPUs (and torch threads) per teacher actor (default 1)")
    e.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    e.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from hai_edge.distill.teacher_embed import ENGINES

    if args.engine not in ENGINES:
        raise HaiEdgeError(f"engine {args.engine!r} is not available; only {', '.join(ENGINES)}")
    if args.data and not Path(args.data).exists():
        raise HaiEdgeError(f"{args.data}: no such directory or CSV file")
    if args.limit is not None and args.limit < 1:
        raise HaiEdgeError("--limit must be >= 1")
    if any(v is not None and v <= 0 for v in (args.window_s, args.hop_s)):
        raise HaiEdgeError("--window-s and --hop-s must be positive")
    ray_only = {"--address": args.address, "--workers": args.workers,
                "--gpus-per-worker": args.gpus_per_worker,
                "--cpus-per-worker": args.cpus_per_worker}
    given = [flag for flag, value in ray_only.items() if value is not None]
    if args.engine == "local" and given:
        raise HaiEdgeError(f"{', '.join(given)}: only with --engine ray")
    lookup = args.teacher.startswith("embeddings:")
    if args.engine == "ray" and not lookup:
        if not args.data:
            raise HaiEdgeError("--data is required (only embeddings: teachers import without it)")
        store, info = _embed_ray(args)
    else:
        store, info = _embed_local(args)
    skipped = store.meta.get("skipped", [])
    print(f"{store.root}: {len(store)} embeddings of {store.meta.get('dim')}-d from "
          f"{info.id} ({info.licence}); {len(store.done_items())} items, {len(skipped)} skipped",
          file=sys.stderr)
    for s in skipped[:5]:
        print(f"  skipped {s['path']}: {s['reason']}", file=sys.stderr)
    if len(skipped) > 5:
        print(f"  ... and {len(skipped) - 5} more (see {store.root / 'store.json'})",
              file=sys.stderr)
    return 0


def _items(args: argparse.Namespace, info: Any) -> Any:
    from hai_edge.corpus import load_corpus

    items = load_corpus(args.data, info.modality, group_col=args.group, id_col=args.id_col,
                        path_col=args.path_col)
    return items[: args.limit] if args.limit else items


def _audio_spec(args: argparse.Namespace, info: Any) -> Any:
    """The windowing options as a spec, or None for the teacher's defaults."""
    from hai_edge.runtime.frontends import AudioFrontendSpec

    if info.modality != "audio" or not (args.window_s or args.hop_s or args.min_clip_s != 0.5
                                        or args.skip_quiet_db != -50.0):
        return None
    window = args.window_s or (info.window_samples or 0) / (info.sample_rate or 1)
    return AudioFrontendSpec(window_s=window, hop_s=args.hop_s or 0.9 * window,
                             min_clip_s=min(args.min_clip_s, window),
                             skip_quiet_db=args.skip_quiet_db)


def _embed_local(args: argparse.Namespace) -> tuple[Any, Any]:
    from hai_edge.distill.teacher_embed import embed_corpus, import_precomputed
    from hai_edge.teachers import is_lookup_teacher, load_teacher

    teacher = load_teacher(args.teacher, device=args.device)
    try:
        info = teacher.info
        items = None
        if args.data:
            items = _items(args, info)
        elif not is_lookup_teacher(teacher):
            raise HaiEdgeError("--data is required (only embeddings: teachers import without it)")
        progress = not args.no_progress
        if is_lookup_teacher(teacher):
            if args.views:
                raise HaiEdgeError("precomputed embeddings have no augmented views; use --views 0")
            store = import_precomputed(teacher, args.output, items, progress=progress)
        else:
            store = embed_corpus(teacher, items, args.output, spec=_audio_spec(args, info),
                                 views=args.views, batch_size=args.batch_size, seed=args.seed,
                                 progress=progress, shard_items=args.shard_items)
    finally:
        teacher.close()
    return store, info


def _embed_ray(args: argparse.Namespace) -> tuple[Any, Any]:
    from hai_edge.distill.teacher_embed_ray import RayOptions, embed_corpus_ray, ray_session, remote_teacher_info

    options = RayOptions(address=args.address, workers=args.workers,
                         gpus_per_worker=0.0 if args.gpus_per_worker is None
                         else args.gpus_per_worker,
                         cpus_per_worker=1.0 if args.cpus_per_worker is None
                         else args.cpus_per_worker, device=args.device)
    progress = not args.no_progress
    with ray_session(options, announce=progress):
        info = remote_teacher_info(args.teacher, options)
        store = embed_corpus_ray(args.teacher, _items(args, info), args.output, info=info,
                                 spec=_audio_spec(args, info), views=args.views,
                                 batch_size=args.batch_size, seed=args.seed, progress=progress,
                                 shard_items=args.shard_items, options=options)
    return store, info

"""Compare head recipes across engines on the built-in bundles' held-out rows, and rebuild their
heads with the engine-robust recipe (issue #18).

    python benchmarks/robust_heads.py --data ../shared/data --work /tmp/hai-heads [--compare]
        [--write DIR] [--bundles cough-demo,derm-demo]

``--write DIR --golden-only`` keeps the heads and only adds the golden head scores. ``--compare``
prints the recipe table (docs/cough.md, docs/derm.md). ``--write DIR`` trains the
head of each built-in bundle with ``hai_edge.heads.robust.ROBUST`` on its training rows embedded
by every engine, checks it with the decision gate on the held-out rows (all engines against
onnxruntime, the reference engine of the INT8 bundle) and writes DIR/<bundle>: the built-in
bundle with that head replaced and golden.json's per-head expected scores added (unsigned: re-sign
with the demo key). The embeddings are cached in WORK; they depend on the bundle's model and
detector only, so rerun after a model or detector change with a fresh WORK.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from head_data import DEMOS, demo_rows, write_splits  # noqa: E402

from hai_edge.bundle import Bundle  # noqa: E402


def _heldout_figures(head: Any, held: Any) -> dict[str, Any]:
    from hai_edge.heads.decisions import decision_figures

    return decision_figures(head, held, reference="onnxruntime", n_boot=500)


def compare(name: str, data: Path, work: Path, only: tuple[str, ...] = (),
            source: Path | None = None) -> list[dict[str, Any]]:
    from hai_edge.heads.robust import RECIPES, train_engine_head

    bundle = Bundle.load(source / name if source else name)
    head_name, *_rest, labels = DEMOS[name]
    train = demo_rows(bundle, name, data, work, "train")
    held = demo_rows(bundle, name, data, work, "heldout")
    out = []
    for recipe in RECIPES.values():
        if only and recipe.name not in only:
            continue
        head = train_engine_head(train, head_name, recipe, labels=labels)
        figs = _heldout_figures(head, held)
        out.append({"recipe": recipe.name, "C": head.training["C"],
                    "m": head.training.get("subspace_dim", "-"),
                    "oof": head.training["oof_engine_max_abs_diff"],
                    "oof_q": head.training.get("oof_engine_diff_q", {}).get("value"),
                    **figs["summary"]})
        print(f"{name} {json.dumps(out[-1])}", flush=True)
    return out


def _print_table(name: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{name}: held-out rows, every engine vs onnxruntime")
    print("| recipe | m | C | out-of-fold engine diff, max / 99th pct (train) | AUROC (ORT) | "
          "max abs score diff | flips (band) | ΔAUROC max | Δsens@spec max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        q = "-" if r["oof_q"] is None else f"{r['oof_q']:.4f}"
        print(f"| {r['recipe']} | {r['m']} | {r['C']:g} | {r['oof']:.4f} / {q} | "
              f"{r['auroc_reference']:.4f} | "
              f"{r['max_abs_diff']:.4f} | {r['flips']} | {r['max_delta_auroc']:.4f} | "
              f"{r['max_delta_sensitivity']:.4f} |")


def heldout_inputs(name: str, bundle: Any, data: Path, work: Path) -> tuple[Any, str]:
    """Model inputs of the held-out rows (every window of each recording; each photo)."""
    import csv

    import numpy as np

    from hai_edge.runtime.decoders import decode_audio, decode_image
    from hai_edge.runtime.frontends import prepare_audio, prepare_image

    _, held_csv = write_splits(name, data, work)
    rows = list(csv.DictReader(open(held_csv, newline="", encoding="utf-8")))
    spec = bundle.manifest.preprocessing
    xs = []
    for r in rows:
        try:
            if name == "cough-demo":
                d = decode_audio(r["path"])
                xs.append(prepare_audio(d.samples, d.sample_rate, spec, r["path"])[1])
            else:
                img = decode_image(r["path"])
                xs.append(prepare_image(img.pixels, spec, img.orientation, r["path"])[None])
        except Exception:  # too short / undecodable: the pipeline skips it too
            continue
    what = ("windows of the held-out cough-ru call-centre recordings" if name == "cough-demo"
            else "held-out PAD-UFES-20 photos (patients not in training)")
    x = np.concatenate(xs)
    return x, f"{len(x)} {what}"


def rebuild(name: str, data: Path, work: Path, dest: Path, source: Path | None = None
            ) -> dict[str, Any]:
    """DEST/<name>: the bundle with its INT8 engines aligned (``align_int8_engines``) and its
    head retrained as ``probe train --recipe auto --heldout`` does it (standard, then robust,
    each gated on the held-out rows against onnxruntime), golden head scores added."""
    import shutil

    from hai_edge.errors import GateError
    from hai_edge.export.align_int8 import align_int8_engines
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.heads.decisions import add_golden_head_scores, gate_head_decisions
    from hai_edge.heads.robust import ROBUST, STANDARD, train_engine_head
    from hai_edge.runtime.heads import load_heads

    original = Bundle.load(source / name if source else name)
    aligned_dir = dest / f".{name}-aligned"
    x, note = heldout_inputs(name, original, data, work)
    print(f"{name}: aligning the INT8 engines ({note})", flush=True)
    bundle = align_int8_engines(original, aligned_dir, inputs=x, inputs_note=note, overwrite=True)
    head_name, *_rest, labels = DEMOS[name]
    old = load_heads(original, [head_name], verify=False)[0]
    train = demo_rows(bundle, name, data, work, "train")
    held = demo_rows(bundle, name, data, work, "heldout")
    keep = {k: old.training[k] for k in ("bundle", "embedding_dim", "file_column",
                                         "group_column") if k in old.training}
    head, errors = None, []
    for n, rung in enumerate((STANDARD, ROBUST)):
        fitted = train_engine_head(train, head_name, rung, labels=labels, notice=old.notice,
                                   extra_training=keep)
        try:
            head, _ = gate_head_decisions(fitted, held, reference="onnxruntime",
                                          allow_degraded=n == 1, say=print)
        except GateError as exc:
            errors.append(f"recipe {rung.name}: {exc}")
            print(f"{name}: recipe {rung.name} failed the decision gate; trying robust",
                  flush=True)
            continue
        head = dataclasses.replace(head, ood=old.ood, training={
            **head.training, "decision_gate": {
                **head.training["decision_gate"], "rung": rung.name,
                "rows": "held-out rows of the demo split", "failed_before": errors}})
        break
    assert head is not None
    tmp = add_head_to_bundle(bundle, head, str(dest / f".{name}-tmp"), overwrite=True)
    add_golden_head_scores(tmp, str(dest / name), overwrite=True)
    shutil.rmtree(tmp.root)
    shutil.rmtree(aligned_dir)
    return head.training["decision_gate"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("/tmp/hai-heads"))
    p.add_argument("--bundles", default="cough-demo,derm-demo")
    p.add_argument("--compare", action="store_true", help="print the recipe comparison")
    p.add_argument("--write", type=Path, help="write the rebuilt bundles here")
    p.add_argument("--golden-only", action="store_true", help="with --write: keep the heads, "
                   "only add golden.json's per-head expected scores")
    p.add_argument("--from", dest="source", type=Path,
                   help="read DIR/<bundle> instead of the built-in bundles")
    p.add_argument("--recipes", default="", help="compare only these recipes (comma-separated)")
    args = p.parse_args(argv)
    names = [n for n in args.bundles.split(",") if n]
    for name in names:
        if args.compare:
            _print_table(name, compare(name, args.data.resolve(), args.work,
                                       tuple(r for r in args.recipes.split(",") if r),
                                       args.source))
        if args.write and args.golden_only:
            from hai_edge.heads.decisions import add_golden_head_scores

            out = add_golden_head_scores(Bundle.load(name), str(args.write / name),
                                         overwrite=True)
            print(f"{out.root}: golden head scores added (heads unchanged)")
        elif args.write:
            gate = rebuild(name, args.data.resolve(), args.work, args.write, args.source)
            print(f"{args.write / name}: recipe {gate['rung']}: {json.dumps(gate['summary'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

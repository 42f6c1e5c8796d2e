"""Build the built-in demo bundles ``cough-demo`` and ``derm-demo`` from ../shared/data.

    python -m hai_edge.demo.bundles --modality audio --data ../shared/data \\
        --work /tmp/hai-demo -o hai_edge/bundles [--epochs 12] [--max-minutes 40]

Every step calls the library function behind its ``hai-edge`` command, with the command's
defaults (so the shipped bundles are made exactly the way a user would make theirs), and is
skipped when its output exists, so an interrupted build resumes. Audio: corpus CSV (``demo_corpora``) -> ``teacher embed`` (reference:audio, 4 views)
-> ``distill`` (audio-s) -> ``export`` INT8 (ONNX, OpenVINO, TFLite, gated) -> the learned cough
detector (``cough_detector_train``, scored on held-out scenes) -> a COVID-19 demo probe trained
on cough-ru's call-centre recordings of the training split (``probe train``) and evaluated on
the held-out ones (``probe eval``). Image: PAD-UFES-20 -> ``teacher embed`` (reference:image)
-> ``distill`` (image-s) -> ``export`` INT8 -> a malignant (BCC, SCC, MEL) vs benign probe on
the training split, evaluated on the held-out patients. The student weights are also written as
pretrained students (``students/pretrained``) for ``hai-edge demo``'s warm start.
Figures land in WORK/<modality>-figures.json. Demo, not for clinical use.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_audio", "build_image", "main"]


def _export_int8(run: Path, dest: Path, name: str, golden_items: int = 3) -> None:
    """The run's student as a gated INT8 bundle in all three formats (``hai-edge export RUN -o
    DEST --precision int8 --name NAME --golden-items N``, as a library call)."""
    from hai_edge.export.bundle_builder import BuildOptions
    from hai_edge.export.source import ExportSource

    command = (f"hai-edge export {run} -o {dest} --precision int8 --name {name} "
               f"--golden-items {golden_items}")
    print("+ " + command, flush=True)
    ExportSource.from_run(run, progress=print).build(
        dest, options=BuildOptions(precision="int8", golden_items=golden_items), name=name,
        provenance={"command": command}, progress=print)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _teacher_embed(teacher_spec: str, data: Path, group: str, id_col: str, out: Path) -> None:
    """``hai-edge teacher embed --views 4 --batch-size 32 --no-progress`` (resumable)."""
    from hai_edge.corpus import load_corpus
    from hai_edge.distill.teacher_embed import embed_corpus
    from hai_edge.teachers import load_teacher

    print(f"+ teacher embed {teacher_spec} {data} -> {out}", flush=True)
    teacher = load_teacher(teacher_spec, device="cpu")
    try:
        items = load_corpus(str(data), teacher.info.modality, group_col=group, id_col=id_col,
                            path_col=None)
        store = embed_corpus(teacher, items, str(out), spec=None, views=4, batch_size=32, seed=0,
                             progress=False, shard_items=32)
    finally:
        teacher.close()
    print(f"{store.root}: {len(store)} embeddings, {len(store.done_items())} items", flush=True)


def _distill(**changes: Any) -> None:
    """``hai-edge distill --quiet`` with the command's defaults and these changes."""
    # as the command does, before torch loads: idle OpenMP threads sleep instead of spinning
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from hai_edge.distill.run import DistillConfig, distill

    print(f"+ distill {changes.get('student')} -> {changes.get('run_dir')}", flush=True)
    result = distill(DistillConfig(progress=False, **changes))
    print(f"{result.status}: {result.stopped} after {result.epochs_done} epochs "
          f"(best epoch {result.best_epoch})", flush=True)


def _split_csv(rows: list[dict[str, Any]], dest: Path) -> Path:
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dest


def _probe(bundle: Path, train_csv: Path, held_csv: Path, name: str, label: str,
           positive: str, group: str, out_bundle: Path, subgroups: str, notice: str,
           labels: str) -> dict[str, Any]:
    """``probe train`` on the training rows -> new bundle; ``probe eval`` on the held-out rows."""
    from hai_edge.heads.bundle_heads import ProbeData, evaluate_probe, train_probe

    head_file = out_bundle.parent / f"{name}.json"
    if not out_bundle.is_dir():
        print(f"+ probe train {name} on {train_csv} -> {out_bundle}", flush=True)
        train_probe(ProbeData(bundle=str(bundle), data=str(train_csv), label=label,
                              positive=_csv(positive), group=group),
                    head_file, name=name, labels=_csv(labels), notice=notice,
                    add_to_bundle=str(out_bundle))
    _, report = evaluate_probe(ProbeData(bundle=str(out_bundle), data=str(held_csv), label=label,
                                         positive=_csv(positive), group=group),
                               name, subgroups=_csv(subgroups))
    return json.loads(json.dumps(report))  # as `probe eval --json` printed it


def _install(bundle: Path, run: Path, out_dir: Path, name: str, preset: str) -> None:
    from hai_edge.distill.students.pretrained import PRETRAINED_DIR, save_pretrained

    dest = out_dir / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(bundle, dest)
    save_pretrained(run, PRETRAINED_DIR / preset)
    print(f"installed {dest} and pretrained student {preset}")


def build_audio(data: Path, work: Path, out_dir: Path, epochs: int, minutes: float) -> dict:
    from hai_edge.bundle import Bundle
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.heads.detector_train import (
        detector_entry,
        evaluate_detector,
        read_scene_clips,
        train_detector_head,
    )
    from hai_edge.demo.corpora import write_audio_corpus

    corpus = write_audio_corpus(data, work)
    store, run = work / "audio-store", work / "audio-run"
    _teacher_embed("reference:audio", corpus, "group", "id", store)
    _distill(targets=str(store), data=str(corpus), group_col="group", id_col="id",
             student="audio-s", run_dir=str(run), epochs=epochs, num_threads=2,
             max_minutes=minutes, label="covid19", positive=("1",),
             label_filter=(("source", "cough-ru/call-center"),), subgroups=("source",))
    int8 = work / "cough-demo-int8"
    if not int8.is_dir():
        # the PWA caches the bundle on the phone: keep it small (one golden item)
        _export_int8(run, int8, "cough-demo", golden_items=1)
    det_bundle = work / "cough-demo-det"
    figures: dict[str, Any] = {}
    if not det_bundle.is_dir():
        train, held = read_scene_clips(corpus)
        head = train_detector_head(int8, train, n_scenes=300)
        entry = detector_entry(f"heads/{head.name}.json", head.threshold)
        tmp = work / "cough-demo-det-tmp"
        add_head_to_bundle(Bundle.load(int8), head, str(tmp), entry=entry, overwrite=True)
        figures["detector"] = evaluate_detector(tmp, held, n_scenes=120)
        import dataclasses

        head = dataclasses.replace(head, training={**head.training,
                                                   "heldout_scenes": figures["detector"]})
        add_head_to_bundle(Bundle.load(int8), head, str(det_bundle), entry=entry)
        shutil.rmtree(tmp)
    rows = list(csv.DictReader(open(corpus, newline="", encoding="utf-8")))
    cc = [r for r in rows if r["source"] == "cough-ru/call-center" and r["covid19"] in "01"
          and r["covid19"]]
    train_csv = _split_csv([r for r in cc if r["held_out"] == "0"], work / "covid-train.csv")
    held_csv = _split_csv([r for r in cc if r["held_out"] == "1"], work / "covid-heldout.csv")
    final = work / "cough-demo"
    figures["covid_probe_heldout"] = _probe(
        det_bundle, train_csv, held_csv, "covid-demo", "covid19", "1", "group", final, "source",
        "demo probe trained on cough-ru COVID-19 labels (call-centre recordings): weak, "
        "not for clinical use", "negative,positive")
    _install(final, run, out_dir, "cough-demo", "audio-s")
    return figures


def build_image(data: Path, work: Path, out_dir: Path, epochs: int, minutes: float) -> dict:
    from hai_edge.demo.corpora import derm_split_rows

    meta = data / "pad-ufes-20" / "metadata.csv"
    store, run = work / "image-store", work / "image-run"
    _teacher_embed("reference:image", meta, "patient_id", "img_id", store)
    _distill(targets=str(store), data=str(meta), group_col="patient_id", id_col="img_id",
             student="image-s", run_dir=str(run), epochs=epochs, num_threads=2,
             max_minutes=minutes, label="diagnostic", positive=("BCC", "SCC", "MEL"),
             subgroups=("gender", "age", "fitspatrick"))
    int8 = work / "derm-demo-int8"
    if not int8.is_dir():
        _export_int8(run, int8, "derm-demo")
    rows = derm_split_rows(data)
    train_csv = _split_csv([r for r in rows if not r["held_out"]], work / "derm-train.csv")
    held_csv = _split_csv([r for r in rows if r["held_out"]], work / "derm-heldout.csv")
    final = work / "derm-demo"
    figures = {"malignant_probe_heldout": _probe(
        int8, train_csv, held_csv, "malignant", "diagnostic", "BCC,SCC,MEL", "patient_id",
        final, "gender,fitspatrick", "demo probe trained on 550 PAD-UFES-20 photos: not for "
                                    "clinical use", "benign,malignant")}
    _install(final, run, out_dir, "derm-demo", "image-s")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hai_edge.demo.bundles",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--modality", choices=("audio", "image"), required=True)
    p.add_argument("--data", type=Path, required=True, help="../shared/data")
    p.add_argument("--work", type=Path, required=True, help="work directory (resumable)")
    p.add_argument("-o", "--output", type=Path, required=True, help="hai_edge/bundles")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--max-minutes", type=float, default=40.0)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    build = build_audio if args.modality == "audio" else build_image
    figures = build(args.data.resolve(), args.work, args.output, args.epochs, args.max_minutes)
    out = args.work / f"{args.modality}-figures.json"
    out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

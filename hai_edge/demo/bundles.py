"""Build the built-in demo bundles ``cough-demo`` and ``derm-demo`` from ../shared/data.

    python -m hai_edge.demo.bundles --modality audio --data ../shared/data \\
        --work /tmp/hai-demo -o hai_edge/bundles [--epochs 12] [--max-minutes 40]

Every step is a ``hai-edge`` command run in-process (so the shipped bundles are made exactly the
way a user would make theirs) and is skipped when its output exists, so an interrupted build
resumes. Audio: corpus CSV (``demo_corpora``) -> ``teacher embed`` (reference:audio, 4 views)
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
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_audio", "build_image", "main"]


def _run(argv: list[str]) -> None:
    from hai_edge.cli import main as cli

    print("+ hai-edge " + " ".join(argv), flush=True)
    rc = cli(argv)
    if rc != 0:
        raise SystemExit(f"hai-edge {argv[0]} failed with exit code {rc}")


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
    from hai_edge.cli import main as cli

    head_file = out_bundle.parent / f"{name}.json"
    if not out_bundle.is_dir():
        _run(["probe", "train", "--bundle", str(bundle), "--data", str(train_csv), "--label",
              label, "--positive", positive, "--group", group, "--name", name, "--notice",
              notice, "--labels", labels, "-o", str(head_file), "--add-to-bundle",
              str(out_bundle)])
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli(["probe", "eval", "--bundle", str(out_bundle), "--head", name, "--data",
                  str(held_csv), "--label", label, "--positive", positive, "--group", group,
                  "--subgroups", subgroups, "--json"])
    if rc != 0:
        raise SystemExit(f"probe eval failed ({rc})")
    return json.loads(buf.getvalue())


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
    from hai_edge.cli.cough import add_head_to_bundle
    from hai_edge.heads.detector_train import (
        detector_entry,
        evaluate_detector,
        read_scene_clips,
        train_detector_head,
    )
    from hai_edge.demo.corpora import write_audio_corpus

    corpus = write_audio_corpus(data, work)
    store, run = work / "audio-store", work / "audio-run"
    _run(["teacher", "embed", "--teacher", "reference:audio", "--data", str(corpus), "--group",
          "group", "--id-col", "id", "-o", str(store), "--views", "4", "--batch-size", "32",
          "--no-progress"])
    _run(["distill", "--targets", str(store), "--data", str(corpus), "--group", "group",
          "--id-col", "id", "--student", "audio-s", "-o", str(run), "--epochs", str(epochs),
          "--threads", "2", "--max-minutes", str(minutes), "--label", "covid19", "--positive",
          "1", "--label-filter", "source=cough-ru/call-center", "--subgroups", "source",
          "--quiet"])
    int8 = work / "cough-demo-int8"
    if not int8.is_dir():
        _run(["export", str(run), "-o", str(int8), "--precision", "int8", "--name", "cough-demo",
              "--golden-items", "1"])  # the PWA caches the bundle on the phone: keep it small
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
    from hai_edge.corpus import load_corpus, split_by_group

    meta = data / "pad-ufes-20" / "metadata.csv"
    store, run = work / "image-store", work / "image-run"
    _run(["teacher", "embed", "--teacher", "reference:image", "--data", str(meta), "--group",
          "patient_id", "--id-col", "img_id", "-o", str(store), "--views", "4",
          "--batch-size", "32", "--no-progress"])
    _run(["distill", "--targets", str(store), "--data", str(meta), "--group", "patient_id",
          "--id-col", "img_id", "--student", "image-s", "-o", str(run), "--epochs", str(epochs),
          "--threads", "2", "--max-minutes", str(minutes), "--label", "diagnostic",
          "--positive", "BCC,SCC,MEL", "--subgroups", "gender,age,fitspatrick", "--quiet"])
    int8 = work / "derm-demo-int8"
    if not int8.is_dir():
        _run(["export", str(run), "-o", str(int8), "--precision", "int8", "--name", "derm-demo"])
    items = load_corpus(meta, "image", group_col="patient_id", id_col="img_id")
    _, held = split_by_group(items, 0.2, 0)
    held_ids = {it.item_id for it in held}
    rows = [{"id": it.item_id, "path": str(it.path.resolve()), "patient_id": it.group,
             "diagnostic": it.meta["diagnostic"], "gender": it.meta.get("gender", ""),
             "fitspatrick": it.meta.get("fitspatrick", ""), "age": it.meta.get("age", ""),
             "held_out": int(it.item_id in held_ids)} for it in items]
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

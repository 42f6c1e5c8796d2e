"""``train_reference --modality image``: PAD-UFES-20 6-way diagnosis + malignant logit + NT-Xent.

Photos resized to 256 px once (cached); views are zoomed crops at ``--train-size`` px with flips,
rotations, brightness / contrast / saturation (no hue: colour is signal) and blur; BatchNorm
statistics re-estimated at the shipped 224 px afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.corpus import CorpusItem, corpus_hash, load_corpus, split_by_group
from hai_edge.fileio import atomic_write
from hai_edge.runtime.frontends import prepare_image, resize_antialiased
from hai_edge.teachers import _reference as ref
from hai_edge.teachers._train_reference_eval import (
    auroc_ci95,
    classification_report,
    embedding_geometry,
    linear_probe,
)
from hai_edge.teachers._train_reference_loop import (
    TrainConfig,
    finish,
    head_logits,
    log,
    train_encoder,
)
from hai_edge.teachers.reference_data import (
    CACHE_VERSION,
    IMAGE_CLASSES,
    MALIGNANT,
    PAD_CITATION,
    load_rgb,
)

__all__ = ["train_image"]


def _to_256(rgb: np.ndarray) -> np.ndarray:
    out = resize_antialiased(rgb.astype(np.float32), 256, 256)
    return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class _Photos:
    """PAD-UFES-20 split by patient, the 256 px cache and the labels, row-aligned."""

    items: list[CorpusItem]
    cached: np.ndarray  # [n, 256, 256, 3] uint8
    y: np.ndarray  # 6-way class index
    mal: np.ndarray  # malignant 0/1 float32
    is_held: np.ndarray
    tr: np.ndarray  # train row indices


def _photos(args: argparse.Namespace) -> _Photos:
    data, cache, seed = Path(args.data), Path(args.cache_dir), args.seed
    items = load_corpus(data / "pad-ufes-20" / "metadata.csv", "image", path_col="rel_path",
                        group_col="patient_id")
    train, held = split_by_group(items, 0.2, seed)
    held_ids = {it.item_id for it in held}
    key = corpus_hash(items, content=False)[:16]
    cpath = cache / f"pad-ufes-20-256-{CACHE_VERSION}-{key}.npy"
    if not cpath.is_file():
        log(f"  resizing {len(items)} photos to 256 px (cached in {cpath})")
        arr = np.stack([_to_256(load_rgb(it.path)) for it in items])
        with atomic_write(cpath) as fh:
            np.save(fh, arr)
    cached = np.load(cpath)
    y = np.array([IMAGE_CLASSES.index(it.meta["diagnostic"]) for it in items])
    mal = np.array([it.meta["diagnostic"] in MALIGNANT for it in items], dtype=np.float32)
    is_held = np.array([it.item_id in held_ids for it in items])
    return _Photos(items, cached, y, mal, is_held, np.flatnonzero(~is_held))


def _batches(ph: _Photos, spec: Any, args: argparse.Namespace
             ) -> Callable[[np.random.Generator], tuple]:
    """``make_batch(rng)``: pairs of augmented views of random training photos."""
    import torch
    import torch.nn.functional as F

    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    grey = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    size, cached, tr = args.train_size, ph.cached, ph.tr

    def view(rng: np.random.Generator, i: int) -> Any:
        area = rng.uniform(0.2, 0.8) * 256 * 256  # zoomed crops: lesion scale ~ 224 px whole
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = min(256, int(round(math.sqrt(area * ratio))))
        h = min(256, int(round(math.sqrt(area / ratio))))
        top, left = int(rng.integers(0, 257 - h)), int(rng.integers(0, 257 - w))
        x = torch.from_numpy(cached[i, top:top + h, left:left + w]).permute(2, 0, 1).float() / 255
        x = F.interpolate(x[None], (size, size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
        if rng.random() < 0.5:
            x = x.flip(2)
        if rng.random() < 0.5:
            x = x.flip(1)
        x = torch.rot90(x, int(rng.integers(4)), (1, 2))
        x = x * rng.uniform(0.75, 1.25)  # brightness
        g = (x * grey).sum(0, keepdim=True)
        x = (x - g.mean()) * rng.uniform(0.75, 1.25) + g.mean()  # contrast
        g = (x * grey).sum(0, keepdim=True)
        x = g + (x - g) * rng.uniform(0.75, 1.25)  # saturation (no hue change: colour is signal)
        if rng.random() < 0.3:
            sigma = rng.uniform(0.1, 1.5)
            r = int(math.ceil(2 * sigma))
            k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
            k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
            x = F.pad(x[None], (r, r, r, r), mode="reflect")
            x = F.conv2d(F.conv2d(x, k, groups=3), k.transpose(2, 3), groups=3)[0]
        return (x.clamp(0, 1) - mean) / std

    def make_batch(rng: np.random.Generator) -> tuple:
        picks = tr[rng.choice(len(tr), args.batch, replace=False)]
        v1 = torch.stack([view(rng, i) for i in picks])
        v2 = torch.stack([view(rng, i) for i in picks])
        return v1, v2, torch.from_numpy(ph.y[picks]), torch.from_numpy(ph.mal[picks])

    return make_batch


def _recalibrate_bn(encoder: Any, photos: list[np.ndarray], tr: np.ndarray, spec: Any) -> None:
    """BatchNorm statistics re-estimated at the shipped 224 px on clean training photos (FixRes):
    training saw zoomed 160 px crops, the teacher sees whole photos at 224 px."""
    import torch

    bns = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    encoder.train()
    with torch.no_grad():
        for s in range(0, len(tr), 32):
            xb = torch.from_numpy(np.stack([prepare_image(photos[i], spec) for i in tr[s:s + 32]]))
            encoder(xb)
            encoder(xb.flip(3))
    for m in bns:
        m.momentum = 0.1
    encoder.eval()


def _per_fitzpatrick(ph: _Photos, logits: np.ndarray) -> dict[str, Any]:
    fitz: dict[str, Any] = {}
    for it, h, yy, lg in zip(ph.items, ph.is_held, ph.y, logits):
        if h:
            k = it.meta.get("fitspatrick") or "missing"
            k = k.split(".")[0] if k != "missing" else k
            d = fitz.setdefault(k, {"n": 0, "malignant": 0, "correct": 0})
            d["n"] += 1
            d["malignant"] += int(IMAGE_CLASSES[yy] in MALIGNANT)
            d["correct"] += int(lg.argmax() == yy)
    return {k: {**v, "accuracy": round(v["correct"] / v["n"], 4)}
            for k, v in sorted(fitz.items())}


def _evaluator(ph: _Photos, photos: list[np.ndarray], head: Any, seed: int, train_s: float
               ) -> Callable[[Any], dict[str, Any]]:
    """``evaluate(teacher)``: held-out figures of the shipped teacher (head, probes,
    Fitzpatrick)."""
    items, y, mal, is_held, tr = ph.items, ph.y, ph.mal, ph.is_held, ph.tr

    def evaluate(teacher: Any) -> dict[str, Any]:
        log(f"  embedding {len(items)} photos through the shipped teacher")
        emb = np.concatenate([teacher.embed(photos[i:i + 32]) for i in range(0, len(photos), 32)])
        logits = head_logits(head, emb)
        rep = classification_report(y[is_held], logits[is_held], IMAGE_CLASSES)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p_mal = p[:, [IMAGE_CLASSES.index(c) for c in sorted(MALIGNANT)]].sum(1)
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(mal[is_held], p_mal[is_held])
        rep["malignant_vs_benign_auroc"] = round(float(auc), 4)
        rep["malignant_vs_benign_auroc_ci95"] = auroc_ci95(mal[is_held], p_mal[is_held])
        rep["malignant_held_out"] = int(mal[is_held].sum())
        rep["per_fitzpatrick"] = _per_fitzpatrick(ph, logits)
        probe = linear_probe(emb[~is_held], y[~is_held], emb[is_held], y[is_held], IMAGE_CLASSES)
        probe_mal = linear_probe(emb[~is_held], mal[~is_held].astype(int), emb[is_held],
                                 mal[is_held].astype(int), ("benign", "malignant"))
        groups = np.array([it.group for it in items])
        return {"held_out": {"split": f"grouped by patient_id 80/20 (corpus.split_by_group, seed "
                             f"{seed}): {len(tr)} train / {int(is_held.sum())} held-out photos, "
                             f"{len(set(groups[~is_held]))} / {len(set(groups[is_held]))} patients",
                             "head": rep, "linear_probe_6way": probe,
                             "linear_probe_malignant": probe_mal},
                "embedding_geometry": {"held_out": embedding_geometry(emb[is_held], y[is_held])},
                "training_s": round(train_s, 1)}

    return evaluate


def train_image(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    seed = args.seed
    ph = _photos(args)
    items, tr, is_held = ph.items, ph.tr, ph.is_held
    counts = np.bincount(ph.y[tr], minlength=6)
    class_w = np.sqrt(len(tr) / (6 * np.maximum(counts, 1)))
    spec = ref.default_frontend("image")
    make_batch = _batches(ph, spec, args)
    log(f"  {len(items)} photos ({len(tr)} train / {is_held.sum()} held-out, grouped by patient);"
        f" train counts {dict(zip(IMAGE_CLASSES, counts.tolist()))}; training at "
        f"{args.train_size} px")

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=max(1, len(tr) // args.batch),
                      batch=args.batch, lr=args.lr, warmup_epochs=2.0)
    torch.manual_seed(seed)
    encoder = ref.build_module("image")
    log(f"  {ref.ARCHITECTURES['image']}: {sum(p.numel() for p in encoder.parameters()):,} "
        f"params; {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch} pairs")
    t_train = time.time()
    head = train_encoder(encoder, 6, make_batch, cfg, seed, class_weights=class_w)
    photos = [load_rgb(it.path) for it in items]
    _recalibrate_bn(encoder, photos, tr, spec)
    train_s = time.time() - t_train
    evaluate = _evaluator(ph, photos, head, seed, train_s)

    sources = [{"name": "PAD-UFES-20", "licence": "CC-BY-4.0", "citation": PAD_CITATION,
                "files": len(items), "split_by": "patient_id", "train_files": len(tr),
                "held_out_files": int(is_held.sum()),
                "sha256_listing+content": corpus_hash(items, content=True),
                "selection": "the 686-photo 300 px copy in the development data"}]
    extra = {"data": sources, "train_size_px": args.train_size}
    return finish("image", encoder, spec, args, cfg, extra, evaluate)


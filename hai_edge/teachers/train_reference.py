"""Train a reference teacher (``_reference``) on the public development data, CPU only.

    python -m hai_edge.teachers.train_reference --modality audio|image \
        --data /work/shared/data -o hai_edge/teachers/reference/audio [--epochs N] [--seed 0]

Objective: SimCLR-style NT-Xent between two augmented views of each item, plus the supervision the
data honestly supports (audio: cough / infant cry / speech / other, 4-way; image: 6-way PAD-UFES-20
diagnosis plus a malignant-vs-benign logit). Splits are grouped (cough-ru ``content_group``,
donateacry ``app_instance_id``, PAD-UFES-20 ``patient_id``, synthetic items by item) with
``corpus.split_by_group``; held-out figures are measured through the shipped path (fp16 weights,
numpy front end, ``load_reference_teacher``) and written into the manifest. Decoded audio, images
resized to 256 px and the espeak-ng speech live in a cache directory (never in the repository).
Seeded; single-process data pipeline, so runs repeat on CPU as far as torch's kernels allow.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.frontends import (
    AudioFrontendSpec,
    mel_filterbank,
    prepare_image,
    resize_antialiased,
    window_features,
)
from hai_edge.corpus import corpus_hash, load_corpus, split_by_group
from hai_edge.teachers import _reference as ref
from hai_edge.teachers._train_reference_data import (
    AUDIO_CLASSES,
    CACHE_VERSION,
    IMAGE_CLASSES,
    MALIGNANT,
    PAD_CITATION,
    SR,
    assign_synthetic_split,
    coloured_noise,
    crop,
    espeak_version,
    load_rgb,
    other_clips,
    phone_band,
    real_audio,
    speech_clips,
    window_starts,
)
from hai_edge.teachers._train_reference_eval import (
    auroc_ci95,
    classification_report,
    embedding_geometry,
    grouped_cv_auroc,
    linear_probe,
)

__all__ = ["main"]



def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------- torch helpers --------------------


class TorchLogMel:
    """``window_features`` (LOG_MEL, no clip normalisation) in float32 torch, for training views;
    checked against the numpy front end at start-up."""

    def __init__(self, spec: AudioFrontendSpec) -> None:
        import torch

        self.spec = spec
        mel = mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
        self.mel = torch.tensor(mel, dtype=torch.float32)
        n = np.arange(spec.win_length)
        self.hann = torch.tensor(0.5 - 0.5 * np.cos(2 * np.pi * n / spec.win_length),
                                 dtype=torch.float32)

    def __call__(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        s = self.spec
        pad = (s.n_frames - 1) * s.hop_length + s.win_length - x.shape[1]
        frames = F.pad(x, (0, max(pad, 0))).unfold(1, s.win_length, s.hop_length)[:, : s.n_frames]
        spec = torch.fft.rfft(frames * self.hann, n=s.n_fft)
        feats = torch.log((spec.real**2 + spec.imag**2) @ self.mel + s.log_offset)
        feats = (feats - s.feature_mean) / s.feature_std
        return feats.transpose(1, 2)[:, None].contiguous()


def _nt_xent(z: Any, temperature: float) -> Any:
    import torch
    import torch.nn.functional as F

    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int
    steps_per_epoch: int
    batch: int  # pairs per step
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    ce_weight: float = 0.5
    aux_weight: float = 0.25  # image: malignant-vs-benign logit


def _train(encoder: Any, n_classes: int, make_batch: Callable[[np.random.Generator], tuple],
           cfg: TrainConfig, seed: int, class_weights: np.ndarray | None = None) -> Any:
    """SimCLR + supervised heads. ``make_batch(rng) -> (views1, views2, labels, aux or None)``.
    Returns the classification head (an MLP on the embedding, eval mode)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    dim = ref.EMBEDDING_DIM
    proj = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, 128))
    # MLP heads, like SimCLR's projection: the embedding keeps more than the label directions
    head = nn.Sequential(nn.Linear(dim, 256), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, n_classes))
    aux = nn.Sequential(nn.Linear(dim, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 1))
    modules = nn.ModuleList([encoder, proj, head, aux])
    decay = [p for n, p in modules.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in modules.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    total = cfg.epochs * cfg.steps_per_epoch
    warm = max(1, int(cfg.warmup_epochs * cfg.steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    cw = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    rng = np.random.default_rng([seed, 303])
    modules.train()
    t0 = time.time()
    running: list[float] = []
    for step in range(total):
        v1, v2, y, yaux = make_batch(rng)
        x = torch.cat([v1, v2])
        e = encoder(x)
        yy = torch.cat([y, y])
        loss_ssl = _nt_xent(proj(e), cfg.temperature)
        loss_ce = F.cross_entropy(head(e), yy, weight=cw)
        loss = loss_ssl + cfg.ce_weight * loss_ce
        if yaux is not None:
            loss = loss + cfg.aux_weight * F.binary_cross_entropy_with_logits(
                aux(e)[:, 0], torch.cat([yaux, yaux]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if (step + 1) % max(1, cfg.steps_per_epoch // 4) == 0 or step == 0:
            el = time.time() - t0
            left = el / (step + 1) * (total - step - 1)
            _log(f"  epoch {(step + 1) / cfg.steps_per_epoch:5.2f}  step {step + 1}/{total}  "
                 f"loss {np.mean(running[-cfg.steps_per_epoch:]):.3f} (nt-xent "
                 f"{loss_ssl.item():.3f}, ce {loss_ce.item():.3f})  {el:.0f}s elapsed, "
                 f"~{left:.0f}s left")
    encoder.eval()
    return head.eval()


def _head_logits(head: Any, emb: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(emb)).double().numpy()


def _save_weights(encoder: Any, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """fp16 safetensors + manifest into ``folder`` (each file written atomically)."""
    import torch
    from safetensors.torch import save

    state = {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
             for k, v in encoder.state_dict().items()}
    blob = save(state, metadata={"format": "pt", "notice": ref.NOTICE})
    with atomic_write(folder / ref.WEIGHTS_FILE) as fh:
        fh.write(blob)
    manifest["weights"] = {"file": ref.WEIGHTS_FILE, "dtype": "float16", "bytes": len(blob),
                           "sha256": hashlib.sha256(blob).hexdigest()}
    with atomic_write(folder / ref.MANIFEST_FILE, "w") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    for name in (ref.WEIGHTS_FILE, ref.MANIFEST_FILE):  # package data: world-readable
        os.chmod(folder / name, 0o644)
    return manifest


def _base_manifest(which: str, encoder: Any, spec: Any, args: argparse.Namespace,
                   cfg: TrainConfig) -> dict[str, Any]:
    import torch

    cmd = (f"python -m hai_edge.teachers.train_reference --modality {which} --data "
           f"{args.data} -o {args.output} --epochs {cfg.epochs} --seed {args.seed}")
    return {
        "schema": ref.MANIFEST_SCHEMA, "id": f"reference:{which}", "modality": which,
        "notice": ref.NOTICE, "licence": ref.LICENCE,
        "not": "not HeAR, not Derm Foundation: a small encoder with the same input/output contract",
        "architecture": {"name": ref.ARCHITECTURES[which], "config": encoder.config.to_dict()},
        "params": int(sum(p.numel() for p in encoder.parameters())),
        "embedding_dim": ref.EMBEDDING_DIM, "frontend": spec.to_dict(),
        "training": {"command": cmd, "seed": args.seed, "epochs": cfg.epochs,
                     "config": dataclasses.asdict(cfg), "threads": args.threads,
                     "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version(),
                     "objective": "NT-Xent (SimCLR, 2 views) + weighted cross-entropy on labels"},
    }


def _finish(which: str, encoder: Any, spec: Any, args: argparse.Namespace, cfg: TrainConfig,
            extra: dict[str, Any], evaluate: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Save to a scratch folder, evaluate through ``load_reference_teacher`` (fp16 weights, numpy
    front end), then write weights + manifest with the figures into the output folder."""
    manifest = {**_base_manifest(which, encoder, spec, args, cfg), **extra}
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        _save_weights(encoder, Path(tmp), manifest)
        teacher = ref.load_reference_teacher(which, weights_dir=tmp)
        manifest.update(evaluate(teacher))
        teacher.close()
    manifest["training"]["wall_s"] = round(time.time() - args.t0, 1)
    out = Path(args.output)
    _save_weights(encoder, out, manifest)
    ref.load_reference_teacher(which, weights_dir=out).close()  # the written pair loads
    return manifest


# ------------------------------------------------------------------ audio -------------------------


def train_audio(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    data, cache, seed = Path(args.data), Path(args.cache_dir), args.seed
    _log("audio: loading cough-ru (keep_recommended=1) + donateacry, synthesising speech + other")
    clips, sources = real_audio(data, cache, seed)
    espeak = espeak_version()
    synth = speech_clips(cache, seed, args.n_speech) + other_clips(seed, args.n_other)
    assign_synthetic_split(synth, seed)
    clips += synth
    sources += [
        {"name": "espeak-ng speech", "licence": "generated locally with espeak-ng (GPL-3.0 tool); "
         "audio not redistributed", "tool": espeak, "files": args.n_speech,
         "split_by": "utterance"},
        {"name": "synthetic other", "licence": "generated locally (numpy)", "files": args.n_other,
         "split_by": "clip", "kinds": "white/pink/brown noise, mains hum, fan, chords, melodies, "
         "clicks, mixtures; 40% band-limited to 8 kHz"}]
    spec0 = ref.default_frontend("audio")
    assert isinstance(spec0, AudioFrontendSpec)
    win = spec0.window_samples
    index = [(ci, s) for ci, c in enumerate(clips) for s in window_starts(c, spec0, args.cap)]
    train_idx = [w for w in index if not clips[w[0]].held]
    by_class = [[w for w in train_idx if clips[w[0]].cls == k] for k in range(4)]
    # standardisation constants of the log-mel, fixed into the spec from clean training windows
    rng0 = np.random.default_rng([seed, 404])
    sample = [train_idx[i] for i in rng0.choice(len(train_idx), 512, replace=False)]
    raw = window_features(np.stack([crop(clips[c].audio, s, win) for c, s in sample]), spec0)
    spec = dataclasses.replace(spec0, feature_mean=round(float(raw.mean()), 3),
                               feature_std=round(float(raw.std()), 3))
    logmel = TorchLogMel(spec)
    check = np.stack([crop(clips[c].audio, s, win) for c, s in sample[:8]])
    diff = np.abs(logmel(torch.from_numpy(check)).numpy() - window_features(check, spec)).max()
    if diff > 1e-3:
        raise HaiEdgeError(f"torch log-mel differs from window_features by {diff:.3g}")
    _log(f"  {len(clips)} clips, {len(index)} windows ({len(train_idx)} train); per class "
         f"{[len(b) for b in by_class]}; log-mel mean {spec.feature_mean} std {spec.feature_std}; "
         f"torch/numpy front-end max diff {diff:.2g}")

    noise_bank = np.stack([coloured_noise(np.random.default_rng([seed, 505, i]), win, i % 3)
                           for i in range(48)])

    def view(rng: np.random.Generator, c: int, s: int) -> np.ndarray:
        x = crop(clips[c].audio, s + int(rng.integers(-int(0.3 * SR), int(0.3 * SR))), win)
        if rng.random() < 0.3:
            x = phone_band(x)
        x = x * np.float32(10 ** (rng.uniform(-12, 6) / 20))
        if rng.random() < 0.5:
            rms = float(np.sqrt(np.mean(x**2))) or 1e-4
            noise = np.roll(noise_bank[rng.integers(len(noise_bank))], int(rng.integers(win)))
            x = x + noise * np.float32(rms * 10 ** (-rng.uniform(3, 30) / 20))
        return x

    def spec_augment(f: Any, rng: np.random.Generator) -> Any:
        for i in range(f.shape[0]):
            if rng.random() < 0.8:
                for _ in range(2):
                    w = int(rng.integers(0, 9))
                    m0 = int(rng.integers(0, spec.n_mels - w + 1))
                    f[i, :, m0 : m0 + w] = 0.0
                    w = int(rng.integers(0, 21))
                    t0 = int(rng.integers(0, spec.n_frames - w + 1))
                    f[i, :, :, t0 : t0 + w] = 0.0
        return f

    def make_batch(rng: np.random.Generator) -> tuple:
        ks = rng.integers(0, 4, size=args.batch)
        picks = [by_class[k][rng.integers(len(by_class[k]))] for k in ks]
        views = [torch.from_numpy(np.stack([view(rng, c, s) for c, s in picks])) for _ in range(2)]
        v1, v2 = (spec_augment(logmel(v), rng) for v in views)
        return v1, v2, torch.from_numpy(ks.astype(np.int64)), None

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=max(1, len(train_idx) // args.batch),
                      batch=args.batch, lr=args.lr)
    torch.manual_seed(seed)
    encoder = ref.build_module("audio")
    _log(f"  {ref.ARCHITECTURES['audio']}: {sum(p.numel() for p in encoder.parameters()):,} "
         f"params; {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch} pairs")
    t_train = time.time()
    head = _train(encoder, 4, make_batch, cfg, seed)
    train_s = time.time() - t_train

    def evaluate(teacher: Any) -> dict[str, Any]:
        _log(f"  embedding {len(index)} clean windows through the shipped teacher")
        emb_parts, lm_parts = [], []
        for i in range(0, len(index), 256):
            x = teacher.model_inputs([crop(clips[c].audio, s, win) for c, s in index[i:i + 256]])
            emb_parts.append(teacher.embed_inputs(x))
            lm_parts.append(np.concatenate([x[:, 0].mean(-1), x[:, 0].std(-1)], axis=1))
        emb, feats_lm = np.concatenate(emb_parts), np.concatenate(lm_parts)
        y = np.array([clips[c].cls for c, _ in index])
        held = np.array([clips[c].held for c, _ in index])
        src = np.array([clips[c].source for c, _ in index])
        logits = _head_logits(head, emb)
        rep = classification_report(y[held], logits[held], AUDIO_CLASSES)
        rep["clips"] = int(len({index[i][0] for i in np.flatnonzero(held)}))
        rep["per_source"] = {
            s: {"windows": int(((src == s) & held).sum()),
                "clips": len({index[i][0] for i in np.flatnonzero((src == s) & held)}),
                "recall_of_its_class": round(float(np.mean(
                    logits[(src == s) & held].argmax(1) == y[(src == s) & held])), 4)}
            for s in sorted(set(src))}
        probe = linear_probe(emb[~held], y[~held], emb[held], y[held], AUDIO_CLASSES)
        # acceptance-style preview: COVID within the call-centre source, clip = mean of windows
        cc = [ci for ci, c in enumerate(clips) if c.source == "cough-ru/call-center"]
        ci_arr = np.array([c for c, _ in index])
        rows, lab, grp, base = [], [], [], []
        for c in cc:
            sel = ci_arr == c
            if sel.any():
                rows.append(emb[sel].mean(0))
                lab.append(int(clips[c].meta.get("covid19") == "1"))
                grp.append(clips[c].group)
                base.append(feats_lm[sel].mean(0))
        covid = {"what": "5-fold grouped CV logistic probe (balanced, C=1, standardised) on "
                 "per-clip mean embeddings, cough-ru call-centre clips only; a preview, not tuned",
                 "clips": len(rows), "positive": int(sum(lab)),
                 "auroc_teacher": grouped_cv_auroc(np.array(rows), np.array(lab),
                                                   np.array(grp), seed)}
        covid["auroc_logmel_stats_baseline"] = grouped_cv_auroc(
            np.array(base), np.array(lab), np.array(grp), seed)
        return {"held_out": {"split": "grouped 80/20 (corpus.split_by_group, seed "
                             f"{seed}); windows capped at {args.cap} per clip",
                             "head": rep, "linear_probe": probe,
                             "covid_call_centre_preview": covid},
                "embedding_geometry": {"held_out": embedding_geometry(emb[held], y[held])},
                "data": sources, "training_s": round(train_s, 1)}

    manifest = _finish("audio", encoder, spec, args, cfg, {"data": sources}, evaluate)
    return manifest


# ------------------------------------------------------------------ image -------------------------


def _to_256(rgb: np.ndarray) -> np.ndarray:
    out = resize_antialiased(rgb.astype(np.float32), 256, 256)
    return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def train_image(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    data, cache, seed = Path(args.data), Path(args.cache_dir), args.seed
    items = load_corpus(data / "pad-ufes-20" / "metadata.csv", "image", path_col="rel_path",
                        group_col="patient_id")
    train, held = split_by_group(items, 0.2, seed)
    held_ids = {it.item_id for it in held}
    key = corpus_hash(items, content=False)[:16]
    cpath = cache / f"pad-ufes-20-256-{CACHE_VERSION}-{key}.npy"
    if not cpath.is_file():
        _log(f"  resizing {len(items)} photos to 256 px (cached in {cpath})")
        arr = np.stack([_to_256(load_rgb(it.path)) for it in items])
        with atomic_write(cpath) as fh:
            np.save(fh, arr)
    cached = np.load(cpath)
    y = np.array([IMAGE_CLASSES.index(it.meta["diagnostic"]) for it in items])
    mal = np.array([it.meta["diagnostic"] in MALIGNANT for it in items], dtype=np.float32)
    is_held = np.array([it.item_id in held_ids for it in items])
    tr = np.flatnonzero(~is_held)
    counts = np.bincount(y[tr], minlength=6)
    class_w = np.sqrt(len(tr) / (6 * np.maximum(counts, 1)))
    spec = ref.default_frontend("image")
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    grey = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    size = args.train_size
    _log(f"  {len(items)} photos ({len(tr)} train / {is_held.sum()} held-out, grouped by patient);"
         f" train counts {dict(zip(IMAGE_CLASSES, counts.tolist()))}; training at {size} px")

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
        return v1, v2, torch.from_numpy(y[picks]), torch.from_numpy(mal[picks])

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=max(1, len(tr) // args.batch),
                      batch=args.batch, lr=args.lr, warmup_epochs=2.0)
    torch.manual_seed(seed)
    encoder = ref.build_module("image")
    _log(f"  {ref.ARCHITECTURES['image']}: {sum(p.numel() for p in encoder.parameters()):,} "
         f"params; {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch} pairs")
    t_train = time.time()
    head = _train(encoder, 6, make_batch, cfg, seed, class_weights=class_w)
    # BatchNorm statistics re-estimated at the shipped 224 px on clean training photos (FixRes):
    # training saw zoomed 160 px crops, the teacher sees whole photos at 224 px.
    photos = [load_rgb(it.path) for it in items]
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
    train_s = time.time() - t_train

    def evaluate(teacher: Any) -> dict[str, Any]:
        _log(f"  embedding {len(items)} photos through the shipped teacher")
        emb = np.concatenate([teacher.embed(photos[i:i + 32]) for i in range(0, len(photos), 32)])
        logits = _head_logits(head, emb)
        rep = classification_report(y[is_held], logits[is_held], IMAGE_CLASSES)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p_mal = p[:, [IMAGE_CLASSES.index(c) for c in sorted(MALIGNANT)]].sum(1)
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(mal[is_held], p_mal[is_held])
        rep["malignant_vs_benign_auroc"] = round(float(auc), 4)
        rep["malignant_vs_benign_auroc_ci95"] = auroc_ci95(mal[is_held], p_mal[is_held])
        rep["malignant_held_out"] = int(mal[is_held].sum())
        fitz: dict[str, Any] = {}
        for it, h, yy, lg in zip(items, is_held, y, logits):
            if h:
                k = it.meta.get("fitspatrick") or "missing"
                k = k.split(".")[0] if k != "missing" else k
                d = fitz.setdefault(k, {"n": 0, "malignant": 0, "correct": 0})
                d["n"] += 1
                d["malignant"] += int(IMAGE_CLASSES[yy] in MALIGNANT)
                d["correct"] += int(lg.argmax() == yy)
        rep["per_fitzpatrick"] = {k: {**v, "accuracy": round(v["correct"] / v["n"], 4)}
                                  for k, v in sorted(fitz.items())}
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

    sources = [{"name": "PAD-UFES-20", "licence": "CC-BY-4.0", "citation": PAD_CITATION,
                "files": len(items), "split_by": "patient_id", "train_files": len(tr),
                "held_out_files": int(is_held.sum()),
                "sha256_listing+content": corpus_hash(items, content=True),
                "selection": "the 686-photo 300 px copy in the development data"}]
    extra = {"data": sources, "train_size_px": size}
    return _finish("image", encoder, spec, args, cfg, extra, evaluate)


# ------------------------------------------------------------------ main --------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hai_edge.teachers.train_reference",
                                description=__doc__.splitlines()[0])
    p.add_argument("--modality", required=True, choices=ref.MODALITIES)
    p.add_argument("--data", required=True, help="folder with cough-ru/, donateacry/, pad-ufes-20/")
    p.add_argument("-o", "--output", required=True, help="folder for model.safetensors + manifest")
    p.add_argument("--epochs", type=int, default=None, help="default: audio 5, image 20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64, help="pairs per step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", default="/tmp/hai-edge-cache")
    p.add_argument("--cap", type=int, default=6, help="audio: most windows per clip")
    p.add_argument("--n-speech", type=int, default=360)
    p.add_argument("--n-other", type=int, default=360)
    p.add_argument("--train-size", type=int, default=128, help="image: training crop size (px)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.t0 = time.time()
    if args.epochs is None:
        args.epochs = 5 if args.modality == "audio" else 20
    try:
        import torch
    except ImportError:
        raise HaiEdgeError("training needs torch: pip install 'hai-edge[export]'") from None
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
    manifest = (train_audio if args.modality == "audio" else train_image)(args)
    _log(json.dumps({k: manifest[k] for k in ("params", "held_out", "embedding_geometry",
                                               "weights")}, indent=2))
    _log(f"done in {manifest['training']['wall_s']:.0f}s -> {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HaiEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

"""``train_reference --modality audio``: cough / infant cry / speech / other, 4-way + NT-Xent.

Real clips (cough-ru, donateacry) plus espeak-ng speech and synthetic "other" sounds; windows
capped per clip; views are shifted, band-limited, gain-changed and noised crops, then
SpecAugment-masked log-mels computed in torch (checked against the numpy front end).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.frontends import AudioFrontendSpec, window_features
from hai_edge.teachers import _reference as ref
from hai_edge.teachers._train_reference_eval import (
    classification_report,
    embedding_geometry,
    grouped_cv_auroc,
    linear_probe,
)
from hai_edge.teachers._train_reference_loop import (
    TorchLogMel,
    TrainConfig,
    finish,
    head_logits,
    log,
    train_encoder,
)
from hai_edge.teachers.reference_data import (
    AUDIO_CLASSES,
    SR,
    Clip,
    assign_synthetic_split,
    coloured_noise,
    crop,
    espeak_version,
    other_clips,
    phone_band,
    real_audio,
    speech_clips,
    window_starts,
)

__all__ = ["train_audio"]

Window = tuple[int, int]  # (clip index, start sample)


def _clips(args: argparse.Namespace) -> tuple[list[Clip], list[dict[str, Any]]]:
    """Real and synthetic clips (synthetic ones split by utterance / clip) and their sources."""
    data, cache, seed = Path(args.data), Path(args.cache_dir), args.seed
    log("audio: loading cough-ru (keep_recommended=1) + donateacry, synthesising speech + other")
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
    return clips, sources


def _frontend(clips: list[Clip], train_idx: list[Window], spec0: AudioFrontendSpec,
              seed: int) -> tuple[AudioFrontendSpec, TorchLogMel, float]:
    """The spec with log-mel standardisation fixed from 512 clean training windows, its torch
    twin, and their largest difference on 8 windows (refused above 1e-3)."""
    import torch

    win = spec0.window_samples
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
    return spec, logmel, diff


def _batches(clips: list[Clip], by_class: list[list[Window]], spec: AudioFrontendSpec,
             logmel: TorchLogMel, args: argparse.Namespace
             ) -> Callable[[np.random.Generator], tuple]:
    """``make_batch(rng)``: class-balanced pairs of augmented views, as masked log-mels."""
    import torch

    seed, win = args.seed, spec.window_samples
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

    return make_batch


def _evaluator(clips: list[Clip], index: list[Window], win: int, head: Any,
               args: argparse.Namespace, sources: list[dict[str, Any]], train_s: float
               ) -> Callable[[Any], dict[str, Any]]:
    """``evaluate(teacher)``: held-out figures of the shipped teacher (head, probes, preview)."""
    seed = args.seed

    def evaluate(teacher: Any) -> dict[str, Any]:
        log(f"  embedding {len(index)} clean windows through the shipped teacher")
        emb_parts, lm_parts = [], []
        for i in range(0, len(index), 256):
            x = teacher.model_inputs([crop(clips[c].audio, s, win) for c, s in index[i:i + 256]])
            emb_parts.append(teacher.embed_inputs(x))
            lm_parts.append(np.concatenate([x[:, 0].mean(-1), x[:, 0].std(-1)], axis=1))
        emb, feats_lm = np.concatenate(emb_parts), np.concatenate(lm_parts)
        y = np.array([clips[c].cls for c, _ in index])
        held = np.array([clips[c].held for c, _ in index])
        src = np.array([clips[c].source for c, _ in index])
        logits = head_logits(head, emb)
        rep = classification_report(y[held], logits[held], AUDIO_CLASSES)
        rep["clips"] = int(len({index[i][0] for i in np.flatnonzero(held)}))
        rep["per_source"] = {
            s: {"windows": int(((src == s) & held).sum()),
                "clips": len({index[i][0] for i in np.flatnonzero((src == s) & held)}),
                "recall_of_its_class": round(float(np.mean(
                    logits[(src == s) & held].argmax(1) == y[(src == s) & held])), 4)}
            for s in sorted(set(src))}
        probe = linear_probe(emb[~held], y[~held], emb[held], y[held], AUDIO_CLASSES)
        return {"held_out": {"split": "grouped 80/20 (corpus.split_by_group, seed "
                             f"{seed}); windows capped at {args.cap} per clip",
                             "head": rep, "linear_probe": probe,
                             "covid_call_centre_preview": _covid_preview(clips, index, emb,
                                                                         feats_lm, seed)},
                "embedding_geometry": {"held_out": embedding_geometry(emb[held], y[held])},
                "data": sources, "training_s": round(train_s, 1)}

    return evaluate


def _covid_preview(clips: list[Clip], index: list[Window], emb: np.ndarray,
                   feats_lm: np.ndarray, seed: int) -> dict[str, Any]:
    """Acceptance-style preview: COVID within the call-centre source, clip = mean of windows."""
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
    return covid


def train_audio(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    seed = args.seed
    clips, sources = _clips(args)
    spec0 = ref.default_frontend("audio")
    assert isinstance(spec0, AudioFrontendSpec)
    index = [(ci, s) for ci, c in enumerate(clips) for s in window_starts(c, spec0, args.cap)]
    train_idx = [w for w in index if not clips[w[0]].held]
    by_class = [[w for w in train_idx if clips[w[0]].cls == k] for k in range(4)]
    spec, logmel, diff = _frontend(clips, train_idx, spec0, seed)
    log(f"  {len(clips)} clips, {len(index)} windows ({len(train_idx)} train); per class "
        f"{[len(b) for b in by_class]}; log-mel mean {spec.feature_mean} std {spec.feature_std}; "
        f"torch/numpy front-end max diff {diff:.2g}")
    make_batch = _batches(clips, by_class, spec, logmel, args)

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=max(1, len(train_idx) // args.batch),
                      batch=args.batch, lr=args.lr)
    torch.manual_seed(seed)
    encoder = ref.build_module("audio")
    log(f"  {ref.ARCHITECTURES['audio']}: {sum(p.numel() for p in encoder.parameters()):,} "
        f"params; {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch} pairs")
    t_train = time.time()
    head = train_encoder(encoder, 4, make_batch, cfg, seed)
    train_s = time.time() - t_train
    evaluate = _evaluator(clips, index, spec0.window_samples, head, args, sources, train_s)
    return finish("audio", encoder, spec, args, cfg, {"data": sources}, evaluate)

"""The training loop and output of ``train_reference``, shared by the audio and image recipes.

SimCLR-style NT-Xent between two views plus supervised heads (``train_encoder``), then fp16
safetensors + manifest written through a scratch folder that is evaluated first (``finish``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.runtime.frontends import AudioFrontendSpec, mel_filterbank
from hai_edge.teachers import _reference as ref

__all__ = [
    "TorchLogMel",
    "TrainConfig",
    "base_manifest",
    "finish",
    "head_logits",
    "log",
    "nt_xent",
    "save_weights",
    "train_encoder",
]


def log(msg: str) -> None:
    print(msg, flush=True)


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


def nt_xent(z: Any, temperature: float) -> Any:
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


def train_encoder(encoder: Any, n_classes: int,
                  make_batch: Callable[[np.random.Generator], tuple], cfg: TrainConfig,
                  seed: int, class_weights: np.ndarray | None = None) -> Any:
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
        loss_ssl = nt_xent(proj(e), cfg.temperature)
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
            log(f"  epoch {(step + 1) / cfg.steps_per_epoch:5.2f}  step {step + 1}/{total}  "
                 f"loss {np.mean(running[-cfg.steps_per_epoch:]):.3f} (nt-xent "
                 f"{loss_ssl.item():.3f}, ce {loss_ce.item():.3f})  {el:.0f}s elapsed, "
                 f"~{left:.0f}s left")
    encoder.eval()
    return head.eval()


def head_logits(head: Any, emb: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(emb)).double().numpy()


def save_weights(encoder: Any, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
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


def base_manifest(which: str, encoder: Any, spec: Any, args: argparse.Namespace,
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


def finish(which: str, encoder: Any, spec: Any, args: argparse.Namespace, cfg: TrainConfig,
           extra: dict[str, Any], evaluate: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Save to a scratch folder, evaluate through ``load_reference_teacher`` (fp16 weights, numpy
    front end), then write weights + manifest with the figures into the output folder."""
    manifest = {**base_manifest(which, encoder, spec, args, cfg), **extra}
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        save_weights(encoder, Path(tmp), manifest)
        teacher = ref.load_reference_teacher(which, weights_dir=tmp)
        manifest.update(evaluate(teacher))
        teacher.close()
    manifest["training"]["wall_s"] = round(time.time() - args.t0, 1)
    out = Path(args.output)
    save_weights(encoder, out, manifest)
    ref.load_reference_teacher(which, weights_dir=out).close()  # the written pair loads
    return manifest

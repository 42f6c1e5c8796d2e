"""The distillation training loop: loss, seeded batches, held-out evaluation, early stopping and
atomic per-epoch checkpoints that a re-run resumes from (finished epochs are never redone).

Loss on targets ``z = (t - mean_train) / scale`` (teacher-mean-centred, one scalar scale so the
mean squared norm per dimension is 1) and predictions ``p = head(student(x))``::

    w_cos * mean(1 - cos(p, z)) + w_mse * mean((p - z)^2) + w_rel * mean((P P^T - Z Z^T)^2)

with ``P``, ``Z`` the row-normalised batches (the relational term matches the batch's cosine
similarity matrices, i.e. the neighbourhood structure). Determinism: batch order comes from a
generator seeded by (seed, epoch), student-side augmentation likewise, so an interrupted run that
resumes from its checkpoint ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError

__all__ = [
    "LossWeights",
    "Progress",
    "StudentAug",
    "TrainSetup",
    "TrainState",
    "evaluate_cosines",
    "predict",
    "train",
]


@dataclasses.dataclass(frozen=True)
class LossWeights:
    cosine: float = 1.0
    mse: float = 1.0
    relational: float = 1.0

    def __post_init__(self) -> None:
        if min(self.cosine, self.mse, self.relational) < 0 or not (
                self.cosine + self.mse + self.relational > 0):
            raise HaiEdgeError("loss weights must be >= 0 and not all zero")


class StudentAug(str, enum.Enum):
    """Extra augmentation of cached student inputs (the teacher target stays the same)."""

    NONE = "none"
    MASK = "mask"  # audio: one time + one frequency mask (SpecAugment-style); image: cutout
    FLIP = "flip"  # image: horizontal flip


@dataclasses.dataclass
class TrainSetup:
    """Everything the loop needs; arrays are row-aligned."""

    train_x: np.ndarray  # [n, *input] float16/32 (memory-mapped cache), raw features
    train_z: np.ndarray  # [n, D] normalised targets
    held_x: np.ndarray  # [m, *input] final model inputs (already standardised)
    held_t: np.ndarray  # [m, D] raw teacher targets (clean view)
    shift: np.ndarray  # [D] teacher train mean
    scale: float
    feat_mean: float = 0.0  # train_x is standardised on the fly: (x - mean) / std
    feat_std: float = 1.0

    @property
    def norm(self) -> tuple[float, float]:
        return (self.feat_mean, self.feat_std)


@dataclasses.dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_epoch: int = 0
    best_cosine: float = -2.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    stopped: str = ""  # "", "early_stopping", "completed", "time_budget", "stop_after_epoch"


class Progress:
    """A tiny progress printer on stderr: a live line on a terminal, one line per epoch else."""

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = time.monotonic()

    def step(self, text: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.live:  # a log file: a plain line a minute at most
            if now - self._last >= 60.0 and done < total:
                self._last = now
                self.stream.write(f"{text} ({done}/{total})\n")
                self.stream.flush()
            return
        if now - self._last < 0.25 and done < total:
            return
        self._last = now
        width = 24
        fill = int(width * done / max(total, 1))
        bar = "=" * fill + (">" if fill < width else "") + " " * (width - fill - 1)
        self.stream.write(f"\r{text} [{bar[:width]}] {done}/{total}")
        self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


# ------------------------------------------------------------------------------ torch parts
def _loss(p: Any, z: Any, w: LossWeights) -> tuple[Any, dict[str, float]]:
    import torch
    import torch.nn.functional as F

    pn, zn = F.normalize(p, dim=1, eps=1e-8), F.normalize(z, dim=1, eps=1e-8)
    cos = (pn * zn).sum(dim=1)
    terms = {
        "cos": (1.0 - cos).mean(),
        "mse": F.mse_loss(p, z),
        "rel": F.mse_loss(pn @ pn.T, zn @ zn.T) if len(p) > 1 else torch.zeros(()),
    }
    total = w.cosine * terms["cos"] + w.mse * terms["mse"] + w.relational * terms["rel"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _augment(x: Any, kind: StudentAug, g: Any, audio: bool) -> Any:
    """Batch augmentation on standardised inputs, drawn from generator ``g``."""
    import torch

    if kind is StudentAug.NONE:
        return x
    n = x.shape[0]
    if kind is StudentAug.FLIP:
        flip = torch.rand(n, generator=g) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)
    h, w = x.shape[-2], x.shape[-1]
    x = x.clone()
    if audio:  # one frequency band and one time span per row set to the mean (0)
        fw = (torch.rand(n, generator=g) * h * 0.15).long()
        f0 = (torch.rand(n, generator=g) * (h - fw)).long()
        tw = (torch.rand(n, generator=g) * w * 0.15).long()
        t0 = (torch.rand(n, generator=g) * (w - tw)).long()
        rows = torch.arange(h)[None, :]
        cols = torch.arange(w)[None, :]
        fmask = (rows >= f0[:, None]) & (rows < (f0 + fw)[:, None])
        tmask = (cols >= t0[:, None]) & (cols < (t0 + tw)[:, None])
        mask = fmask[:, :, None] | tmask[:, None, :]
        return x.masked_fill(mask[:, None], 0.0)
    size = max(1, int(min(h, w) * 0.25))  # cutout: one square of a quarter of the side
    cy = (torch.rand(n, generator=g) * h).long()
    cx = (torch.rand(n, generator=g) * w).long()
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    my = (rows >= (cy - size // 2)[:, None]) & (rows < (cy + size // 2)[:, None])
    mx = (cols >= (cx - size // 2)[:, None]) & (cols < (cx + size // 2)[:, None])
    return x.masked_fill((my[:, :, None] & mx[:, None, :])[:, None], 0.0)


def _batch(x: np.ndarray, idx: np.ndarray, norm: tuple[float, float] | None, device: Any) -> Any:
    """Rows ``idx`` of ``x`` as a float32 tensor, standardised by ``norm`` = (mean, std)."""
    import torch

    order = np.argsort(idx)  # sorted reads from the memory-mapped cache, then restore order
    rows = np.empty((len(idx), *x.shape[1:]), dtype=np.float32)
    rows[order] = x[idx[order]]
    if norm is not None and norm != (0.0, 1.0):
        rows -= np.float32(norm[0])
        rows /= np.float32(norm[1])
    t = torch.from_numpy(rows).to(device)
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def predict(model: Any, x: np.ndarray, device: Any, norm: tuple[float, float] | None = None,
            batch_size: int = 128) -> np.ndarray:
    """Teacher-space (de-normalised) predictions of ``model`` (a DistillNet) for inputs ``x``."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = _batch(x, np.arange(i, min(len(x), i + batch_size)), norm, device)
            out.append(model.denorm(model(xb)).float().cpu().numpy())
    return np.concatenate(out)


def evaluate_cosines(pred: np.ndarray, teacher: np.ndarray, shift: np.ndarray
                     ) -> dict[str, float]:
    from hai_edge.distill.fidelity import cosine_rows

    cos = cosine_rows(pred, teacher)
    ctr = cosine_rows(pred - shift, teacher - shift)
    return {"cosine": float(cos.mean()), "centred_cosine": float(ctr.mean())}


# ------------------------------------------------------------------------------ the loop
def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    with atomic_write(path) as fh:
        torch.save(payload, fh)


@dataclasses.dataclass
class _Loop:
    """The optimisation state of one ``train`` call (what every epoch's steps share)."""

    model: Any
    setup: TrainSetup
    cfg: Any
    opt: Any
    sched: Any
    device: Any
    n: int
    bs: int
    steps: int
    drop_last: bool
    aug: StudentAug
    audio: bool
    progress: Progress

    def held_out_metrics(self) -> dict[str, float]:
        pred = predict(self.model, self.setup.held_x, self.device)
        return evaluate_cosines(pred, self.setup.held_t, self.setup.shift)


def _make_loop(model: Any, setup: TrainSetup, cfg: Any, progress: Progress) -> _Loop:
    """Model on its device, AdamW with warm-up + cosine schedule over all epochs' steps."""
    import torch

    device = torch.device(cfg.device)
    model.to(device)
    if model_is_4d(setup):
        model.to(memory_format=torch.channels_last)
    n = len(setup.train_x)
    bs = max(1, min(cfg.batch_size, n))
    drop_last = n > bs
    steps = n // bs if drop_last else 1
    total_steps = steps * cfg.epochs
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(total_steps, max(1, min(steps, total_steps // 10))))
    audio = len(setup.train_x.shape) == 4 and setup.train_x.shape[1] == 1
    return _Loop(model, setup, cfg, opt, sched, device, n, bs, steps, drop_last,
                 StudentAug(cfg.student_aug), audio, progress)


def _resume(loop: _Loop, checkpoint: Path, fingerprint: str
            ) -> tuple[TrainState, dict[str, Any]] | None:
    """The checkpoint's state and best weights, restored into ``loop`` (model, optimizer,
    scheduler, RNG); None without a checkpoint. A checkpoint of other settings is refused."""
    import torch

    if not checkpoint.is_file():
        return None
    ck = torch.load(checkpoint, map_location=loop.device, weights_only=False)
    if ck.get("fingerprint") != fingerprint:
        raise HaiEdgeError(
            f"{checkpoint.parent}: holds a run with different settings (data, targets, "
            f"student or training options); use another output directory or delete it")
    loop.model.load_state_dict(ck["model"])
    loop.opt.load_state_dict(ck["optimizer"])
    loop.sched.load_state_dict(ck["scheduler"])
    state = TrainState(**ck["state"])
    torch.set_rng_state(ck["rng"]["torch"])
    np.random.set_state(ck["rng"]["numpy"])
    return state, ck["best_weights"]


def _run_epoch(loop: _Loop, epoch: int) -> dict[str, float]:
    """One epoch's optimiser steps in the (seed, epoch) batch order; the summed loss terms."""
    import torch

    cfg, setup = loop.cfg, loop.setup
    loop.model.train()
    g = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + epoch)
    perm = torch.randperm(loop.n, generator=g).numpy()
    totals = {"loss": 0.0, "cos": 0.0, "mse": 0.0, "rel": 0.0}
    for s in range(loop.steps):
        idx = perm[s * loop.bs:(s + 1) * loop.bs] if loop.drop_last else perm
        xb = _augment(_batch(setup.train_x, idx, setup.norm, loop.device), loop.aug, g,
                      loop.audio)
        zb = torch.from_numpy(np.ascontiguousarray(setup.train_z[idx])).to(loop.device)
        loss, parts = _loss(loop.model(xb), zb, cfg.loss)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        loop.opt.step()
        loop.sched.step()
        totals["loss"] += float(loss.detach())
        for k, v in parts.items():
            totals[k] += v
        loop.progress.step(f"epoch {epoch}/{cfg.epochs} loss {totals['loss'] / (s + 1):.4f}",
                           s + 1, loop.steps)
    return totals


def _stop_reason(cfg: Any, epoch: int, state: TrainState) -> str:
    if epoch - state.best_epoch >= cfg.patience:
        return "early_stopping"
    if epoch >= cfg.epochs:
        return "completed"
    if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch:
        return "stop_after_epoch"
    return ""


def train(
    model: Any,
    setup: TrainSetup,
    cfg: Any,  # DistillConfig (duck-typed to avoid an import cycle)
    checkpoint: Path,
    fingerprint: str,
    *,
    deadline: float | None = None,
    progress: Progress | None = None,
    on_epoch_end: Callable[[int, TrainState], None] | None = None,
) -> tuple[TrainState, dict[str, Any]]:
    """Train (or resume) ``model``; returns the final state and the best weights (state_dict).

    ``deadline`` (``time.monotonic()`` value): no epoch is started that would likely end after
    it. ``on_epoch_end`` runs after each epoch's checkpoint is written (tests inject failures).
    """
    import torch

    loop = _make_loop(model, setup, cfg, progress or Progress(False))
    progress = loop.progress
    state = TrainState()
    best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    resumed = _resume(loop, checkpoint, fingerprint)
    if resumed is not None:
        state, best_weights = resumed
        if state.stopped in ("completed", "early_stopping"):
            return state, best_weights
        state.stopped = ""
        progress.line(f"resuming after epoch {state.epoch}/{cfg.epochs} "
                      f"(best held-out cosine {state.best_cosine:.4f} at epoch {state.best_epoch})")

    if state.epoch == 0 and not state.history:
        m = loop.held_out_metrics()
        state.history.append({"epoch": 0, "loss": None, **m, "seconds": 0.0})
        state.best_cosine = m["cosine"]
        progress.line(f"epoch 0/{cfg.epochs}: held-out cosine {m['cosine']:.4f} "
                      f"centred {m['centred_cosine']:.4f} (untrained)")

    steps = loop.steps
    epoch_seconds: list[float] = [h["seconds"] for h in state.history if h["seconds"] > 0]
    while state.epoch < cfg.epochs:
        if deadline is not None and epoch_seconds:
            if time.monotonic() + float(np.median(epoch_seconds)) > deadline:
                state.stopped = "time_budget"
                break
        epoch = state.epoch + 1
        t0 = time.monotonic()
        totals = _run_epoch(loop, epoch)
        m = loop.held_out_metrics()
        seconds = time.monotonic() - t0
        epoch_seconds.append(seconds)
        state.epoch = epoch
        state.history.append({"epoch": epoch, "loss": totals["loss"] / steps,
                              **{f"loss_{k}": totals[k] / steps for k in ("cos", "mse", "rel")},
                              **m, "lr": float(loop.sched.get_last_lr()[0]), "seconds": seconds})
        improved = m["cosine"] > state.best_cosine
        if improved:
            state.best_cosine, state.best_epoch = m["cosine"], epoch
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        progress.line(f"epoch {epoch}/{cfg.epochs}: loss {totals['loss'] / steps:.4f} | held-out "
                      f"cosine {m['cosine']:.4f} centred {m['centred_cosine']:.4f}"
                      f"{' *' if improved else ''} ({seconds:.0f} s)")
        state.stopped = _stop_reason(cfg, epoch, state)
        _save_checkpoint(checkpoint, {
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": loop.opt.state_dict(),
            "scheduler": loop.sched.state_dict(),
            "state": dataclasses.asdict(state),
            "best_weights": best_weights,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
        })
        if on_epoch_end is not None:
            on_epoch_end(epoch, state)
        if state.stopped:
            break
    return state, best_weights


def model_is_4d(setup: TrainSetup) -> bool:
    return len(setup.train_x.shape) == 4

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
import json
import sys
import time
from pathlib import Path

from hai_edge.errors import HaiEdgeError
from hai_edge.teachers import _reference as ref
from hai_edge.teachers._train_reference_audio import train_audio
from hai_edge.teachers._train_reference_image import train_image
from hai_edge.teachers._train_reference_loop import log as _log

__all__ = ["main", "train_audio", "train_image"]


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
